//! A small file of atomic counters that every process maps for itself with `memmap2`: the
//! witnesses of the multi-process tests, which do not depend on shmsem.

use std::{
    fs,
    path::Path,
    sync::atomic::{AtomicU32, AtomicU64},
};

/// A file of `len` bytes mapped shared, read and written only through atomics, by every process.
#[derive(Debug)]
pub struct SharedFile {
    map: memmap2::MmapRaw,
    len: usize,
}

impl SharedFile {
    /// Create the file, zero-filled (parent side, before the children start).
    pub fn create(path: &Path, len: usize) {
        let f = fs::File::create(path).expect("creating the witness");
        f.set_len(len as u64).expect("sizing the witness");
    }

    /// Map the first `len` bytes of the file at `path`.
    pub fn open(path: &Path, len: usize) -> SharedFile {
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("opening the witness");
        let map = memmap2::MmapOptions::new()
            .len(len)
            .map_raw(&f)
            .expect("mapping the witness");
        SharedFile { map, len }
    }

    /// The `index`th 8-byte cell.
    pub fn u64_at(&self, index: usize) -> &AtomicU64 {
        assert!(index < self.len / 8, "cell {index} is outside the witness");
        // SAFETY: the mapping is `len` bytes, page-aligned, shared and alive as long as `self`;
        // `index < len / 8` keeps the 8-byte, 8-aligned cell in bounds; every process only
        // accesses it atomically.
        unsafe { &*self.map.as_mut_ptr().add(index * 8).cast::<AtomicU64>() }
    }

    /// The `index`th 4-byte cell.
    pub fn u32_at(&self, index: usize) -> &AtomicU32 {
        assert!(index < self.len / 4, "cell {index} is outside the witness");
        // SAFETY: the mapping is `len` bytes, page-aligned, shared and alive as long as `self`;
        // `index < len / 4` keeps the 4-byte, 4-aligned cell in bounds; every process only
        // accesses it atomically.
        unsafe { &*self.map.as_mut_ptr().add(index * 4).cast::<AtomicU32>() }
    }
}
