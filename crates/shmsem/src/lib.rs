//! shmsem is a library of named counting semaphores shared between the processes of one Linux
//! machine. A semaphore is a 64-bit word in a memory-mapped segment: an uncontended acquire is
//! one compare-exchange in user space, a waiter sleeps on a *shared* futex with a deadline, and
//! no kernel semaphore object is ever created. Semaphores have a capacity and acquires a weight;
//! they live in a [`Scope`] (this process tree, every process of the user, or the whole machine)
//! and are opened by name, created on first use. Every holding is recorded, so when a holder
//! dies, even by `SIGKILL`, its weight comes back: POSIX semaphores leak it forever, and SysV's
//! `SEM_UNDO` returns it only by making every operation a system call. The same engine backs the
//! `shmsem` command (package `shmsem-cli`), for shell scripts, CI jobs and operators.
//!
//! # Example
//!
//! Pode's three forms: *Use* (a guard), *Enter/Exit* (unguarded, with a release count) and
//! *Timeout* (milliseconds). (Pode is the PowerShell web framework; its `Use-PodeSemaphore`,
//! `Enter-PodeSemaphore` and `Exit-PodeSemaphore` cmdlets are the model for these forms.)
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("shmsem-crate-{}", std::process::id()));
//! # // SAFETY: set before this example starts any thread.
//! # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
//! use std::time::Duration;
//! use shmsem::{Error, Scope, Semaphore};
//!
//! // At most two processes of this user call the slow backend at once.
//! let sem = Semaphore::options().scope(Scope::Local).capacity(2).open("slow-backend")?;
//!
//! // Use: the weight is held until the permit is dropped, or the closure returns (or panics).
//! {
//!     let _permit = sem.acquire()?;
//!     // call the backend
//! }
//! sem.with(|| { /* call the backend */ })?;
//!
//! // Enter / Exit: unguarded, like Pode's Enter-PodeSemaphore / Exit-PodeSemaphore -ReleaseCount.
//! sem.enter(2)?;
//! sem.exit(2)?;
//!
//! // Timeout: give up after 2 s (Error::Timeout); try once (Error::WouldBlock).
//! match sem.acquire_timeout(1, Duration::from_millis(2000)) {
//!     Ok(_permit) => { /* got it */ }
//!     Err(Error::Timeout { .. }) => { /* still busy after 2 s */ }
//!     Err(e) => return Err(e),
//! }
//! let heavy = sem.try_acquire(2)?; // weights: take 2 of the capacity at once
//! assert!(matches!(sem.try_acquire(1), Err(Error::WouldBlock { .. })));
//! drop(heavy);
//!
//! let info = sem.info()?; // capacity, value (the weight held), kind, holders, waiters
//! assert_eq!((info.capacity, info.value, info.available()), (2, 0, 2));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), shmsem::Error>(())
//! ```
//!
//! # The API
//!
//! * [`Semaphore`]: a handle, cheap to clone and shared between threads.
//!   [`Semaphore::open`] opens with capacity 1 (a mutex); [`Semaphore::options`] gives the
//!   builder, [`Options`] (scope, namespace, capacity, kind, owner group and mode), whose
//!   [`Options::open`] is get-or-create (an existing semaphore keeps its capacity),
//!   [`Options::open_existing`] only opens and [`Options::create_new`] only creates
//!   ([`Error::AlreadyExists`] otherwise); capacities go up to [`Semaphore::MAX_CAPACITY`].
//! * Holding: [`Semaphore::acquire`], [`Semaphore::acquire_weight`],
//!   [`Semaphore::acquire_timeout`] and [`Semaphore::try_acquire`] return a [`Permit`] that
//!   gives its weight back when dropped; [`Semaphore::with`] runs a closure while holding;
//!   [`Semaphore::enter`] and [`Semaphore::exit`] hold without a guard.
//! * Owning: [`Semaphore::acquire_owned`], [`Semaphore::try_acquire_owned`] and
//!   [`Semaphore::acquire_owned_timeout`] (or [`Permit::into_owned`]) return an
//!   [`OwnedPermit`], which owns its handle: `Send + 'static`, for threads and tasks.
//! * From async code (feature `async`): `Semaphore::acquire_async` and
//!   `Semaphore::acquire_owned_async` are futures for any runtime; the library depends on none
//!   (README, *From async code*).
//! * Holding for others: [`Semaphore::acquire_fd`] returns an [`FdPermit`], weight held by an
//!   open file description that a child process can inherit (as a `flock(1)` lock is);
//!   [`Semaphore::acquire_for`] and [`Semaphore::release_for`] hold on behalf of another
//!   process.
//! * Looking: [`Semaphore::info`] returns an [`Info`] (capacity, value, [`Kind`], the holders
//!   and waiters as [`Party`]s, the files' [`Owner`]); [`Semaphore::counters`] its statistics
//!   ([`Counters`]: waits, timeouts, reclaimed weight, wakes, all kept off the fast path);
//!   [`ps`] lists what a process holds or waits for ([`Activity`], [`State`]).
//! * Changing: [`Semaphore::set_capacity`], [`Semaphore::set_persistent`],
//!   [`Semaphore::remove`].
//! * A namespace as a whole, [`Namespace`] (from [`Options::to_namespace`]):
//!   [`Namespace::list`] (or [`Namespace::list_with_counters`]), [`Namespace::reap`] (what
//!   came back, as [`Reclaimed`]), [`Namespace::grant`]; [`Namespace::all`] lists every
//!   namespace this user can open.
//! * Scopes: [`Scope`]; a child process joins its parent's `self` tree through [`Tree`]
//!   (the [`SELF_ENV`] variable); [`DIR_ENV`] moves every scope's files; names follow
//!   [`validate_name`]; the namespace used when none is given is [`DEFAULT_NAMESPACE`].
//! * Errors: one type, [`Error`], whose messages say what happened and what a program can do.
//!
//! Linux only for now. The repository's README covers the command line, the files of each
//! scope, the guarantees and the benchmarks; `docs/DESIGN.md` there has the protocol and its
//! proof sketch.
//
// Why this crate has its own landing page rather than `#![doc = include_str!("README.md")]`:
// the README links to files of the repository (`docs/DESIGN.md`, the plot `docs/bench.svg`) by
// relative paths, which work on GitHub and break on docs.rs (and crates.io), and the repository
// has no published address yet to make them absolute. So the crate docs above are their own:
// what shmsem is, the README's example, and the API with links that rustdoc checks
// (`cargo doc` with `-D warnings` in `.ci/run`). The README's Rust example is still compiled and
// run as a doctest through `ReadmeDoctests` below, so the two examples cannot silently rot; keep
// them in step when either changes.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod admin;
mod cluster;
mod error;
#[doc(hidden)]
pub mod failpoint;
mod holders;
mod namespace;
mod protocol;
mod ps;
mod scope;
mod segment;
mod semaphore;
mod sys;
mod table;
mod wait;

