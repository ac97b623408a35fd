//! This process's place in a namespace: its process slot (registered on first use and again in
//! a forked child), the descriptor that carries its locks, and its holder records.

use std::{
    fs::File,
    os::fd::{AsFd, AsRawFd, BorrowedFd},
    sync::atomic::Ordering::Relaxed,
};

use super::{Namespace, lock};
use crate::{
    error::{Error, Result},
    holders::{self, Ctx},
    sys,
    table::Found,
};

/// This process's registration in a namespace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Registration {
    /// The fork epoch it belongs to.
    pub epoch: u32,
    /// Our process slot and its generation.
    pub slot: u32,
    pub slot_gen: u32,
}

impl Namespace {
    /// This process's registration, made on first use and again in a forked child.
    pub fn registration(&self) -> Result<Registration> {
        // Relaxed: the epoch only changes in a forked child, in its only thread, before any
        // other code of the child runs.
        let epoch = sys::FORK_EPOCH.load(Relaxed);
        let mut inner = lock(&self.inner);
        if let Some(r) = inner.registration
            && r.epoch == epoch
        {
            return Ok(r);
        }
        if inner.registration.is_some() {
            // A forked child: the hook closed our copy of the parent's lock description; forget the
            // parent's descriptor number without closing it again, and its records.
            if let Some(f) = inner.lock_file.take() {
                std::mem::forget(f);
            }
            inner.records.clear();
        }
        // Locks go on the segment file itself, through a description of our own: one file,
        // one owner, one mode, so nobody the segment refuses can hold or replace its locks.
        let file = self.describe(self.seg.file().as_fd())?;
        sys::close_in_forked_children(file.as_fd());
        let (slot, slot_gen) = self.register_through(&file)?;
        let r = Registration {
            epoch,
            slot,
            slot_gen,
        };
        inner.lock_file = Some(file);
        inner.registration = Some(r);
        Ok(r)
    }

    /// Register a process slot through a *new* open file description of the segment file (not
    /// this process's own): the slot lives for as long as some process has that description
    /// open, whoever it is, as a `flock(1)` lock does. Returns the description, the slot and its
    /// generation. The description is close-on-exec; a caller that hands it to a command clears
    /// that in the child.
    pub fn register_description(&self) -> Result<(File, u32, u32)> {
        // A new description of the very file this process uses, even if the path was replaced.
        let file = self.describe(self.fd()?)?;
        let (slot, slot_gen) = self.register_through(&file)?;
        Ok((file, slot, slot_gen))
    }

    /// A new open file description of the segment file that `from` refers to.
    fn describe(&self, from: BorrowedFd<'_>) -> Result<File> {
        sys::reopen(from)
            .map_err(|e| Error::io(format!("opening {} again", self.loc.segment.display()), e))
    }

    /// Register this process in a slot whose lock byte `file`'s description holds.
    fn register_through(&self, file: &File) -> Result<(u32, u32)> {
        let ctx = Ctx {
            seg: &self.seg,
            fd: file.as_fd(),
            me: None,
            acting: &[],
        };
        holders::register(ctx, sys::current())
    }

    /// The descriptor that carries this process's locks.
    fn fd(&self) -> Result<BorrowedFd<'_>> {
        self.registration()?;
        let inner = lock(&self.inner);
        let raw = inner
            .lock_file
            .as_ref()
            .map(|f| f.as_raw_fd())
            .ok_or_else(|| Error::corrupt("lock descriptor missing after registration"))?;
        // SAFETY: the lock description stays open for as long as `self` lives: it is only replaced in a
        // forked child, where the forking thread is the only thread, and never closed otherwise.
        Ok(unsafe { BorrowedFd::borrow_raw(raw) })
    }

    /// A context for the holder tables.
    pub fn ctx(&self) -> Result<Ctx<'_>> {
        let r = self.registration()?;
        Ok(Ctx {
            seg: &self.seg,
            fd: self.fd()?,
            me: Some(r.slot),
            acting: &[],
        })
    }

    /// The record of (`lane`, `found`) for this process, claimed on first use.
    pub fn record(&self, lane: u16, found: Found) -> Result<(u32, u32)> {
        let r = self.registration()?;
        if let Some(&index) = lock(&self.inner).records.get(&(lane, found)) {
            return Ok((index, r.epoch));
        }
        let ctx = self.ctx()?;
        let index = match holders::claim_record(ctx, r.slot, r.slot_gen, lane, found) {
            Err(Error::TableFull { .. }) if self.free_idle_records(lane) > 0 => {
                holders::claim_record(ctx, r.slot, r.slot_gen, lane, found)?
            }
            other => other?,
        };
        lock(&self.inner).records.insert((lane, found), index);
        Ok((index, r.epoch))
    }

    /// Free the records of `lane` that hold nothing and wait for nothing; returns how many.
    /// Called by the thread that owns `lane`, the only writer of its records, so none of them is
    /// in the middle of an operation. A handle that cached one notices the changed key and claims
    /// a record again.
    fn free_idle_records(&self, lane: u16) -> usize {
        let Ok(ctx) = self.ctx() else { return 0 };
        let mut inner = lock(&self.inner);
        let idle: Vec<(u16, Found)> = inner
            .records
            .iter()
            .filter(|&(&(l, _), &index)| {
                l == lane
                    && self.seg.holder(index).is_some_and(|r| {
                        r.holding.load(Relaxed) == 0 && r.wait_weight.load(Relaxed) == 0
                    })
            })
            .map(|(&key, _)| key)
            .collect();
        // This thread's fast-path entry may name one of them.
        super::fast::clear();
        for key in &idle {
            if let Some(index) = inner.records.remove(key) {
                holders::free_record(ctx, index);
            }
        }
        idle.len()
    }

    /// Forget this process's record of (`lane`, `found`) after the semaphore was removed; free it
    /// if it holds nothing.
    pub fn forget_record(&self, lane: u16, found: Found) {
        let Some(index) = lock(&self.inner).records.remove(&(lane, found)) else {
            return;
        };
        if let Some(r) = self.seg.holder(index)
            && r.holding.load(Relaxed) == 0
            && let Ok(ctx) = self.ctx()
        {
            // This thread's fast-path entry may name it.
            super::fast::clear();
            holders::free_record(ctx, index);
        }
    }
}
