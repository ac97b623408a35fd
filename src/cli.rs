//! The command line, as clap types.
//!
//! Checks that need no semaphore (names, non-zero numbers, octal modes) happen here, so that
//! they are usage errors (exit status 2); checks that depend on a semaphore's state (a weight
//! above its capacity, releasing more than is held) are the library's (exit status 1).

use std::ffi::OsString;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// Named counting semaphores shared between processes.
#[derive(Debug, Parser)]
#[command(name = "shmsem", version, about, max_term_width = 100)]
pub struct Cli {
    /// Who can see the semaphores.
    #[arg(long, value_enum, global = true, default_value_t = ScopeArg::Local)]
    pub scope: ScopeArg,
    /// A separately permissioned table within the scope.
    #[arg(long, global = true, value_name = "NS", default_value = shmsem::DEFAULT_NAMESPACE,
          value_parser = name)]
    pub namespace: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--scope` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// This process and its descendants.
    #[value(name = "self")]
    Tree,
    /// Every process of your user, wherever it started.
    Local,
    /// Every process on the machine that the namespace's permissions admit.
    Global,
}

impl From<ScopeArg> for shmsem::Scope {
    fn from(s: ScopeArg) -> Self {
        match s {
            ScopeArg::Tree => shmsem::Scope::Tree,
            ScopeArg::Local => shmsem::Scope::Local,
            ScopeArg::Global => shmsem::Scope::Global,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open a semaphore, creating it if it does not exist, and print its line as `ls` does.
    Create(CreateArgs),
    /// Acquire, run a command as a child, and release when it exits; exits with its status.
    Run(RunArgs),
    /// Acquire on behalf of a process (default: the calling shell) and return; the weight stays
    /// held until `release` or until that process dies.
    Acquire(AcquireArgs),
    /// Give back weight that a process (default: the calling shell) holds.
    Release(ReleaseArgs),
    /// List the semaphores of the scope and namespace.
    Ls(JsonArg),
    /// Show one semaphore with its holders and waiters.
    Show(ShowArgs),
    /// List what a process holds or waits for, in every scope and namespace this user can see.
    Ps(PsArgs),
    /// Change a semaphore's capacity or kind at run time.
    Set(SetArgs),
    /// Remove a semaphore; refuses while it is held unless --force.
    Rm(RmArgs),
    /// Reclaim what dead holders hold, and print what came back.
    Reap(JsonArg),
    /// Let a further group use the namespace (a POSIX ACL entry on its files).
    Grant(GrantArgs),
    /// A live view of the semaphores: value against capacity, holders and waiters.
    Watch(WatchArgs),
    /// Compare shmsem with POSIX and SysV kernel semaphores.
    Bench(BenchArgs),
    /// Print every semaphore's numbers and statistics as OpenMetrics (Prometheus) text.
    Metrics(MetricsArgs),
}

/// `create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The semaphore's name: 1 to 200 bytes of [A-Za-z0-9._-].
    #[arg(value_parser = name)]
    pub name: String,
    /// The most weight held at once, if it is created (an existing one keeps its own).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = positive_u32)]
    pub capacity: u32,
    /// Keep it until removed instead of deleting it once idle.
    #[arg(long, conflicts_with = "idle_ms")]
    pub persistent: bool,
    /// How long an auto semaphore stays without holders or waiters before it is deleted.
    #[arg(long, value_name = "N")]
    pub idle_ms: Option<u64>,
    /// Owner group of a new namespace's files: a group name or a numeric gid.
    #[arg(long, value_name = "G")]
    pub group: Option<String>,
    /// File mode of a new namespace's files, in octal.
    #[arg(long, value_name = "MODE", value_parser = octal_mode)]
    pub mode: Option<u32>,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

/// What `run` and `acquire` take.
#[derive(Debug, Args)]
pub struct TakeArgs {
    /// The semaphore's name (created if it does not exist).
    #[arg(value_parser = name)]
    pub name: String,
    /// The weight to take.
    #[arg(long, value_name = "W", default_value_t = 1, value_parser = positive_u32)]
    pub weight: u32,
    /// Give up after this many milliseconds (0: try once); without it, wait as long as it takes.
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,
    /// The capacity, if the semaphore is created.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = positive_u32)]
    pub capacity: u32,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Name, weight, timeout and capacity.
    #[command(flatten)]
    pub take: TakeArgs,
    /// The command and its arguments (after `--`).
    #[arg(value_name = "CMD", required = true, num_args = 1.., trailing_var_arg = true)]
    pub command: Vec<OsString>,
}

