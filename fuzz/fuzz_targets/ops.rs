//! Operation sequences against a reference model.
//!
//! One fuzzing process is one engine process. Each input runs a sequence of operations on up to
//! four fresh semaphore names (unique to the input) through up to six handles, and checks every
//! result, and after every operation the touched semaphore's `info()`, against a model: per
//! name its capacity and value, per handle the weight it `enter`ed, per forged dead process
//! its holdings.
//!
//! A "kill" is simulated by forging, through `shmsem::internals::layout`, what a killed engine
//! process leaves in the segment: a `ProcSlot` of kind ENGINE whose lock byte nobody holds, with
//! holder records whose weight is also in the state word. `Reap` must then give back exactly the
//! forged weight, per (semaphore, pid), and free the slots.
//!
//! Timed acquires use 0 or 1 ms, below the waiters' bounded sleep, and no watch thread runs
//! (`internals::watch_for_deaths(false)`), so no reclaim runs except the ones the model asks
//! for. At the end of an input everything is given back, every value must
//! be 0, and the names are removed. The namespace is replaced by a fresh one when its holder
//! table fills up (the library keeps a holder record per semaphore a process ever used).

#![no_main]

use std::{
    cell::OnceCell,
    collections::BTreeMap,
    sync::Mutex,
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Duration,
};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use shmsem::{Permit, Semaphore};
use shmsem_fuzz::{Raw, forge_dead_process, forge_holding, lock_path, segment_path, shm_dir};
use shmsem_model::{Sem as Model, exit, expected_listing, listed, outcome};

const MAX_OPS: usize = 64;
const HANDLES: usize = 6;
const NAMES: u8 = 4;
/// Holder records in use past which the namespace is replaced.
const ROTATE_AT: u32 = 4096;

#[derive(Debug, Arbitrary)]
enum Op {
    Open {
        h: u8,
        name: u8,
        cap: u8,
    },
    Try {
        h: u8,
        w: u8,
    },
    Timed {
        h: u8,
        w: u8,
        one_ms: bool,
    },
    Release {
        p: u8,
    },
    Enter {
        h: u8,
        w: u8,
    },
    Exit {
        h: u8,
        c: u8,
    },
    SetCapacity {
        h: u8,
        cap: u8,
    },
    /// Dead process `proc_ % 3` held `w` of `name` through lane `lane % 4`.
    Forge {
        proc_: u8,
        name: u8,
        lane: u8,
        w: u8,
    },
    Reap,
    List,
}

/// The namespace in use and the fuzzer's own mapping of it.
struct Current {
    ns: String,
    raw: Raw,
}

static CURRENT: Mutex<Option<Current>> = Mutex::new(None);
static GENERATION: AtomicU64 = AtomicU64::new(0);

fn fresh_namespace() -> Current {
    let dir = shm_dir("ops");
    let ns = format!("ops{}", GENERATION.fetch_add(1, Relaxed));
    // Creating any semaphore creates the namespace; remove it again at once.
    let s = Semaphore::options()
        .namespace(ns.as_str())
        .persistent()
        .open("init")
        .expect("creating a fuzzing namespace");
    s.remove(true).expect("removing the init semaphore");
    let raw = Raw::open(&segment_path(dir, &ns));
    Current { ns, raw }
}

fuzz_target!(|ops: Vec<Op>| {
    shm_dir("ops");
    shmsem::internals::watch_for_deaths(false);
    let mut guard = CURRENT.lock().unwrap();
    if guard
        .as_ref()
        .is_none_or(|c| c.raw.holders_in_use() > ROTATE_AT)
    {
        if let Some(old) = guard.take() {
            let dir = shm_dir("ops");
            let _ = std::fs::remove_file(segment_path(dir, &old.ns));
            let _ = std::fs::remove_file(lock_path(dir, &old.ns));
        }
        *guard = Some(fresh_namespace());
        shmsem_fuzz::stat("namespaces");
    }
    let cur = guard.as_ref().unwrap();
    run(cur, &ops[..ops.len().min(MAX_OPS)]);
});

