//! `self` trees: which tree this process belongs to, and how a child is made to join it.
//!
//! The library never writes the environment. A process started with `SHMSEM_SELF` belongs to
//! the tree it names; any other process is the root of a tree of its own. A child joins its
//! parent's tree only when it is started with `SHMSEM_SELF` set, which [`Tree::command`] does.

use std::{process::Command, sync::OnceLock};

use super::SELF_ENV;
use crate::{
    error::{Error, Result},
    sys,
};

/// The `self` tree this process belongs to: the processes that share [`Scope::Tree`]
/// semaphores with it.
///
/// A tree is named after its root, the process that started it: `PID-START`, its pid and start
/// time. A process started with `SHMSEM_SELF=PID-START` in its environment belongs to that tree;
/// any other process is the root of its own. The library reads the variable once and never sets
/// it: to bring a child into the tree, start it through [`Tree::command`] (or give it the
/// variable from [`Tree::env`]; a program may also set the variable itself before it starts any
/// thread, so that everything it spawns inherits it).
///
/// [`Scope::Tree`]: crate::Scope::Tree
///
/// # Examples
///
/// ```
/// use std::process::Command;
///
/// let tree = shmsem::Tree::current()?;
/// let mut child = Command::new("true");
/// tree.command(&mut child);
/// let (name, value) = tree.env();
/// assert_eq!(name, shmsem::SELF_ENV);
/// assert_eq!(value, tree.id());
/// assert!(child.get_envs().any(|(k, v)| k == name && v == Some(value.as_ref())));
/// # Ok::<(), shmsem::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tree {
    root: sys::Identity,
}

impl Tree {
    /// This process's tree: the one `SHMSEM_SELF` names, or, without it, a new tree with this
    /// process as its root. Decided at the first call (or first use of [`Scope::Tree`]) and the
    /// same for the life of the process. Fails with [`Error::InvalidArgument`] when `SHMSEM_SELF`
    /// is set to something other than `PID-START`.
    ///
    /// [`Scope::Tree`]: crate::Scope::Tree
    ///
    /// # Examples
    ///
    /// ```
    /// let tree = shmsem::Tree::current()?;
    /// if std::env::var_os(shmsem::SELF_ENV).is_none() {
    ///     // Started outside any tree: this process is the root of its own.
    ///     assert!(tree.id().starts_with(&format!("{}-", std::process::id())));
    /// }
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn current() -> Result<Tree> {
        static ROOT: OnceLock<std::result::Result<sys::Identity, String>> = OnceLock::new();
        let root = ROOT.get_or_init(|| match std::env::var(SELF_ENV) {
            Ok(v) => parse_tree_id(&v).ok_or_else(|| {
                format!("{SELF_ENV}={v:?} is not PID-START; unset it to start a new tree")
            }),
            Err(_) => Ok(sys::current()),
        });
        root.clone()
            .map(|root| Tree { root })
            .map_err(Error::invalid)
    }

    /// The tree's name, `PID-START`: the value of `SHMSEM_SELF` that makes a process join it.
    ///
    /// # Examples
    ///
    /// ```
    /// let id = shmsem::Tree::current()?.id();
    /// let (pid, start) = id.split_once('-').expect("PID-START");
    /// assert!(pid.parse::<u32>().is_ok() && start.parse::<u64>().is_ok());
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn id(&self) -> String {
        format!("{}-{}", self.root.pid, self.root.start_time)
    }

    /// The environment variable, and its value, that make a child join this tree: for code that
    /// starts processes by other means than [`std::process::Command`].
    ///
    /// # Examples
    ///
    /// ```
    /// let (name, value) = shmsem::Tree::current()?.env();
    /// assert_eq!(name, "SHMSEM_SELF");
    /// assert!(!value.is_empty());
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn env(&self) -> (&'static str, String) {
        (SELF_ENV, self.id())
    }

    /// Make the child that `command` starts join this tree (set `SHMSEM_SELF` in its
    /// environment). Returns `command`, for chaining.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::process::Command;
    ///
    /// // The child sees this process's `self` semaphores.
    /// let status = shmsem::Tree::current()?
    ///     .command(&mut Command::new("shmsem"))
    ///     .args(["--scope", "self", "ls"])
    ///     .status();
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn command<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command.env(SELF_ENV, self.id())
    }

    /// The tree's root.
    pub(crate) fn root(&self) -> sys::Identity {
        self.root
    }
}

/// Parse a tree identity, `PID-START`.
pub(crate) fn parse_tree_id(s: &str) -> Option<sys::Identity> {
    let (pid, start) = s.split_once('-')?;
    let pid: u32 = pid.parse().ok().filter(|&p| p > 0)?;
    let start_time: u64 = start.parse().ok()?;
    Some(sys::Identity { pid, start_time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_ids_parse_strictly() {
        assert_eq!(
            parse_tree_id("12-345"),
            Some(sys::Identity {
                pid: 12,
                start_time: 345
            })
        );
        for bad in ["", "12", "-3", "0-1", "a-1", "1-b", "1-2-3"] {
            assert_eq!(parse_tree_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_tree_id_names_the_tree_it_came_from() {
        let tree = Tree::current().expect("this process's tree");
        assert_eq!(parse_tree_id(&tree.id()), Some(tree.root()));
    }

    #[test]
    fn joining_a_tree_leaves_this_process_environment_alone() {
        let before = std::env::var_os(SELF_ENV);
        let tree = Tree::current().expect("this process's tree");
        let mut child = Command::new("true");
        tree.command(&mut child);
        let (name, value) = tree.env();
        assert!(
            child
                .get_envs()
                .any(|(k, v)| k == name && v == Some(value.as_ref()))
        );
        assert_eq!(std::env::var_os(SELF_ENV), before);
    }
}
