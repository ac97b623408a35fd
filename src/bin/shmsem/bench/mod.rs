//! Placeholder for `shmsem bench`, which another engineer is writing.

/// Run the comparison of SPEC §6 (placeholder: not written yet).
pub fn run(_json: bool, _quick: bool) -> anyhow::Result<()> {
    anyhow::bail!("bench is not written yet")
}
