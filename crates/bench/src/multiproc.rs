//! The scenarios that need other processes: `pingpong_same_cpu`, `pingpong_cross_cpu`,
//! `contended4` and `reclaim` (`idle100` has a file of its own). Helpers are this executable
//! started again in a role (see `roles`), pinned to CPUs (see `pin`); they are killed and
//! reaped however the scenario ends.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::{
    drive::{Rng, START, Sems, kill_holder, shmsem_sem},
    measure::{Batch, Plan, Sampler, paired, paired_ns_per_op},
    peers::{KernelSem, SysvSem},
    pin::{self, Cpus},
    procs::{self, Helper},
    report::{Outcome, Unit},
    roles::{self, Impl, KernelLocks, Role, ShmsemLocks, pingpong_rounds, pingpong_start},
    stats::{Better, Summary, median, percentile},
};

/// What scenarios need besides the plan.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// How long and how often.
    pub plan: Plan,
    /// The arguments that lead this executable back to `bench::run` in a helper.
    pub helper_args: &'static [&'static str],
    /// Where processes go; this process's measuring thread is pinned to `cpus.main`.
    pub cpus: Cpus,
}

/// Start a helper and pin it to `cpu`.
pub fn spawn_pinned(
    ctx: &Ctx,
    role: Role,
    imp: Impl,
    sems: &Sems,
    cpu: usize,
) -> anyhow::Result<Helper> {
    let helper = roles::spawn(role, imp, sems.specs(imp), ctx.helper_args)?;
    pin::pin(helper.pid(), cpu).with_context(|| {
        format!(
            "pinning the {} {} helper to CPU {cpu}",
            imp.as_str(),
            role.as_str()
        )
    })?;
    Ok(helper)
}

/// Where the ping-pong helper runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On the measuring thread's CPU: every hand-off is a context switch.
    SameCpu,
    /// On another CPU: every hand-off is a cross-CPU wake-up.
    CrossCpu,
}