#[cfg(feature = "async")]
pub use crate::semaphore::{AcquireFuture, AcquireOwnedFuture};
pub use crate::{
    admin::Namespace,
    error::{Error, Result},
    holders::{Party, Reclaimed},
    ps::{Activity, State, ps},
    scope::{DEFAULT_NAMESPACE, DIR_ENV, SELF_ENV, Scope, Tree, validate_name},
    semaphore::{Counters, FdPermit, Info, Kind, Options, OwnedPermit, Owner, Permit, Semaphore},
};

/// What the loom model (`tests/loom.rs`), the fuzz targets and the tests of the whole reach
/// past the public interface for: the protocol's transitions and words, the segment layout, and
/// two switches. Not a stable interface.
#[doc(hidden)]
pub mod internals {
    pub use crate::{
        namespace::watch_for_deaths,
        protocol::word,
        segment::layout,
        semaphore::{on_fast_path, state_of},
    };

    /// The counter protocol's transitions, for the loom model (generic over the atomic cell),
    /// and the holder record's word, for the tests that corrupt one.
    pub mod protocol {
        pub use crate::protocol::{
            Atomic64, Counted, Kept, Lane, NoHook, Operator, Recount, Refused, announce_sleep,
            holding, recount, remove,
        };
    }
}

/// The README's code blocks, run as doctests (the README is not the crate's landing page, see
/// the comment at the top of this file).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
