//! Criterion benchmarks of the scenarios in the README's *Benchmarks*: one group per scenario
//! id, each with shmsem and its kernel peers (POSIX named semaphores, SysV semaphores with
//! `SEM_UNDO`) side by side, so that criterion's report compares them, and keeps their
//! history. `shmsem bench` runs the same
//! scenarios without criterion and prints them as one table with the targets, with what
//! criterion cannot give: instruction counts, per-pair ratios with their intervals, the A/A
//! control, and `idle100` (CPU time of idle waiters: no operation to time).
//!
//! As in `shmsem bench`, this process is pinned to one CPU (the highest allowed); ping-pong
//! helpers run on the same CPU (`pingpong_same_cpu`) or another (`pingpong_cross_cpu`), and
//! `contended4`'s workers are spread over the allowed CPUs.
//!
//! Multi-process scenarios (`pingpong_*`, `contended4`, `reclaim`) use `iter_custom` with
//! helper processes: this bench binary started again with `SHMSEM_BENCH_ROLE` set, which `main`
//! checks before criterion starts. The kernel peers, the helper roles, pinning and the process
//! handling are `shmsem-bench`'s, as for `shmsem bench`.
//!
//! ```text
//! cargo bench --bench semaphores                 # everything, a few minutes
//! cargo bench --bench semaphores -- pingpong     # the ping-pong groups
//! ```

use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, measurement::WallTime};
use shmsem_bench::{
    drive::{Rng, START, Sems, kill_holder, shmsem_sem},
    inproc,
    peers::{KernelSem, SysvSem},
    pin::{self, Cpus},
    procs::{self, Helper},
    roles::{self, Impl, KernelLocks, Locks, Role, ShmsemLocks, pingpong_rounds, pingpong_start},
};

/// Helpers are started with no arguments: `main` sends them to their role first thing.
const HELPER_ARGS: &[&str] = &[];

fn main() {
    if let Some(outcome) = roles::requested() {
        if let Err(e) = outcome {
            eprintln!("bench helper: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    // Before any thread: it sets SHMSEM_DIR, which helpers inherit.
    let _dir = procs::Workspace::create().expect("creating the benchmark's SHMSEM_DIR");
    let cpus = Cpus::choose().expect("sched_getaffinity");
    pin::pin(0, cpus.main).expect("pinning to one CPU");
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    in_process(&mut c, "uncontended", inproc::uncontended);
    in_process(&mut c, "try_full", inproc::try_full);
    in_process(&mut c, "open", inproc::open);
    pingpong(&mut c, "pingpong_same_cpu", Some(cpus.main));
    pingpong(&mut c, "pingpong_cross_cpu", cpus.other);
    contended4(&mut c, &cpus);
    in_process(&mut c, "weighted4", inproc::weighted4);
    in_process(&mut c, "timed", inproc::timed_acquire);
    reclaim(&mut c);
    in_process(&mut c, "scale10k", inproc::scale10k);
    c.final_summary();
}

/// An in-process scenario, from the fixture `shmsem bench` times: each contender's operation
/// runs in criterion's batches through the same timed loop (`inproc::shmsem_bench_batch`), so
/// both measure the same machine code. A failing operation is a broken benchmark: stop.
fn in_process(c: &mut Criterion, id: &str, fixture: inproc::Fixture) {
    fixture(&mut |contenders| {
        let mut g = c.benchmark_group(id);
        for contender in contenders {
            let name = contender.name;
            g.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    contender
                        .op
                        .batch(iters)
                        .unwrap_or_else(|e| panic!("{id} {name}: {e:#}"))
                })
            });
        }
        g.finish();
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{id}: {e:#}"));
}

/// Two processes handing a permit back and forth, the helper pinned to `cpu` (none: this
/// machine has one CPU, and the group is left out): one iteration is one round trip.
fn pingpong(c: &mut Criterion, group: &str, cpu: Option<usize>) {
    let Some(cpu) = cpu else {
        eprintln!("{group}: one CPU only, skipped");
        return;
    };
    let sems = Sems::create("pingpong", 3, 1).expect("creating semaphores");
    let mut g = c.benchmark_group(group);
    pingpong_one(
        &mut g,
        &sems,
        cpu,
        Impl::Shmsem,
        ShmsemLocks::new(&sems.shmsem),
    );
    pingpong_one(
        &mut g,
        &sems,
        cpu,
        Impl::Posix,
        KernelLocks::new(&sems.posix),
    );
    pingpong_one(&mut g, &sems, cpu, Impl::Sysv, KernelLocks::new(&sems.sysv));
    g.finish();
}

fn pingpong_one<L: Locks>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    sems: &Sems,
    cpu: usize,
    imp: Impl,
    mut locks: L,
) {
    pingpong_start(&mut locks).expect("taking L0 and L1");
    let mut peer =
        roles::spawn(Role::PingPong, imp, sems.specs(imp), HELPER_ARGS).expect("starting the peer");
    pin::pin(peer.pid(), cpu).expect("pinning the peer");
    peer.expect("ready", START).expect("the peer getting ready");
    let unblock = || sems.unblock();
    let mut next = 0u64;
    procs::watchdog(Duration::from_secs(600), &[peer.pid()], &unblock, |stop| {
        g.bench_function(imp.as_str(), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                if let Err(e) = pingpong_rounds(&mut locks, &mut next, iters, stop) {
                    panic!("pingpong {}: {e:#}", imp.as_str());
                }
                start.elapsed()
            })
        });
        Ok(())
    })
    .expect("pingpong");
}

