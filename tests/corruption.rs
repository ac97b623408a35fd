//! Exhaustive single-field corruption (DESIGN §1: every value read
//! is validated): every header field and every field of the records in use — the semaphore's
//! `SemRecord`, the `ProcSlot` and `HolderRecord` of a live holder and of a dead one — is set to
//! 0, 1, max, max−1 and a random value (and, for the state word and the holding word, the
//! original with its `FROZEN` or `BUSY` flag set), and a fresh process then uses the namespace:
//! every call must return `Ok` or a typed error, the process must exit normally (no panic, no
//! signal such as SIGBUS or SIGSEGV), and it must finish within [`CASE_BOUND`].
//!
//! Each field is corrupted in two phases:
//!
//! * `cold`: written into the segment file before the victim process starts, so the victim's
//!   open (validation, registration, reclaim at open) meets it;
//! * `hot`: written by the victim itself after it opened the namespace and acquired weight 1,
//!   so its release, `info`, `list`, `reap` and a new semaphore meet it through a mapping that
//!   was validated before the corruption.
//!
//! Setup, in one `SHMSEM_DIR` with [`LANES`] namespaces (one per worker, so cases run in
//! parallel): semaphore `s` of capacity 4 in each; a live holder `L` holding weight 2 of each
//! (alive until the end); a dead holder `D` that took weight 1 of each and was SIGKILLed. The
//! segment files are then snapshotted, and each case starts from the snapshot (so every victim
//! also reclaims `D`'s weight). Offsets come from `shmsem::internals::layout` and
//! `std::mem::offset_of!`; the records in use are found in the snapshot (by state, pid and key).
//!
//! The summary table prints one row per field and one cell per value: the outcome of each
//! victim step as one letter (see [`LEGEND`]), or `PANIC`, `KILLED`, `SIGn`, `SLOW`.

mod common;

use std::{
    fmt::Write as _,
    fs,
    io::Write as _,
    os::unix::fs::FileExt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering::SeqCst},
    },
    thread,
    time::Instant,
};

use common::TestDir;

/// Namespaces, and so cases run at once.
use common::corruption::*;

crate::child_roles!(dispatch common::corruption::role);

#[test]
fn every_single_field_corruption_gives_ok_or_a_typed_error_in_bounded_time() {
    let dir = TestDir::new("corrupt");
    let (mut live, live_pid, dead_pid, snaps) = setup(&dir, LANES);
    let found = find_records(&snaps[0], live_pid, dead_pid);
    for s in &snaps[1..] {
        let other = find_records(s, live_pid, dead_pid);
        assert_eq!(
            (other.sem, other.live_record, other.dead_record),
            (found.sem, found.live_record, found.dead_record),
            "lanes differ in layout; each lane's own records are used below"
        );
    }
    let all_fields = fields(&snaps[0], &found);
    let seed = 0x5EED_0000_0000_0006u64;
    let mut cases: Vec<(usize, &'static str, String, u64)> = Vec::new();
    for phase in ["cold", "hot"] {
        for (i, f) in all_fields.iter().enumerate() {
            for (label, v) in values(f, seed) {
                cases.push((i, phase, label, v));
            }
        }
    }
    println!(
        "corruption sweep: {} fields, {} cases, seed {seed:#x}, live holder pid {live_pid} \
         (slot {}, record {}), dead holder pid {dead_pid} (slot {}, record {}), semaphore \
         record {}",
        all_fields.len(),
        cases.len(),
        found.live_slot,
        found.live_record,
        found.dead_slot,
        found.dead_record,
        found.sem
    );

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<Vec<Outcome>>> = Arc::new(Mutex::new(Vec::new()));
    let cases = Arc::new(cases);
    let all_fields = Arc::new(all_fields);
    let dir = Arc::new(dir);
    let workers: Vec<_> = (0..LANES)
        .map(|lane| {
            let (next, results, cases, fields, dir, snap) = (
                next.clone(),
                results.clone(),
                cases.clone(),
                all_fields.clone(),
                dir.clone(),
                snaps[lane].clone(),
            );
            thread::spawn(move || {
                let path = dir.shm.join(format!("local.lane{lane}"));
                loop {
                    let i = next.fetch_add(1, SeqCst);
                    let Some((fi, phase, label, value)) = cases.get(i).cloned() else {
                        break;
                    };
                    // Restore the snapshot, then (cold) corrupt.
                    let f = fs::File::options().write(true).open(&path).unwrap();
                    f.write_all_at(&snap, 0).unwrap();
                    drop(f);
                    let field = &fields[fi];
                    if phase == "cold" {
                        write_field(&path, field.off as u64, field.width, value);
                    }
                    let (cell, bad) = run_victim(&dir, lane, phase, field, value, i);
                    results.lock().unwrap().push(Outcome {
                        field: fi,
                        phase,
                        value: label,
                        cell,
                        bad,
                    });
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a worker panicked");
    }
    dir.signal("end");
    live.success(SETUP_TIMEOUT);

    // The summary table.
    let results = results.lock().unwrap().clone();
    let mut table = String::new();
    writeln!(table, "\nsteps: {}\nletters: {LEGEND}", STEPS.join(" ")).unwrap();
    for phase in ["cold", "hot"] {
        writeln!(table, "\n== phase {phase}").unwrap();
        for (fi, f) in all_fields.iter().enumerate() {
            let mut row: Vec<&Outcome> = results
                .iter()
                .filter(|o| o.field == fi && o.phase == phase)
                .collect();
            let order = values(f, seed);
            row.sort_by_key(|o| order.iter().position(|(l, _)| *l == o.value));
            let cells: Vec<String> = row
                .iter()
                .map(|o| format!("{}={}", short(&o.value), o.cell))
                .collect();
            writeln!(table, "{:<28} {}", f.label, cells.join("  ")).unwrap();
        }
    }
    let bad: Vec<&Outcome> = results.iter().filter(|o| o.bad.is_some()).collect();
    writeln!(
        table,
        "\n{} cases in {:.1} s, {} bad",
        results.len(),
        started.elapsed().as_secs_f64(),
        bad.len()
    )
    .unwrap();
    print!("{table}");
    let _ = std::io::stdout().flush();
    assert_eq!(results.len(), cases.len(), "every case ran");
    if !bad.is_empty() {
        let mut msg = String::new();
        for o in bad.iter().take(8) {
            writeln!(msg, "--- {}", o.bad.as_ref().unwrap()).unwrap();
        }
        panic!(
            "{} of {} cases panicked, died, hung or were slow:\n{msg}",
            bad.len(),
            results.len()
        );
    }
}
