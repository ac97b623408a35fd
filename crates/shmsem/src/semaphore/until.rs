//! How long an acquire may wait: not at all, a timeout whose clock starts only when the fast path
//! fails, its started deadline, or forever.

use std::time::Duration;

use crate::wait::Monotonic;

/// How long an acquire may wait.
#[derive(Debug, Clone, Copy)]
pub(super) enum Until {
    /// Not at all.
    Now,
    /// A timeout whose clock has not started: the fast path never reads the clock.
    Timeout(Duration),
    /// A started timeout: its absolute deadline, and the timeout for the error message.
    Deadline(Monotonic, Duration),
    /// Forever.
    Forever,
}

impl Until {
    /// A [`Until`] that has not started, as values that fit in registers: the timeout (`None`:
    /// forever or now) and whether it is now.
    #[inline(always)]
    pub(super) fn to_registers(self) -> (Option<Duration>, bool) {
        match self {
            Until::Now => (None, true),
            Until::Timeout(d) => (Some(d), false),
            Until::Forever => (None, false),
            // Started timeouts never cross the fast path; keep what matters, the timeout.
            Until::Deadline(_, d) => (Some(d), false),
        }
    }

    /// The inverse of [`Self::to_registers`].
    pub(super) fn from_registers(timeout: Option<Duration>, now: bool) -> Until {
        match (timeout, now) {
            (_, true) => Until::Now,
            (Some(d), false) => Until::Timeout(d),
            (None, false) => Until::Forever,
        }
    }

    /// Start the clock of a [`Until::Timeout`].
    pub(super) fn start(self) -> Until {
        match self {
            Until::Timeout(d) => Until::Deadline(Monotonic::now().after(d), d),
            other => other,
        }
    }

    /// How long a lock may be waited for on the way: until the deadline, if there is one.
    pub(super) fn lock_deadline(self) -> Option<Monotonic> {
        match self {
            Until::Now => Some(Monotonic::now()),
            Until::Deadline(d, _) => Some(d),
            Until::Timeout(d) => Some(Monotonic::now().after(d)),
            Until::Forever => None,
        }
    }

    /// The deadline of a started timeout; `Now` has passed it already; `None` for forever.
    pub(super) fn deadline(self) -> Option<Monotonic> {
        match self {
            Until::Now => Some(Monotonic(0)),
            Until::Deadline(d, _) => Some(d),
            Until::Timeout(_) | Until::Forever => None,
        }
    }
}
