//! The command line, as clap types.
//!
//! Checks that need no semaphore (names, non-zero numbers, octal modes) happen here, so that
//! they are usage errors (exit status 2); checks that depend on a semaphore's state (a weight
//! above its capacity, releasing more than is held) are the library's (exit status 1).

mod values;

use std::{ffi::OsString, time::Duration};

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use self::values::{capacity, duration, idle_ms, interval, name, octal_mode, pid};

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
    /// The etcd v3 endpoints of `--scope cluster`, comma-separated
    /// [default: the SHMSEM_CLUSTER variable].
    #[arg(long, global = true, value_name = "URL[,URL...]")]
    pub cluster: Option<String>,
    /// Print no warnings (errors are still printed).
    #[arg(short, long, global = true)]
    pub quiet: bool,
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
    /// Every process, on any machine, that reaches the same etcd v3 cluster (--cluster).
    Cluster,
}

impl From<ScopeArg> for shmsem::Scope {
    fn from(s: ScopeArg) -> Self {
        match s {
            ScopeArg::Tree => shmsem::Scope::Tree,
            ScopeArg::Local => shmsem::Scope::Local,
            ScopeArg::Global => shmsem::Scope::Global,
            ScopeArg::Cluster => shmsem::Scope::Cluster,
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
    /// Run a command as the root of a new `self` scope: it and its descendants share
    /// `--scope self` semaphores; exits with its status.
    Tree(TreeArgs),
    /// Wait until nothing of a semaphore is held (its value is 0); takes nothing.
    Wait(WaitArgs),
    /// Print a shell completion script for bash, zsh, fish, elvish or powershell.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), made from this command line's definition.
    Man,
    /// Print every semaphore's numbers and statistics as OpenMetrics (Prometheus) text.
    Metrics(MetricsArgs),
    /// Serve the Semaphores web page, a JSON API and /metrics over HTTP for every scope and
    /// namespace this user may open; read-only unless --edit, and then every change needs the
    /// token it prints.
    Serve(ServeArgs),
}

impl Cli {
    /// Checks across options that clap's attributes cannot express: `--scope self` outside a
    /// tree would be a tree of this one process, shared with nobody, so it is refused.
    pub fn check(self) -> Result<Cli, clap::Error> {
        let scoped = !matches!(
            self.command,
            Command::Ps(_)
                | Command::Bench(_)
                | Command::Tree(_)
                | Command::Completions(_)
                | Command::Man
        );
        if scoped && self.scope == ScopeArg::Tree && std::env::var_os(shmsem::SELF_ENV).is_none() {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ArgumentConflict,
                "--scope self needs a tree: run the commands under `shmsem tree -- CMD`\n",
            ));
        }
        Ok(self)
    }
}

/// `create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The semaphore's name: 1 to 200 bytes of [A-Za-z0-9._-].
    #[arg(value_parser = name)]
    pub name: String,
    /// The most weight held at once, if it is created [default: 1]. An existing one keeps its
    /// own: a different --capacity is ignored with a warning (change it with `shmsem set`).
    #[arg(long, value_name = "N", value_parser = capacity)]
    pub capacity: Option<u32>,
    /// Fail (exit 1) if it exists, instead of opening it.
    #[arg(long)]
    pub new: bool,
    /// Keep it until removed instead of deleting it once idle.
    #[arg(long, conflicts_with = "idle_ms")]
    pub persistent: bool,
    /// How long an auto semaphore stays without holders or waiters before it is deleted, in
    /// milliseconds (at most 4294967295).
    #[arg(long, value_name = "N", value_parser = idle_ms)]
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
    #[arg(long, value_name = "W", default_value_t = 1, value_parser = capacity)]
    pub weight: u32,
    /// How long to wait.
    #[command(flatten)]
    pub wait: Patience,
    /// The capacity, if the semaphore is created [default: 1]. An existing one keeps its own: a
    /// different --capacity is ignored with a warning (change it with `shmsem set`).
    #[arg(long, value_name = "N", value_parser = capacity)]
    pub capacity: Option<u32>,
}

/// How long to wait: `-w/--timeout T` or `-n/--nonblock`, as `flock(1)` has them.
#[derive(Debug, Args)]
pub struct Patience {
    /// Give up after T (exit 75): milliseconds, or a number with a unit (250ms, 2s, 1.5s, 1m,
    /// 1h); 0 tries once. Without it, wait as long as it takes.
    #[arg(short = 'w', long, value_name = "T", value_parser = duration)]
    pub timeout: Option<Duration>,
    /// Try once and fail at once (exit 75) if it would wait: the same as --timeout 0.
    #[arg(short = 'n', long, conflicts_with = "timeout")]
    pub nonblock: bool,
}

impl Patience {
    /// The timeout asked for: none (wait forever), or a duration (zero: try once).
    pub fn timeout(&self) -> Option<Duration> {
        if self.nonblock {
            Some(Duration::ZERO)
        } else {
            self.timeout
        }
    }
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
    #[arg(long, value_name = "PID", value_parser = pid)]
    pub holder: Option<u32>,
}

/// `release`.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The semaphore's name.
    #[arg(value_parser = name)]
    pub name: String,
    /// The weight to give back.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = capacity)]
    pub count: u32,
    /// The process whose weight is given back [default: the parent process]
    #[arg(long, value_name = "PID", value_parser = pid)]
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
    #[arg(value_parser = pid)]
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
    #[arg(long, value_name = "N", value_parser = capacity)]
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
    /// Time between refreshes, from 100 ms to 1 m: milliseconds, or a number with a unit
    /// (250ms, 2s).
    #[arg(long, value_name = "T", default_value = "500", value_parser = interval)]
    pub interval: Duration,
}

/// `tree`.
#[derive(Debug, Args)]
pub struct TreeArgs {
    /// The command and its arguments (after `--`).
    #[arg(value_name = "CMD", required = true, num_args = 1.., trailing_var_arg = true)]
    pub command: Vec<OsString>,
}

/// `wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The semaphore's name (it must exist).
    #[arg(value_parser = name)]
    pub name: String,
    /// How long to wait.
    #[command(flatten)]
    pub wait: Patience,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

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

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address and port to listen on (port 0: any free port; the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7310")]
    pub listen: std::net::SocketAddr,
    /// Allow changes (create, set, remove, reap) from clients that send the printed token.
    #[arg(long)]
    pub edit: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
