//! Split detection: noticing that this process's segment was unlinked while mapped and another
//! segment now has its name, so that handles of the two are never mixed.

use std::{sync::atomic::Ordering::Relaxed, time::Duration};

use super::Namespace;
use crate::{
    error::{Error, Result},
    wait::Monotonic,
};

impl Namespace {
    /// Notice a namespace split: this segment was unlinked while mapped and another segment now
    /// has its name (a process that could not reach this one's descriptors created it). Opening
    /// the namespace then fails, rather than mixing handles of the two.
    pub fn check_linked(&self) -> Result<()> {
        // Relaxed: the flag publishes nothing but itself; a thread that misses it looks at the
        // segment's link again, which is the check proper.
        if self.split.load(Relaxed) || self.seg.is_replaced() {
            self.split.store(true, Relaxed);
            return Err(Error::corrupt(format!(
                "{} was removed while in use and another segment took its name; processes that \
                 opened the namespace before and after do not share semaphores",
                self.loc.segment.display()
            )));
        }
        Ok(())
    }

    /// [`check_linked`](Self::check_linked) at most once per `every`.
    pub(super) fn check_linked_every(&self, every: Duration) -> Result<()> {
        if self.split.load(Relaxed) {
            return self.check_linked();
        }
        let now = Monotonic::now();
        let last = Monotonic(self.last_link_check_ns.load(Relaxed));
        if now < last.after(every) {
            return Ok(());
        }
        self.last_link_check_ns.store(now.0, Relaxed);
        self.check_linked()
    }
}
