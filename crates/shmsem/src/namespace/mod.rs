//! A mapped namespace and what this process keeps of it: the segment, this process's
//! registration and records, and the reclaim and idle sweep that run on it.
//!
//! A namespace is mapped once per process and stays mapped for the life of the process: its
//! process slot, and the liveness lock that goes with it, must outlive every handle. The other
//! jobs have files of their own: the registry of mapped namespaces (`registry`), registration
//! and records (`registration`), the namespace's locks (`locks`), split detection (`split`),
//! thread lanes (`lanes`) and the fast path's per-thread memory of records (`fast`), cleanup of
//! `self` trees (`tree`), and the watch thread (`watch`). The public handle for namespace-wide
//! operations is `crate::admin`'s `Namespace`, not to be confused with the mapped namespace of
//! this file.

use std::{
    collections::HashMap,
    fs::File,
    os::fd::AsFd,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

pub(crate) mod fast;
mod lanes;
mod locks;
mod registration;
mod registry;
mod split;
mod tree;
mod watch;

pub use self::watch::watch_for_deaths;
pub(crate) use self::{
    lanes::{SHARED_LANE, current_lane, with_lane},
    registration::Registration,
    watch::Waiting,
};

use crate::{
    error::{Error, Result},
    holders::{self, Ctx, Reclaimed},
    scope::Location,
    segment::{Creation, Segment},
    sys,
    table::{self, Found},
    wait::Monotonic,
};

#[derive(Debug)]
struct Inner {
    /// This process's own description of the segment file, for its locks (reopened in a
    /// forked child, whose inherited copy shares the parent's locks).
    lock_file: Option<File>,
    registration: Option<Registration>,
    /// Holder records of this process: (lane, semaphore) → record.
    records: HashMap<(u16, Found), u32>,
}

/// A mapped namespace.
#[derive(Debug)]
pub(crate) struct Namespace {
    pub loc: Location,
    pub seg: Segment,
    inner: Mutex<Inner>,
    /// Threads of this process take the table lock one at a time: OFD locks do not exclude
    /// threads sharing a descriptor.
    table: Mutex<()>,
    reclaim: Mutex<()>,
    last_reclaim_ns: AtomicU64,
    last_link_check_ns: AtomicU64,
    /// Set once a split was noticed; every later open of the namespace fails.
    split: AtomicBool,
    /// External slots whose lock byte this process holds while acting for them.
    acting: Mutex<Vec<u32>>,
    /// What the reclaim at open gave back, until [`Namespace::reap`] reports it.
    reclaimed_at_open: Mutex<Vec<Reclaimed>>,
    /// This process's waiting threads here, and its watch thread (see `watch`).
    watch: watch::Watch,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these leaves nothing half-done that matters: recover.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Namespace {
    /// Map the namespace at `loc` (created if `creation` is given; `None` if it does not exist),
    /// register this process in it and reclaim what dead processes left behind. Only the
    /// registry calls this, once per namespace and process.
    fn map(loc: Location, creation: Option<Creation>) -> Result<Option<Arc<Namespace>>> {
        let expect = loc.expect();
        let seg = match creation {
            Some(c) => Segment::open_or_create(&loc.segment, c, expect)?,
            None => match Segment::open(&loc.segment, expect)? {
                Some(s) => s,
                None => return Ok(None),
            },
        };
        let ns = Arc::new(Namespace {
            loc,
            seg,
            inner: Mutex::new(Inner {
                lock_file: None,
                registration: None,
                records: HashMap::new(),
            }),
            table: Mutex::new(()),
            reclaim: Mutex::new(()),
            last_reclaim_ns: AtomicU64::new(0),
            last_link_check_ns: AtomicU64::new(Monotonic::now().0),
            split: AtomicBool::new(false),
            acting: Mutex::new(Vec::new()),
            reclaimed_at_open: Mutex::new(Vec::new()),
            watch: watch::Watch::default(),
        });
        ns.registration()?;
        // Reclaim on open: whatever dead processes left behind comes back now; and auto
        // semaphores past their idle period go.
        *lock(&ns.reclaimed_at_open) = ns.reclaim()?;
        ns.sweep_idle()?;
        Ok(Some(ns))
    }

    /// Remove the auto semaphores past their idle period, and wake anyone still sleeping on them.
    pub fn sweep_idle(&self) -> Result<()> {
        // A sweep never waits for the table lock: whoever holds it, the next sweep comes.
        let removed = self
            .try_table_lock(|ctx| table::sweep_idle(ctx.seg, sys::wall_ms()))?
            .unwrap_or_default();
        for found in removed {
            if let Some(rec) = self.seg.sem(found.index) {
                crate::wait::wake(&rec.word, u32::MAX);
            }
        }
        Ok(())
    }

    /// Give group `gid` read and write access to the namespace's files (a POSIX ACL entry).
    pub fn grant_group(&self, gid: u32) -> Result<()> {
        sys::grant_group(self.seg.file().as_fd(), gid).map_err(|e| {
            Error::io(
                format!(
                    "granting group {gid} access to {}",
                    self.loc.segment.display()
                ),
                e,
            )
        })
    }

    /// Reclaim what dead holders hold.
    pub fn reclaim(&self) -> Result<Vec<Reclaimed>> {
        let _one = lock(&self.reclaim);
        // Relaxed: a timestamp for pacing only; nothing is published with it.
        self.last_reclaim_ns.store(Monotonic::now().0, Relaxed);
        let acting = lock(&self.acting).clone();
        holders::reclaim(Ctx {
            acting: &acting,
            ..self.ctx()?
        })
    }

    /// Reclaim, and report it together with what the reclaim at open gave back.
    pub fn reap(&self) -> Result<Vec<Reclaimed>> {
        let mut out = std::mem::take(&mut *lock(&self.reclaimed_at_open));
        out.extend(self.reclaim()?);
        Ok(out)
    }

    /// Reclaim, at most once per `every` from this process: for waiters' bounded sleeps.
    pub fn reclaim_every(&self, every: Duration) {
        let now = Monotonic::now();
        let last = Monotonic(self.last_reclaim_ns.load(Relaxed));
        if now >= last.after(every) {
            let _ = self.reclaim();
        }
    }
}
