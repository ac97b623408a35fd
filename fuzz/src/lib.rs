//! Helpers shared by the fuzz targets: a private `SHMSEM_DIR` per fuzzing process, a second
//! mapping of a namespace's segment for reading and forging records through
//! `shmsem::internals::layout`, and the CLI's rendering code (`shmsem_cli::output`, so that
//! `ls` and `show` output is produced in-process).

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU32, AtomicU64, Ordering::Relaxed},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use memmap2::{MmapOptions, MmapRaw};
use shmsem::internals::layout::{
    HOLDERS_OFFSET, Header, HolderRecord, MAX_HOLDERS, MAX_PROCESSES, MAX_SEMAPHORES, NAME_MAX,
    PROCS_OFFSET, ProcSlot, SEGMENT_SIZE, SEMS_OFFSET, SemRecord,
};

/// The CLI's text and JSON rendering, as `shmsem ls` and `shmsem show` run it.
pub use shmsem_cli::output;

/// This process's `SHMSEM_DIR`: a fresh directory, set before the library's first use (the
/// library reads the variable once per process) and removed when the process exits normally.
pub fn shm_dir(tag: &str) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("shmsem-fuzz-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).expect("creating the fuzzing SHMSEM_DIR");
        // SAFETY: called from the fuzz target before any other use of the library and before
        // the target starts threads; libFuzzer runs inputs on this one thread.
        unsafe { std::env::set_var(shmsem::DIR_ENV, &dir) };
        extern "C" fn remove_dir() {
            if let Some(d) = std::env::var_os(shmsem::DIR_ENV) {
                let _ = fs::remove_dir_all(d);
            }
        }
        // SAFETY: a valid `extern "C" fn()` that lives for the whole program.
        unsafe { libc::atexit(remove_dir) };
        dir
    })
}

/// The segment file of local namespace `ns` in `dir`.
pub fn segment_path(dir: &Path, ns: &str) -> PathBuf {
    dir.join(format!("local.{ns}"))
}

/// The lock file of local namespace `ns` in `dir`.
pub fn lock_path(dir: &Path, ns: &str) -> PathBuf {
    dir.join(format!("local.{ns}.lock"))
}

/// A second, independent mapping of a segment file: what another process that can write the
/// file sees and does.
#[derive(Debug)]
pub struct Raw {
    map: MmapRaw,
}

// SAFETY: only ever accessed through atomics or raw copies by one thread at a time.
unsafe impl Send for Raw {}
// SAFETY: as above.
unsafe impl Sync for Raw {}

impl Raw {
    /// Map `path`, which must be a full-size segment.
    pub fn open(path: &Path) -> Raw {
        let f = fs::File::options()
            .read(true)
            .write(true)
            .open(path)
            .expect("opening a segment to map it");
        let map = MmapOptions::new()
            .len(SEGMENT_SIZE)
            .map_raw(&f)
            .expect("mapping a segment");
        Raw { map }
    }

    fn at<T>(&self, offset: usize) -> &T {
        assert!(offset + size_of::<T>() <= SEGMENT_SIZE);
        assert!(offset.is_multiple_of(align_of::<T>()));
        // SAFETY: in bounds and aligned (checked above); every layout type is made of atomics
        // only, valid for any bytes and shared-mutable by design.
        unsafe { &*self.map.as_ptr().add(offset).cast::<T>() }
    }

    pub fn header(&self) -> &Header {
        self.at(0)
    }

    pub fn proc_slot(&self, i: u32) -> &ProcSlot {
        assert!(i < MAX_PROCESSES);
        self.at(PROCS_OFFSET + i as usize * size_of::<ProcSlot>())
    }

    pub fn holder(&self, i: u32) -> &HolderRecord {
        assert!(i < MAX_HOLDERS);
        self.at(HOLDERS_OFFSET + i as usize * size_of::<HolderRecord>())
    }

    pub fn sem(&self, i: u32) -> &SemRecord {
        assert!(i < MAX_SEMAPHORES);
        self.at(SEMS_OFFSET + i as usize * size_of::<SemRecord>())
    }

    /// The whole segment, copied out.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut v = vec![0u8; SEGMENT_SIZE];
        self.read(0, &mut v);
        v
    }

    /// Copy `out.len()` bytes at `offset` out of the segment.
    pub fn read(&self, offset: usize, out: &mut [u8]) {
        assert!(offset + out.len() <= SEGMENT_SIZE);
        // SAFETY: in bounds; the bytes are plain memory of the mapping. No thread of this
        // process changes the segment while the fuzz target copies (libFuzzer runs one input
        // at a time on one thread).
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.map.as_ptr().add(offset),
                out.as_mut_ptr(),
                out.len(),
            )
        };
    }

    /// Write `bytes` at `offset`, clipped to the segment: what a hostile writer does.
    pub fn write(&self, offset: usize, bytes: &[u8]) {
        if offset >= SEGMENT_SIZE {
            return;
        }
        let n = bytes.len().min(SEGMENT_SIZE - offset);
        // SAFETY: in bounds (clipped above); see `read` for the absence of concurrent access.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.map.as_mut_ptr().add(offset), n)
        };
    }

    /// The record of live semaphore `name`, found by the name table's own probe (FNV-1a, linear,
    /// stopping at an empty record): `(index, generation)`.
    pub fn find_sem(&self, name: &str) -> Option<(u32, u16)> {
        let bytes = name.as_bytes();
        assert!(bytes.len() <= NAME_MAX);
        let start = fnv(bytes) as u32;
        for i in 0..MAX_SEMAPHORES {
            let index = start.wrapping_add(i) & (MAX_SEMAPHORES - 1);
            let rec = self.sem(index);
            let slot = rec.slot.load(Relaxed);
            match slot & 0xFFFF {
                0 => return None, // EMPTY
                2 if rec.name_len.load(Relaxed) as usize == bytes.len()
                    && name_matches(rec, bytes) =>
                {
                    return Some((index, (slot >> 16) as u16));
                }
                _ => {}
            }
        }
        None
    }

    /// Holder records in use.
    pub fn holders_in_use(&self) -> u32 {
        (0..MAX_HOLDERS)
            .filter(|&i| self.holder(i).key.load(Relaxed) != 0)
            .count() as u32
    }
}

