//! The `cluster` scope: the same semaphores across machines, on an etcd v3 cluster. shmsem
//! writes no consensus of its own: etcd's strictly serializable transactions decide every
//! acquire, and its leases tell who is alive.
//!
//! The files, one job each: `keys` (the key layout and value encoding, documented once),
//! `client` (the private runtime and the connection), `lease` (liveness, keep-alive and the lost
//! deadline), `acquire` (the one-transaction acquire and the release), `wait` (watch-based
//! waiting), `admin` (open, info, list, set, remove, reap) and `local_death` (revoking the leases
//! of processes proven dead on this host). Without the feature `cluster`, only the stub at the
//! end of this file is built, and every cluster operation is [`Error::Unsupported`].

#[cfg(not(feature = "cluster"))]
use crate::error::{Error, Result};

/// How an open treats a semaphore that exists or does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    GetOrCreate,
    CreateNew,
    Existing,
}

#[cfg(feature = "cluster")]
mod acquire;
#[cfg(feature = "cluster")]
mod admin;
#[cfg(feature = "cluster")]
mod client;
#[cfg(feature = "cluster")]
mod handle;
#[cfg(feature = "cluster")]
mod keys;
#[cfg(feature = "cluster")]
mod lease;
#[cfg(feature = "cluster")]
mod local_death;
#[cfg(all(feature = "cluster", feature = "async"))]
mod spawned;
#[cfg(feature = "cluster")]
mod wait;

#[cfg(all(feature = "cluster", feature = "async"))]
pub use self::spawned::Spawned;
#[cfg(feature = "cluster")]
pub use self::{
    admin::{list, open, reap},
    handle::Handle,
};

#[cfg(not(feature = "cluster"))]
pub use self::stub::{Handle, list, open, reap};

#[cfg(not(feature = "cluster"))]
mod stub {
    use super::*;
    use crate::{Info, Reclaimed, Semaphore, semaphore::Options};

    fn missing() -> Error {
        Error::unsupported(
            "the cluster scope: this build of the shmsem library has no feature `cluster`; \
             enable it (shmsem = { features = [\"cluster\"] })",
        )
    }

    /// A cluster-scope semaphore: none can exist in this build.
    #[derive(Debug)]
    pub enum Handle {}

    pub fn open(_: &Options, _: &str, _: Open) -> Result<Semaphore> {
        Err(missing())
    }

    pub fn list(_: Option<&[String]>, _: &str) -> Result<Vec<Info>> {
        Err(missing())
    }

    pub fn reap(_: Option<&[String]>, _: &str) -> Result<Vec<Reclaimed>> {
        Err(missing())
    }

    #[allow(clippy::unused_self)]
    impl Handle {
        pub fn name(&self) -> &str {
            match *self {}
        }
        pub fn namespace(&self) -> &str {
            match *self {}
        }
        pub fn capacity(&self) -> u32 {
            match *self {}
        }
        pub fn take(&self, _: u32, _: Option<std::time::Duration>, _: bool) -> Result<(u64, u32)> {
            match *self {}
        }
        pub fn release(&self, _: u64) {
            match *self {}
        }
        pub fn forget(&self, _: u64, _: u32) {
            match *self {}
        }
        pub fn token(&self, _: u64) -> Option<u64> {
            match *self {}
        }
        pub fn check(&self, _: u64) -> Result<()> {
            match *self {}
        }
        pub fn on_lost(&self, _: u64, _: Box<dyn FnOnce() + Send>) -> bool {
            match *self {}
        }
        pub fn enter(&self, _: u32) -> Result<()> {
            match *self {}
        }
        pub fn exit(&self, _: u32) -> Result<()> {
            match *self {}
        }
        pub fn set_capacity(&self, _: u32) -> Result<()> {
            match *self {}
        }
        pub fn set_persistent(&self, _: bool) -> Result<()> {
            match *self {}
        }
        pub fn info(&self) -> Result<Info> {
            match *self {}
        }
        pub fn remove(&self, _: bool) -> Result<()> {
            match *self {}
        }
        pub fn unsupported(&self, _: &str) -> Error {
            match *self {}
        }
    }
}

#[cfg(all(test, not(feature = "cluster")))]
mod tests {
    use crate::{Error, Namespace, Scope, Semaphore};

    #[test]
    fn without_the_feature_the_cluster_scope_is_unsupported() {
        let opts = Semaphore::options()
            .scope(Scope::Cluster)
            .cluster(["http://127.0.0.1:2379"]);
        for r in [
            opts.open("x"),
            opts.open_existing("x"),
            opts.create_new("x"),
        ] {
            match r {
                Err(Error::Unsupported { reason }) => {
                    assert!(reason.contains("cluster"), "{reason}")
                }
                other => panic!("expected Unsupported, got {other:?}"),
            }
        }
        let ns = Namespace::new(Scope::Cluster, "ci").unwrap();
        assert!(matches!(ns.list(), Err(Error::Unsupported { .. })));
        assert!(matches!(ns.reap(), Err(Error::Unsupported { .. })));
    }
}
