//! `shmsem set`: change a semaphore's capacity or kind at run time.

use shmsem::Options;

use crate::cli::SetArgs;

/// Change an existing semaphore: the capacity first (the library checks it, so a refused
/// capacity changes nothing), then the kind.
pub fn set(opts: Options, args: SetArgs) -> anyhow::Result<()> {
    let sem = opts.open_existing(&args.name)?;
    if let Some(capacity) = args.capacity {
        sem.set_capacity(capacity)?;
    }
    if args.persistent || args.auto {
        sem.set_persistent(args.persistent)?;
    }
    Ok(())
}
