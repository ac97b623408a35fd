//! Forwarding SIGINT and SIGTERM from `shmsem run` to its child, and noticing SIGINT, SIGTERM
//! and SIGHUP in `shmsem watch`, which must restore the terminal before it exits.
//!
//! Design: `sigaction` handlers rather than a signal-watching thread. `shmsem run` has a single
//! thread, so a handler runs to completion between two steps of the main code, and the two
//! atomics below suffice: the handler kills the child if it exists, and otherwise records the
//! signal for the main code to act on once the child exists. A watching thread would need the
//! signals blocked in every thread and unblocked again in the child before `exec`, which
//! `std::process::Command` does not expose without `pre_exec`.
//!
//! - A signal that was ignored when `shmsem run` started (as a shell does for `&` jobs) stays
//!   ignored, so the child inherits the ignoring as it would without `shmsem`.
//! - A signal the kernel sends on its own (`si_code` `SI_KERNEL`, as the terminal's Ctrl-C is)
//!   went to the whole foreground process group, the child included, and is not sent twice.
//! - Handlers are reset to the default by `exec`, so the child starts with default dispositions.

use std::{
    io, ptr,
    sync::atomic::{AtomicI32, Ordering::SeqCst},
};

/// The signals that are forwarded.
const FORWARDED: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// The child's pid, once it exists; 0 before.
static CHILD: AtomicI32 = AtomicI32::new(0);
/// A signal that arrived before the child existed; 0 if none.
static PENDING: AtomicI32 = AtomicI32::new(0);

/// The signals that end `shmsem watch` (in raw mode Ctrl-C is a key, not a SIGINT; these come
/// from `kill`, or from the terminal going away).
const ENDING: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The first ending signal `shmsem watch` received; 0 if none.
static ENDED: AtomicI32 = AtomicI32::new(0);

/// Install the forwarding handlers (for signals not ignored at start).
pub fn install() -> io::Result<()> {
    let handler = forward as extern "C" fn(_, _, _) as libc::sighandler_t;
    for sig in FORWARDED {
        handle(sig, handler, libc::SA_SIGINFO | libc::SA_RESTART)?;
    }
    Ok(())
}

/// Note SIGINT, SIGTERM and SIGHUP instead of dying of them (those not ignored at start), so
/// that `shmsem watch` can restore the terminal first; see [`ended`].
pub fn catch_ending() -> io::Result<()> {
    let handler = note as extern "C" fn(_) as libc::sighandler_t;
    for sig in ENDING {
        handle(sig, handler, libc::SA_RESTART)?;
    }
    Ok(())
}

/// The ending signal received since [`catch_ending`], if any.
pub fn ended() -> Option<i32> {
    Some(ENDED.load(SeqCst)).filter(|&s| s != 0)
}

/// Make `handler` the action for `sig`, unless `sig` is ignored.
fn handle(sig: libc::c_int, handler: libc::sighandler_t, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: all-zero bytes are a valid `sigaction` (SIG_DFL, empty mask, no flags).
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries the current one into `old`.
    if unsafe { libc::sigaction(sig, ptr::null(), &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if old.sa_sigaction == libc::SIG_IGN {
        return Ok(());
    }
    // SAFETY: as above.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = handler;
    new.sa_flags = flags;
    // SAFETY: `new` is a valid action whose handler (`forward` or `note`) only calls
    // async-signal-safe functions and touches atomics.
    if unsafe { libc::sigaction(sig, &new, ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The handler for `shmsem watch`: remember the first signal.
extern "C" fn note(sig: libc::c_int) {
    let _ = ENDED.compare_exchange(0, sig, SeqCst, SeqCst);
}

/// A forwarded signal that arrived while there was no child yet.
pub fn pending() -> Option<i32> {
    Some(PENDING.load(SeqCst)).filter(|&s| s != 0)
}

/// From now on, forward to `pid`; forward at once a signal that arrived before.
pub fn forward_to(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    CHILD.store(pid, SeqCst);
    // If the handler runs between these two steps it kills the child itself and leaves
    // PENDING alone: one process, one thread, so nothing is lost or sent twice.
    let sig = PENDING.swap(0, SeqCst);
    if sig != 0 {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, sig) };
    }
}

/// The handler: send `sig` to the child, or record it while there is none.
extern "C" fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: `__errno_location` returns this thread's errno; saved here and restored below so
    // that the interrupted code does not see `kill`'s errno.
    let errno = unsafe { *libc::__errno_location() };
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo (or null, checked).
    let from_kernel = !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL;
    let child = CHILD.load(SeqCst);
    if child <= 0 {
        PENDING.store(sig, SeqCst);
    } else if !from_kernel {
        // SAFETY: kill is async-signal-safe and has no memory-safety preconditions.
        unsafe { libc::kill(child, sig) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}
