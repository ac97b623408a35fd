//! The wall clock, coarse and cheap: for display, never for deadlines (those use the monotonic
//! clock of `wait`).

/// Wall-clock milliseconds since the Unix epoch, from the coarse clock (a few ms resolution,
/// no system call): for display only.
#[inline]
pub fn wall_ms() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, exclusively borrowed timespec; the clock id is a constant Linux
    // has had since 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut t) };
    (t.tv_sec as u64).saturating_mul(1000) + t.tv_nsec as u64 / 1_000_000
}
