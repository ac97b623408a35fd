//! Kill points for crash tests.
//!
//! Built with the `failpoints` feature, a process whose environment has
//! `SHMSEM_FAILPOINT=STEP` (or `STEP@N`) kills itself with SIGKILL the first (or N-th) time it
//! reaches `STEP`; with `STEP/stop` (or `STEP@N/stop`) it stops itself with SIGSTOP there
//! instead, so that a test can act while it stands still and then let it go on with SIGCONT.
//! Without the feature every [`hit`] compiles to nothing.
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
    static ARMED: OnceLock<Option<(String, u32, bool)>> = OnceLock::new();
    static SEEN: AtomicU32 = AtomicU32::new(0);
    let armed = ARMED.get_or_init(|| {
        let v = std::env::var(ENV).ok()?;
        let (v, stop) = match v.strip_suffix("/stop") {
            Some(v) => (v.to_owned(), true),
            None => (v, false),
        };
        let (name, n) = match v.split_once('@') {
            Some((name, n)) => (name.to_owned(), n.parse().ok()?),
            None => (v, 1),
        };
        Some((name, n, stop))
    });
    if let Some((name, n, stop)) = armed
        && name == step
        && SEEN.fetch_add(1, Relaxed) + 1 == *n
    {
        if *stop {
            crate::sys::stop_self();
        } else {
            crate::sys::kill_self();
        }
    }
}

/// Reached `step` (kill points are compiled out).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_step: &'static str) {}
