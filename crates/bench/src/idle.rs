//! `idle100`: 100 processes blocked on a full semaphore for 10 s (2 s with `--quick`), and the
//! CPU time and context switches they use in total: shmsem's waiters against POSIX's. Both
//! groups wait in the same window (a kernel waiter costs nothing, so they do not disturb each
//! other), spread over the allowed CPUs.
//!
//! The figures are the kernel's own accounts, read from `/proc` before and after the window, for
//! every thread of every waiter: `/proc/PID/task/TID/schedstat` (nanoseconds on a CPU) and the
//! context switches in `/proc/PID/task/TID/status`.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::{
    drive::{START, Sems},
    multiproc::{Ctx, spawn_pinned},
    peers::KernelSem,
    procs::Helper,
    report::{Outcome, Unit},
    roles::{Impl, Role},
};

/// Waiters per implementation.
pub const WAITERS: usize = 100;

/// How long waiters get, after saying they wait, to be blocked for good.
const SETTLE: Duration = Duration::from_millis(300);

/// CPU nanoseconds and context switches of one process so far, every thread of it (a waiting
/// process may run other threads beside the one that waits, and their cost is the waiter's).
fn account(pid: libc::pid_t) -> anyhow::Result<(u64, u64)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("listing /proc/{pid}/task"))?;
    let mut total = (0, 0);
    for task in tasks {
        let dir = task
            .with_context(|| format!("listing /proc/{pid}/task"))?
            .path();
        let (cpu, switches) = match task_account(&dir) {
            Ok(a) => a,
            // A thread that ended between the listing and the read used nothing more.
            Err(_) if !dir.exists() => continue,
            Err(e) => return Err(e),
        };
        total = (total.0 + cpu, total.1 + switches);
    }
    Ok(total)
}

/// CPU nanoseconds and context switches of one thread, from its `/proc/PID/task/TID`.
fn task_account(dir: &std::path::Path) -> anyhow::Result<(u64, u64)> {
    let schedstat = std::fs::read_to_string(dir.join("schedstat"))
        .with_context(|| format!("reading {}/schedstat", dir.display()))?;
    let cpu_ns = schedstat
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .with_context(|| format!("{}/schedstat says {schedstat:?}", dir.display()))?;
    let status = std::fs::read_to_string(dir.join("status"))
        .with_context(|| format!("reading {}/status", dir.display()))?;
    let switches = status
        .lines()
        .filter(|l| l.contains("ctxt_switches:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    Ok((cpu_ns, switches))
}

/// The summed accounts of a group of helpers.
fn total(group: &[Helper]) -> anyhow::Result<(u64, u64)> {
    group.iter().try_fold((0, 0), |(cpu, sw), h| {
        let (c, s) = account(h.pid())?;
        Ok((cpu + c, sw + s))
    })
}

/// The scenario.
pub fn idle100(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let sems = Sems::create("idle", 1, 1)?;
    let _full = sems.shmsem[0].acquire()?;
    sems.posix[0].wait()?;
    let mut groups = Vec::new();
    for imp in [Impl::Shmsem, Impl::Posix] {
        let group = (0..WAITERS)
            .map(|i| spawn_pinned(ctx, Role::Waiter, imp, &sems, ctx.cpus.spread(i)))
            .collect::<anyhow::Result<Vec<Helper>>>()?;
        groups.push(group);
    }
    for helper in groups.iter_mut().flatten() {
        helper.expect("waiting", START)?;
    }
    std::thread::sleep(SETTLE);
    let before = groups
        .iter()
        .map(|g| total(g))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let start = Instant::now();
    std::thread::sleep(ctx.plan.idle);
    let after = groups
        .iter()
        .map(|g| total(g))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let seconds = start.elapsed().as_secs_f64();
    drop(groups);
    let delta = |i: usize| {
        (
            after[i].0.saturating_sub(before[i].0) as f64,
            after[i].1.saturating_sub(before[i].1) as f64,
        )
    };
    let ((shm_cpu, shm_sw), (px_cpu, px_sw)) = (delta(0), delta(1));
    let mut outcome = Outcome::new("idle100", Unit::CpuMs);
    outcome.median = vec![("shmsem", shm_cpu / 1e6), ("posix", px_cpu / 1e6)];
    let percent = |cpu_ns: f64| cpu_ns / (seconds * 1e9) * 100.0;
    outcome.extra = vec![
        ("core_percent", percent(shm_cpu)),
        ("core_percent_posix", percent(px_cpu)),
        ("context_switches", shm_sw),
        ("context_switches_posix", px_sw),
        ("seconds", seconds),
        ("processes", WAITERS as f64),
    ];
    Ok(outcome)
}
