//! `shmsem reap`: reclaim what dead holders hold.

use shmsem::{Options, Scope};

use crate::output::{self, emit, emit_json};

/// Reclaim in `scope` and `namespace` (which `opts` is for), and print each holder whose weight came back.
pub fn reap(opts: Options, scope: Scope, namespace: &str, json: bool) -> anyhow::Result<()> {
    let reclaimed = opts.reap()?;
    if json {
        emit_json(&output::reclaimed_json(scope, namespace, &reclaimed))
    } else {
        emit(&output::reclaimed_text(&reclaimed))
    }
}
