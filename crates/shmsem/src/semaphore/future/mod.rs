//! Acquiring from async code (feature `async`): futures that any executor can poll, with no
//! runtime as a dependency and no OS thread per waiting future.
//!
//! A future tries to take its weight inside `poll`, through the same paths as
//! [`Semaphore::try_acquire`]: the uncontended case is the fast path, on the polling thread,
//! with no hop. When the weight is not there, the future registers its waker with one of this
//! process's *helper threads* (`helper`), and returns `Pending`. A helper counts itself as
//! one waiter on every word it watches, as a blocking waiter does (so releases wake it), and
//! sleeps on up to [`crate::wait::MAX_WAIT_ANY`]` - 1` words at once (`futex_waitv`) plus its
//! own doorbell; when a word changes it wakes the futures whose weight now fits, which take it
//! in their next `poll`. At most [`helper::MAX_HELPERS`] helpers run, started on first need.
//!
//! # Why no wake is lost
//!
//! A future that found its weight missing registers (or, polled again, re-registers) *after*
//! that attempt, and every registration rings the helper's doorbell. The helper, in each pass,
//! counts itself on the word and announces its sleep there (the `SLEEPING` flag, in a
//! compare-exchange against the word it then sleeps on), and only *then* checks every future
//! that registered since its last wake against that word: if the weight fits, it wakes the
//! future instead of sleeping on it. So a release either happened before that check, and the
//! check sees it, or after the announcement, and then it changes the futex word the helper
//! sleeps on (the sleep returns at once) or finds `SLEEPING` set and wakes the helper. A
//! registration during the helper's sleep changes the doorbell, which the helper sleeps on too.
//! The argument is the blocking waiter's (DESIGN §4), with the helper as the waiter and the
//! re-check widened to every registered future.
//!
//! # Cancellation
//!
//! A future dropped before it completes took nothing. If it was registered, its drop removes
//! the registration and, when that changes what the helper must hold on the word (it was the
//! last future there, or the one the helper reserved weight for), waits for the helper's next
//! pass, which uncounts the helper, gives the reservation up and wakes whom it held back. So
//! when the drop returns, no waiter count, reservation or registration of it is left.
//!
//! # Fairness, reclaim, fork
//!
//! As for blocking waits: a helper reserves the weight of the oldest future for more than 1
//! (one reservation per word, as a blocking waiter would), and that future takes under it;
//! the helper waits in the namespace as a blocking waiter does, so a dead holder's weight is
//! reclaimed and reaches the futures (DESIGN §5); a forked child starts helpers of its own
//! and holds nothing its parent held.

mod helper;
mod watched;

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use self::helper::Registration;
use super::{OwnedPermit, Permit, Semaphore, Until};
use crate::{
    error::{Error, Result},
    protocol::keys::Reservation,
};

/// The future of [`Semaphore::acquire_async`]: a [`Permit`] once the weight is taken.
///
/// Dropping it before it completes takes nothing and leaves nothing behind (see
/// [`Semaphore::acquire_async`]).
#[must_use = "futures do nothing unless polled"]
pub struct AcquireFuture<'a> {
    sem: &'a Semaphore,
    weight: u32,
    waiting: Waiting,
}

/// The future of [`Semaphore::acquire_owned_async`]: an [`OwnedPermit`] once the weight is
/// taken. `Send + 'static`.
#[must_use = "futures do nothing unless polled"]
pub struct AcquireOwnedFuture {
    sem: Semaphore,
    weight: u32,
    waiting: Waiting,
}

/// What a future waits through, once its first attempt found the weight missing: a helper
/// thread's registration for a local semaphore; for a cluster-scope one, the acquire running on
/// the cluster client's runtime (`cluster::Spawned`).
#[derive(Default)]
struct Waiting {
    local: Option<Registration>,
    #[cfg(feature = "cluster")]
    remote: Option<crate::cluster::Spawned>,
}

impl Semaphore {
    /// Wait for `weight` without blocking the thread: a future of a [`Permit`], for any async
    /// runtime (tokio, smol, `futures::executor`...). The library depends on none: a waiting
    /// future is woken by one of a few helper threads of this process, which wait for all of
    /// them. Timeouts come from the runtime (`tokio::time::timeout`); dropping the future before
    /// it completes takes nothing and leaves no waiter count, reservation or registration.
    ///
    /// The uncontended case completes in the first `poll`, with no thread hop. Fairness, reclaim
    /// and the fork rule are those of [`acquire_weight`](Self::acquire_weight).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-async-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Waker};
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = Context::from_waker(Waker::noop());
    /// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } std::thread::yield_now() }
    /// # }
    /// let sem = shmsem::Semaphore::options().capacity(2).open("async-example")?;
    /// block_on(async {
    ///     let permit = sem.acquire_async(2).await?;
    ///     assert_eq!(permit.weight(), 2);
    ///     Ok::<(), shmsem::Error>(())
    /// })?;
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn acquire_async(&self, weight: u32) -> AcquireFuture<'_> {
        AcquireFuture {
            sem: self,
            weight,
            waiting: Waiting::default(),
        }
    }

    /// [`acquire_async`](Self::acquire_async) for an [`OwnedPermit`]; the future is
    /// `Send + 'static`, so it can be spawned.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-async-owned-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     use std::task::{Context, Poll, Waker};
    /// #     let mut f = std::pin::pin!(f);
    /// #     let mut cx = Context::from_waker(Waker::noop());
    /// #     loop { if let Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v } std::thread::yield_now() }
    /// # }
    /// let sem = shmsem::Semaphore::options().capacity(1).open("async-owned-example")?;
    /// let future = sem.acquire_owned_async(1); // owns its handle: may outlive `sem`
    /// drop(sem);
    /// let permit = block_on(future)?;
    /// assert_eq!(permit.semaphore().info()?.value, 1);
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn acquire_owned_async(&self, weight: u32) -> AcquireOwnedFuture {
        AcquireOwnedFuture {
            sem: self.clone(),
            weight,
            waiting: Waiting::default(),
        }
    }
}