fn run(cur: &Current, ops: &[Op]) {
    let input = shmsem_fuzz::next_id();
    let me = std::process::id();
    let opts = || Semaphore::options().namespace(cur.ns.as_str());
    let name_of = |n: u8| format!("i{input}-{}", n % NAMES);

    let arena: Vec<OnceCell<Semaphore>> = (0..ops.len()).map(|_| OnceCell::new()).collect();
    let mut used = 0usize;
    let mut handles: [Option<(usize, u8)>; HANDLES] = [None; HANDLES];
    let mut entered: Vec<u32> = vec![0; ops.len()];
    let mut model: BTreeMap<u8, Model> = BTreeMap::new();
    let mut permits: Vec<(u8, u32, Permit<'_>)> = Vec::new();
    // Forged dead processes: index → (slot, pid); their holdings per (name, pid).
    let mut forged_procs: BTreeMap<u8, (u32, u32)> = BTreeMap::new();
    let mut forged: BTreeMap<(u8, u32), u32> = BTreeMap::new();

    let check = |name: u8,
                 model: &BTreeMap<u8, Model>,
                 forged: &BTreeMap<(u8, u32), u32>,
                 sem: &Semaphore,
                 what: &str| {
        let m = model[&name];
        let info = sem
            .info()
            .unwrap_or_else(|e| panic!("{what}: info of {}: {e}", name_of(name)));
        assert_eq!(info.capacity, m.capacity, "{what}: capacity");
        assert_eq!(info.value, m.value, "{what}: value");
        let mut want: BTreeMap<u32, u64> = BTreeMap::new();
        let forged_here: u32 = forged
            .iter()
            .filter(|((n, _), _)| *n == name)
            .map(|((_, pid), w)| {
                *want.entry(*pid).or_default() += *w as u64;
                *w
            })
            .sum();
        let mine = m.value - forged_here;
        if mine > 0 {
            want.insert(me, mine as u64);
        }
        let got: BTreeMap<u32, u64> = info.holders.iter().map(|p| (p.pid, p.weight)).collect();
        assert_eq!(got, want, "{what}: holders");
        assert!(
            info.waiters.is_empty(),
            "{what}: waiters {:?}",
            info.waiters
        );
    };

    for (step, op) in ops.iter().enumerate() {
        let what = format!("step {step} {op:?}");
        let mut touched: Option<(usize, u8)> = None;
        match *op {
            Op::Open { h, name, cap } => {
                let name = name % NAMES;
                let cap = u32::from(cap % 8);
                let r = opts().capacity(cap).open(&name_of(name));
                if cap == 0 {
                    assert_eq!(outcome(&r), "InvalidArgument", "{what}");
                    continue;
                }
                let sem = r.unwrap_or_else(|e| panic!("{what}: {e}"));
                let m = model.entry(name).or_insert(Model::new(cap));
                assert_eq!(sem.capacity(), m.capacity, "{what}: get-or-create");
                let _ = arena[used].set(sem);
                handles[h as usize % HANDLES] = Some((used, name));
                touched = Some((used, name));
                used += 1;
            }
            Op::Try { h, w } | Op::Timed { h, w, .. } => {
                let Some((a, name)) = handles[h as usize % HANDLES] else {
                    continue;
                };
                let w = u32::from(w % 10);
                let sem = arena[a].get().unwrap();
                let m = model[&name];
                let (r, want) = match *op {
                    Op::Try { .. } => (sem.try_acquire(w), m.try_take(w)),
                    Op::Timed { one_ms, .. } => (
                        sem.acquire_timeout(w, Duration::from_millis(u64::from(one_ms))),
                        m.timed_take(w),
                    ),
                    _ => unreachable!(),
                };
                assert_eq!(outcome(&r), want, "{what}");
                if let Ok(p) = r {
                    shmsem_fuzz::stat("acquired");
                    model.get_mut(&name).unwrap().value += w;
                    permits.push((name, w, p));
                }
                touched = Some((a, name));
            }
            Op::Release { p } => {
                if permits.is_empty() {
                    continue;
                }
                let (name, w, permit) = permits.swap_remove(p as usize % permits.len());
                drop(permit);
                model.get_mut(&name).unwrap().value -= w;
                touched = handles.iter().flatten().copied().find(|&(_, n)| n == name);
            }
            Op::Enter { h, w: n } | Op::Exit { h, c: n } => {
                let Some((a, name)) = handles[h as usize % HANDLES] else {
                    continue;
                };
                let n = u32::from(n % 10);
                let sem = arena[a].get().unwrap();
                let entering = matches!(*op, Op::Enter { .. });
                let (r, want) = if entering {
                    let want = model[&name].take(n, "blocks");
                    if want == "blocks" {
                        continue;
                    }
                    (sem.enter(n), want)
                } else {
                    (sem.exit(n), exit(n, entered[a]))
                };
                assert_eq!(outcome(&r), want, "{what}");
                if r.is_ok() {
                    // The model's value and the handle's entered weight move together.
                    let value = &mut model.get_mut(&name).unwrap().value;
                    if entering {
                        *value += n;
                        entered[a] += n;
                    } else {
                        *value -= n;
                        entered[a] -= n;
                    }
                }
                touched = Some((a, name));
            }
            Op::SetCapacity { h, cap } => {
                let Some((a, name)) = handles[h as usize % HANDLES] else {
                    continue;
                };
                let cap = u32::from(cap % 10);
                let r = arena[a].get().unwrap().set_capacity(cap);
                assert_eq!(outcome(&r), model[&name].set_capacity(cap), "{what}");
                if r.is_ok() {
                    model.get_mut(&name).unwrap().capacity = cap;
                }
                touched = Some((a, name));
            }
            Op::Forge {
                proc_,
                name,
                lane,
                w,
            } => {
                let name = name % NAMES;
                let Some(m) = model.get(&name).copied() else {
                    continue;
                };
                let w = u32::from(w % 4) + 1;
                if m.value + w > m.capacity {
                    continue; // a process could not have acquired it
                }
                let (index, generation) = cur
                    .raw
                    .find_sem(&name_of(name))
                    .unwrap_or_else(|| panic!("{what}: {} not in the table", name_of(name)));
                let p = proc_ % 3;
                let (slot, pid) = match forged_procs.get(&p) {
                    Some(&sp) => sp,
                    None => {
                        // Pids far above any real pid_max, distinct per input and process.
                        let pid = 0x7000_0000 | ((input as u32 & 0xFF_FFFF) << 2) | p as u32;
                        let Some(slot) = forge_dead_process(&cur.raw, pid) else {
                            continue;
                        };
                        forged_procs.insert(p, (slot, pid));
                        (slot, pid)
                    }
                };
                let done = forge_holding(&cur.raw, slot, (lane % 4) as u16, index, generation, w);
                assert!(
                    done,
                    "{what}: forging failed on a word the model says has room"
                );
                shmsem_fuzz::stat("forged");
                model.get_mut(&name).unwrap().value += w;
                *forged.entry((name, pid)).or_default() += w;
                touched = handles.iter().flatten().copied().find(|&(_, n)| n == name);
            }
            Op::Reap => {
                let got = opts().to_namespace().and_then(|n| n.reap()).unwrap_or_else(|e| panic!("{what}: {e}"));
                let mut got: Vec<(String, u32, u64)> = got
                    .into_iter()
                    .map(|r| (r.semaphore, r.pid, r.weight))
                    .collect();
                got.sort();
                let mut want: Vec<(String, u32, u64)> = forged
                    .iter()
                    .map(|(&(n, pid), &w)| (name_of(n), pid, w as u64))
                    .collect();
                want.sort();
                assert_eq!(got, want, "{what}: what came back");
                if !got.is_empty() {
                    shmsem_fuzz::stat("reaped weight");
                }
                for ((n, _), w) in std::mem::take(&mut forged) {
                    model.get_mut(&n).unwrap().value -= w;
                }
                for (_, (slot, _)) in std::mem::take(&mut forged_procs) {
                    let st = cur.raw.proc_slot(slot).state.load(Relaxed);
                    assert_eq!(
                        st & 0xFF,
                        0,
                        "{what}: forged slot {slot} not freed: {st:#x}"
                    );
                }
                for &(a, name) in handles.iter().flatten() {
                    check(name, &model, &forged, arena[a].get().unwrap(), &what);
                }
            }
            Op::List => {
                let list = opts().to_namespace().and_then(|n| n.list()).unwrap_or_else(|e| panic!("{what}: {e}"));
                let mine = format!("i{input}-");
                let got = listed(&list, |n| n.starts_with(&mine));
                assert_eq!(got, expected_listing(&model, name_of), "{what}");
            }
        }
        if let Some((a, name)) = touched {
            check(name, &model, &forged, arena[a].get().unwrap(), &what);
        }
    }

    // Give everything back; forged weight through a reap.
    permits.clear();
    for (a, cell) in arena.iter().enumerate().take(used) {
        if entered[a] > 0 {
            cell.get()
                .unwrap()
                .exit(entered[a])
                .expect("exit at the end");
        }
    }
    if !forged.is_empty() {
        let got: u64 = opts()
            .to_namespace()
            .and_then(|n| n.reap())
            .expect("reap at the end")
            .iter()
            .map(|r| r.weight)
            .sum();
        assert_eq!(
            got,
            forged.values().map(|&w| w as u64).sum::<u64>(),
            "final reap"
        );
    }
    for (a, cell) in arena.iter().enumerate().take(used) {
        let info = cell.get().unwrap().info().expect("info at the end");
        assert_eq!(info.value, 0, "handle {a} at the end");
    }
    // Remove the input's names (through a fresh handle each, whatever the handles did).
    for &name in model.keys() {
        if let Ok(s) = opts().open_existing(&name_of(name)) {
            s.remove(true).expect("removing at the end");
        }
    }
}
