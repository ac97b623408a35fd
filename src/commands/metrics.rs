//! `shmsem metrics`: every semaphore of the scope and namespace (or, with `--all`, of every
//! namespace this process can open) with its statistics, as OpenMetrics text or JSON.

use shmsem::{Namespace, Options};

use crate::{
    cli::MetricsArgs,
    output::{emit, emit_json},
};
use shmsem_cli::openmetrics;

/// Print the metrics of the namespace `opts` names, or of every namespace with `--all`.
pub fn metrics(opts: Options, args: MetricsArgs) -> anyhow::Result<()> {
    let all = if args.all {
        // As `ps` does: a namespace this process may not open, or that is not a segment of
        // this version, says nothing about the others.
        Namespace::all()?
            .iter()
            .filter_map(|ns| ns.list_with_counters().ok())
            .flatten()
            .collect()
    } else {
        opts.to_namespace()?.list_with_counters()?
    };
    if args.json {
        emit_json(&openmetrics::json(&all))
    } else {
        emit(&openmetrics::text(&all))
    }
}