/// One poll of either future: take now, or register to be woken. The first poll is the
/// blocking acquire's fast path with no wait ([`Until::Now`]); the rest is cold.
#[inline(always)]
fn poll_take(
    sem: &Semaphore,
    weight: u32,
    waiting: &mut Waiting,
    cx: &mut Context<'_>,
) -> Poll<Result<(u64, u32)>> {
    #[cfg(feature = "cluster")]
    if sem.as_cluster().is_some() {
        return poll_remote(sem, weight, &mut waiting.remote, cx);
    }
    let waiting = &mut waiting.local;
    if waiting.is_none() {
        match sem.take(weight, Until::Now) {
            Ok(taken) => return Poll::Ready(Ok(taken)),
            Err(Error::WouldBlock { .. }) => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
    poll_waiting(sem, weight, waiting, cx)
}

/// [`poll_take`] on a cluster-scope handle: start the acquire on the cluster client's runtime
/// at the first poll, and wait for its outcome (no thread waits for it but the runtime's).
#[cfg(feature = "cluster")]
#[cold]
fn poll_remote(
    sem: &Semaphore,
    weight: u32,
    remote: &mut Option<crate::cluster::Spawned>,
    cx: &mut Context<'_>,
) -> Poll<Result<(u64, u32)>> {
    let spawned = match remote {
        Some(s) => s,
        None => match crate::cluster::Spawned::start(sem, weight) {
            Ok(s) => remote.insert(s),
            Err(e) => return Poll::Ready(Err(e)),
        },
    };
    let outcome = std::task::ready!(spawned.poll(cx));
    *remote = None;
    Poll::Ready(outcome.map(|id| {
        (
            id,
            crate::sys::FORK_EPOCH.load(std::sync::atomic::Ordering::Relaxed),
        )
    }))
}

/// [`poll_take`] once the weight was missing: try under the reservation the helper holds for
/// this future, and register (again) if it is still missing.
#[cold]
#[inline(never)]
fn poll_waiting(
    sem: &Semaphore,
    weight: u32,
    waiting: &mut Option<Registration>,
    cx: &mut Context<'_>,
) -> Poll<Result<(u64, u32)>> {
    let token = waiting
        .as_ref()
        .map_or(Reservation::NONE, Registration::reserved);
    match sem.take_now_for(weight, token) {
        Ok(Some(taken)) => {
            if let Some(r) = waiting.take() {
                r.taken();
            }
            Poll::Ready(Ok(taken))
        }
        Ok(None) => {
            match waiting {
                Some(r) if r.is_for(sem) => r.again(cx.waker()),
                _ => {
                    // First, or the semaphore moved (created again) or this is a forked child:
                    // the old registration goes (its drop gives up what was held for it).
                    *waiting = None;
                    *waiting = Registration::new(sem, weight, cx.waker());
                    if waiting.is_none() {
                        // No helper thread could be started: be polled again at once.
                        cx.waker().wake_by_ref();
                    }
                }
            }
            Poll::Pending
        }
        Err(e) => {
            // Dropping the registration gives up whatever the helper holds for it.
            *waiting = None;
            Poll::Ready(Err(e))
        }
    }
}

impl<'a> Future for AcquireFuture<'a> {
    type Output = Result<Permit<'a>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let sem = this.sem;
        poll_take(sem, this.weight, &mut this.waiting, cx)
            .map_ok(|taken| Permit::new(sem, this.weight, taken))
    }
}

impl Future for AcquireOwnedFuture {
    type Output = Result<OwnedPermit>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        poll_take(&this.sem, this.weight, &mut this.waiting, cx)
            .map_ok(|taken| OwnedPermit::new(this.sem.clone(), this.weight, taken))
    }
}

impl Waiting {
    fn is_waiting(&self) -> bool {
        #[cfg(feature = "cluster")]
        if self.remote.is_some() {
            return true;
        }
        self.local.is_some()
    }
}

impl fmt::Debug for AcquireFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireFuture")
            .field("semaphore", &self.sem.name())
            .field("weight", &self.weight)
            .field("waiting", &self.waiting.is_waiting())
            .finish()
    }
}

impl fmt::Debug for AcquireOwnedFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwnedFuture")
            .field("semaphore", &self.sem.name())
            .field("weight", &self.weight)
            .field("waiting", &self.waiting.is_waiting())
            .finish()
    }
}
