//! This thread's last error message, for `shmsem_last_error`.
//!
//! One `CString` per thread. A call that fails replaces it; a call that succeeds empties it. The
//! pointer `shmsem_last_error` returns stays valid until the next call on the same thread of a
//! function that can fail (every one but `shmsem_strerror` and `shmsem_last_error`), or until the
//! thread exits.

use std::{
    cell::{Cell, RefCell},
    ffi::{CString, c_char},
};

thread_local! {
    /// `None`: no error since the last success on this thread.
    static LAST: RefCell<Option<CString>> = const { RefCell::new(None) };
    /// Whether `LAST` may hold a message: lets a success skip `LAST`, whose first use on a
    /// thread registers its destructor (this flag has none, so reading it costs a load).
    static SET: Cell<bool> = const { Cell::new(false) };
}

/// Record `message` as this thread's last error. A NUL inside it (which no message of the
/// library has) is shown as `?`, so that the text is never cut short.
pub fn set(message: &str) {
    let bytes: Vec<u8> = message
        .bytes()
        .map(|b| if b == 0 { b'?' } else { b })
        .collect();
    let text = CString::new(bytes).unwrap_or_default();
    // While the thread is being torn down the slot is gone; then there is no one to tell.
    let _ = LAST.try_with(|last| *last.borrow_mut() = Some(text));
    SET.set(true);
}

/// Forget this thread's last error: the call succeeded.
#[inline]
pub fn clear() {
    if SET.get() {
        let _ = LAST.try_with(|last| *last.borrow_mut() = None);
        SET.set(false);
    }
}

/// This thread's last message, or `""`: a pointer into this thread's slot, valid until the next
/// [`set`] or [`clear`] on this thread.
pub fn get() -> *const c_char {
    LAST.try_with(|last| last.borrow().as_ref().map(|text| text.as_ptr()))
        .ok()
        .flatten()
        .unwrap_or(c"".as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn read() -> String {
        // SAFETY: `get` returns a NUL-terminated string that lives until the next `set` or
        // `clear` on this thread, and this thread makes neither while reading it.
        unsafe { CStr::from_ptr(get()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn set_then_clear_per_thread() {
        assert_eq!(read(), "");
        set("bad\0name");
        assert_eq!(read(), "bad?name");
        std::thread::spawn(|| assert_eq!(read(), ""))
            .join()
            .expect("other thread");
        assert_eq!(read(), "bad?name");
        clear();
        assert_eq!(read(), "");
    }
}
