//! Linux: `FUTEX_WAIT_BITSET` and `FUTEX_WAKE` on a shared futex; `futex_waitv` (Linux 5.16)
//! for many words at once.

use std::{
    num::NonZeroU32,
    sync::atomic::{AtomicU32, AtomicU64},
};

use rustix::{io::Errno, thread::futex, time::Timespec};

use super::{Monotonic, Waited};

/// Offset of the low 32 bits inside a `u64`.
const LOW_HALF: usize = if cfg!(target_endian = "little") { 0 } else { 4 };

/// The low half of `word` as the `&AtomicU32` the futex call takes.
///
/// The reference is only passed to the kernel, which reads the four bytes atomically; this
/// crate never loads or stores through it, so no Rust atomic access of one size overlaps one of
/// another size.
#[inline]
fn low_half(word: &AtomicU64) -> &AtomicU32 {
    let base = std::ptr::from_ref(word).cast::<u8>();
    // SAFETY: `word` is 8-aligned and 8 bytes long, so `base + LOW_HALF` is 4-aligned and its four
    // bytes lie inside `word`, valid for as long as the borrow of `word`. `AtomicU32` has the
    // size and alignment of `u32`, and any bit pattern is valid for it.
    unsafe { &*base.add(LOW_HALF).cast::<AtomicU32>() }
}

/// CLOCK_MONOTONIC through glibc's vDSO entry (rustix's own vDSO parser does not run under
/// valgrind, which the benchmarks use for instruction counts).
pub(super) fn monotonic_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, exclusively borrowed timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    (t.tv_sec as u64).saturating_mul(1_000_000_000) + t.tv_nsec as u64
}

pub(super) fn wait(word: &AtomicU64, expected: u32, deadline: Option<Monotonic>) -> Waited {
    let abs = deadline.map(|d| Timespec {
        tv_sec: (d.0 / 1_000_000_000) as _,
        tv_nsec: (d.0 % 1_000_000_000) as _,
    });
    loop {
        // Shared futex: `Flags::empty()`, never `PRIVATE`. The bitset variant takes an absolute
        // CLOCK_MONOTONIC deadline, so retrying after EINTR does not stretch the timeout; with
        // none, the kernel arms no timer.
        let r = futex::wait_bitset(
            low_half(word),
            futex::Flags::empty(),
            expected,
            abs.as_ref(),
            NonZeroU32::MAX,
        );
        match r {
            Ok(()) | Err(Errno::AGAIN) => return Waited::Woken,
            Err(Errno::INTR) => continue,
            Err(Errno::TIMEDOUT) => return Waited::TimedOut,
            // EFAULT/EINVAL cannot happen for a mapped, aligned word; treat anything else as a
            // spurious wake: callers re-check the word and their deadline.
            Err(_) => return Waited::Woken,
        }
    }
}

pub(super) fn wake(word: &AtomicU64, n: u32) {
    let n = n.min(i32::MAX as u32);
    // The result (how many woke) is not needed; an error can only mean a bad address.
    let _ = futex::wake(low_half(word), futex::Flags::empty(), n);
}

#[cfg(feature = "async")]
pub(super) fn wait_any(words: &[(&AtomicU64, u32)], deadline: Option<Monotonic>) -> Option<Waited> {
    use rustix::thread::{
        ClockId,
        futex::{Wait, WaitFlags, WaitPtr, WaitvFlags},
    };
    let mut waits = [Wait::new(); super::MAX_WAIT_ANY];
    let n = words.len().min(waits.len());
    for (wait, &(word, expected)) in waits.iter_mut().zip(&words[..n]) {
        wait.val = u64::from(expected);
        wait.uaddr = WaitPtr::new(std::ptr::from_ref(low_half(word)).cast_mut().cast());
        // Shared: no `PRIVATE`, as for `wait`.
        wait.flags = WaitFlags::SIZE_U32;
    }
    let abs = deadline.map(|d| Timespec {
        tv_sec: (d.0 / 1_000_000_000) as _,
        tv_nsec: (d.0 % 1_000_000_000) as _,
    });
    loop {
        // The deadline is absolute on CLOCK_MONOTONIC, so a retry after EINTR does not stretch it.
        match futex::waitv(
            &waits[..n],
            WaitvFlags::empty(),
            abs.as_ref(),
            ClockId::Monotonic,
        ) {
            Ok(_) | Err(Errno::AGAIN) => return Some(Waited::Woken),
            Err(Errno::INTR) => continue,
            Err(Errno::TIMEDOUT) => return Some(Waited::TimedOut),
            Err(Errno::NOSYS) => return None,
            Err(_) => return Some(Waited::Woken),
        }
    }
}
