//! How a handle is a cluster-scope semaphore: it has no mapped namespace ([`Mapped`] is empty)
//! and never a fast-path entry, so its acquires reach `take_cold` and its permits' drops
//! `drop_slow`, which branch to `crate::cluster`, as every other method does at its top.

use std::{
    ops::Deref,
    sync::{Arc, atomic::AtomicU64},
};

use super::{Held, Inner, Semaphore};
use crate::namespace::{Namespace, fast};

/// The mapped namespace of a local handle. A cluster handle has none, and reaches no code that
/// looks at one: every path that would branches to `crate::cluster` first.
pub(super) struct Mapped(pub(super) Option<Arc<Namespace>>);

impl Deref for Mapped {
    type Target = Arc<Namespace>;
    #[inline]
    fn deref(&self) -> &Arc<Namespace> {
        match &self.0 {
            Some(ns) => ns,
            None => unreachable!("a cluster-scope handle reached the local engine"),
        }
    }
}

impl Semaphore {
    /// A handle on the cluster-scope semaphore `handle`.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn cluster(handle: crate::cluster::Handle) -> Semaphore {
        Semaphore {
            inner: Arc::new(Inner {
                serial: fast::serial(),
                ns: Mapped(None),
                name: handle.name().into(),
                cluster: Some(Arc::new(handle)),
                found: AtomicU64::new(0),
                recreate: None,
                cache: AtomicU64::new(Held::EMPTY),
                cache_key: AtomicU64::new(0),
                unguarded: AtomicU64::new(0),
            }),
        }
    }

    /// The cluster-scope semaphore this handle is, if it is one.
    #[inline]
    pub(crate) fn as_cluster(&self) -> Option<&crate::cluster::Handle> {
        self.inner.cluster.as_deref()
    }
}
