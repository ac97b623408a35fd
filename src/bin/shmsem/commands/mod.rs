//! One module per subcommand; [`dispatch`] runs the one asked for.

mod acquire;
mod create;
mod inspect;
mod reap;
mod release;
mod rm;
mod run;

use shmsem::Semaphore;

use crate::cli::{Cli, Command};

/// Run the command; its exit status on success (0, or `run`'s child's status).
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
        Command::Rm(args) => rm::rm(opts, args),
        Command::Reap(args) => reap::reap(opts, scope, &cli.namespace, args.json),
        Command::Bench(args) => crate::bench::run(args.json, args.quick),
    }
    .map(|()| 0)
}
