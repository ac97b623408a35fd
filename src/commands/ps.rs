//! `shmsem ps`: what one process holds or waits for.

use crate::output::{self, emit, emit_json};

/// List what `pid` holds or waits for in every scope and namespace this process may open,
/// whatever `--scope` and `--namespace` say.
pub fn ps(pid: u32, json: bool) -> anyhow::Result<()> {
    let activity = shmsem::ps(pid)?;
    if json {
        emit_json(&output::activity_json(&activity))
    } else {
        emit(&output::activity_text(&activity))
    }
}
