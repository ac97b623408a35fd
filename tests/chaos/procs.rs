//! The processes the test starts, seen from the test: their directory and their commands, all
//! through `common`'s harness.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use crate::{
    common::{Spawn, TestDir, cli, die_with_parent},
    config::{INDEX_ENV, NS, WITNESS_ENV},
};

/// The witness file of the run in `dir`.
pub fn witness_path(dir: &TestDir) -> PathBuf {
    dir.work_file("witness")
}

/// A child process running this test binary in `role`, dying with the test: started with
/// [`Spawn::spawn`] to read its reports, or from [`Spawn::command`] by a caller that keeps it.
pub fn role_spawn<'a>(dir: &'a TestDir, role: &str, index: usize) -> Spawn<'a> {
    Spawn::new(dir, role)
        .label(format!("{role} {index}"))
        .env(INDEX_ENV, index.to_string())
        .env(WITNESS_ENV, witness_path(dir))
        .env_remove(shmsem::failpoint::ENV)
        .inherit_stderr()
        .die_with_parent()
}

/// `shmsem --namespace NS ARGS` with the run's directory, dying with the test.
pub fn cli_command(dir: &TestDir, args: &[&str]) -> Command {
    let mut cmd = cli::command(dir, &[&["--namespace", NS], args].concat());
    cmd.env_remove(shmsem::failpoint::ENV);
    die_with_parent(&mut cmd);
    cmd
}

/// A `sleep` that a worker acts for, dying with the test.
pub fn sleeper_command() -> Command {
    let mut cmd = Command::new("sleep");
    cmd.arg("100000").stdin(Stdio::null()).stdout(Stdio::null());
    die_with_parent(&mut cmd);
    cmd
}
