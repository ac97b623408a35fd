//! `shmsem rm`: delete a semaphore.

use shmsem::Options;

use crate::cli::RmArgs;

/// Remove an existing semaphore; the library refuses while it is held unless `--force`.
pub fn rm(opts: Options, args: RmArgs) -> anyhow::Result<()> {
    opts.open_existing(&args.name)?.remove(args.force)?;
    Ok(())
}
