//! The configuration of the run: environment variables, counts and time limits, and the names
//! with the rule the witness checks each by.

use std::time::Duration;

use shmsem::Options;

/// The role's index (which worker, which forker).
pub const INDEX_ENV: &str = "SHMSEM_CHAOS_INDEX";
/// The witness file's path.
pub const WITNESS_ENV: &str = "SHMSEM_CHAOS_WITNESS";
/// The pid of the process a worker acts for with `acquire_for`.
pub const SLEEPER_ENV: &str = "SHMSEM_CHAOS_SLEEPER";
/// Raises the number of kills.
pub const KILLS_ENV: &str = "SHMSEM_CHAOS_KILLS";
/// Overrides the time limit, in seconds.
pub const SECS_ENV: &str = "SHMSEM_CHAOS_SECS";
/// Turns operations off, to narrow a failure down: a comma-separated list of `fork`, `external`
/// (`acquire_for`), `force` (`remove(true)` becomes `remove(false)`), `remove`, `idle` (auto
/// semaphores get a 60 s idle period), `capacity`, `enter` (and exits across threads), `reap`
/// (and `shmsem reap`).
pub const WITHOUT_ENV: &str = "SHMSEM_CHAOS_WITHOUT";
/// The namespace everything happens in.
pub const NS: &str = "chaos";

pub const WORKERS: usize = 3;
pub const OP_THREADS: usize = 2;
pub const FORKERS: usize = 2;
pub const REAPERS: usize = 1;
pub const MIN_KILLS: u64 = 1000;
/// The default run fails rather than run longer than this.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(300);
/// A soak may take this long per kill.
pub const SOAK_SECS_PER_KILL: f64 = 0.25;
/// The run fails if no acquire at all succeeds for this long.
pub const STALL_LIMIT: Duration = Duration::from_secs(30);
/// How long an audit or holder process may take.
pub const CHILD_LIMIT: Duration = Duration::from_secs(60);
/// A default run lasts at least this long (and has at least [`MIN_KILLS`] kills).
pub const MIN_RUN: Duration = Duration::from_secs(60);
/// A role lives at least a random time up to this before it may be killed (up to
/// [`EARLY_MS`] for one in [`EARLY_PERCENT`], which may die while it registers).
pub const MAX_MIN_LIFE_MS: u64 = 250;
pub const EARLY_MS: u64 = 8;
pub const EARLY_PERCENT: usize = 15;
/// How long the engine waits for a lock of the namespace when the call has no deadline of its
/// own, before it fails with `Busy`.
pub const LOCK_PATIENCE_MS: u64 = 5000;
/// At most this many error and violation messages each are printed, over all processes.
pub const PRINT_LIMIT: u64 = 40;

/// How the witness checks a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Never force-removed: at most the highest capacity inside, over all incarnations.
    Strict,
    /// Force-removed: at most the highest capacity inside each incarnation.
    PerIncarnation,
}

pub struct Spec {
    pub name: &'static str,
    pub rule: Rule,
    pub persistent: bool,
    /// The capacity is always within these bounds (creation and `set_capacity`).
    pub cap: (u32, u32),
}

/// [`Spec::persistent`] of a name that is auto (swept when idle).
const AUTO: bool = false;
/// [`Spec::persistent`] of a persistent name.
const PERSISTENT: bool = true;

const fn spec(name: &'static str, rule: Rule, persistent: bool, cap: (u32, u32)) -> Spec {
    Spec {
        name,
        rule,
        persistent,
        cap,
    }
}

pub const NAMES: usize = 6;
/// The names, as in the table of the test's module docs.
pub const SPECS: [Spec; NAMES] = [
    spec("mutex", Rule::Strict, AUTO, (1, 1)),
    spec("fixed", Rule::Strict, AUTO, (3, 3)),
    spec("flex", Rule::Strict, AUTO, (2, 6)),
    spec("keep", Rule::Strict, PERSISTENT, (4, 4)),
    spec("force", Rule::PerIncarnation, PERSISTENT, (2, 2)),
    spec("forceflex", Rule::PerIncarnation, PERSISTENT, (1, 4)),
];
/// The per-incarnation names are the last ones, from this index.
pub const FIRST_PER_INCARNATION: usize = 4;
pub const PER_INCARNATION: usize = NAMES - FIRST_PER_INCARNATION;
/// The highest capacity of any name: no value may ever be above it.
pub const MAX_CAP: u32 = 6;

/// The kills a run must reach: [`MIN_KILLS`], or more if [`KILLS_ENV`] asks for more.
pub fn kill_target() -> u64 {
    env_number(KILLS_ENV).map_or(MIN_KILLS, |k| k.max(MIN_KILLS))
}

/// How long a run that must reach `target` kills may take: [`SECS_ENV`] seconds if set, else
/// [`DEFAULT_LIMIT`] or [`SOAK_SECS_PER_KILL`] per kill, whichever is more.
pub fn time_limit(target: u64) -> Duration {
    env_number(SECS_ENV).map_or_else(
        || DEFAULT_LIMIT.max(Duration::from_secs_f64(target as f64 * SOAK_SECS_PER_KILL)),
        Duration::from_secs,
    )
}

/// The whole number environment variable `var` holds, if it holds one.
fn env_number(var: &str) -> Option<u64> {
    std::env::var(var).ok()?.parse().ok()
}

/// Whether `SHMSEM_CHAOS_WITHOUT` turns `what` off.
pub fn without(what: &str) -> bool {
    static OFF: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    OFF.get_or_init(|| {
        std::env::var(WITHOUT_ENV)
            .unwrap_or_default()
            .split(',')
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty())
            .collect()
    })
    .iter()
    .any(|w| w == what)
}

pub fn ns() -> Options {
    Options::default().namespace(NS)
}
