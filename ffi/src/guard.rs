//! The boundary: every entry point runs its body here, so that no panic reaches C and every
//! failure leaves its code and its message (see `last_error`).
//!
//! The crate keeps the default `panic = "unwind"`: a panic inside shmsem (a bug) unwinds to
//! [`call`], which catches it and returns `SHMSEM_EINTERNAL` with the panic's message, instead
//! of aborting the C program.

use std::{
    ffi::{CStr, c_char, c_int},
    panic::{AssertUnwindSafe, catch_unwind},
};

use crate::{codes, last_error};

/// Why a call failed: its code and its message.
#[derive(Debug)]
pub struct Failure {
    pub code: c_int,
    pub message: String,
}

impl Failure {
    /// A bad argument, `SHMSEM_EINVAL`, with what was wrong.
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure {
            code: codes::SHMSEM_EINVAL,
            message: message.into(),
        }
    }
}

impl From<shmsem::Error> for Failure {
    fn from(err: shmsem::Error) -> Failure {
        // The message, then its cause once (an I/O error keeps its OS error as its source).
        let mut message = err.to_string();
        let mut cause = std::error::Error::source(&err);
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        Failure {
            code: codes::of(&err),
            message,
        }
    }
}

/// Run `body` for the entry point `what`: `SHMSEM_OK` with the last error cleared, or the
/// failure's code with its message (prefixed by `what`) as this thread's last error. A panic is
/// `SHMSEM_EINTERNAL`.
pub fn call(what: &str, body: impl FnOnce() -> Result<(), Failure>) -> c_int {
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Err(Failure {
            code: codes::SHMSEM_EINTERNAL,
            message: format!("internal error (a bug in shmsem): {text}"),
        })
    });
    match outcome {
        Ok(()) => {
            last_error::clear();
            codes::SHMSEM_OK
        }
        Err(failure) => {
            last_error::set(&format!("{what}: {}", failure.message));
            failure.code
        }
    }
}

/// The UTF-8 text of the C string `ptr`, the argument `arg`; `EINVAL` for NULL or non-UTF-8.
///
/// # Safety
///
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and unchanged for `'a`.
pub unsafe fn text<'a>(ptr: *const c_char, arg: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{arg} is NULL")));
    }
    // SAFETY: not NULL, and NUL-terminated and valid for 'a by this function's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes
        .to_str()
        .map_err(|_| Failure::invalid(format!("{arg} {:?} is not UTF-8", bytes.to_string_lossy())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_einternal_with_its_message() {
        let code = call("shmsem_test", || panic!("boom"));
        assert_eq!(code, codes::SHMSEM_EINTERNAL);
        // SAFETY: the message lives until the next call on this thread.
        let message = unsafe { CStr::from_ptr(last_error::get()) };
        assert_eq!(
            message.to_str().expect("UTF-8"),
            "shmsem_test: internal error (a bug in shmsem): boom"
        );
        assert_eq!(call("shmsem_test", || Ok(())), codes::SHMSEM_OK);
        // SAFETY: as above.
        assert_eq!(unsafe { CStr::from_ptr(last_error::get()) }, c"");
    }

    #[test]
    fn text_refuses_null_and_non_utf8() {
        // SAFETY: NULL is allowed.
        let null = unsafe { text(std::ptr::null(), "name") }.unwrap_err();
        assert_eq!(
            (null.code, null.message.as_str()),
            (codes::SHMSEM_EINVAL, "name is NULL")
        );
        let bad = c"a\xffb";
        // SAFETY: a NUL-terminated literal, alive for the whole test.
        let err = unsafe { text(bad.as_ptr(), "name") }.unwrap_err();
        assert_eq!(err.code, codes::SHMSEM_EINVAL);
        assert!(err.message.contains("not UTF-8"), "{}", err.message);
        // SAFETY: as above.
        assert_eq!(unsafe { text(c"ok".as_ptr(), "name") }.ok(), Some("ok"));
    }
}
