//! `shmsem grant`: let a further group use the namespace.

use shmsem::Options;

use crate::{cli::GrantArgs, group};

/// Add a POSIX ACL entry for `--group` to the namespace's files. The OS decides who may: the
/// files' owner (or root); anyone else gets permission denied (exit 77).
pub fn grant(opts: Options, args: GrantArgs) -> anyhow::Result<()> {
    let gid = group::resolve(&args.group)?;
    opts.to_namespace()?.grant(gid)?;
    Ok(())
}
