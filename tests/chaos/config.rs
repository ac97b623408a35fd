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

pub const NAMES: usize = 6;
pub const SPECS: [Spec; NAMES] = [
    Spec {
        name: "mutex",
        rule: Rule::Strict,
        persistent: false,
        cap: (1, 1),
    },
    Spec {
        name: "fixed",
        rule: Rule::Strict,
        persistent: false,
        cap: (3, 3),
    },
    Spec {
        name: "flex",
        rule: Rule::Strict,
        persistent: false,
        cap: (2, 6),
    },
    Spec {
        name: "keep",
        rule: Rule::Strict,
        persistent: true,
        cap: (4, 4),
    },
    Spec {
        name: "force",
        rule: Rule::PerIncarnation,
        persistent: true,
        cap: (2, 2),
    },
    Spec {
        name: "forceflex",
        rule: Rule::PerIncarnation,
        persistent: true,
        cap: (1, 4),
    },
];
/// The per-incarnation names are the last ones, from this index.
pub const FIRST_PER_INCARNATION: usize = 4;
pub const PER_INCARNATION: usize = NAMES - FIRST_PER_INCARNATION;
/// The highest capacity of any name: no value may ever be above it.
pub const MAX_CAP: u32 = 6;

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
