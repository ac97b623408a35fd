//! The scenarios measured inside this process: `uncontended`, `try_full`, `open`, `weighted4`,
//! `timed` and `scale10k`. Each runs shmsem and its kernel peers in interleaved batches (see
//! `measure`) and reports nanoseconds per operation.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use shmsem::{Error, Semaphore};

use super::{
    drive::shmsem_sem,
    measure::{Batch, Plan, ns_per_op},
    peers::{KernelSem, PosixSem, SysvSem, unique_posix_name},
    report::{Outcome, Unit},
};

/// The namespace of the single-process scenarios.
const NS: &str = "fast";

/// Time `n` runs of `op`.
#[inline]
fn timed(n: u64, mut op: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for _ in 0..n {
        op()?;
    }
    Ok(start.elapsed())
}

/// Drop what a shmsem operation returned (a permit, a handle): the measured operation includes
/// its release.
#[inline]
fn done<T>(r: shmsem::Result<T>) -> anyhow::Result<()> {
    r.map(drop).map_err(Into::into)
}

/// Measure shmsem, POSIX and SysV with `reps` interleaved repetitions; the medians.
fn three(plan: &Plan, mut runs: [Batch<'_>; 3]) -> anyhow::Result<(f64, f64, f64)> {
    let m = ns_per_op(plan.reps, plan.batch, &mut runs)?;
    Ok((m[0], m[1], m[2]))
}

/// `uncontended`: an acquire + release pair of weight 1, the holder recorded, nobody else
/// around; against `sem_wait` + `sem_post` and two `semop`s with `SEM_UNDO`.
pub fn uncontended(plan: &Plan) -> anyhow::Result<Outcome> {
    let sem = shmsem_sem(NS, "uncontended", 1)?;
    let px = PosixSem::create(&unique_posix_name("uncontended"), 1)?;
    let sv = SysvSem::create(1)?;
    let (s, p, v) = three(
        plan,
        [
            Box::new(|n| timed(n, || done(sem.acquire()))),
            Box::new(|n| timed(n, || kernel_pair(&px))),
            Box::new(|n| timed(n, || kernel_pair(&sv))),
        ],
    )?;
    Ok(Outcome::new("uncontended", Unit::Ns, s, Some(p), Some(v)))
}

#[inline]
fn kernel_pair<S: KernelSem>(sem: &S) -> anyhow::Result<()> {
    sem.wait()?;
    sem.post()?;
    Ok(())
}

/// `try_full`: a try-acquire that finds the semaphore full; against `sem_trywait` and `semop`
/// with `IPC_NOWAIT` failing with `EAGAIN`.
pub fn try_full(plan: &Plan) -> anyhow::Result<Outcome> {
    let sem = shmsem_sem(NS, "try_full", 1)?;
    let _held = sem.acquire()?;
    let px = PosixSem::create(&unique_posix_name("try_full"), 0)?;
    let sv = SysvSem::create(0)?;
    let (s, p, v) = three(
        plan,
        [
            Box::new(|n| {
                timed(n, || match sem.try_acquire(1) {
                    Err(Error::WouldBlock { .. }) => Ok(()),
                    Ok(_) => bail!("try_acquire succeeded on a full semaphore"),
                    Err(e) => Err(e.into()),
                })
            }),
            Box::new(|n| timed(n, || kernel_try_fails(&px))),
            Box::new(|n| timed(n, || kernel_try_fails(&sv))),
        ],
    )?;
    Ok(Outcome::new("try_full", Unit::Ns, s, Some(p), Some(v)))
}

#[inline]
fn kernel_try_fails<S: KernelSem>(sem: &S) -> anyhow::Result<()> {
    if sem.try_wait()? {
        bail!("a try-wait succeeded on an empty kernel semaphore");
    }
    Ok(())
}

/// `open`: open an existing name in a namespace this process has already mapped, and drop the
/// handle; against `sem_open` + `sem_close` of an existing name that this process does not
/// keep open (each one maps and unmaps it), and `semget` of an existing key.
pub fn open(plan: &Plan) -> anyhow::Result<Outcome> {
    let _mapped = shmsem_sem("open", "existing", 1)?;
    let options = Semaphore::options().namespace("open");
    let px = PosixSem::create_name_only(&unique_posix_name("open"), 1)?;
    let sv = SysvSem::create(1)?;
    let key = sv.key();
    let (s, p, v) = three(
        plan,
        [
            Box::new(|n| timed(n, || done(options.open("existing")))),
            Box::new(|n| timed(n, || Ok(PosixSem::open_close(px.as_c_str())?))),
            Box::new(|n| {
                timed(n, || {
                    std::hint::black_box(SysvSem::lookup(key)?);
                    Ok(())
                })
            }),
        ],
    )?;
    Ok(Outcome::new("open", Unit::Ns, s, Some(p), Some(v)))
}

/// `weighted4`: acquire weight 4 at once and release it, on a semaphore of capacity 4; against
/// 4 `sem_wait`s + 4 `sem_post`s, and one `semop` of -4 and one of +4.
pub fn weighted4(plan: &Plan) -> anyhow::Result<Outcome> {
    let sem = shmsem_sem(NS, "weighted4", 4)?;
    let px = PosixSem::create(&unique_posix_name("weighted4"), 4)?;
    let sv = SysvSem::create(4)?;
    let (s, p, v) = three(
        plan,
        [
            Box::new(|n| timed(n, || done(sem.acquire_weight(4)))),
            Box::new(|n| timed(n, || kernel_weighted(&px))),
            Box::new(|n| timed(n, || kernel_weighted(&sv))),
        ],
    )?;
    Ok(Outcome::new("weighted4", Unit::Ns, s, Some(p), Some(v)))
}

#[inline]
fn kernel_weighted<S: KernelSem>(sem: &S) -> anyhow::Result<()> {
    sem.wait_n(4)?;
    sem.post_n(4)?;
    Ok(())
}

/// `timed`: a timed acquire (1 s) that succeeds at once, and its release; against
/// `sem_timedwait` (with the clock read its absolute deadline needs) + `sem_post`, and
/// `semtimedop` + `semop`.
pub fn timed_acquire(plan: &Plan) -> anyhow::Result<Outcome> {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let sem = shmsem_sem(NS, "timed", 1)?;
    let px = PosixSem::create(&unique_posix_name("timed"), 1)?;
    let sv = SysvSem::create(1)?;
    let (s, p, v) = three(
        plan,
        [
            Box::new(|n| timed(n, || done(sem.acquire_timeout(1, TIMEOUT)))),
            Box::new(|n| timed(n, || kernel_timed(&px, TIMEOUT))),
            Box::new(|n| timed(n, || kernel_timed(&sv, TIMEOUT))),
        ],
    )?;
    Ok(Outcome::new("timed", Unit::Ns, s, Some(p), Some(v)))
}

#[inline]
fn kernel_timed<S: KernelSem>(sem: &S, timeout: Duration) -> anyhow::Result<()> {
    if !sem.timed_wait(timeout)? {
        bail!("a timed wait on a free kernel semaphore timed out");
    }
    sem.post()?;
    Ok(())
}

/// How many semaphores `scale10k` puts in its namespace.
pub const SCALE: u32 = 10_000;

/// `scale10k`: the uncontended pair on one semaphore of a namespace holding [`SCALE`]
/// semaphores, against the same pair in a namespace holding just one. No kernel peer: the
/// figure that counts is the ratio (in the `ratio_baseline` field).
pub fn scale10k(plan: &Plan) -> anyhow::Result<Outcome> {
    let fill = Semaphore::options().namespace("scale").persistent();
    for i in 0..SCALE - 1 {
        drop(
            fill.open(&format!("filler-{i:05}"))
                .context("filling the 10k namespace")?,
        );
    }
    let many = shmsem_sem("scale", "target", 1)?;
    let one = shmsem_sem("one", "target", 1)?;
    let mut runs: [Batch<'_>; 2] = [
        Box::new(|n| timed(n, || done(many.acquire()))),
        Box::new(|n| timed(n, || done(one.acquire()))),
    ];
    let m = ns_per_op(plan.reps, plan.batch, &mut runs)?;
    let mut outcome = Outcome::new("scale10k", Unit::Ns, m[0], None, None);
    outcome.extra.push(("baseline", m[1]));
    outcome.extra.push(("ratio_baseline", m[0] / m[1]));
    Ok(outcome)
}
