//! Sleeping until a 32-bit word changes, across processes, with an absolute deadline.
//!
//! The contract every OS file implements, with the same signatures:
//!
//! * [`wait`] sleeps while the low 32 bits of a 64-bit word equal `expected`, until woken, until
//!   the deadline, or spuriously. It never returns early *as a timeout*: [`Waited::TimedOut`]
//!   means the monotonic clock reached the deadline. Without a deadline it arms no timer and
//!   reads no clock. Interrupted sleeps are retried inside.
//! * [`wake`] wakes up to `n` sleepers on the word; `u32::MAX` wakes all. Waking costs a system
//!   call, so callers wake only when the word says someone sleeps.
//! * The word lives in memory mapped `MAP_SHARED` from a file, and the sleep is keyed by that
//!   memory, not by the address: a process that maps the same file at another address wakes it.
//! * `wait_any` (feature `async`) sleeps on up to `MAX_WAIT_ANY` words at once, as [`wait`] does on one, and
//!   returns when any of them changes or is woken; a [`wake`] of one of them wakes it.
//! * Deadlines are absolute [`Monotonic`] times, so a retried sleep never stretches a timeout.
//!
//! Linux uses a shared futex (no `FUTEX_PRIVATE_FLAG`) on the word's low half, through `rustix`.
//! Future OS files: macOS `os_sync_wait_on_address` with the shared flag; Windows named events as
//! a doorbell, since `WaitOnAddress` cannot wake another process.

#[cfg(any(target_os = "linux", target_os = "android"))]
#[path = "linux.rs"]
mod sys;

#[cfg(not(any(target_os = "linux", target_os = "android")))]
compile_error!("shmsem needs a cross-process futex; only Linux and Android have one wired in");

use std::{sync::atomic::AtomicU64, time::Duration};

/// A point on the monotonic clock, in nanoseconds. Never stored in a segment: other processes
/// may live in another time namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Monotonic(pub u64);

impl Monotonic {
    /// Now.
    #[inline]
    pub fn now() -> Self {
        Monotonic(sys::monotonic_ns())
    }

    /// `self + d`, saturating.
    pub fn after(self, d: Duration) -> Self {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Monotonic(self.0.saturating_add(ns))
    }
}

/// How a sleep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// Woken, or the word no longer held `expected`, or a spurious wake.
    Woken,
    /// The deadline passed.
    TimedOut,
}

/// Sleep while the low half of `word` equals `expected`, at most until `deadline` (`None`: until
/// woken, with no timer).
#[inline]
pub fn wait(word: &AtomicU64, expected: u32, deadline: Option<Monotonic>) -> Waited {
    sys::wait(word, expected, deadline)
}

/// The most words one [`wait_any`] sleeps on.
#[cfg(feature = "async")]
pub const MAX_WAIT_ANY: usize = 128;

/// Sleep while the low half of every word of `words` equals its expected value, at most until
/// `deadline`: a change of any, or a wake of any, ends it. At most [`MAX_WAIT_ANY`] words.
/// `None` when this kernel cannot (the caller polls instead).
#[cfg(feature = "async")]
#[inline]
pub fn wait_any(words: &[(&AtomicU64, u32)], deadline: Option<Monotonic>) -> Option<Waited> {
    sys::wait_any(words, deadline)
}

/// Wake up to `n` sleepers on `word` (`u32::MAX`: all).
#[inline]
pub fn wake(word: &AtomicU64, n: u32) {
    sys::wake(word, n)
}

#[cfg(all(test, feature = "async"))]
mod wait_any_tests {
    use std::sync::{Arc, atomic::Ordering::SeqCst};

    use super::*;

    #[test]
    fn a_wake_of_either_word_ends_the_sleep_and_a_deadline_is_never_early() {
        let words = Arc::new([AtomicU64::new(7), AtomicU64::new(9)]);
        let sleeper = {
            let words = words.clone();
            std::thread::spawn(move || wait_any(&[(&words[0], 7), (&words[1], 9)], None))
        };
        std::thread::sleep(Duration::from_millis(20));
        words[1].store(10, SeqCst);
        wake(&words[1], 1);
        assert_eq!(sleeper.join().unwrap(), Some(Waited::Woken));
        // A word that differs already: at once.
        assert_eq!(wait_any(&[(&words[1], 9)], None), Some(Waited::Woken));
        let start = Monotonic::now();
        let deadline = start.after(Duration::from_millis(30));
        assert_eq!(
            wait_any(&[(&words[0], 7), (&words[1], 10)], Some(deadline)),
            Some(Waited::TimedOut)
        );
        assert!(Monotonic::now() >= deadline, "returned before its deadline");
    }
}
