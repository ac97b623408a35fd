//! The C interface of shmsem: `libshmsem.so`, `libshmsem.a` and `include/shmsem.h`.
//!
//! Every entry point checks its arguments (NULL, UTF-8, zero), runs inside
//! [`guard::call`] (no panic reaches C), and returns one of the codes of [`codes`], leaving a
//! message for `shmsem_last_error` when it fails. The header is generated from this file's doc
//! comments by cbindgen (`tests/header.rs` checks that the committed one is current).
//!
//! | file | what |
//! |---|---|
//! | `lib.rs` | the entry points |
//! | `codes.rs` | the return codes, their texts, and the code of each library error |
//! | `guard.rs` | the boundary: caught panics, failures, C strings in |
//! | `last_error.rs` | this thread's last message |

#![allow(non_camel_case_types)]

mod codes;
mod guard;
mod last_error;

use std::{
    ffi::{c_char, c_int},
    time::Duration,
};

use shmsem::{Scope, Semaphore};

pub use codes::*;
use guard::{Failure, call, text as c_text};

/// An open semaphore: a handle from `shmsem_open`, given back with `shmsem_close`.
///
/// A handle may be used from any number of threads at once, and by a child created with
/// `fork` (which holds nothing its parent held). It must not be used after `shmsem_close`.
///
/// ```c
/// shmsem_sem *sem;
/// if (shmsem_open("db-slots", SHMSEM_SCOPE_LOCAL, NULL, 4, &sem) == SHMSEM_OK) {
///     /* ... */
///     shmsem_close(sem);
/// }
/// ```
#[derive(Debug)]
pub struct shmsem_sem {
    sem: Semaphore,
}

/// Who shares a semaphore's name.
///
/// ```c
/// shmsem_open("gpu", SHMSEM_SCOPE_GLOBAL, NULL, 1, &sem);
/// ```
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum shmsem_scope {
    /// This process and the children it starts with `SHMSEM_SELF` set (a process tree).
    SHMSEM_SCOPE_SELF = 0,
    /// Every process of the current user.
    SHMSEM_SCOPE_LOCAL = 1,
    /// Every process on the machine that the namespace's file permissions admit.
    SHMSEM_SCOPE_GLOBAL = 2,
}

/// A scope as it crosses the boundary: any `int`, checked against `shmsem_scope` (a C caller can
/// pass a value outside the enum, which must never become an invalid Rust enum). The header
/// names it `shmsem_scope` (see `cbindgen.toml`).
pub type ScopeArg = c_int;

/// The library's scope of the C value `scope`.
fn scope_of(scope: ScopeArg) -> Result<Scope, Failure> {
    const SELF: c_int = shmsem_scope::SHMSEM_SCOPE_SELF as c_int;
    const LOCAL: c_int = shmsem_scope::SHMSEM_SCOPE_LOCAL as c_int;
    const GLOBAL: c_int = shmsem_scope::SHMSEM_SCOPE_GLOBAL as c_int;
    match scope {
        SELF => Ok(Scope::Tree),
        LOCAL => Ok(Scope::Local),
        GLOBAL => Ok(Scope::Global),
        other => Err(Failure::invalid(format!(
            "scope {other} is not a shmsem_scope (0 self, 1 local, 2 global)"
        ))),
    }
}

/// The semaphore of the handle `sem`; `EINVAL` for NULL.
///
/// # Safety
///
/// `sem` is NULL or a handle from `shmsem_open` not yet closed.
unsafe fn handle<'a>(sem: *const shmsem_sem) -> Result<&'a Semaphore, Failure> {
    // SAFETY: NULL or a live handle, by this function's contract.
    unsafe { sem.as_ref() }
        .map(|h| &h.sem)
        .ok_or_else(|| Failure::invalid("sem is NULL"))
}

