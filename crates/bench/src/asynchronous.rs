//! The async scenarios: `async_uncontended` (in this process, counted and timed like the
//! others) and `async_handoff` (two processes).
//!
//! * `async_uncontended`: `acquire_async(1)` polled once (the fast path completes inside
//!   `poll`) and the permit dropped, against the blocking `acquire()` + drop of the same
//!   library, and tokio's in-process `Semaphore` (`try_acquire` + drop: it never leaves the
//!   process, so it is there for scale, not as a peer).
//! * `async_handoff`: the ping-pong of `pingpong_same_cpu`, with this process waiting through
//!   `acquire_owned_async` on a current-thread tokio runtime (so each wake goes kernel →
//!   helper thread → waker → runtime) against the same hand-off with blocking waits, and
//!   against POSIX; the helper process waits blocking in all three.

use std::{
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use shmsem::{OwnedPermit, Semaphore};

use super::{
    drive::{START, Sems, shmsem_sem},
    inproc::{Contender, Use},
    measure::{Batch, paired_ns_per_op},
    multiproc::{Ctx, spawn_pinned},
    procs::{self, Helper},
    report::{Outcome, Unit},
    roles::{Impl, KernelLocks, Role, ShmsemLocks, pingpong_rounds, pingpong_start},
};

/// Poll `f` once with a waker that does nothing: the fast path must complete in that poll.
#[inline(always)]
fn poll_once<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// `async_uncontended`.
pub fn uncontended(use_: Use<'_>) -> anyhow::Result<()> {
    let sem = shmsem_sem("fast", "async_uncontended", 1)?;
    let tokio_sem = tokio::sync::Semaphore::new(1);
    use_(&mut [
        Contender::new(
            "shmsem",
            #[inline(always)]
            || match poll_once(sem.acquire_async(1)) {
                Some(Ok(permit)) => {
                    drop(permit);
                    Ok(())
                }
                Some(Err(e)) => Err(e.into()),
                None => bail!("an uncontended async acquire did not complete in its first poll"),
            },
        ),
        Contender::new(
            "blocking",
            #[inline(always)]
            || {
                drop(sem.acquire()?);
                Ok(())
            },
        ),
        Contender::new(
            "tokio",
            #[inline(always)]
            || {
                drop(tokio_sem.try_acquire()?);
                Ok(())
            },
        ),
    ])
}

/// `async_handoff`.
pub fn handoff(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let plan = ctx.plan;
    let cpu = ctx.cpus.main;
    let asynchronous = Sems::create("async_handoff", 3, 1)?;
    let blocking = Sems::create("blocking_handoff", 3, 1)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("a tokio runtime")?;
    let mut held: Vec<Option<OwnedPermit>> = vec![
        Some(asynchronous.shmsem[0].acquire_owned(1)?),
        Some(asynchronous.shmsem[1].acquire_owned(1)?),
        None,
    ];
    let mut shm = ShmsemLocks::new(&blocking.shmsem);
    let mut px = KernelLocks::new(&blocking.posix);
    pingpong_start(&mut shm)?;
    pingpong_start(&mut px)?;
    let mut helpers: Vec<Helper> = vec![
        spawn_pinned(ctx, Role::PingPong, Impl::Shmsem, &asynchronous, cpu)?,
        spawn_pinned(ctx, Role::PingPong, Impl::Shmsem, &blocking, cpu)?,
        spawn_pinned(ctx, Role::PingPong, Impl::Posix, &blocking, cpu)?,
    ];
    for h in &mut helpers {
        h.expect("ready", START)?;
    }
    let pids: Vec<libc::pid_t> = helpers.iter().map(Helper::pid).collect();
    let limit = Duration::from_secs(if plan.quick { 60 } else { 300 });
    let unblock = || {
        asynchronous.unblock();
        blocking.unblock();
    };
    let sems = &asynchronous.shmsem;
    let per_op = procs::watchdog(limit, &pids, &unblock, |stop| {
        let (mut a, mut b, mut c) = (0u64, 0u64, 0u64);
        let mut runs: [Batch<'_>; 3] = [
            Box::new(|n| {
                let t = Instant::now();
                rt.block_on(async_rounds(sems, &mut held, &mut a, n, stop))?;
                Ok(t.elapsed())
            }),
            Box::new(|n| {
                let t = Instant::now();
                pingpong_rounds(&mut shm, &mut b, n, stop)?;
                Ok(t.elapsed())
            }),
            Box::new(|n| {
                let t = Instant::now();
                pingpong_rounds(&mut px, &mut c, n, stop)?;
                Ok(t.elapsed())
            }),
        ];
        paired_ns_per_op(plan.pingpong_rounds, plan.pingpong_batch, &mut runs)
    })?;
    drop(helpers);
    let rounds: Vec<(&'static str, Vec<f64>)> = ["shmsem", "blocking", "posix"]
        .into_iter()
        .zip(per_op)
        .collect();
    Ok(Outcome::from_rounds("async_handoff", Unit::Ns, &rounds))
}

/// `rounds` of the parent's side of the ping-pong (see `roles::pingpong_rounds`), waiting
/// through the async API.
async fn async_rounds(
    sems: &[Semaphore],
    held: &mut [Option<OwnedPermit>],
    next: &mut u64,
    rounds: u64,
    stop: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<()> {
    for _ in 0..rounds {
        let i = (*next % 3) as usize;
        held[i] = None;
        let j = (i + 2) % 3;
        held[j] = Some(sems[j].acquire_owned_async(1).await?);
        *next += 1;
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            bail!("stopped");
        }
    }
    Ok(())
}
