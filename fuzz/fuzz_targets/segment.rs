//! Hostile segment bytes: the library and the CLI's `ls`/`show` rendering must answer `Ok` or a
//! typed error, never panic, crash, read out of bounds or hang (`-timeout`).
//!
//! The first byte picks the mode:
//!
//! * **even: a file.** The rest describes a namespace's segment file: a flags byte (bit 0:
//!   create the lock file too, which lets an accepted segment be registered in and used), a
//!   little-endian `u32` file length (clipped to twice the segment size), then chunks of
//!   (`u32` offset, `u16` length, bytes) written into an otherwise sparse (zero) file. The file
//!   gets a fresh namespace name; the library then lists it, opens it, shows a semaphore,
//!   acquires, releases and reaps, and the CLI renders what it got. Seeds (`fuzz/corpus/segment`):
//!   a valid segment made by the library with holders, a truncated one, a zeroed one.
//! * **odd: overlays on a live segment.** One long-lived namespace of this process (semaphores
//!   `a`, `b`, `c`; this process holding weight in `b`; an external holder on `c`; a forged dead
//!   process holding weight in `a` and `c`) is restored from its snapshot, then the rest of the
//!   input is a sequence of operations, `arbitrary`-decoded: overlays of bytes at offsets chosen
//!   by table and record (records in use first), and library calls between them. An overlay
//!   after an acquire hits a mapping the library validated long before, as a hostile process
//!   writing into a shared segment would.
//!
//! Every call has a bound: timed acquires wait at most 1 ms, and nothing waits forever.

#![no_main]

use std::{
    cell::OnceCell,
    os::unix::fs::{FileExt, OpenOptionsExt},
    sync::{
        Mutex,
        atomic::{AtomicU32, Ordering::Relaxed},
    },
    time::Duration,
};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use shmsem::{
    Error, Info, Permit, Semaphore,
    internals::layout::{
        FINGERPRINT, HOLDERS_OFFSET, HolderRecord, LAYOUT_VERSION, MAGIC, MAX_HOLDERS,
        MAX_PROCESSES, MAX_SEMAPHORES, PROCS_OFFSET, ProcSlot, SEGMENT_SIZE, SEMS_OFFSET,
        SemRecord,
    },
};
use shmsem_fuzz::{
    Raw, forge_dead_process, forge_holding, lock_path, next_id, output, segment_path, shm_dir,
};

fuzz_target!(|data: &[u8]| {
    shm_dir("segment");
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 0 => file_mode(rest),
        Some((_, rest)) => overlay_mode(rest),
        None => {}
    }
});

// ===== rendering, as `shmsem ls` and `shmsem show` do =====

fn render_list(infos: &[Info]) {
    let rows: Vec<_> = infos.iter().map(output::ls_row).collect();
    let text = output::table(output::LS_HEADER, &rows, true);
    let json: serde_json::Value = infos.iter().map(output::summary_json).collect();
    std::hint::black_box((text, format!("{json:#}")));
}

fn render_show(info: &Info) {
    let text = output::detail_text(info);
    let json = output::detail_json(info);
    std::hint::black_box((text, format!("{json:#}")));
}

fn render_reap(ns: &str, r: &[shmsem::Reclaimed]) {
    let text = output::reclaimed_text(r);
    let json = output::reclaimed_json(shmsem::Scope::Local, ns, r);
    std::hint::black_box((text, format!("{json:#}")));
}

/// Only typed errors exist; this just makes every error's message be produced too.
fn seen<T>(r: Result<T, Error>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            std::hint::black_box(e.to_string());
            None
        }
    }
}

// ===== even: a whole file =====

/// Accepted segments whose namespace this process keeps mapped for good (the library maps a
/// namespace once per process): bounded, so that memory stays bounded too.
static KEPT: AtomicU32 = AtomicU32::new(0);
const KEEP_AT_MOST: u32 = 64;

/// Files with a header the library would accept and map (and keep mapped, as it does every
/// namespace it maps; opening one touches its tables, about 7 MB): past this many, such a file
/// is not handed to the library, so that a long run stays under libFuzzer's memory limit. Files
/// the header check refuses cost nothing and are always tried.
static MAPPED: AtomicU32 = AtomicU32::new(0);
const MAP_AT_MOST: u32 = 256;

/// Whether a file of `len` bytes starting with `head` passes the header's constant checks
/// (magic, layout version, fingerprint) and is long enough to be mapped.
fn would_map(head: &[u8], len: u64) -> bool {
    let mut valid = Vec::with_capacity(16);
    valid.extend_from_slice(&MAGIC.to_le_bytes());
    valid.extend_from_slice(&LAYOUT_VERSION.to_le_bytes());
    valid.extend_from_slice(&FINGERPRINT.to_le_bytes());
    len >= SEGMENT_SIZE as u64 && head.starts_with(&valid)
}

