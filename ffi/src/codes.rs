//! The return codes, their `shmsem_strerror` texts, and which code each library error gets.

use std::ffi::{CStr, c_int};

/// Success.
pub const SHMSEM_OK: c_int = 0;
/// A timed acquire reached its deadline without the weight it asked for.
pub const SHMSEM_ETIMEDOUT: c_int = 1;
/// A try-acquire (`timeout_ms` 0) found too little weight available.
pub const SHMSEM_EWOULDBLOCK: c_int = 2;
/// A bad argument: a NULL pointer, a name that is not UTF-8 or breaks the naming rule, a weight,
/// count or capacity of 0, a capacity above 2^30, or a weight above the capacity.
pub const SHMSEM_EINVAL: c_int = 3;
/// A release of more than this process acquired through this handle (or of anything while
/// holding nothing, as in a forked child): nothing changed.
pub const SHMSEM_ENOTHELD: c_int = 4;
/// The operating system refused access to the namespace's files.
pub const SHMSEM_EPERM: c_int = 5;
/// No such semaphore or namespace.
pub const SHMSEM_ENOENT: c_int = 6;
/// The semaphore is held, or a lock of its namespace stayed held by another process.
pub const SHMSEM_EINUSE: c_int = 7;
/// The shared memory holds an impossible value, or one this version cannot read.
pub const SHMSEM_ECORRUPT: c_int = 8;
/// An operating-system call failed (the message names it and its cause).
pub const SHMSEM_EIO: c_int = 9;
/// A fixed-size table in the shared memory is full (too many semaphores or holders).
pub const SHMSEM_EFULL: c_int = 10;
/// The semaphore was removed while this handle was open: open it again.
pub const SHMSEM_EREMOVED: c_int = 11;
/// An error this version of the C interface does not know, or a bug in shmsem (a Rust panic,
/// caught before it reached C); the message says which.
pub const SHMSEM_EINTERNAL: c_int = 12;

/// Every code with its text, in order: `strerror` and the tests read this table.
pub(crate) const ALL: [(c_int, &CStr); 13] = [
    (SHMSEM_OK, c"success"),
    (SHMSEM_ETIMEDOUT, c"timed out waiting for the weight"),
    (SHMSEM_EWOULDBLOCK, c"not enough weight available now"),
    (SHMSEM_EINVAL, c"invalid argument"),
    (
        SHMSEM_ENOTHELD,
        c"released more than this process acquired through this handle",
    ),
    (SHMSEM_EPERM, c"permission denied"),
    (SHMSEM_ENOENT, c"no such semaphore or namespace"),
    (SHMSEM_EINUSE, c"semaphore or namespace in use"),
    (
        SHMSEM_ECORRUPT,
        c"shared memory damaged or of another version",
    ),
    (SHMSEM_EIO, c"operating-system error"),
    (SHMSEM_EFULL, c"table full"),
    (SHMSEM_EREMOVED, c"semaphore removed while open"),
    (SHMSEM_EINTERNAL, c"internal error"),
];

/// The text of `code`; of a code not in [`ALL`], a text that says so.
pub(crate) fn text(code: c_int) -> &'static CStr {
    ALL.iter()
        .find(|(c, _)| *c == code)
        .map_or(c"unknown shmsem error code", |(_, t)| t)
}

/// The code of a library error.
pub(crate) fn of(err: &shmsem::Error) -> c_int {
    use shmsem::Error as E;
    match err {
        E::Timeout { .. } => SHMSEM_ETIMEDOUT,
        E::WouldBlock { .. } => SHMSEM_EWOULDBLOCK,
        E::InvalidName { .. } | E::InvalidArgument { .. } | E::WeightTooLarge { .. } => {
            SHMSEM_EINVAL
        }
        E::NotHeld { .. } => SHMSEM_ENOTHELD,
        E::PermissionDenied { .. } => SHMSEM_EPERM,
        E::NotFound { .. } | E::NoNamespace { .. } => SHMSEM_ENOENT,
        E::InUse { .. } | E::Busy { .. } | E::AlreadyExists { .. } => SHMSEM_EINUSE,
        E::Corrupt { .. } | E::Incompatible { .. } | E::Mismatch { .. } => SHMSEM_ECORRUPT,
        E::Io { .. } => SHMSEM_EIO,
        E::TableFull { .. } => SHMSEM_EFULL,
        E::Removed { .. } => SHMSEM_EREMOVED,
        // `Error` is non-exhaustive: a variant added later is reported, never mistaken.
        _ => SHMSEM_EINTERNAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_texts_too() {
        for (i, (code, text)) in ALL.iter().enumerate() {
            assert_eq!(*code, i as c_int, "codes run 0, 1, 2, ...");
            assert!(!text.is_empty());
            for (other, other_text) in &ALL[i + 1..] {
                assert_ne!(text, other_text, "{code} and {other}");
            }
        }
        assert_eq!(text(ALL.len() as c_int), c"unknown shmsem error code");
        assert_eq!(text(-1), c"unknown shmsem error code");
    }

    #[test]
    fn errors_map_to_their_codes() {
        let timeout = shmsem::Error::Timeout {
            weight: 1,
            timeout_ms: 5,
        };
        assert_eq!(of(&timeout), SHMSEM_ETIMEDOUT);
        let not_held = shmsem::Error::NotHeld { count: 2, held: 1 };
        assert_eq!(of(&not_held), SHMSEM_ENOTHELD);
        let io = shmsem::Error::Io {
            context: "x".into(),
            source: std::io::Error::other("y"),
        };
        assert_eq!(of(&io), SHMSEM_EIO);
    }
}
