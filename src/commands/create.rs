//! `shmsem create`: get-or-create, then print the semaphore's `ls` line.

use std::time::Duration;

use shmsem::Options;

use crate::{
    cli::CreateArgs,
    group,
    output::{self, emit, emit_json},
};

/// Open `args.name`, creating it with the given capacity, kind and namespace ownership if it
/// does not exist, and print it.
pub fn create(mut opts: Options, args: CreateArgs) -> anyhow::Result<()> {
    opts = opts.capacity(args.capacity);
    if args.persistent {
        opts = opts.persistent();
    }
    if let Some(ms) = args.idle_ms {
        opts = opts.auto(Duration::from_millis(ms));
    }
    if let Some(g) = &args.group {
        opts = opts.group(group::resolve(g)?);
    }
    if let Some(mode) = args.mode {
        opts = opts.mode(mode);
    }
    let info = opts.open(&args.name)?.info()?;
    if args.json {
        emit_json(&output::summary_json(&info))
    } else {
        emit(&output::table(
            output::LS_HEADER,
            &[output::ls_row(&info)],
            false,
        ))
    }
}