fn file_mode(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let flags: u8 = u.arbitrary().unwrap_or(0);
    let len: u32 = u.arbitrary().unwrap_or(0);
    let len = u64::from(len) % (2 * SEGMENT_SIZE as u64 + 1);
    let dir = shm_dir("segment");
    let ns = format!("file{}", next_id());
    let seg = segment_path(dir, &ns);
    let lock = lock_path(dir, &ns);
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&seg)
        .expect("creating the segment file");
    file.set_len(len).expect("sizing the segment file");
    while !u.is_empty() {
        let (Ok(off), Ok(n)) = (u.arbitrary::<u32>(), u.arbitrary::<u16>()) else {
            break;
        };
        let bytes = u.bytes((n as usize).min(u.len())).unwrap_or(&[]);
        let off = u64::from(off);
        if off < len {
            let n = (bytes.len() as u64).min(len - off) as usize;
            file.write_all_at(&bytes[..n], off)
                .expect("writing a chunk");
        }
    }
    let mut head = [0u8; 16];
    let head = match file.read_at(&mut head, 0) {
        Ok(n) => &head[..n],
        Err(_) => &[][..],
    };
    drop(file);
    if would_map(head, len) && MAPPED.fetch_add(1, Relaxed) >= MAP_AT_MOST {
        shmsem_fuzz::stat("file: not mapped (budget spent)");
        let _ = std::fs::remove_file(&seg);
        return;
    }
    let deep = flags & 1 == 1 && KEPT.load(Relaxed) < KEEP_AT_MOST;
    if deep {
        std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&lock)
            .expect("creating the lock file");
    }

    let opts = Semaphore::options().namespace(ns.as_str());
    if let Some(list) = seen(opts.to_namespace().and_then(|n| n.list())) {
        shmsem_fuzz::stat("file: accepted");
        render_list(&list);
        if deep {
            KEPT.fetch_add(1, Relaxed);
        }
        for name in list.iter().map(|i| i.name.clone()).take(4) {
            use_existing(&opts, &name);
        }
    }
    use_existing(&opts, "a");
    if let Some(r) = seen(opts.to_namespace().and_then(|n| n.reap())) {
        render_reap(&ns, &r);
    }
    if deep {
        // Get-or-create on whatever the file holds.
        if let Some(sem) = seen(opts.capacity(2).open("new")) {
            let _ = seen(sem.try_acquire(1));
            let _ = seen(sem.info());
        }
    }
    let _ = std::fs::remove_file(&seg);
    let _ = std::fs::remove_file(&lock);
}

fn use_existing(opts: &shmsem::Options, name: &str) {
    let Some(sem) = seen(opts.open_existing(name)) else {
        return;
    };
    if let Some(info) = seen(sem.info()) {
        render_show(&info);
    }
    let _ = seen(sem.try_acquire(1));
    let _ = seen(sem.acquire_timeout(1, Duration::from_millis(1)));
    if seen(sem.try_acquire(1)).is_some_and(|p| {
        p.forget();
        true
    }) {
        let _ = seen(sem.exit(1));
    }
    let _ = seen(sem.set_capacity(3));
}

// ===== odd: overlays on a live segment =====

/// The long-lived namespace, its snapshot and the records in use in it.
struct Live {
    raw: Raw,
    snapshot: Vec<u8>,
    used_sems: Vec<u32>,
    used_procs: Vec<u32>,
    used_holders: Vec<u32>,
    /// The semaphore `b` handle that holds the process's own weight (entered once, never exited).
    _b: Semaphore,
    /// Inputs since the last full restore.
    since_full: u32,
}

const LIVE_NS: &str = "live";
static LIVE: Mutex<Option<Live>> = Mutex::new(None);

fn setup_live() -> Live {
    let dir = shm_dir("segment");
    let opts = Semaphore::options().namespace(LIVE_NS);
    let a = opts.clone().capacity(3).open("a").expect("a");
    let b = opts.clone().capacity(1).persistent().open("b").expect("b");
    let c = opts.clone().capacity(5).open("c").expect("c");
    b.enter(1).expect("holding b");
    c.acquire_for(std::process::id(), 2, Some(Duration::from_secs(1)))
        .expect("an external holder on c");
    let raw = Raw::open(&segment_path(dir, LIVE_NS));
    // A dead engine process holding 1 of a and 2 of c.
    let slot = forge_dead_process(&raw, 0x7FFF_FFF0).expect("a free slot");
    for (name, w) in [("a", 1), ("c", 2)] {
        let (index, generation) = raw.find_sem(name).expect("in the table");
        assert!(forge_holding(&raw, slot, 0, index, generation, w));
    }
    drop((a, c));
    let snapshot = raw.snapshot();
    let used_sems = (0..MAX_SEMAPHORES)
        .filter(|&i| raw.sem(i).slot.load(Relaxed) != 0)
        .collect();
    let used_procs = (0..MAX_PROCESSES)
        .filter(|&i| raw.proc_slot(i).state.load(Relaxed) & 0xFF != 0)
        .collect();
    let used_holders = (0..MAX_HOLDERS)
        .filter(|&i| raw.holder(i).key.load(Relaxed) != 0)
        .collect();
    Live {
        raw,
        snapshot,
        used_sems,
        used_procs,
        used_holders,
        _b: b,
        since_full: 0,
    }
}

