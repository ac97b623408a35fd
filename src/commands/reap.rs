//! `shmsem reap`: reclaim what dead holders hold.

use shmsem::Namespace;

use crate::output::{self, emit, emit_json};

/// Reclaim in the namespace `ns`, and print each holder whose weight came back.
pub fn reap(ns: &Namespace, json: bool) -> anyhow::Result<()> {
    let reclaimed = ns.reap()?;
    if json {
        emit_json(&output::reclaimed_json(ns.scope(), ns.name(), &reclaimed))
    } else {
        emit(&output::reclaimed_text(&reclaimed))
    }
}