/// Open the semaphore `name` in `scope` and namespace `ns` (NULL: `"default"`), creating it with
/// `capacity` if it does not exist (an existing one keeps its capacity). On success, `*out` is
/// the new handle; on failure it is left unchanged.
///
/// Names are 1 to 200 bytes of `[A-Za-z0-9._-]`, not `.` or `..`; `capacity` is 1 to 2^30.
/// `SHMSEM_DIR`, if set, is the folder of every scope's files.
///
/// Returns `SHMSEM_OK`, `SHMSEM_EINVAL` (NULL `name` or `out`, a bad name, scope or capacity),
/// `SHMSEM_EPERM`, `SHMSEM_EIO`, `SHMSEM_EFULL`, `SHMSEM_ECORRUPT` or `SHMSEM_EINUSE`.
///
/// ```c
/// shmsem_sem *sem;
/// int rc = shmsem_open("backend", SHMSEM_SCOPE_LOCAL, NULL, 2, &sem);
/// if (rc != SHMSEM_OK) fprintf(stderr, "%s\n", shmsem_last_error());
/// ```
///
/// # Safety
///
/// `name` and `ns` are NULL or NUL-terminated strings; `out` is NULL or points to writable
/// memory for one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmsem_open(
    name: *const c_char,
    scope: ScopeArg,
    ns: *const c_char,
    capacity: u32,
    out: *mut *mut shmsem_sem,
) -> c_int {
    call("shmsem_open", || {
        if out.is_null() {
            return Err(Failure::invalid("out is NULL"));
        }
        // SAFETY: NULL or NUL-terminated, by this function's contract.
        let name = unsafe { c_text(name, "name") }?;
        let namespace = if ns.is_null() {
            "default"
        } else {
            // SAFETY: NUL-terminated, by this function's contract.
            unsafe { c_text(ns, "ns") }?
        };
        let sem = Semaphore::options()
            .scope(scope_of(scope)?)
            .namespace(namespace)
            .capacity(capacity)
            .open(name)?;
        let handle = Box::into_raw(Box::new(shmsem_sem { sem }));
        // SAFETY: `out` is not NULL and points to writable memory, by this function's contract.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Acquire `weight` for this process: wait as long as it takes if `timeout_ms` is negative,
/// only try if it is 0, wait at most `timeout_ms` milliseconds otherwise. The weight stays
/// held until `shmsem_release` through this handle, `shmsem_close` of it, or the end of the
/// process (even by `SIGKILL`: then it comes back to the others by itself).
///
/// Returns `SHMSEM_OK`, `SHMSEM_ETIMEDOUT`, `SHMSEM_EWOULDBLOCK` (a try on a full semaphore),
/// `SHMSEM_EINVAL` (NULL `sem`, weight 0, a weight above the capacity), `SHMSEM_EREMOVED`,
/// `SHMSEM_EFULL` or `SHMSEM_EIO`.
///
/// ```c
/// if (shmsem_acquire(sem, 1, 2000) == SHMSEM_OK) {
///     do_work();
///     shmsem_release(sem, 1);
/// }
/// ```
///
/// # Safety
///
/// `sem` is NULL or a handle from `shmsem_open` not yet closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmsem_acquire(
    sem: *mut shmsem_sem,
    weight: u32,
    timeout_ms: i64,
) -> c_int {
    call("shmsem_acquire", || {
        // SAFETY: NULL or a live handle, by this function's contract.
        let sem = unsafe { handle(sem) }?;
        if weight == 0 {
            return Err(Failure::invalid("weight 0; acquire at least 1"));
        }
        match u64::try_from(timeout_ms) {
            Err(_) => sem.enter(weight)?,
            Ok(0) => sem.try_acquire(weight)?.forget(),
            Ok(ms) => sem
                .acquire_timeout(weight, Duration::from_millis(ms))?
                .forget(),
        }
        Ok(())
    })
}

/// Give back `count` of the weight this process acquired through this handle. Releasing more
/// than that, or anything in a child created by `fork` that did not acquire it itself, is
/// `SHMSEM_ENOTHELD` and changes nothing.
///
/// Returns `SHMSEM_OK`, `SHMSEM_ENOTHELD`, `SHMSEM_EINVAL` (NULL `sem`, count 0) or
/// `SHMSEM_EIO`.
///
/// ```c
/// shmsem_acquire(sem, 3, -1);
/// shmsem_release(sem, 2);
/// shmsem_release(sem, 1);
/// ```
///
/// # Safety
///
/// `sem` is NULL or a handle from `shmsem_open` not yet closed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmsem_release(sem: *mut shmsem_sem, count: u32) -> c_int {
    call("shmsem_release", || {
        // SAFETY: NULL or a live handle, by this function's contract.
        let sem = unsafe { handle(sem) }?;
        if count == 0 {
            return Err(Failure::invalid("count 0; release at least 1"));
        }
        sem.exit(count)?;
        Ok(())
    })
}

/// Read the semaphore's capacity and value (the weight held by all processes now) into
/// `*capacity` and `*value`; either may be NULL when not wanted.
///
/// Returns `SHMSEM_OK`, `SHMSEM_EINVAL` (NULL `sem`), `SHMSEM_EREMOVED`, `SHMSEM_ECORRUPT` or
/// `SHMSEM_EIO`.
///
/// ```c
/// uint32_t capacity, value;
/// shmsem_info(sem, &capacity, &value);
/// printf("%u of %u held\n", value, capacity);
/// ```
///
/// # Safety
///
/// `sem` is NULL or a handle from `shmsem_open` not yet closed; `capacity` and `value` are
/// NULL or point to writable memory for one `uint32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmsem_info(
    sem: *mut shmsem_sem,
    capacity: *mut u32,
    value: *mut u32,
) -> c_int {
    call("shmsem_info", || {
        // SAFETY: NULL or a live handle, by this function's contract.
        let sem = unsafe { handle(sem) }?;
        let info = sem.info()?;
        // SAFETY: each is NULL or writable, by this function's contract.
        unsafe {
            if let Some(out) = capacity.as_mut() {
                *out = info.capacity;
            }
            if let Some(out) = value.as_mut() {
                *out = info.value;
            }
        }
        Ok(())
    })
}

