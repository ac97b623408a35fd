//! `shmsem completions` and `shmsem man`: made from the clap definition of the command line.

use clap::CommandFactory;

use crate::{cli::Cli, output::emit};

/// Print the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "shmsem", &mut script);
    emit(&String::from_utf8_lossy(&script))
}

/// Print the manual page, in roff.
pub fn man() -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    emit(&String::from_utf8_lossy(&page))
}
