//! `shmsem release`: give back weight a process holds.

use std::os::unix::process::parent_id;

use shmsem::Options;

use crate::cli::ReleaseArgs;

/// Release `--count` of what `--holder` (default: the parent process) holds.
pub fn release(opts: Options, args: ReleaseArgs) -> anyhow::Result<()> {
    let holder = args.holder.unwrap_or_else(parent_id);
    let sem = opts.open_existing(&args.name)?;
    sem.release_for(holder, args.count)?;
    Ok(())
}