/// `pingpong_same_cpu` / `pingpong_cross_cpu`: two processes hand a permit back and forth;
/// nanoseconds per round trip, measured in the parent in paired batches. Three semaphores of
/// capacity 1 per implementation (see `roles` for why three and the rotation); every wait
/// blocks, so every hand-off is a wake-up in the other process.
pub fn pingpong(ctx: &Ctx, placement: Placement) -> anyhow::Result<Outcome> {
    let (id, cpu) = match placement {
        Placement::SameCpu => ("pingpong_same_cpu", ctx.cpus.main),
        Placement::CrossCpu => match ctx.cpus.other {
            Some(cpu) => ("pingpong_cross_cpu", cpu),
            None => {
                return Ok(Outcome::skipped(
                    "pingpong_cross_cpu",
                    "one CPU only: no cross-CPU ping-pong".to_owned(),
                ));
            }
        },
    };
    let plan = ctx.plan;
    let sems = Sems::create("pingpong", 3, 1)?;
    let mut shm = ShmsemLocks::new(&sems.shmsem);
    let mut px = KernelLocks::new(&sems.posix);
    let mut sv = KernelLocks::new(&sems.sysv);
    pingpong_start(&mut shm)?;
    pingpong_start(&mut px)?;
    pingpong_start(&mut sv)?;
    let mut helpers = Impl::ALL
        .iter()
        .map(|&imp| spawn_pinned(ctx, Role::PingPong, imp, &sems, cpu))
        .collect::<anyhow::Result<Vec<Helper>>>()?;
    for h in &mut helpers {
        h.expect("ready", START)?;
    }
    let pids: Vec<libc::pid_t> = helpers.iter().map(Helper::pid).collect();
    let limit = Duration::from_secs(if plan.quick { 60 } else { 300 });
    let unblock = || sems.unblock();
    let per_op = procs::watchdog(limit, &pids, &unblock, |stop| {
        let (mut a, mut b, mut c) = (0u64, 0u64, 0u64);
        let mut runs: [Batch<'_>; 3] = [
            Box::new(|n| {
                let t = Instant::now();
                pingpong_rounds(&mut shm, &mut a, n, stop)?;
                Ok(t.elapsed())
            }),
            Box::new(|n| {
                let t = Instant::now();
                pingpong_rounds(&mut px, &mut b, n, stop)?;
                Ok(t.elapsed())
            }),
            Box::new(|n| {
                let t = Instant::now();
                pingpong_rounds(&mut sv, &mut c, n, stop)?;
                Ok(t.elapsed())
            }),
        ];
        paired_ns_per_op(plan.pingpong_rounds, plan.pingpong_batch, &mut runs)
    })?;
    drop(helpers);
    let rounds: Vec<(&'static str, Vec<f64>)> = ["shmsem", "posix", "sysv"]
        .into_iter()
        .zip(per_op)
        .collect();
    Ok(Outcome::from_rounds(id, Unit::Ns, &rounds))
}

/// `contended4`: 4 processes on one semaphore of capacity 1, each looping acquire, a ~30 ns
/// critical section, release; the throughput of all four, in critical sections per second,
/// and the CPU time they used per critical section. Each sample is a window of monotonic time
/// given to the four workers of one implementation (the others sit idle), in paired rounds;
/// worker `i` is pinned to the `i`-th allowed CPU, round robin.
pub fn contended4(ctx: &Ctx) -> anyhow::Result<Outcome> {
    const WORKERS: usize = 4;
    let plan = ctx.plan;
    let sems = Sems::create("contended", 1, 1)?;
    let mut groups: Vec<Vec<Helper>> = Vec::new();
    for imp in Impl::ALL {
        let group = (0..WORKERS)
            .map(|i| spawn_pinned(ctx, Role::Worker, imp, &sems, ctx.cpus.spread(i)))
            .collect::<anyhow::Result<Vec<Helper>>>()?;
        groups.push(group);
    }
    let window = plan.window;
    let mut samplers: Vec<Sampler<'_, (f64, f64)>> = groups
        .iter_mut()
        .map(|group| {
            Box::new(move || throughput(group.as_mut_slice(), window)) as Sampler<'_, (f64, f64)>
        })
        .collect();
    // Warm-up: one window each, not counted (helpers register, fault pages in, …).
    for sample in samplers.iter_mut() {
        sample()?;
    }
    let samples = paired(plan.contended_rounds, &mut samplers)?;
    drop(samplers);
    drop(groups);
    let names = ["shmsem", "posix", "sysv"];
    let ops: Vec<(&'static str, Vec<f64>)> = names
        .iter()
        .zip(&samples)
        .map(|(&n, s)| (n, s.iter().map(|x| x.0).collect()))
        .collect();
    let cpu: Vec<Vec<f64>> = samples
        .iter()
        .map(|s| s.iter().map(|x| x.1).collect())
        .collect();
    let mut outcome = Outcome::from_rounds("contended4", Unit::OpsPerSec, &ops);
    if let Some(s) = Summary::of_pairs(&cpu[0], &cpu[1], Better::Lower) {
        outcome.more_ratios.push(("cpu", s));
    }
    for (key, c) in ["cpu_ns_per_op", "cpu_ns_per_op_posix", "cpu_ns_per_op_sysv"]
        .into_iter()
        .zip(&cpu)
    {
        outcome.extra.push((key, median(&mut c.clone())));
    }
    Ok(outcome)
}

/// One window for one group of workers: critical sections per second, all workers together,
/// and nanoseconds of CPU time per critical section.
fn throughput(group: &mut [Helper], window: Duration) -> anyhow::Result<(f64, f64)> {
    let start = procs::mono_ns() + 5_000_000;
    let end = start + window.as_nanos() as u64;
    for h in group.iter_mut() {
        h.send(&format!("window {start} {end}"))?;
    }
    let (mut total, mut cpu) = (0u64, 0u64);
    for h in group.iter_mut() {
        let line = h.recv(window + Duration::from_secs(20))?;
        let parsed = line
            .split_once(' ')
            .and_then(|(n, c)| Some((n.parse::<u64>().ok()?, c.parse::<u64>().ok()?)));
        let Some((n, c)) = parsed else {
            bail!("a worker answered {line:?}, not `COUNT CPU_NS`");
        };
        total += n;
        cpu += c;
    }
    Ok((
        total as f64 * 1e9 / (end - start) as f64,
        cpu as f64 / total.max(1) as f64,
    ))
}

/// `reclaim`: a helper acquires a semaphore of capacity 1 and is SIGKILLed while this process
/// waits for it; milliseconds from the kill to this process's acquire returning: p99 as the
/// figure, p50 in the `p50` field. The kill comes after a random 1–51 ms of waiting, so that it
/// falls anywhere in a shmsem waiter's bounded sleep. POSIX semaphores never give a dead
/// holder's permit back, so POSIX is not measured; SysV with `SEM_UNDO` gives it back as the
/// holder exits.
pub fn reclaim(ctx: &Ctx) -> anyhow::Result<Outcome> {
    const WAIT_LIMIT: Duration = Duration::from_secs(10);
    let plan = ctx.plan;
    let sem = shmsem_sem("reclaim", "victim", 1)?;
    let shm_spec = ["reclaim/victim".to_owned()];
    let sv = SysvSem::create(1)?;
    let sv_spec = [sv.id().to_string()];
    let mut rng = Rng::seeded();
    let (mut shm_ms, mut sv_ms) = (Vec::new(), Vec::new());
    for k in 0..plan.kills {
        for turn in 0..2 {
            if (k + turn) % 2 == 0 {
                let delay = Duration::from_micros(1_000 + rng.below(50_000));
                let took = kill_holder(ctx.helper_args, Impl::Shmsem, &shm_spec, delay, || {
                    let permit = sem.acquire_timeout(1, WAIT_LIMIT).context(
                        "shmsem did not give a SIGKILLed holder's permit back within 10 s",
                    )?;
                    let at = procs::mono_ns();
                    drop(permit);
                    Ok(at)
                })?;
                shm_ms.push(took.as_secs_f64() * 1e3);
            } else {
                let delay = Duration::from_micros(1_000 + rng.below(4_000));
                let took = kill_holder(ctx.helper_args, Impl::Sysv, &sv_spec, delay, || {
                    if !sv.timed_wait(WAIT_LIMIT)? {
                        bail!("SysV did not undo a SIGKILLed holder within 10 s");
                    }
                    let at = procs::mono_ns();
                    sv.post()?;
                    Ok(at)
                })?;
                sv_ms.push(took.as_secs_f64() * 1e3);
            }
        }
    }
    let mut outcome = Outcome::new("reclaim", Unit::Ms);
    outcome.median = vec![
        ("shmsem", percentile(&mut shm_ms, 99.0)),
        ("sysv", percentile(&mut sv_ms, 99.0)),
    ];
    outcome.extra.push(("p50", percentile(&mut shm_ms, 50.0)));
    outcome
        .extra
        .push(("p50_sysv", percentile(&mut sv_ms, 50.0)));
    outcome.extra.push(("kills", plan.kills as f64));
    Ok(outcome)
}
