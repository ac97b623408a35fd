//! `fork` on POSIX systems: the fork epoch that tells cached per-process state it now runs in a
//! child, the descriptors a child closes at once, the hook a child runs, and the fork gate that
//! keeps the library's own threads from holding its locks across a fork. Nothing here knows what
//! a semaphore is.

use std::{
    os::fd::{AsRawFd, BorrowedFd},
    sync::atomic::{
        AtomicI32, AtomicU32, AtomicU64,
        Ordering::{AcqRel, Acquire, Relaxed},
    },
};

/// Bumped in the child after every `fork`. Code that caches per-process state (a registered
/// slot, a holder record) compares it to notice that it now runs in a child.
pub static FORK_EPOCH: AtomicU32 = AtomicU32::new(0);

/// Descriptors that hold this process's liveness locks. A forked child closes its copies at once:
/// otherwise the shared open file description would keep the parent's locks held, and the
/// parent's death unnoticed, for as long as the child lives.
static LIVENESS_FDS: [AtomicI32; 64] = [const { AtomicI32::new(-1) }; 64];

/// Remember `fd` as one the child of a fork must close. Returns `false` when all places are taken
/// (the descriptor then stays open in children, which delays noticing this process's death).
pub fn close_in_forked_children(fd: BorrowedFd<'_>) -> bool {
    LIVENESS_FDS.iter().any(|slot| {
        slot.compare_exchange(-1, fd.as_raw_fd(), Relaxed, Relaxed)
            .is_ok()
    })
}

extern "C" fn after_fork_in_child() {
    // Only atomics and close(2): async-signal-safe, as a child of a multi-threaded parent needs.
    for slot in &LIVENESS_FDS {
        let fd = slot.swap(-1, Relaxed);
        if fd >= 0 {
            // SAFETY: `fd` was registered as a descriptor this process owns; in the child it is a
            // copy that nothing else uses, and its owner never closes it again once the fork
            // epoch has changed.
            unsafe { libc::close(fd) };
        }
    }
    FORK_EPOCH.fetch_add(1, Relaxed);
    // The child's only thread is the forking one, outside the gate; nobody waits in it.
    FORK_GATE.store(0, Relaxed);
    let hook = FORK_CHILD_HOOK.load(Relaxed);
    if !hook.is_null() {
        // SAFETY: only ever set from a `fn()` by `on_fork_child`; the hook is documented to be
        // async-signal-safe.
        let hook: fn() = unsafe { std::mem::transmute::<*mut (), fn()>(hook) };
        hook();
    }
}

/// What a forked child runs after closing its copies of the liveness descriptors.
static FORK_CHILD_HOOK: std::sync::atomic::AtomicPtr<()> =
    std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());

/// Run `hook` in every child of a fork, in the forking thread, right after the fork. It must be
/// async-signal-safe (no allocation, no locks).
pub fn on_fork_child(hook: fn()) {
    FORK_CHILD_HOOK.store(hook as *mut (), Relaxed);
}

/// Install the fork hooks once per process.
pub fn install_fork_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: the three are valid `extern "C" fn()`s that live for the whole program;
        // `after_fork_in_child` does only async-signal-safe work, and the other two run in the
        // forking process, where anything may be done.
        unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_in_parent),
                Some(after_fork_in_child),
            )
        };
    });
}

// ===== the fork gate =====

/// The fork gate: `forks waiting << 16 | threads inside`.
///
/// A thread the library runs on its own (a watch thread) takes library locks behind the
/// application's back. Had it held one when another thread forked, the child, which has only the
/// forking thread, would find that lock held forever. So such a thread does its work inside the
/// gate ([`enter_fork_gate`]), and `fork` waits before the gate until nobody is inside, while
/// nobody may enter: the child starts with every library lock free. A fork waits at most as long
/// as one piece of that work (a reclaim: milliseconds), and application threads never pass the
/// gate, so it cannot wait for the forking thread itself.
static FORK_GATE: AtomicU64 = AtomicU64::new(0);
const INSIDE_MASK: u64 = 0xFFFF;
const ONE_FORK: u64 = 1 << 16;

/// A thread inside the fork gate; it leaves when this drops.
#[derive(Debug)]
pub struct InsideForkGate(());

/// Enter the fork gate, waiting while a fork is under way.
pub fn enter_fork_gate() -> InsideForkGate {
    loop {
        // Acquire: pairs with the fork's Release on leaving, for tidiness (the gate guards no
        // data of its own).
        let v = FORK_GATE.load(Acquire);
        if v >= ONE_FORK {
            crate::wait::wait(&FORK_GATE, v as u32, None);
            continue;
        }
        if FORK_GATE
            .compare_exchange(v, v + 1, AcqRel, Acquire)
            .is_ok()
        {
            return InsideForkGate(());
        }
    }
}

impl Drop for InsideForkGate {
    fn drop(&mut self) {
        let before = FORK_GATE.fetch_sub(1, AcqRel);
        if before >= ONE_FORK && before & INSIDE_MASK == 1 {
            // The last one out, and a fork waits for that.
            crate::wait::wake(&FORK_GATE, u32::MAX);
        }
    }
}

extern "C" fn before_fork() {
    let mut v = FORK_GATE.fetch_add(ONE_FORK, AcqRel) + ONE_FORK;
    while v & INSIDE_MASK != 0 {
        crate::wait::wait(&FORK_GATE, v as u32, None);
        v = FORK_GATE.load(Acquire);
    }
}

extern "C" fn after_fork_in_parent() {
    FORK_GATE.fetch_sub(ONE_FORK, AcqRel);
    crate::wait::wake(&FORK_GATE, u32::MAX);
}
