//! `shmsem create`: get-or-create, then print the semaphore's `ls` line.

use std::time::Duration;

use shmsem::Options;

use super::warn_capacity;
use crate::{
    cli::CreateArgs,
    group,
    output::{self, emit, emit_json},
};

/// Open `args.name`, creating it with the given capacity, kind and namespace ownership if it
/// does not exist (with `--new`, only create it: an existing one is an error), and print it.
pub fn create(mut opts: Options, args: CreateArgs, quiet: bool) -> anyhow::Result<()> {
    opts = opts.capacity(args.capacity.unwrap_or(1));
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
    let sem = if args.new {
        opts.create_new(&args.name)?
    } else {
        let sem = opts.open(&args.name)?;
        warn_capacity(&sem, args.capacity, quiet);
        sem
    };
    let info = sem.info()?;
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
