#![doc = include_str!("../../../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod error;
#[doc(hidden)]
pub mod failpoint;
mod holders;
mod namespace;
mod ps;
mod scope;
mod segment;
mod semaphore;
mod sys;
mod table;
mod wait;

pub use crate::{
    error::{Error, Result},
    holders::{Party, Reclaimed},
    namespace::handle::Namespace,
    ps::{Activity, State, ps},
    scope::{DEFAULT_NAMESPACE, DIR_ENV, SELF_ENV, Scope, Tree, validate_name},
    semaphore::{FdPermit, Info, Kind, Options, Owner, Permit, Semaphore},
};

/// The protocol and layout, exposed for the loom model, fuzz targets, benchmarks and the tests
/// of the fast path. Not a stable interface.
#[doc(hidden)]
pub mod internals {
    pub use crate::{
        namespace::watch_for_deaths,
        segment::layout,
        semaphore::{on_fast_path, protocol, word},
    };
}