/// Four processes on one semaphore of capacity 1, a ~30 ns critical section, spread over the
/// allowed CPUs: one iteration is one critical section, so criterion's throughput is the four
/// processes' together.
fn contended4(c: &mut Criterion, cpus: &Cpus) {
    let sems = Sems::create("contended", 1, 1).expect("creating semaphores");
    let mut g = c.benchmark_group("contended4");
    g.throughput(Throughput::Elements(1))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10);
    for imp in Impl::ALL {
        let mut workers: Vec<Helper> = (0..4)
            .map(|i| {
                let w = roles::spawn(Role::Worker, imp, sems.specs(imp), HELPER_ARGS)?;
                pin::pin(w.pid(), cpus.spread(i))?;
                Ok(w)
            })
            .collect::<anyhow::Result<_>>()
            .expect("starting workers");
        g.bench_function(imp.as_str(), |b| {
            b.iter_custom(|iters| {
                let each = iters.div_ceil(4);
                let start = Instant::now();
                for w in &mut workers {
                    w.send(&format!("count {each}")).expect("a worker");
                }
                for w in &mut workers {
                    w.expect("done", Duration::from_secs(120))
                        .expect("a worker");
                }
                // Scale to the `iters` criterion asked for.
                start.elapsed().mul_f64(iters as f64 / (each * 4) as f64)
            })
        });
    }
    g.finish();
}

/// Kills per criterion sample in `reclaim`: each costs a process start and up to 50 ms, so a
/// sample measures at most this many and scales their mean to the iterations criterion asked for.
const KILLS_PER_SAMPLE: u64 = 3;

/// A holder SIGKILLed while this process waits: time from the kill to the acquire. POSIX
/// semaphores never give the permit back, so there is no POSIX entry.
fn reclaim(c: &mut Criterion) {
    const LIMIT: Duration = Duration::from_secs(10);
    let sem = shmsem_sem("reclaim", "victim", 1).expect("shmsem");
    let sv = SysvSem::create(1).expect("semget");
    let specs = ["reclaim/victim".to_owned(), sv.id().to_string()];
    let mut rng = Rng::seeded();
    let mut g = c.benchmark_group("reclaim");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(1));
    reclaim_one(&mut g, &mut rng, Impl::Shmsem, &specs[..1], 50_000, || {
        let permit = sem.acquire_timeout(1, LIMIT)?;
        let at = procs::mono_ns();
        drop(permit);
        Ok(at)
    });
    reclaim_one(&mut g, &mut rng, Impl::Sysv, &specs[1..], 4_000, || {
        anyhow::ensure!(sv.timed_wait(LIMIT)?, "SysV did not undo within 10 s");
        let at = procs::mono_ns();
        sv.post()?;
        Ok(at)
    });
    g.finish();
}

/// `imp`'s entry in `reclaim`: a holder of `specs` SIGKILLed 1 ms plus up to `jitter_us` after
/// it holds, and the time from the kill to `acquire` getting the permit (`acquire` returns when
/// it got it, in `procs::mono_ns`).
fn reclaim_one(
    g: &mut BenchmarkGroup<'_, WallTime>,
    rng: &mut Rng,
    imp: Impl,
    specs: &[String],
    jitter_us: u64,
    mut acquire: impl FnMut() -> anyhow::Result<u64>,
) {
    g.bench_function(imp.as_str(), |b| {
        b.iter_custom(|iters| {
            let kills = iters.min(KILLS_PER_SAMPLE);
            let mut total = Duration::ZERO;
            for _ in 0..kills {
                let delay = Duration::from_micros(1_000 + rng.below(jitter_us));
                total += kill_holder(HELPER_ARGS, imp, specs, delay, &mut acquire)
                    .unwrap_or_else(|e| panic!("{} reclaim: {e:#}", imp.as_str()));
            }
            total.mul_f64(iters as f64 / kills as f64)
        })
    });
}
