//! One module per subcommand; [`dispatch`] runs the one asked for.

mod acquire;
mod create;
mod grant;
mod inspect;
mod metrics;
mod ps;
mod reap;
mod release;
mod rm;
mod run;
mod set;
mod watch;

use shmsem::Semaphore;

use crate::cli::{Cli, Command};

/// Run the command; its exit status on success (0, `run`'s child's status, or 128 + the signal
/// that ended `watch`).
pub fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let scope = cli.scope.into();
    let opts = Semaphore::options()
        .scope(scope)
        .namespace(cli.namespace.clone());
    match cli.command {
        Command::Create(args) => create::create(opts, args),
        Command::Run(args) => return run::run(opts, args),
        Command::Acquire(args) => acquire::acquire(opts, args),
        Command::Release(args) => release::release(opts, args),
        Command::Ls(args) => inspect::ls(opts, args.json),
        Command::Show(args) => inspect::show(opts, args),
        Command::Ps(args) => ps::ps(args.pid, args.json),
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
        Command::Metrics(args) => metrics::metrics(opts, args),
    }
    .map(|()| 0)
}

/// `opts` waiting for the namespace's locks no longer than `--timeout MS`, when given.
pub fn with_lock_timeout(opts: shmsem::Options, timeout_ms: Option<u64>) -> shmsem::Options {
    match timeout_ms {
        Some(ms) => opts.lock_timeout(std::time::Duration::from_millis(ms)),
        None => opts,
    }
}