/// Close the handle `sem`. Weight this process acquired through it and has not released is
/// released first, so nothing stays held by a handle that no longer exists (in a child created
/// by `fork`, nothing of the parent's is released). NULL is ignored. The handle must not be
/// used afterwards, by any thread.
///
/// ```c
/// shmsem_acquire(sem, 1, -1);
/// shmsem_close(sem); /* gives the 1 back */
/// ```
///
/// # Safety
///
/// `sem` is NULL or a handle from `shmsem_open` not yet closed, that no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shmsem_close(sem: *mut shmsem_sem) {
    if sem.is_null() {
        return;
    }
    // SAFETY: a handle from `shmsem_open` (a `Box::into_raw`), not yet closed and not in use,
    // by this function's contract: this takes it back, once.
    let handle = unsafe { Box::from_raw(sem) };
    call("shmsem_close", move || {
        // Asking for more than can ever be held tells what is held, and changes nothing.
        if let Err(shmsem::Error::NotHeld { held, .. }) = handle.sem.exit(u32::MAX)
            && let Ok(held @ 1..) = u32::try_from(held)
        {
            handle.sem.exit(held)?;
        }
        Ok(())
    });
}

/// The text of the return code `code`, never NULL: a static string (do not free it). For a
/// code that is not one of shmsem's it says `"unknown shmsem error code"`.
///
/// ```c
/// int rc = shmsem_acquire(sem, 1, 0);
/// if (rc != SHMSEM_OK) printf("%s\n", shmsem_strerror(rc));
/// ```
#[unsafe(no_mangle)]
pub extern "C" fn shmsem_strerror(code: c_int) -> *const c_char {
    codes::text(code).as_ptr()
}

/// This thread's last error message, never NULL: `""` when the last call on this thread that
/// can fail succeeded. The string belongs to shmsem (do not free it) and stays valid until the
/// next call on this thread of any function here other than `shmsem_strerror` and
/// `shmsem_last_error`: copy it to keep it. Each thread has its own.
///
/// ```c
/// if (shmsem_open("bad name", SHMSEM_SCOPE_LOCAL, NULL, 1, &sem) != SHMSEM_OK)
///     fprintf(stderr, "%s\n", shmsem_last_error());
/// ```
#[unsafe(no_mangle)]
pub extern "C" fn shmsem_last_error() -> *const c_char {
    last_error::get()
}
