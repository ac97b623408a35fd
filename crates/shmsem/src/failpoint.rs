//! Kill points for crash tests.
//!
//! Built with the `failpoints` feature, a process whose environment has
//! `SHMSEM_FAILPOINT=STEP` (or `STEP@N`) kills itself with SIGKILL the first (or N-th) time it
//! reaches `STEP`; with `STEP/stop` (or `STEP@N/stop`) it stops itself with SIGSTOP there
//! instead, so that a test can act while it stands still and then let it go on with SIGCONT.
//! Several such specifications, separated by commas, are armed together (for example
//! `wait:counted/stop,wait:reserved`: stop once counted, die once reserved), each with its own
//! count. Without the feature every [`hit`] compiles to nothing.
//!
//! The steps sit between two writes to shared memory, where a crash is hardest to recover from:
//!
//! | step | where |
//! |---|---|
//! | `acquire:marked` | the lane's record is marked busy; the word is not changed yet |
//! | `acquire:swapped` | the word has the weight; the record does not yet |
//! | `release:marked` | the record is marked busy; the word still has the weight |
//! | `release:swapped` | the word gave the weight back; the record still has it |
//! | `wait:marked` | a waiter's record is marked busy; the word does not count it yet |
//! | `wait:counted` | the word counts the waiter; its record does not say so yet |
//! | `wait:reserved` | a counted waiter for more than 1 reserved its weight; it has not tried to take it since |
//! | `register:locked` | the slot's lock byte is held; the slot is not written yet |
//! | `register:filled` | the slot's identity is written; its kind is not yet `ENGINE` |
//! | `claim:keyed` | a holder record is claimed; its fields are not reset yet |
//! | `reclaim:claimed` | the reclaimer claimed the semaphore's `recounter` field |
//! | `reclaim:frozen` | the word is frozen; records not yet listed |
//! | `reclaim:quiesced` | live records are quiet; nothing cleared yet |
//! | `reclaim:cleared` | dead records are cleared; the word is still frozen with the old value |
//! | `reclaim:recounted` | every touched semaphore is recounted; dead records not freed yet |
//! | `reclaim:freed` | dead records are freed; dead slots not freed yet |

/// Every step, in the order of the table above.
pub const STEPS: &[&str] = &[
    "acquire:marked",
    "acquire:swapped",
    "release:marked",
    "release:swapped",
    "wait:marked",
    "wait:counted",
    "wait:reserved",
    "register:locked",
    "register:filled",
    "claim:keyed",
    "reclaim:claimed",
    "reclaim:frozen",
    "reclaim:quiesced",
    "reclaim:cleared",
    "reclaim:recounted",
    "reclaim:freed",
];

/// The environment variable that arms a kill point.
pub const ENV: &str = "SHMSEM_FAILPOINT";

/// Reached `step`: die here if armed for it.
#[cfg(feature = "failpoints")]
#[inline(never)]
pub fn hit(step: &'static str) {
    use std::sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering::Relaxed},
    };
    /// One armed step: its name, the visit that fires, whether it stops rather than kills, and
    /// the visits so far.
    struct Armed {
        name: String,
        n: u32,
        stop: bool,
        seen: AtomicU32,
    }
    static ARMED: OnceLock<Vec<Armed>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| {
        let Ok(v) = std::env::var(ENV) else {
            return Vec::new();
        };
        v.split(',')
            .filter_map(|spec| {
                let (spec, stop) = match spec.strip_suffix("/stop") {
                    Some(spec) => (spec, true),
                    None => (spec, false),
                };
                let (name, n) = match spec.split_once('@') {
                    Some((name, n)) => (name, n.parse().ok()?),
                    None => (spec, 1),
                };
                Some(Armed {
                    name: name.to_owned(),
                    n,
                    stop,
                    seen: AtomicU32::new(0),
                })
            })
            .collect()
    });
    for a in armed {
        if a.name == step && a.seen.fetch_add(1, Relaxed) + 1 == a.n {
            if a.stop {
                crate::sys::stop_self();
            } else {
                crate::sys::kill_self();
            }
        }
    }
}

/// Reached `step` (kill points are compiled out).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_step: &'static str) {}

/// The kill points as the protocol's [`Hook`](crate::protocol::Hook): what the engine passes to
/// its transitions, so that the protocol itself knows nothing of crash tests. Without the
/// feature it compiles to nothing, as [`hit`] does.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KillPoints;

impl crate::protocol::Hook for KillPoints {
    #[inline(always)]
    fn reached(self, step: &'static str) {
        hit(step);
    }
}
