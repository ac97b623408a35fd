//! `shmsem tree`: run a command as the root of a new `self` scope.

use shmsem::{SELF_ENV, Tree};

use super::run::{cannot_spawn, exit_status, prepare};
use crate::{cli::TreeArgs, signals};

/// Start the command in a new `self` tree rooted at this process, wait for it, and return its
/// exit status (128 + the signal if a signal ended it).
///
/// The tree is named after this process, which lives exactly as long as the command (the
/// forwarded SIGINT and SIGTERM end the command, not this process, which then reports its
/// status). The command, and every descendant that inherits its environment, gets
/// `SHMSEM_SELF` naming the tree.
pub fn tree(args: TreeArgs) -> anyhow::Result<u8> {
    if std::env::var_os(SELF_ENV).is_some() {
        // A tree inside a tree is a new tree: this process is not to join the outer one.
        // SAFETY: this process has one thread (nothing has started another yet), so no other
        // thread reads the environment while it changes.
        unsafe { std::env::remove_var(SELF_ENV) };
    }
    let tree = Tree::current()?;
    let (mut command, program) = match prepare(&args.command)? {
        Ok(prepared) => prepared,
        Err(status) => return Ok(status),
    };
    tree.command(&mut command);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Ok(cannot_spawn(program, &e)),
    };
    signals::forward_to(child.id());
    let status = child.wait()?;
    Ok(exit_status(status))
}