/// `acquire`.
#[derive(Debug, Args)]
pub struct AcquireArgs {
    /// Name, weight, timeout and capacity.
    #[command(flatten)]
    pub take: TakeArgs,
    /// The process that holds the weight [default: the parent process]
    #[arg(long, value_name = "PID", value_parser = positive_u32)]
    pub holder: Option<u32>,
}

/// `release`.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The semaphore's name.
    #[arg(value_parser = name)]
    pub name: String,
    /// The weight to give back.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = positive_u32)]
    pub count: u32,
    /// The process whose weight is given back [default: the parent process]
    #[arg(long, value_name = "PID", value_parser = positive_u32)]
    pub holder: Option<u32>,
}

/// `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The semaphore's name.
    #[arg(value_parser = name)]
    pub name: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// The process.
    #[arg(value_parser = positive_u32)]
    pub pid: u32,
    /// Print one JSON array.
    #[arg(long)]
    pub json: bool,
}

/// `set`: at least one change.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true)
    .args(["capacity", "persistent", "auto"])))]
pub struct SetArgs {
    /// The semaphore's name.
    #[arg(value_parser = name)]
    pub name: String,
    /// The new capacity. Raising it wakes the waiters that now fit; lowering it below the value
    /// takes nothing back, but no acquire succeeds until the value is below it.
    #[arg(long, value_name = "N", value_parser = positive_u32)]
    pub capacity: Option<u32>,
    /// Keep it until removed.
    #[arg(long, conflicts_with = "auto")]
    pub persistent: bool,
    /// Delete it once it has had no holder and no waiter for its idle period, counted from now.
    #[arg(long)]
    pub auto: bool,
}

/// `grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The group to admit: a group name or a numeric gid.
    #[arg(long, value_name = "G")]
    pub group: String,
}

/// `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Watch only this semaphore [default: every semaphore of the scope and namespace]
    #[arg(value_parser = name)]
    pub name: Option<String>,
    /// Milliseconds between refreshes, from 100 to 60000.
    #[arg(long, value_name = "MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(MIN_INTERVAL_MS..=60_000))]
    pub interval: u64,
}

/// The shortest `watch --interval`.
pub const MIN_INTERVAL_MS: u64 = 100;

/// `rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The semaphore's name.
    #[arg(value_parser = name)]
    pub name: String,
    /// Remove it even while held; its waiters fail.
    #[arg(long)]
    pub force: bool,
}

/// Commands whose only option is `--json`.
#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Print one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Fewer rounds: finishes in under 30 s.
    #[arg(long)]
    pub quick: bool,
    /// Also write the latency plot (shmsem beside POSIX and SysV) as SVG to this file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
    /// Measure nothing: print the table of a run saved with --json (`-` for stdin).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["json", "quick", "svg"])]
    pub from_json: Option<std::path::PathBuf>,
}

/// `metrics`.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Print one JSON array (the fields of `ls --json` and the counters) instead.
    #[arg(long)]
    pub json: bool,
    /// Every namespace of every scope this user can open, instead of --scope and --namespace.
    #[arg(long)]
    pub all: bool,
}

/// A semaphore or namespace name, checked by the library's rule.
fn name(s: &str) -> Result<String, String> {
    shmsem::validate_name(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

/// A number from 1 to `u32::MAX`.
fn positive_u32(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!(
            "{e} (expected a whole number from 1 to {})",
            u32::MAX
        )),
    }
}

/// A file mode in octal (`0660`, `660` or `0o660`), at most `0777`.
fn octal_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 && !digits.is_empty() => Ok(m),
        _ => Err("expected an octal mode from 0 to 0777, such as 0660".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(octal_mode("0660"), Ok(0o660));
        assert_eq!(octal_mode("0o640"), Ok(0o640));
        assert_eq!(octal_mode("777"), Ok(0o777));
        for bad in ["", "0o", "0800", "1777", "rw", "-1"] {
            assert!(octal_mode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn numbers_are_positive() {
        assert_eq!(positive_u32("3"), Ok(3));
        for bad in ["0", "-1", "x", "", "4294967296"] {
            assert!(positive_u32(bad).is_err(), "{bad:?}");
        }
    }
}
