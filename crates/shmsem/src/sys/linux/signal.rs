//! Signals this process sends itself: the stop and kill points of crash tests (only with the
//! `failpoints` feature).

/// Stop this process with SIGSTOP, until someone sends SIGCONT (a test's pause point).
pub fn stop_self() {
    // SAFETY: raise has no memory effects.
    unsafe { libc::raise(libc::SIGSTOP) };
}

/// End this process at once with SIGKILL (crash tests).
pub fn kill_self() -> ! {
    // SAFETY: raise(2) with a valid signal number; SIGKILL cannot be caught, so it never returns.
    unsafe { libc::raise(libc::SIGKILL) };
    std::process::abort()
}
