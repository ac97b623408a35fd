//! The corruption-sweep harness shared by `tests/corruption.rs` and
//! `tests/corruption_scenarios.rs`: the setup (a live holder and a dead one), the victim and
//! probe roles, fields, values and the runner of one case. See `tests/corruption.rs`.

use std::{
    fs,
    mem::offset_of,
    os::unix::{fs::FileExt, process::ExitStatusExt},
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use super::{Kid, MARK, Spawn, TestDir, arg, arg_u32, report, wait_for_signal};
use shmsem::{
    Error, Permit, Semaphore,
    internals::layout::{
        HOLDERS_OFFSET, Header, HolderRecord, MAX_HOLDERS, MAX_PROCESSES, MAX_SEMAPHORES,
        PROCS_OFFSET, ProcSlot, SEGMENT_SIZE, SEMS_OFFSET, SemRecord,
    },
};

/// Namespaces, and so cases run at once.
pub const LANES: usize = 3;
/// The most one victim may take, from its start to its exit.
pub const CASE_BOUND: Duration = Duration::from_secs(5);
/// When the parent gives up on a victim and kills it.
pub const KILL_AFTER: Duration = Duration::from_secs(30);
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// The victim's steps, in order; each reports one letter.
pub const STEPS: [&str; 11] = [
    "list1", "existing", "info1", "open", "acq", "try", "release", "info2", "list2", "reap",
    "fresh",
];
pub const LEGEND: &str = ". ok, T Timeout, W WouldBlock, C Corrupt, I Incompatible, P PermissionDenied, \
                      N NotFound, R Removed, F TableFull, O Io, A InvalidArgument, \
                      L WeightTooLarge, H NotHeld, U InUse, V InvalidName, ? other, - skipped";

// =====================================================================================
// The child side
// =====================================================================================

pub fn lanes() -> Vec<String> {
    arg("lanes").split(',').map(str::to_owned).collect()
}

pub fn letter<T>(r: &Result<T, Error>) -> char {
    match r {
        Ok(_) => '.',
        Err(e) => match e {
            Error::Timeout { .. } => 'T',
            Error::WouldBlock { .. } => 'W',
            Error::Corrupt { .. } => 'C',
            Error::Incompatible { .. } => 'I',
            Error::PermissionDenied { .. } => 'P',
            Error::NotFound { .. } => 'N',
            Error::Removed { .. } => 'R',
            Error::TableFull { .. } => 'F',
            Error::Io { .. } => 'O',
            Error::InvalidArgument { .. } => 'A',
            Error::WeightTooLarge { .. } => 'L',
            Error::NotHeld { .. } => 'H',
            Error::InUse { .. } => 'U',
            Error::InvalidName { .. } => 'V',
            _ => '?',
        },
    }
}

pub fn role_create() {
    for ns in lanes() {
        Semaphore::options()
            .namespace(ns.as_str())
            .capacity(4)
            .persistent()
            .open("s")
            .unwrap_or_else(|e| panic!("creating {ns}/s: {e}"));
    }
    report("created", "1");
}

/// Hold `weight` of `s` in every lane's namespace until the `end` signal (or until killed).
pub fn role_hold_all() {
    let weight = arg_u32("weight", 1);
    let sems: Vec<Semaphore> = lanes()
        .iter()
        .map(|ns| {
            Semaphore::options()
                .namespace(ns.as_str())
                .open("s")
                .unwrap_or_else(|e| panic!("opening {ns}/s: {e}"))
        })
        .collect();
    let permits: Vec<Permit<'_>> = sems
        .iter()
        .map(|s| {
            s.acquire_timeout(weight, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("acquiring {weight}: {e}"))
        })
        .collect();
    report("held", std::process::id());
    wait_for_signal("end", Duration::from_secs(600));
    drop(permits);
}

/// One case: use the lane's namespace through every entry point, corrupting the field in the
/// middle when the phase is `hot`. Reports each step's letter and the error messages.
pub fn role_victim() {
    let start = Instant::now();
    let ns = arg("ns");
    let hot = arg("phase") == "hot";
    let opts = Semaphore::options().namespace(ns.as_str()).capacity(4);
    let mut out: Vec<(&str, char)> = Vec::new();
    fn note(out: &mut Vec<(&'static str, char)>, step: &'static str, r: &Result<(), Error>) {
        if let Err(e) = r {
            println!("step {step}: {e}");
        }
        out.push((step, letter(r)));
    }
    let corrupt = || {
        let seg = PathBuf::from(std::env::var_os(shmsem::DIR_ENV).expect("SHMSEM_DIR"))
            .join(format!("local.{ns}"));
        if let Ok(off2) = std::env::var("MP_ARG_OFF2") {
            write_field(
                &seg,
                off2.parse().expect("off2"),
                arg_u32("width2", 8) as usize,
                arg("value2").parse().expect("value2"),
            );
        }
        write_field(
            &seg,
            arg("off").parse().expect("off"),
            arg_u32("width", 8) as usize,
            arg("value").parse().expect("value"),
        );
    };

    note(
        &mut out,
        "list1",
        &opts.to_namespace().and_then(|n| n.list()).map(drop),
    );
    match opts.open_existing("s") {
        Ok(sem) => {
            note(&mut out, "existing", &Ok(()));
            note(&mut out, "info1", &sem.info().map(drop));
        }
        Err(e) => {
            note(&mut out, "existing", &Err(e));
            out.push(("info1", '-'));
        }
    }
    match opts.open("s") {
        Ok(sem) => {
            note(&mut out, "open", &Ok(()));
            let acq = sem.acquire_timeout(1, Duration::from_millis(20));
            let held = acq.is_ok();
            note(&mut out, "acq", &acq.map(Permit::forget));
            if hot {
                corrupt();
            }
            note(&mut out, "try", &sem.try_acquire(1).map(drop));
            if held {
                note(&mut out, "release", &sem.exit(1));
            } else {
                out.push(("release", '-'));
            }
            note(&mut out, "info2", &sem.info().map(drop));
        }
        Err(e) => {
            note(&mut out, "open", &Err(e));
            if hot {
                corrupt();
            }
            for s in ["acq", "try", "release", "info2"] {
                out.push((s, '-'));
            }
        }
    }
    note(
        &mut out,
        "list2",
        &opts.to_namespace().and_then(|n| n.list()).map(drop),
    );
    note(
        &mut out,
        "reap",
        &opts.to_namespace().and_then(|n| n.reap()).map(drop),
    );
    note(
        &mut out,
        "fresh",
        &opts.open("fresh").and_then(|s| s.try_acquire(1).map(drop)),
    );
    assert_eq!(out.len(), STEPS.len());
    let letters: String = out.iter().map(|&(_, c)| c).collect();
    report("outcome", letters);
    report("elapsed_ms", start.elapsed().as_millis());
}

/// Open `s` in namespace `ns` and take 1, list, reap; report each outcome's letter, and what the
/// reap gave back.
pub fn role_probe() {
    let opts = Semaphore::options()
        .namespace(arg("ns").as_str())
        .capacity(4);
    let opened = opts.open("s");
    if let Err(e) = &opened {
        println!("open: {e}");
    }
    report("open", letter(&opened));
    if let Ok(sem) = &opened {
        let t = sem.try_acquire(1);
        report("try", letter(&t));
    }
    report("list", letter(&opts.to_namespace().and_then(|n| n.list())));
    let reaped = opts.to_namespace().and_then(|n| n.reap());
    report("reap", letter(&reaped));
    if let Ok(r) = reaped {
        report("reaped", r.iter().map(|r| r.weight).sum::<u64>());
    }
}

pub fn write_field(seg: &Path, off: u64, width: usize, value: u64) {
    let f = fs::File::options()
        .write(true)
        .open(seg)
        .expect("opening the segment to corrupt it");
    let bytes = value.to_le_bytes();
    f.write_all_at(&bytes[..width], off)
        .expect("writing the corrupt value");
}

// =====================================================================================
// The parent side
// =====================================================================================

pub fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

pub fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

/// One field to corrupt: its label, absolute offset, width in bytes, and extra values besides
/// 0, 1, max, max−1 and random.
#[derive(Debug, Clone)]
pub struct Field {
    pub label: String,
    pub off: usize,
    pub width: usize,
    pub extra: Vec<(String, u64)>,
    /// Another field written just before this one, in the same phase: (offset, width, value).
    pub pre: Option<(usize, usize, u64)>,
}

pub fn field(label: impl Into<String>, off: usize, width: usize) -> Field {
    Field {
        label: label.into(),
        off,
        width,
        extra: Vec::new(),
        pre: None,
    }
}

/// Where the records in use are, found in a snapshot.
#[derive(Debug)]
pub struct Found {
    pub sem: usize,
    pub live_slot: usize,
    pub dead_slot: usize,
    pub live_record: usize,
    pub dead_record: usize,
}

pub fn find_records(snap: &[u8], live_pid: u32, dead_pid: u32) -> Found {
    let sem_at = |i: usize| SEMS_OFFSET + i * size_of::<SemRecord>();
    let proc_at = |i: usize| PROCS_OFFSET + i * size_of::<ProcSlot>();
    let holder_at = |i: usize| HOLDERS_OFFSET + i * size_of::<HolderRecord>();
    let sem = (0..MAX_SEMAPHORES as usize)
        .find(|&i| {
            let r = sem_at(i);
            u32_at(snap, r + offset_of!(SemRecord, slot)) & 0xFFFF == 2 // LIVE
                && u32_at(snap, r + offset_of!(SemRecord, name_len)) == 1
                && snap[r + offset_of!(SemRecord, name)] == b's'
        })
        .expect("semaphore s in the snapshot");
    let slot_of = |pid: u32| {
        (0..MAX_PROCESSES as usize)
            .find(|&i| {
                let s = proc_at(i);
                u32_at(snap, s + offset_of!(ProcSlot, state)) & 0xFF == 1 // ENGINE
                    && u32_at(snap, s + offset_of!(ProcSlot, pid)) == pid
            })
            .unwrap_or_else(|| panic!("no engine slot of pid {pid} in the snapshot"))
    };
    let (live_slot, dead_slot) = (slot_of(live_pid), slot_of(dead_pid));
    let record_of = |slot: usize| {
        (0..MAX_HOLDERS as usize)
            .find(|&i| {
                let r = holder_at(i);
                let key = u64_at(snap, r + offset_of!(HolderRecord, key));
                key >> 48 == slot as u64 + 1
                    && (key >> 16) & 0xFFFF == sem as u64
                    && u64_at(snap, r + offset_of!(HolderRecord, holding)) != 0
            })
            .unwrap_or_else(|| panic!("no holding record of slot {slot} in the snapshot"))
    };
    Found {
        sem,
        live_slot,
        dead_slot,
        live_record: record_of(live_slot),
        dead_record: record_of(dead_slot),
    }
}

pub fn fields(snap: &[u8], f: &Found) -> Vec<Field> {
    let mut out = Vec::new();
    macro_rules! push {
        ($prefix:expr, $base:expr, $ty:ty, $($f:ident : $w:expr),+ $(,)?) => {
            $( out.push(field(format!("{}.{}", $prefix, stringify!($f)), $base + offset_of!($ty, $f), $w)); )+
        };
    }
    push!("header", 0, Header,
        magic: 8, layout_version: 4, fingerprint: 4, init: 4, sem_capacity: 4,
        proc_capacity: 4, holder_capacity: 4, total_size: 8, segment_id: 8, created_ms: 8,
        live_names: 4, proc_hint: 4, holder_hint: 4, creator_uid: 4);
    let sem = SEMS_OFFSET + f.sem * size_of::<SemRecord>();
    push!("sem", sem, SemRecord,
        word: 8, capacity: 4, slot: 4, flags: 4, idle_ms: 4, reservation: 8, last_used_ms: 8,
        created_ms: 8, recounter: 8, hash: 8, name_len: 4);
    let name = sem + offset_of!(SemRecord, name);
    out.push(field("sem.name[0]", name, 8));
    out.push(field("sem.name[24]", name + 24 * 8, 8));
    let word = u64_at(snap, sem + offset_of!(SemRecord, word));
    let at = out.iter().position(|f| f.label == "sem.word").unwrap();
    out[at]
        .extra
        .push(("frozen".into(), word | shmsem::internals::word::FROZEN));
    for (who, slot) in [("live", f.live_slot), ("dead", f.dead_slot)] {
        let base = PROCS_OFFSET + slot * size_of::<ProcSlot>();
        push!(format!("proc[{who}]"), base, ProcSlot,
            state: 4, pid: 4, start_time: 8, pidns: 8, uid: 4, registered_ms: 8);
    }
    for (who, rec) in [("live", f.live_record), ("dead", f.dead_record)] {
        let base = HOLDERS_OFFSET + rec * size_of::<HolderRecord>();
        let first = out.len();
        push!(format!("holder[{who}]"), base, HolderRecord,
            key: 8, owner_gen: 4, holding: 8, since_ms: 8, wait_weight: 4, wait_since_ms: 8);
        let holding = u64_at(snap, base + offset_of!(HolderRecord, holding));
        out[first + 2].extra.push((
            "busy".into(),
            holding | shmsem::internals::protocol::holding::BUSY,
        ));
    }
    out
}

/// SplitMix64: deterministic "random" values, reproducible from the printed seed.
pub fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn values(f: &Field, seed: u64) -> Vec<(String, u64)> {
    let max = if f.width == 4 {
        u32::MAX as u64
    } else {
        u64::MAX
    };
    let random = splitmix(seed ^ f.off as u64) & max;
    let mut v = vec![
        ("0".to_owned(), 0),
        ("1".to_owned(), 1),
        ("max".to_owned(), max),
        ("max-1".to_owned(), max - 1),
        (format!("rnd:{random:#x}"), random),
    ];
    v.extend(f.extra.iter().cloned());
    v
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub field: usize,
    pub phase: &'static str,
    pub value: String,
    pub cell: String,
    pub bad: Option<String>,
}

/// Run one victim: fresh process, its stdout to a file, killed after [`KILL_AFTER`].
pub fn run_victim(
    dir: &TestDir,
    lane: usize,
    phase: &str,
    f: &Field,
    value: u64,
    case: usize,
) -> (String, Option<String>) {
    let out_path = dir.work_file(&format!("victim-{case}.out"));
    let out = fs::File::create(&out_path).unwrap();
    let err = out.try_clone().unwrap();
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let mut child = super::child_command(&exe, "victim")
        .env(shmsem::DIR_ENV, &dir.shm)
        .env(super::WORK_ENV, &dir.work)
        .env_remove(shmsem::SELF_ENV)
        .env("MP_ARG_NS", format!("lane{lane}"))
        .env("MP_ARG_PHASE", phase)
        .env("MP_ARG_OFF", f.off.to_string())
        .env("MP_ARG_WIDTH", f.width.to_string())
        .env("MP_ARG_VALUE", value.to_string())
        .envs(f.pre.iter().flat_map(|&(off, width, value)| {
            [
                ("MP_ARG_OFF2", off.to_string()),
                ("MP_ARG_WIDTH2", width.to_string()),
                ("MP_ARG_VALUE2", value.to_string()),
            ]
        }))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawning a victim");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > KILL_AFTER {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    let text = fs::read_to_string(&out_path).unwrap_or_default();
    let _ = fs::remove_file(&out_path);
    let reported = |key: &str| {
        text.lines().rev().find_map(|l| {
            let rest = &l[l.find(MARK)? + MARK.len()..];
            let (k, v) = rest.split_once(' ')?;
            (k == key).then(|| v.trim().to_owned())
        })
    };
    let transcript = || {
        format!(
            "{} (phase {phase}, offset {}, width {}, value {value:#x}):\n{}",
            f.label,
            f.off,
            f.width,
            text.lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        )
    };
    match status {
        None => (
            "KILLED".into(),
            Some(format!(
                "still running after {KILL_AFTER:?}: {}",
                transcript()
            )),
        ),
        Some(s) if s.signal().is_some() => {
            let sig = s.signal().unwrap();
            (
                format!("SIG{sig}"),
                Some(format!("died of signal {sig}: {}", transcript())),
            )
        }
        Some(s) if !s.success() => (
            "PANIC".into(),
            Some(format!("exited {s:?}: {}", transcript())),
        ),
        Some(_) => {
            let cell = reported("outcome").unwrap_or_else(|| "NOREPORT".into());
            let ms: u64 = reported("elapsed_ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if cell == "NOREPORT" {
                (cell, Some(format!("no outcome reported: {}", transcript())))
            } else if Duration::from_millis(ms) > CASE_BOUND {
                (
                    format!("SLOW:{cell}"),
                    Some(format!(
                        "took {ms} ms in the library (whole process {elapsed:?}): {}",
                        transcript()
                    )),
                )
            } else {
                (cell, None)
            }
        }
    }
}

/// The roles of the corruption test binaries, by name.
pub fn role(name: &str) {
    match name {
        "create" => role_create(),
        "hold_all" => role_hold_all(),
        "victim" => role_victim(),
        "probe" => role_probe(),
        other => panic!("unknown role {other:?}"),
    }
}

/// The namespaces of `lane_list` (comma-separated) with semaphore `s` (capacity 4), a live
/// holder `L` of weight 2 and a dead holder `D` of weight 1 in each; returns `L` and the pids of
/// `L` and `D`.
pub fn live_and_dead_holders(dir: &TestDir, lane_list: &str) -> (Kid, u32, u32) {
    Spawn::new(dir, "create")
        .arg("lanes", lane_list)
        .spawn()
        .success(SETUP_TIMEOUT);
    let holder = |label: &str, weight: u32| {
        let mut kid = Spawn::new(dir, "hold_all")
            .label(label)
            .arg("lanes", lane_list)
            .arg("weight", weight)
            .spawn();
        let pid: u32 = kid.expect("held", SETUP_TIMEOUT).parse().unwrap();
        (kid, pid)
    };
    let (live, live_pid) = holder("L", 2);
    let (mut dead, dead_pid) = holder("D", 1);
    dead.sigkill();
    (live, live_pid, dead_pid)
}

/// [`live_and_dead_holders`] in namespaces `lane0..lanes`; also returns a snapshot of each
/// lane's segment.
pub fn setup(dir: &TestDir, lanes: usize) -> (Kid, u32, u32, Vec<Arc<Vec<u8>>>) {
    let lane_list = (0..lanes)
        .map(|i| format!("lane{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let (live, live_pid, dead_pid) = live_and_dead_holders(dir, &lane_list);
    let snaps: Vec<Arc<Vec<u8>>> = (0..lanes)
        .map(|l| {
            let seg = dir.shm.join(format!("local.lane{l}"));
            Arc::new(fs::read(seg).expect("reading a segment"))
        })
        .collect();
    assert!(snaps.iter().all(|s| s.len() == SEGMENT_SIZE));
    (live, live_pid, dead_pid, snaps)
}

/// A value label, short enough for the table.
pub fn short(label: &str) -> &str {
    label.split(':').next().unwrap_or(label)
}
