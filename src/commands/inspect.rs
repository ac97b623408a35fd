//! `shmsem ls` and `shmsem show`.

use serde_json::Value;
use shmsem::Options;

use crate::{
    cli::ShowArgs,
    output::{self, emit, emit_json},
};

/// List every semaphore of the scope and namespace.
pub fn ls(opts: Options, json: bool) -> anyhow::Result<()> {
    let infos = opts.to_namespace()?.list()?;
    if json {
        let all: Value = infos.iter().map(output::summary_json).collect();
        return emit_json(&all);
    }
    let rows: Vec<_> = infos.iter().map(output::ls_row).collect();
    emit(&output::table(output::LS_HEADER, &rows, true))
}

/// Show one existing semaphore with its holders and waiters.
pub fn show(opts: Options, args: ShowArgs) -> anyhow::Result<()> {
    let info = opts.open_existing(&args.name)?.info()?;
    if args.json {
        emit_json(&output::detail_json(&info))
    } else {
        emit(&output::detail_text(&info))
    }
}
