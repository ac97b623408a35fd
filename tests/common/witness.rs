//! A witness of a capacity-limited section, independent of shmsem.

use std::{
    path::Path,
    sync::atomic::{AtomicU32, Ordering::SeqCst},
};

use super::shared::SharedFile;

/// Counters in a small file that every process maps for itself with `memmap2`: how many
/// processes are inside the section now, the most ever seen inside at once, how many entries
/// saw more than allowed, and how many entries there were.
#[derive(Debug)]
pub struct Witness {
    file: SharedFile,
}

impl Witness {
    const LEN: usize = 4096;
    /// The counters it uses of the file.
    const COUNTERS: usize = 16;

    /// Create the file (parent side, before the children start).
    pub fn create(path: &Path) {
        SharedFile::create(path, Self::LEN);
    }

    pub fn open(path: &Path) -> Witness {
        Witness {
            file: SharedFile::open(path, Self::LEN),
        }
    }

    fn at(&self, index: usize) -> &AtomicU32 {
        assert!(index < Self::COUNTERS);
        self.file.u32_at(index)
    }

    pub fn inside(&self) -> &AtomicU32 {
        self.at(0)
    }
    pub fn max_inside(&self) -> &AtomicU32 {
        self.at(1)
    }
    pub fn violations(&self) -> &AtomicU32 {
        self.at(2)
    }
    pub fn entries(&self) -> &AtomicU32 {
        self.at(3)
    }

    /// Count an entry into the section, where at most `allowed` may be at once: one more inside
    /// (and the most seen raised to it), one more entry, and a violation if that is more than
    /// `allowed`. Returns how many are inside now, this one included.
    pub fn enter(&self, allowed: u32) -> u32 {
        let inside = self.inside().fetch_add(1, SeqCst) + 1;
        self.max_inside().fetch_max(inside, SeqCst);
        self.entries().fetch_add(1, SeqCst);
        if inside > allowed {
            self.violations().fetch_add(1, SeqCst);
        }
        inside
    }

    /// Count a leave of the section that [`Witness::enter`] counted.
    pub fn leave(&self) {
        self.inside().fetch_sub(1, SeqCst);
    }
}
