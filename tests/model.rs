//! The library against a reference model, with proptest over a
//! generated list of operations: single process, several handles on several names, in a fresh
//! namespace per case.
//!
//! The model is a map name → (capacity, value) plus, per handle, the weight it `enter`ed; every
//! call's result (`Ok`, or which error, with its numbers) must be the model's, and after every
//! operation each open handle's `info()` (capacity, value, holders, waiters) and, for `List`,
//! the whole namespace's listing must match it.
//!
//! Operations: `Open` (get-or-create: an existing name keeps its capacity; capacity 0 is
//! refused), `Try` (`try_acquire`), `Timed` (`acquire_timeout` with 0 or 1 ms), `Release` (drop
//! a permit, possibly one taken through another handle), `Enter` (only when it cannot block, or
//! when its weight is invalid), `Exit` (with the `NotHeld` and zero checks), `SetCapacity`
//! (raise or lower, 0 refused; lowering below the value revokes nothing), `Info`, `List`.
//!
//! The tests of this file set `SHMSEM_DIR` in the test process, once, before the library's first
//! use (the library reads it once per process), and use namespaces of their own; no other test
//! binary shares the process. Cases: `PROPTEST_CASES` (default 256); operations per case: up to
//! [`MAX_OPS`].
//!
//! A second test checks that one process using many semaphores in turn does not exhaust the
//! namespace's shared holder table.

use std::{
    cell::OnceCell,
    collections::BTreeMap,
    sync::{
        Once,
        atomic::{AtomicUsize, Ordering::SeqCst},
    },
    time::Duration,
};

use proptest::{collection::vec, prelude::*};
use shmsem::{Permit, Semaphore};
use shmsem_model::{Sem, exit, expected_listing, listed, outcome};

const MAX_OPS: usize = 50;
const HANDLES: usize = 4;
const NAMES: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Open { h: usize, name: usize, cap: u32 },
    Try { h: usize, w: u32 },
    Timed { h: usize, w: u32, ms: u64 },
    Release { p: usize },
    Enter { h: usize, w: u32 },
    Exit { h: usize, c: u32 },
    SetCapacity { h: usize, cap: u32 },
    Info { h: usize },
    List,
}

fn op() -> impl Strategy<Value = Op> {
    let h = 0..HANDLES;
    prop_oneof![
        4 => (h.clone(), 0..NAMES, 0u32..=5).prop_map(|(h, name, cap)| Op::Open { h, name, cap }),
        4 => (h.clone(), 0u32..=6).prop_map(|(h, w)| Op::Try { h, w }),
        2 => (h.clone(), 0u32..=6, 0u64..=1).prop_map(|(h, w, ms)| Op::Timed { h, w, ms }),
        4 => (0usize..16).prop_map(|p| Op::Release { p }),
        2 => (h.clone(), 0u32..=6).prop_map(|(h, w)| Op::Enter { h, w }),
        2 => (h.clone(), 0u32..=4).prop_map(|(h, c)| Op::Exit { h, c }),
        2 => (h.clone(), 0u32..=6).prop_map(|(h, cap)| Op::SetCapacity { h, cap }),
        1 => h.prop_map(|h| Op::Info { h }),
        1 => Just(Op::List),
    ]
}

