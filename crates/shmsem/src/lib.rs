#![doc = include_str!("../../../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod admin;
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

pub use crate::{
    admin::Namespace,
    error::{Error, Result},
    holders::{Party, Reclaimed},
    ps::{Activity, State, ps},
    scope::{DEFAULT_NAMESPACE, DIR_ENV, SELF_ENV, Scope, Tree, validate_name},
    semaphore::{Counters, FdPermit, Info, Kind, Options, Owner, Permit, Semaphore},
};

/// What the loom model (`tests/loom.rs`), the fuzz targets and the tests of the whole reach
/// past the public interface for: the protocol's transitions and words, the segment layout, and
/// two switches. Not a stable interface.
#[doc(hidden)]
pub mod internals {
    pub use crate::{
        namespace::watch_for_deaths, protocol::word, segment::layout, semaphore::on_fast_path,
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
