//! One module per subcommand; [`dispatch`] runs the one asked for.

mod acquire;
mod create;
mod docs;
mod grant;
mod inspect;
mod metrics;
mod ps;
mod reap;
mod release;
mod rm;
mod run;
mod run_cluster;
mod set;
mod tree;
mod wait;
mod watch;

use std::{
    fmt,
    io::{self, Write},
    time::Duration,
};

use shmsem::{Options, Semaphore};

use crate::cli::{Cli, Command, TakeArgs};

/// Run the command; its exit status on success (0, `run`'s or `tree`'s child's status, or
/// 128 + the signal that ended `watch`).
pub fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let scope = cli.scope.into();
    let mut opts = Semaphore::options()
        .scope(scope)
        .namespace(cli.namespace.clone());
    if let Some(list) = &cli.cluster {
        opts = opts.cluster(list.split(',').map(str::trim).filter(|e| !e.is_empty()));
    }
    let quiet = cli.quiet;
    match cli.command {
        Command::Create(args) => create::create(opts, args, quiet),
        Command::Run(args) => return run::run(opts, args, quiet),
        Command::Acquire(args) => acquire::acquire(opts, args, quiet),
        Command::Release(args) => release::release(opts, args),
        Command::Ls(args) => inspect::ls(opts, args.json),
        Command::Show(args) => inspect::show(opts, args),
        Command::Ps(args) => ps::ps(&opts, args.pid, args.json),
        Command::Set(args) => set::set(opts, args),
        Command::Rm(args) => rm::rm(opts, args),
        Command::Reap(args) => reap::reap(&opts.to_namespace()?, args.json),
        Command::Grant(args) => grant::grant(opts, args),
        Command::Watch(args) => return watch::watch(opts, args),
        Command::Bench(args) => shmsem_bench::run(
            &["bench", "--quick"],
            args.json,
            args.quick,
            args.svg.as_deref(),
            args.from_json.as_deref(),
        ),
        Command::Tree(args) => return tree::tree(args),
        Command::Wait(args) => wait::wait(opts, args),
        Command::Completions(args) => docs::completions(args.shell),
        Command::Man => docs::man(),
        Command::Metrics(args) => metrics::metrics(opts, args),
        Command::Serve(args) => serve(args),
    }
    .map(|()| 0)
}

/// `shmsem serve`, when built with the `serve` feature.
#[cfg(feature = "serve")]
fn serve(args: crate::cli::ServeArgs) -> anyhow::Result<()> {
    crate::serve::serve(args.listen, args.edit)
}

/// `shmsem serve` in a build without the `serve` feature: an error that says so.
#[cfg(not(feature = "serve"))]
fn serve(_: crate::cli::ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "this shmsem was built without the `serve` feature (cargo build --features serve)"
    )
}

/// `opts` waiting for the namespace's locks no longer than `--timeout`, when given.
fn with_lock_timeout(opts: Options, timeout: Option<Duration>) -> Options {
    match timeout {
        Some(t) => opts.lock_timeout(t),
        None => opts,
    }
}

/// Open (or create) the semaphore `run` and `acquire` take from, warning when `--capacity` was
/// given and differs from an existing semaphore's.
fn open_for_take(opts: Options, take: &TakeArgs, quiet: bool) -> anyhow::Result<Semaphore> {
    let opts = with_lock_timeout(
        opts.capacity(take.capacity.unwrap_or(1)),
        take.wait.timeout(),
    );
    let sem = opts.open(&take.name)?;
    warn_capacity(&sem, take.capacity, quiet);
    Ok(sem)
}

/// When `--capacity` was given and the semaphore has another capacity (it existed), say on
/// stderr that the flag was ignored and how to change the capacity; not with `--quiet`.
fn warn_capacity(sem: &Semaphore, asked: Option<u32>, quiet: bool) {
    let Some(asked) = asked else { return };
    let has = sem.capacity();
    if has != asked && !quiet {
        let name = sem.name();
        let _ = writeln!(
            io::stderr(),
            "shmsem: warning: {name} exists with capacity {has}; --capacity {asked} was ignored \
             (change it with `shmsem set {name} --capacity {asked}`)"
        );
    }
}

/// A wait that reached its deadline, in the command rather than the library (as `shmsem wait`
/// does): exit status 75, as the library's timeouts.
#[derive(Debug)]
pub struct TimedOut(pub String);

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TimedOut {}