fn run(ns: &str, ops: &[Op]) -> Result<(), TestCaseError> {
    let me = std::process::id();
    let name_of = |i: usize| format!("n{i}");

    // Handles live in an arena for the whole case, so that permits may borrow them.
    let arena: Vec<OnceCell<Semaphore>> = (0..ops.len()).map(|_| OnceCell::new()).collect();
    let mut used = 0;
    let mut handles: [Option<(usize, usize)>; HANDLES] = [None; HANDLES]; // (arena, name)
    let mut entered: Vec<u32> = vec![0; ops.len()]; // per arena handle
    let mut model: BTreeMap<usize, Sem> = BTreeMap::new();
    let mut permits: Vec<(usize, u32, Permit<'_>)> = Vec::new(); // (name, weight, permit)

    for (step, op) in ops.iter().enumerate() {
        macro_rules! ctx {
            () => {
                format!("step {step} {op:?}; model {model:?}")
            };
        }
        match *op {
            Op::Open { h, name, cap } => {
                let r = Semaphore::options()
                    .namespace(ns)
                    .capacity(cap)
                    .open(&name_of(name));
                if cap == 0 {
                    prop_assert_eq!(outcome(&r), "InvalidArgument", "{}", ctx!());
                    continue;
                }
                let sem = r.map_err(|e| TestCaseError::fail(format!("{}: open: {e}", ctx!())))?;
                let s = model.entry(name).or_insert(Sem::new(cap));
                prop_assert_eq!(sem.capacity(), s.capacity, "get-or-create kept: {}", ctx!());
                let _ = arena[used].set(sem);
                handles[h] = Some((used, name));
                used += 1;
            }
            Op::Try { h, w } | Op::Timed { h, w, .. } => {
                let Some((a, name)) = handles[h] else {
                    continue;
                };
                let sem = arena[a].get().unwrap();
                let s = model[&name];
                let (r, want) = match *op {
                    Op::Try { .. } => (sem.try_acquire(w), s.try_take(w)),
                    Op::Timed { ms, .. } => (
                        sem.acquire_timeout(w, Duration::from_millis(ms)),
                        s.timed_take(w),
                    ),
                    _ => unreachable!(),
                };
                prop_assert_eq!(outcome(&r), want, "{}", ctx!());
                if let Ok(p) = r {
                    model.get_mut(&name).unwrap().value += w;
                    permits.push((name, w, p));
                }
            }
            Op::Release { p } => {
                if permits.is_empty() {
                    continue;
                }
                let (name, w, permit) = permits.swap_remove(p % permits.len());
                prop_assert_eq!(permit.weight(), w);
                drop(permit);
                model.get_mut(&name).unwrap().value -= w;
            }
            Op::Enter { h, w } => {
                let Some((a, name)) = handles[h] else {
                    continue;
                };
                let s = model[&name];
                let want = s.take(w, "blocks");
                if want == "blocks" {
                    continue; // it would wait forever
                }
                let r = arena[a].get().unwrap().enter(w);
                prop_assert_eq!(outcome(&r), want, "{}", ctx!());
                if r.is_ok() {
                    model.get_mut(&name).unwrap().value += w;
                    entered[a] += w;
                }
            }
            Op::Exit { h, c } => {
                let Some((a, name)) = handles[h] else {
                    continue;
                };
                let r = arena[a].get().unwrap().exit(c);
                prop_assert_eq!(outcome(&r), exit(c, entered[a]), "{}", ctx!());
                if r.is_ok() {
                    model.get_mut(&name).unwrap().value -= c;
                    entered[a] -= c;
                }
            }
            Op::SetCapacity { h, cap } => {
                let Some((a, name)) = handles[h] else {
                    continue;
                };
                let r = arena[a].get().unwrap().set_capacity(cap);
                let want = model[&name].set_capacity(cap);
                prop_assert_eq!(outcome(&r), want, "{}", ctx!());
                if r.is_ok() {
                    model.get_mut(&name).unwrap().capacity = cap;
                }
            }
            Op::Info { h } => {
                // Every step checks every handle's `info` below; this checks `capacity()`.
                if let Some((a, name)) = handles[h] {
                    let cap = arena[a].get().unwrap().capacity();
                    prop_assert_eq!(cap, model[&name].capacity, "{}", ctx!());
                }
            }
            Op::List => {
                let list = shmsem::Namespace::new(shmsem::Scope::Local, ns)
                    .and_then(|n| n.list())
                    .map_err(|e| TestCaseError::fail(format!("{}: list: {e}", ctx!())))?;
                let got = listed(&list, |_| true);
                prop_assert_eq!(got, expected_listing(&model, name_of), "{}", ctx!());
            }
        }
        // Every open handle agrees with the model.
        for &(a, name) in handles.iter().flatten() {
            let info = arena[a]
                .get()
                .unwrap()
                .info()
                .map_err(|e| TestCaseError::fail(format!("{}: info: {e}", ctx!())))?;
            let s = model[&name];
            prop_assert_eq!(&info.name, &name_of(name));
            prop_assert_eq!(info.capacity, s.capacity, "capacity: {}", ctx!());
            prop_assert_eq!(info.value, s.value, "value: {}", ctx!());
            let holders: Vec<(u32, u64)> = info.holders.iter().map(|p| (p.pid, p.weight)).collect();
            let want: Vec<(u32, u64)> = if s.value > 0 {
                vec![(me, s.value as u64)]
            } else {
                vec![]
            };
            prop_assert_eq!(holders, want, "holders: {}", ctx!());
            prop_assert!(info.waiters.is_empty(), "waiters: {:?}", info.waiters);
        }
    }

    // Give everything back: every value returns to 0.
    permits.clear();
    for (a, cell) in arena.iter().enumerate().take(used) {
        if entered[a] > 0 {
            let sem = cell.get().unwrap();
            prop_assert!(sem.exit(entered[a]).is_ok());
        }
    }
    for (a, cell) in arena.iter().enumerate().take(used) {
        let info = cell.get().unwrap().info().unwrap();
        prop_assert_eq!(
            info.value,
            0,
            "handle {} after everything was given back",
            a
        );
        prop_assert!(info.holders.is_empty());
    }
    Ok(())
}

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let dir = tempfile::Builder::new()
            .prefix("shmsem-model-")
            .tempdir()
            .expect("creating the test's SHMSEM_DIR");
        // SAFETY: this is the only test of this binary that calls the library, and it sets the
        // variable before the library's first use, before any other thread reads it.
        unsafe { std::env::set_var(shmsem::DIR_ENV, dir.path()) };
        DIR.set(dir.path().to_path_buf()).unwrap();
        // The directory outlives every test; it is removed when the process exits.
        let _ = dir.keep();
        extern "C" fn remove_dir() {
            if let Some(d) = DIR.get() {
                let _ = std::fs::remove_dir_all(d);
            }
        }
        // SAFETY: a valid `extern "C" fn()` that lives for the whole program; it runs when the
        // test process exits, after every test.
        unsafe { libc::atexit(remove_dir) };
    });
}

