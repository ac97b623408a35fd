//! The roles a child process plays (see the test's module docs), and what they report to the
//! test.

use std::{
    path::Path,
    sync::{atomic::Ordering::SeqCst, mpsc},
    thread,
    time::{Duration, Instant},
};

use shmsem::{Error, Info, Semaphore};

use crate::{
    actor::{Actor, Token},
    common::report,
    common::roles::holder_list,
    config::{
        CHILD_LIMIT, INDEX_ENV, NAMES, OP_THREADS, SLEEPER_ENV, SPECS, WITNESS_ENV, ns, without,
    },
    witness::{
        M_PID, REAPER_OWNER, STOP, Witness, child_owner, forker_owner, remover_bit, worker_owner,
    },
};

fn index() -> usize {
    std::env::var(INDEX_ENV)
        .expect("role index")
        .parse()
        .expect("role index is a number")
}

fn witness() -> &'static Witness {
    let path = std::env::var_os(WITNESS_ENV).expect("witness path");
    Box::leak(Box::new(Witness::open(Path::new(&path))))
}

pub fn role_worker() {
    let i = index();
    let owner = worker_owner(i);
    let w = witness();
    let holder: u32 = std::env::var(SLEEPER_ENV)
        .expect("the sleeper's pid")
        .parse()
        .expect("a pid");
    let mut main = Actor::new(w, owner, format!("worker {i}"));
    for n in 0..NAMES {
        main.handle(n);
    }
    w.record_self(owner);
    let (tx, rx) = mpsc::sync_channel::<Token>(16);
    for t in 0..OP_THREADS {
        let mut a = Actor::new(w, owner, format!("worker {i} thread {t}"));
        a.remover_bit = remover_bit(owner, t);
        let tx = tx.clone();
        thread::spawn(move || a.op_loop(&tx));
    }
    drop(tx);
    let mut churn = Actor::new(w, owner, format!("worker {i} churn"));
    churn.remover_bit = remover_bit(owner, OP_THREADS);
    thread::spawn(move || churn.churn_loop());
    let mut exiter = Actor::new(w, owner, format!("worker {i} exiter"));
    thread::spawn(move || exiter.exit_loop(rx));
    let mut external = Actor::new(w, owner, format!("worker {i} acting for {holder}"));
    thread::spawn(move || external.external_loop(holder));
    loop {
        thread::sleep(Duration::from_secs(1));
    }
}

pub fn role_forker() {
    let j = index();
    let owner = forker_owner(j);
    let w = witness();
    let mut a = Actor::new(w, owner, format!("forker {j}"));
    for n in 0..NAMES {
        a.handle(n);
    }
    w.meta(child_owner(j), M_PID).store(0, SeqCst);
    w.record_self(owner);
    loop {
        a.fork_round(j);
        a.pause(2000);
    }
}

pub fn role_reaper() {
    let w = witness();
    let mut a = Actor::new(w, REAPER_OWNER, "reaper".to_owned());
    loop {
        let n = a.rng.below(NAMES);
        match a.rng.below(20) {
            0..=6 if !without("reap") => a.reap(),
            0..=10 => a.list(),
            11..=13 => match ns().open_existing(SPECS[n].name) {
                Ok(s) => match s.info() {
                    Ok(i) => a.check_value(&i, "info"),
                    Err(Error::Removed { .. } | Error::NotFound { .. }) => {}
                    Err(e) => a.unexpected("info", n, &e),
                },
                Err(Error::NotFound { .. }) => {}
                Err(e) => a.unexpected("open_existing", n, &e),
            },
            _ => a.unwitnessed(n),
        }
        a.pause(8000);
    }
}

/// Reap, then report every semaphore: `sem.NAME value holders-sum holders waiters kind cap`.
pub fn role_audit() {
    let reaped = ns().to_namespace().and_then(|n| n.reap()).expect("reap");
    report("reaped", reaped.iter().map(|r| r.weight).sum::<u64>());
    report_list("sem", |i| {
        format!(
            "{} {} {} {} {} {} [{}]",
            i.value,
            i.holders.iter().map(|p| p.weight).sum::<u64>(),
            i.holders.len(),
            i.waiters.len(),
            i.kind.as_str(),
            i.capacity,
            holder_list(i)
        )
    });
}

/// Sweep, wait past every idle period, sweep again, and report what is left.
pub fn role_idle() {
    for _ in 0..3 {
        ns().to_namespace().and_then(|n| n.list()).expect("list");
        thread::sleep(Duration::from_millis(200));
    }
    report_list("left", |i| {
        format!(
            "{} value {} holders [{}] waiters {}",
            i.kind.as_str(),
            i.value,
            holder_list(i),
            i.waiters.len()
        )
    });
}

/// List the namespace and report every semaphore as `PREFIX.NAME`, with `line` of its info, then
/// all their names as `names`.
fn report_list(prefix: &str, line: impl Fn(&Info) -> String) {
    let infos = ns().to_namespace().and_then(|n| n.list()).expect("list");
    for i in &infos {
        report(&format!("{prefix}.{}", i.name), line(i));
    }
    let names: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
    report("names", names.join(","));
}

/// Take weight 1 of every name if it is free (guarded, and entered for `keep`), report it, and
/// hold until the witness says stop.
pub fn role_hold() {
    let w = witness();
    let mut a = Actor::new(w, REAPER_OWNER, format!("holder {}", index()));
    let sems: Vec<Semaphore> = (0..NAMES)
        .map(|n| a.handle(n).expect("opening for the final holders"))
        .collect();
    let mut permits = Vec::new();
    let mut entered = Vec::new();
    for (n, sem) in sems.iter().enumerate() {
        let weight = 1 + (n as u32 % 2);
        let got = if SPECS[n].name == "keep" {
            sem.try_acquire(weight).map(|p| {
                p.forget();
                entered.push((sem, weight));
            })
        } else {
            sem.try_acquire(weight).map(|p| permits.push(p))
        };
        match got {
            Ok(()) => report(&format!("held.{}", SPECS[n].name), weight),
            Err(Error::WouldBlock { .. } | Error::WeightTooLarge { .. }) => {
                report(&format!("held.{}", SPECS[n].name), 0);
            }
            Err(e) => panic!("holder: try_acquire on {}: {e}", SPECS[n].name),
        }
    }
    report("pid", std::process::id());
    report("ready", 1);
    let deadline = Instant::now() + CHILD_LIMIT;
    while w.get(STOP) == 0 {
        assert!(Instant::now() < deadline, "no stop within {CHILD_LIMIT:?}");
        thread::sleep(Duration::from_millis(2));
    }
    drop(permits);
    for (sem, weight) in entered {
        sem.exit(weight).expect("exit");
    }
    report("released", 1);
}