fn name_matches(rec: &SemRecord, bytes: &[u8]) -> bool {
    bytes.chunks(8).enumerate().all(|(i, chunk)| {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        rec.name[i].load(Relaxed) == u64::from_le_bytes(b)
    })
}

/// FNV-1a, 64-bit, as the name table hashes names.
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Process-slot kinds and record keys, as `holders.rs` defines them.
pub mod slots {
    /// Slot kind: unused.
    pub const FREE: u32 = 0;
    /// Slot kind: an engine process, alive while it holds its lock byte.
    pub const ENGINE: u32 = 1;

    /// The key of the record of (`slot`, `lane`) on semaphore (`index`, `generation`).
    pub const fn record_key(slot: u32, lane: u16, index: u32, generation: u16) -> u64 {
        ((slot as u64 + 1) << 48)
            | ((lane as u64) << 32)
            | ((index as u64) << 16)
            | generation as u64
    }
}

/// Forge a dead engine process in a free slot (searching down from the last): what a process
/// killed while registered leaves behind. Nobody holds the slot's lock byte, so a reclaimer
/// proves it dead. Returns the slot.
pub fn forge_dead_process(raw: &Raw, pid: u32) -> Option<u32> {
    for slot in (0..MAX_PROCESSES).rev() {
        let s = raw.proc_slot(slot);
        let st = s.state.load(Relaxed);
        if st & 0xFF != slots::FREE {
            continue;
        }
        let generation = ((st >> 8) + 1) & 0xFF_FFFF;
        s.pid.store(pid, Relaxed);
        s.start_time.store(1, Relaxed);
        s.pidns.store(0, Relaxed);
        s.uid.store(0, Relaxed);
        s.registered_ms.store(1, Relaxed);
        s.state.store(generation << 8 | slots::ENGINE, Relaxed);
        return Some(slot);
    }
    None
}

/// Give forged process `slot` `weight` more of semaphore (`index`, `generation`) through lane
/// `lane`, as a real acquire would leave it: the record holds it and the word's value includes
/// it. Refuses (returns `false`) when it does not fit under `capacity` or the word is not a
/// plain word of that generation.
pub fn forge_holding(
    raw: &Raw,
    slot: u32,
    lane: u16,
    index: u32,
    generation: u16,
    weight: u32,
) -> bool {
    use shmsem::internals::{protocol::holding, word};
    let rec = raw.sem(index);
    let w = rec.word.load(Relaxed);
    let capacity = rec.capacity.load(Relaxed);
    if word::generation(w) != generation || word::is_frozen(w) {
        return false;
    }
    let Some(new) = word::take(w, weight, capacity, false) else {
        return false;
    };
    let key = slots::record_key(slot, lane, index, generation);
    let slot_gen = raw.proc_slot(slot).state.load(Relaxed) >> 8;
    // The record: an existing one of the same key, else a free one from the top.
    let mut record = (0..MAX_HOLDERS).find(|&i| raw.holder(i).key.load(Relaxed) == key);
    if record.is_none() {
        for i in (0..MAX_HOLDERS).rev() {
            let h = raw.holder(i);
            if h.key.compare_exchange(0, key, Relaxed, Relaxed).is_ok() {
                h.owner_gen.store(slot_gen, Relaxed);
                h.holding.store(0, Relaxed);
                h.wait_weight.store(0, Relaxed);
                h.since_ms.store(1, Relaxed);
                record = Some(i);
                break;
            }
        }
    }
    let Some(i) = record else { return false };
    if rec.word.compare_exchange(w, new, Relaxed, Relaxed).is_err() {
        return false;
    }
    let h = raw.holder(i);
    let held = holding::held(h.holding.load(Relaxed));
    h.holding.store(holding::of(held + weight as i64), Relaxed);
    true
}

/// A counter for unique names within this process.
pub fn next_id() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Relaxed)
}

/// A small counter, for budgets.
pub fn bump(c: &AtomicU32) -> u32 {
    c.fetch_add(1, Relaxed)
}

/// Count an event; with `SHMSEM_FUZZ_STATS` set, the counts are printed when the process exits
/// (to check that a run reaches the paths it is meant to).
pub fn stat(event: &'static str) {
    use std::collections::BTreeMap;
    static STATS: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());
    static ONCE: std::sync::Once = std::sync::Once::new();
    if std::env::var_os("SHMSEM_FUZZ_STATS").is_none() {
        return;
    }
    ONCE.call_once(|| {
        extern "C" fn print() {
            if let Ok(s) = STATS.lock() {
                eprintln!("shmsem-fuzz stats: {s:?}");
            }
        }
        // SAFETY: a valid `extern "C" fn()` that lives for the whole program.
        unsafe { libc::atexit(print) };
    });
    if let Ok(mut s) = STATS.lock() {
        *s.entry(event).or_default() += 1;
    }
}