impl Live {
    /// Put the snapshot back: the header and the process and holder tables whole; of the name
    /// table, the records in use in the snapshot, the ones overlays hit, and any whose slot word
    /// changed (a new semaphore); everything, every 256 inputs.
    fn restore(&mut self, extra_sems: &[u32]) {
        self.since_full += 1;
        if self.since_full >= 256 {
            self.since_full = 0;
            self.raw.write(0, &self.snapshot);
            return;
        }
        self.raw.write(0, &self.snapshot[..SEMS_OFFSET]);
        let rec = size_of::<SemRecord>();
        let put = |i: u32| {
            let off = SEMS_OFFSET + i as usize * rec;
            self.raw.write(off, &self.snapshot[off..off + rec]);
        };
        for &i in self.used_sems.iter().chain(extra_sems) {
            put(i);
        }
        let slot_off = std::mem::offset_of!(SemRecord, slot);
        for i in 0..MAX_SEMAPHORES {
            let off = SEMS_OFFSET + i as usize * rec + slot_off;
            let was = u32::from_le_bytes(self.snapshot[off..off + 4].try_into().unwrap());
            if self.raw.sem(i).slot.load(Relaxed) != was {
                put(i);
            }
        }
    }
}

/// Where an overlay goes.
#[derive(Debug, Arbitrary)]
enum Target {
    Header {
        offset: u8,
    },
    /// The `index`-th slot in use (past those, slot `index` itself).
    Proc {
        index: u16,
        offset: u8,
    },
    Holder {
        index: u16,
        offset: u8,
    },
    Sem {
        index: u16,
        offset: u16,
    },
    Anywhere {
        offset: u32,
    },
}

#[derive(Debug, Arbitrary)]
enum Bytes {
    Raw(Vec<u8>),
    /// XOR an aligned 8-byte word: flips flags, keeps the rest.
    Xor64(u64),
    /// Set an aligned 4-byte field.
    Set32(u32),
}

#[derive(Debug, Arbitrary)]
enum Step {
    Overlay(Target, Bytes),
    List,
    Show(u8),
    Try(u8, u8),
    Timed(u8, u8),
    ReleaseOne,
    Exit(u8),
    SetCapacity(u8, u8),
    Reap,
    OpenNew(u8),
    AcquireFor(u8, u8),
    ReleaseFor(u8, u8),
}

/// The names an input may use: the three of the snapshot and one new name per input.
fn name(i: u8, fresh: &str) -> &str {
    match i % 4 {
        0 => "a",
        1 => "b",
        2 => "c",
        _ => fresh,
    }
}

fn overlay_offset(live: &Live, t: &Target) -> (usize, Option<u32>) {
    let pick = |used: &[u32], index: u16, max: u32| -> u32 {
        let i = index as usize;
        if i < used.len() {
            used[i]
        } else {
            u32::from(index) % max
        }
    };
    match *t {
        Target::Header { offset } => (offset as usize % 128, None),
        Target::Proc { index, offset } => {
            let i = pick(&live.used_procs, index, MAX_PROCESSES);
            (
                PROCS_OFFSET + i as usize * size_of::<ProcSlot>() + offset as usize % 64,
                None,
            )
        }
        Target::Holder { index, offset } => {
            let i = pick(&live.used_holders, index, MAX_HOLDERS);
            (
                HOLDERS_OFFSET + i as usize * size_of::<HolderRecord>() + offset as usize % 64,
                None,
            )
        }
        Target::Sem { index, offset } => {
            let i = pick(&live.used_sems, index, MAX_SEMAPHORES);
            let rec = size_of::<SemRecord>();
            (
                SEMS_OFFSET + i as usize * rec + offset as usize % rec,
                Some(i),
            )
        }
        Target::Anywhere { offset } => {
            let off = offset as usize % SEGMENT_SIZE;
            // The padding after the name table (up to a whole page) belongs to no record.
            let sem = off
                .checked_sub(SEMS_OFFSET)
                .map(|o| (o / size_of::<SemRecord>()) as u32)
                .filter(|&i| i < MAX_SEMAPHORES);
            (off, sem)
        }
    }
}