static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_library_matches_the_reference_model(ops in vec(op(), 1..=MAX_OPS)) {
        setup();
        static CASE: AtomicUsize = AtomicUsize::new(0);
        let ns = format!("model{}", CASE.fetch_add(1, SeqCst));
        let result = run(&ns, &ops);
        // The namespace is never opened again: unlink its files (the mapping goes with the
        // process), so that the directory does not grow with the cases.
        if let Some(dir) = DIR.get() {
            let _ = std::fs::remove_file(dir.join(format!("local.{ns}")));
            let _ = std::fs::remove_file(dir.join(format!("local.{ns}.lock")));
        }
        result?;
    }
}

/// A process that uses many semaphores over its life, one after another (each removed when done,
/// as auto semaphores are after their idle period), must not exhaust the namespace's holder
/// table: the table is shared by every process of the namespace, and has 16,384 records.
#[test]
fn a_process_using_many_semaphores_in_turn_does_not_exhaust_the_holder_table() {
    setup();
    let opts = Semaphore::options().namespace("turns");
    for i in 0..20_000 {
        let name = format!("job-{i}");
        let sem = opts
            .open(&name)
            .unwrap_or_else(|e| panic!("opening semaphore #{i}: {e}"));
        let permit = sem
            .try_acquire(1)
            .unwrap_or_else(|e| panic!("acquiring semaphore #{i} (only 1 is live at a time): {e}"));
        drop(permit);
        sem.remove(false)
            .unwrap_or_else(|e| panic!("removing semaphore #{i}: {e}"));
    }
}
