//! The one error type of the library.
//!
//! Every variant says what happened and, in its message, what to do about it. The CLI maps
//! variants to exit statuses: [`Error::Timeout`], [`Error::WouldBlock`] and [`Error::Busy`] to 75,
//! [`Error::PermissionDenied`] to 77, everything else to 1.

use std::{fmt, io};

/// Everything that can go wrong in shmsem.
///
/// # Examples
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("shmsem-doc-err-{}", std::process::id()));
/// # // SAFETY: set before this example starts any thread.
/// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
/// use shmsem::{Error, Scope, Semaphore};
///
/// let sem = Semaphore::open("build-slots", Scope::Local)?;
/// let _held = sem.acquire()?;
/// match sem.try_acquire(1) {
///     Err(Error::WouldBlock { available, .. }) => assert_eq!(available, 0),
///     other => panic!("expected WouldBlock, got {other:?}"),
/// }
/// # Ok::<(), shmsem::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A timed acquire reached its deadline without getting the weight it asked for.
    Timeout {
        /// The weight that was asked for.
        weight: u32,
        /// The timeout, in milliseconds.
        timeout_ms: u64,
    },
    /// A try-acquire found too little available weight.
    WouldBlock {
        /// The weight that was asked for.
        weight: u32,
        /// What was available at that moment.
        available: u32,
    },
    /// A semaphore or namespace name breaks the naming rule.
    InvalidName {
        /// The name as given (lossily converted for display).
        name: String,
        /// Which part of the rule it breaks.
        reason: &'static str,
    },
    /// A weight of zero, a capacity of zero or too large, or another out-of-range number.
    InvalidArgument {
        /// What was wrong, with the accepted range.
        reason: String,
    },
    /// An acquire asked for more weight than the semaphore's capacity: it could never succeed.
    WeightTooLarge {
        /// The weight that was asked for.
        weight: u32,
        /// The semaphore's capacity.
        capacity: u32,
    },
    /// A release gave back more weight than this holder holds.
    NotHeld {
        /// The weight the release gave back.
        count: u32,
        /// The weight the holder holds.
        held: u64,
    },
    /// A fixed-size table in the segment is full.
    TableFull {
        /// Which table.
        table: &'static str,
        /// How many entries it has.
        capacity: u32,
    },
    /// The operating system refused access to a namespace's files.
    PermissionDenied {
        /// The file that was refused.
        path: String,
    },
    /// No semaphore (or namespace) of that name exists.
    NotFound {
        /// The name looked for.
        name: String,
    },
    /// [`Options::create_new`](crate::Options::create_new) found a semaphore of that name.
    AlreadyExists {
        /// The semaphore's name.
        name: String,
    },
    /// A namespace-level operation (such as a grant) on a namespace that does not exist.
    NoNamespace {
        /// The scope looked in.
        scope: String,
        /// The namespace looked for.
        namespace: String,
    },
    /// Removing a semaphore that is held, without `force`.
    InUse {
        /// The semaphore's name.
        name: String,
        /// The weight held.
        value: u32,
    },
    /// The semaphore was removed (by `rm`) while this handle was open.
    Removed {
        /// The semaphore's name.
        name: String,
    },
    /// A namespace exists with another group or mode than was asked for explicitly.
    Mismatch {
        /// The namespace's file.
        path: String,
        /// What differs, and what to do.
        reason: String,
    },
    /// A lock of the namespace stayed held by another process for as long as this call could
    /// wait (its deadline, or a bounded patience for calls without one).
    Busy {
        /// What the lock guards.
        what: &'static str,
        /// The process that holds it, when the system tells.
        holder: Option<u32>,
        /// How long this call waited, in milliseconds.
        waited_ms: u64,
    },
    /// The segment holds something this version cannot read.
    Incompatible {
        /// The segment file.
        path: String,
        /// What was found and what was expected.
        reason: String,
    },
    /// The segment holds an impossible value: it was damaged or written by something else.
    Corrupt {
        /// What was found, and where.
        reason: String,
    },
    /// An operating-system call failed.
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        let source = source.into();
        let context = context.into();
        if source.kind() == io::ErrorKind::PermissionDenied {
            return Error::PermissionDenied { path: context };
        }
        Error::Io { context, source }
    }

    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        Error::Corrupt {
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Timeout { weight, timeout_ms } => write!(
                f,
                "timed out after {timeout_ms} ms waiting for weight {weight}; \
                 try a longer timeout or see who holds it with `shmsem show`"
            ),
            Error::WouldBlock { weight, available } => write!(
                f,
                "would block: weight {weight} asked, {available} available; \
                 wait with a timeout instead of trying once"
            ),
            Error::InvalidName { name, reason } => write!(
                f,
                "invalid name {name:?}: {reason}; names are 1 to 200 bytes of [A-Za-z0-9._-], \
                 not \".\" or \"..\""
            ),
            Error::InvalidArgument { reason } => write!(f, "invalid argument: {reason}"),
            Error::WeightTooLarge { weight, capacity } => write!(
                f,
                "weight {weight} is larger than the capacity {capacity} and could never be \
                 granted; ask for at most {capacity} or raise the capacity"
            ),
            Error::NotHeld { count, held } => write!(
                f,
                "cannot release {count}: this holder holds {held}; release at most what was \
                 acquired"
            ),
            Error::TableFull { table, capacity } => write!(
                f,
                "the {table} table is full ({capacity} of {capacity} entries in use); \
                 remove unused entries or use another namespace"
            ),
            Error::PermissionDenied { path } => write!(
                f,
                "permission denied: {path}; ask the namespace's owner for access \
                 (or use a scope you own)"
            ),
            Error::NotFound { name } => write!(
                f,
                "no semaphore {name:?} here; check the name, --scope and --namespace \
                 (`shmsem ls` lists them)"
            ),
            Error::AlreadyExists { name } => write!(f, "semaphore {name:?} already exists"),
            Error::NoNamespace { scope, namespace } => write!(
                f,
                "no namespace {namespace:?} in scope {scope}; create a semaphore in it first \
                 (`shmsem create NAME --group G --mode 0660`)"
            ),
            Error::InUse { name, value } => write!(
                f,
                "semaphore {name:?} is held (value {value}); wait for its holders, or remove it \
                 anyway with --force"
            ),
            Error::Removed { name } => write!(
                f,
                "semaphore {name:?} was removed while open; open it again to get the new one"
            ),
            Error::Mismatch { path, reason } => write!(f, "{path}: {reason}"),
            Error::Busy {
                what,
                holder,
                waited_ms,
            } => {
                write!(f, "the {what} stayed held by ")?;
                match holder {
                    Some(pid) => write!(f, "process {pid}")?,
                    None => write!(f, "another process")?,
                }
                write!(
                    f,
                    " for {waited_ms} ms; it may be stopped or stuck (`shmsem ps` names what it \
                     holds): try again, or stop it"
                )
            }
            Error::Incompatible { path, reason } => write!(
                f,
                "segment {path} is incompatible: {reason}; use the shmsem version that created \
                 it, or remove the file once nothing uses it"
            ),
            Error::Corrupt { reason } => write!(
                f,
                "corrupt segment: {reason}; nothing was changed, remove the namespace's files \
                 once nothing uses them"
            ),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
