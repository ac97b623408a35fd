//! The one error type of the library.
//!
//! Every variant says what happened and, in its message, what a program can do about it, in the
//! library's terms (which method, which option); the `shmsem` command adds its own advice in its
//! terms. The command maps variants to exit statuses: [`Error::Timeout`], [`Error::WouldBlock`]
//! and [`Error::Busy`] to 75, [`Error::PermissionDenied`] to 77, everything else to 1.
//!
//! An error with an underlying cause ([`Error::Io`]) returns it from
//! [`source`](std::error::Error::source) and does not repeat it in its `Display`, as the Rust API
//! guidelines ask: a report that walks the chain (anyhow's `{:#}`) shows the cause once.

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
    /// A holding on a cluster-scope semaphore was lost: its process's lease lapsed (the
    /// keep-alives stopped being acknowledged for longer than the lease's time to live), so the
    /// cluster may already have given the weight to someone else.
    Lost {
        /// The semaphore's name.
        name: String,
        /// The fencing token of the holding that was lost.
        token: u64,
    },
    /// The cluster of a cluster-scope semaphore could not be used: no endpoint answered, the
    /// cluster has no quorum, or it refused the request.
    Unavailable {
        /// What failed, and what was tried.
        reason: String,
    },
    /// Something this build of the library cannot do: a cluster-scope semaphore without the
    /// feature `cluster`, or an operation the cluster scope does not offer.
    Unsupported {
        /// What was asked for, and what to do instead.
        reason: String,
    },
    /// An operating-system call failed. Its message says what was being done; the OS error is
    /// its [`source`](std::error::Error::source) (and the `source` field), not repeated in the
    /// message.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::error::Error as _;
    ///
    /// # let file = tempfile::NamedTempFile::new()?;
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", file.path().join("sub")) };
    /// // With `SHMSEM_DIR` below a regular file: its directory cannot be created.
    /// let err = shmsem::Semaphore::open("x", shmsem::Scope::Global).unwrap_err();
    /// assert!(matches!(err, shmsem::Error::Io { .. }), "{err:?}");
    /// let cause = err.source().expect("the OS error").to_string();
    /// assert!(!err.to_string().contains(&cause));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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

    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn unavailable(reason: impl Into<String>) -> Self {
        Error::Unavailable {
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(reason: impl Into<String>) -> Self {
        Error::Unsupported {
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
                "timed out after {timeout_ms} ms waiting for weight {weight}; wait longer, or \
                 find who holds it (`Semaphore::info` lists the holders)"
            ),
            Error::WouldBlock { weight, available } => write!(
                f,
                "would block: weight {weight} asked, {available} available; wait with a \
                 timeout (`Semaphore::acquire_timeout`) instead of trying once"
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
                 granted; ask for at most {capacity} or raise the capacity \
                 (`Semaphore::set_capacity`)"
            ),
            Error::NotHeld { count, held } => write!(
                f,
                "cannot release {count}: this holder holds {held}; release at most what was \
                 acquired"
            ),
            Error::TableFull { table, capacity } => write!(
                f,
                "the {table} table is full ({capacity} of {capacity} entries in use); \
                 remove unused entries or use another namespace (`Options::namespace`)"
            ),
            Error::PermissionDenied { path } => write!(
                f,
                "permission denied: {path}; ask the namespace's owner for access \
                 (`Namespace::grant`), or use a scope you own"
            ),
            Error::NotFound { name } => write!(
                f,
                "no semaphore {name:?} here; check the name, the scope and the namespace \
                 (`Namespace::list` lists them), or create it (`Options::open`)"
            ),
            Error::AlreadyExists { name } => write!(f, "semaphore {name:?} already exists"),
            Error::NoNamespace { scope, namespace } => write!(
                f,
                "no namespace {namespace:?} in scope {scope}; create a semaphore in it first \
                 (`Options::open`, with `Options::group` and `Options::mode` for its owner)"
            ),
            Error::InUse { name, value } => write!(
                f,
                "semaphore {name:?} is held (value {value}); wait for its holders, or remove it \
                 anyway (`Semaphore::remove` with `force`)"
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
                    " for {waited_ms} ms; it may be stopped or stuck (`shmsem::ps` names what a \
                     process holds): try again, or stop it"
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
            Error::Lost { name, token } => write!(
                f,
                "the holding of semaphore {name:?} with token {token} was lost: this process's \
                 lease lapsed, and the cluster may have given the weight to another holder; \
                 stop using what it guarded, and acquire again"
            ),
            Error::Unavailable { reason } => write!(
                f,
                "the cluster is unavailable: {reason}; check that its endpoints \
                 (`Options::cluster`, or SHMSEM_CLUSTER) are right and that most of its members \
                 are up"
            ),
            Error::Unsupported { reason } => write!(f, "unsupported: {reason}"),
            // The cause is `source()`'s, not repeated here: a report that prints the chain
            // (anyhow's `{:#}`, `Error::source` in a loop) shows it once.
            Error::Io { context, .. } => write!(f, "{context} failed"),
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

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn an_io_cause_is_the_source_and_not_in_the_message() {
        let err = Error::io(
            "opening /nowhere/x",
            io::Error::from(io::ErrorKind::NotFound),
        );
        let cause = err.source().expect("an I/O error has a source").to_string();
        let message = err.to_string();
        assert_eq!(message, "opening /nowhere/x failed");
        assert!(!message.contains(&cause), "{message}");
        // A report that walks the chain shows the cause exactly once.
        let mut report = message;
        let mut next = err.source();
        while let Some(e) = next {
            report = format!("{report}: {e}");
            next = e.source();
        }
        assert_eq!(report.matches(&cause).count(), 1, "{report}");
    }

    #[test]
    fn no_other_variant_has_a_source() {
        let errs = [
            Error::Timeout {
                weight: 1,
                timeout_ms: 5,
            },
            Error::PermissionDenied { path: "p".into() },
            Error::corrupt("r"),
        ];
        for err in errs {
            assert!(err.source().is_none(), "{err:?}");
        }
    }

    #[test]
    fn messages_speak_of_the_library_not_the_command() {
        let errs = [
            Error::Timeout {
                weight: 1,
                timeout_ms: 5,
            },
            Error::WouldBlock {
                weight: 2,
                available: 1,
            },
            Error::InvalidName {
                name: "..".into(),
                reason: "reserved",
            },
            Error::invalid("weight 0; ask for at least 1"),
            Error::WeightTooLarge {
                weight: 3,
                capacity: 2,
            },
            Error::NotHeld { count: 2, held: 1 },
            Error::TableFull {
                table: "semaphore",
                capacity: 4,
            },
            Error::PermissionDenied { path: "p".into() },
            Error::NotFound { name: "n".into() },
            Error::AlreadyExists { name: "n".into() },
            Error::NoNamespace {
                scope: "global".into(),
                namespace: "ci".into(),
            },
            Error::InUse {
                name: "n".into(),
                value: 1,
            },
            Error::Removed { name: "n".into() },
            Error::Busy {
                what: "namespace's table lock",
                holder: Some(7),
                waited_ms: 5000,
            },
            Error::Incompatible {
                path: "p".into(),
                reason: "layout version 4, this build reads 5".into(),
            },
            Error::corrupt("r"),
            Error::io("opening p", io::Error::from(io::ErrorKind::NotFound)),
            Error::Lost {
                name: "n".into(),
                token: 7,
            },
            Error::Unavailable {
                reason: "no endpoint answered within 2000 ms".into(),
            },
            Error::Unsupported {
                reason: "built without the feature `cluster`".into(),
            },
        ];
        for err in errs {
            let message = err.to_string();
            assert!(
                !message.contains("--") && !message.contains("`shmsem "),
                "{message}"
            );
        }
    }
}