fn apply(live: &Live, t: &Target, b: &Bytes) -> Option<u32> {
    let (off, sem) = overlay_offset(live, t);
    match b {
        Bytes::Raw(v) => live.raw.write(off, &v[..v.len().min(64)]),
        Bytes::Xor64(x) => {
            let off = off & !7;
            let mut cur = [0u8; 8];
            if off + 8 <= SEGMENT_SIZE {
                live.raw.read(off, &mut cur);
                let v = u64::from_le_bytes(cur) ^ x;
                live.raw.write(off, &v.to_le_bytes());
            }
        }
        Bytes::Set32(v) => live.raw.write(off & !3, &v.to_le_bytes()),
    }
    sem
}

fn overlay_mode(data: &[u8]) {
    shmsem_fuzz::stat("overlay-mode inputs");
    let mut guard = LIVE.lock().unwrap();
    let live = guard.get_or_insert_with(setup_live);
    let mut u = Unstructured::new(data);
    let mut steps: Vec<Step> = Vec::new();
    while steps.len() < 24 {
        match u.arbitrary::<Step>() {
            Ok(s) => steps.push(s),
            Err(_) => break,
        }
    }
    let fresh = format!("x{}", next_id());
    let opts = Semaphore::options().namespace(LIVE_NS);
    let me = std::process::id();
    let mut hit_sems: Vec<u32> = Vec::new();
    let mut reaps = 0;
    {
        // Handles for the names, opened on first use, and the permits taken through them.
        let handles: [OnceCell<Option<Semaphore>>; 4] = Default::default();
        let handle = |i: u8| -> Option<&Semaphore> {
            handles[(i % 4) as usize]
                .get_or_init(|| seen(opts.clone().capacity(2).open(name(i, &fresh))))
                .as_ref()
        };
        let mut permits: Vec<Permit<'_>> = Vec::new();
        for step in &steps {
            match step {
                Step::Overlay(t, b) => {
                    shmsem_fuzz::stat(if permits.is_empty() {
                        "overlay"
                    } else {
                        "overlay while holding"
                    });
                    hit_sems.extend(apply(live, t, b));
                }
                Step::List => {
                    if let Some(list) = seen(opts.to_namespace().and_then(|n| n.list())) {
                        render_list(&list);
                    }
                }
                Step::Show(i) => {
                    if let Some(s) = seen(opts.open_existing(name(*i, &fresh)))
                        && let Some(info) = seen(s.info())
                    {
                        render_show(&info);
                    }
                }
                Step::Try(i, w) => {
                    if let Some(p) = handle(*i).and_then(|s| seen(s.try_acquire(u32::from(*w % 6))))
                    {
                        permits.push(p);
                    }
                }
                Step::Timed(i, w) => {
                    if let Some(p) = handle(*i).and_then(|s| {
                        seen(s.acquire_timeout(u32::from(*w % 6), Duration::from_millis(1)))
                    }) {
                        permits.push(p);
                    }
                }
                Step::ReleaseOne => drop(permits.pop()),
                Step::Exit(i) => {
                    if let Some(s) = handle(*i) {
                        let _ = seen(s.exit(1));
                    }
                }
                Step::SetCapacity(i, c) => {
                    if let Some(s) = handle(*i) {
                        let _ = seen(s.set_capacity(u32::from(*c % 8)));
                    }
                }
                Step::Reap => {
                    // A reap may wait up to about half a second for a live record left busy
                    // (by design); two per input keep an input under the 2 s timeout.
                    reaps += 1;
                    if reaps > 2 {
                        continue;
                    }
                    if let Some(r) = seen(opts.to_namespace().and_then(|n| n.reap())) {
                        shmsem_fuzz::stat(if r.is_empty() {
                            "reap: nothing"
                        } else {
                            "reap: reclaimed"
                        });
                        render_reap(LIVE_NS, &r);
                    }
                }
                Step::OpenNew(c) => {
                    let _ = seen(opts.clone().capacity(u32::from(*c % 8)).open(&fresh));
                }
                Step::AcquireFor(i, w) => {
                    if let Some(s) = handle(*i) {
                        let _ = seen(s.acquire_for(
                            me,
                            u32::from(*w % 6),
                            Some(Duration::from_millis(1)),
                        ));
                    }
                }
                Step::ReleaseFor(i, c) => {
                    if let Some(s) = handle(*i) {
                        let _ = seen(s.release_for(me, u32::from(*c % 4)));
                    }
                }
            }
        }
        drop(permits);
    }
    live.restore(&hit_sems);
}
