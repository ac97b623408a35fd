//! The scenarios measured inside this process: `uncontended`, `try_full`, `open`, `weighted4`,
//! `timed` and `scale10k`, and the A/A control. Each scenario is a *fixture*: it creates its
//! semaphores, gives one operation per contender to a caller, and removes the kernel ones when
//! the caller is done. The same fixtures are timed here (paired batches, see `measure`) and
//! counted in `count` (instructions per operation), in the same loop, so both figures describe
//! the same machine code.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use shmsem::{Error, Semaphore};

use super::{
    drive::shmsem_sem,
    measure::{Batch, Plan, Sampler, calibrate, paired, paired_ns_per_op},
    peers::{KernelSem, PosixSem, SysvSem, unique_posix_name},
};

/// The namespace of the single-process scenarios.
const NS: &str = "fast";

/// One measured operation (an acquire + release pair, a failed try, an open + close, …).
pub trait Op {
    /// Run the operation `n` times in [`shmsem_bench_batch`]; how long that took.
    fn batch(&mut self, n: u64) -> anyhow::Result<Duration>;
    /// Run it once (to warm up).
    fn once(&mut self) -> anyhow::Result<()>;
}

impl<F: FnMut() -> anyhow::Result<()>> Op for F {
    fn batch(&mut self, n: u64) -> anyhow::Result<Duration> {
        shmsem_bench_batch(self, n)
    }

    fn once(&mut self) -> anyhow::Result<()> {
        self()
    }
}

/// The loop that is timed, and whose instructions are counted (see `count`): `op` `n` times,
/// inlined into the loop (every contender's closure is `#[inline(always)]`, so that no
/// contender pays for a call the others do not). Never inlined itself, one copy per operation, and named so that
/// callgrind can find every copy (`*shmsem_bench_batch*`).
#[inline(never)]
pub fn shmsem_bench_batch<F: FnMut() -> anyhow::Result<()>>(
    op: &mut F,
    n: u64,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for _ in 0..n {
        op()?;
    }
    Ok(start.elapsed())
}

/// A contender's name and operation.
pub struct Contender<'a> {
    /// `shmsem`, `posix`, `sysv`, or what the scenario compares (`baseline`, `posix_b`).
    pub name: &'static str,
    /// The operation.
    pub op: Box<dyn Op + 'a>,
}

impl std::fmt::Debug for Contender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contender")
            .field("name", &self.name)
            .finish()
    }
}

impl<'a> Contender<'a> {
    /// `name` doing `op`.
    pub fn new(name: &'static str, op: impl FnMut() -> anyhow::Result<()> + 'a) -> Contender<'a> {
        contender(name, op)
    }
}

/// `name` doing `op`.
fn contender<'a>(name: &'static str, op: impl FnMut() -> anyhow::Result<()> + 'a) -> Contender<'a> {
    Contender {
        name,
        op: Box::new(op),
    }
}

/// What a fixture hands its contenders to.
pub type Use<'u> = &'u mut dyn FnMut(&mut [Contender<'_>]) -> anyhow::Result<()>;

/// A scenario's fixture.
pub type Fixture = fn(Use<'_>) -> anyhow::Result<()>;

/// The in-process scenarios, in report order, with their fixtures.
pub const SCENARIOS: [(&str, Fixture); 7] = [
    ("uncontended", uncontended),
    ("try_full", try_full),
    ("open", open),
    ("weighted4", weighted4),
    ("timed", timed_acquire),
    ("scale10k", scale10k),
    ("async_uncontended", super::asynchronous::uncontended),
];

/// Time the fixture's contenders in `plan.rounds` paired rounds: each contender's nanoseconds
/// per operation, per round.
pub fn time(plan: &Plan, fixture: Fixture) -> anyhow::Result<Vec<(&'static str, Vec<f64>)>> {
    let mut timed = Vec::new();
    fixture(&mut |contenders| {
        let names: Vec<&'static str> = contenders.iter().map(|c| c.name).collect();
        let mut runs: Vec<Batch<'_>> = contenders
            .iter_mut()
            .map(|c| Box::new(|n| c.op.batch(n)) as Batch<'_>)
            .collect();
        let per_op = paired_ns_per_op(plan.rounds, plan.batch, &mut runs)?;
        timed = names.into_iter().zip(per_op).collect();
        Ok(())
    })?;
    Ok(timed)
}

/// Drop what a shmsem operation returned (a permit, a handle): the measured operation includes
/// its release.
#[inline(always)]
fn done<T>(r: shmsem::Result<T>) -> anyhow::Result<()> {
    r.map(drop).map_err(Into::into)
}

/// A POSIX and a SysV semaphore with `value` available, for the scenario `name`.
fn kernel_sems(name: &str, value: u16) -> anyhow::Result<(PosixSem, SysvSem)> {
    Ok((
        PosixSem::create(&unique_posix_name(name), value.into())?,
        SysvSem::create(value)?,
    ))
}

/// The contenders of a scenario against the kernel: `shmsem` doing `$shmsem`, and `posix` and
/// `sysv` each doing `$kernel` on its own semaphore, `$px` and `$sv` (with `$arg`s after it).
/// Every operation is an `#[inline(always)]` closure, as [`shmsem_bench_batch`] wants.
macro_rules! against_kernel {
    ($shmsem:expr, $kernel:ident($px:ident, $sv:ident $(, $arg:expr)*)) => {
        [
            contender(
                "shmsem",
                #[inline(always)]
                || $shmsem,
            ),
            contender(
                "posix",
                #[inline(always)]
                || $kernel(&$px $(, $arg)*),
            ),
            contender(
                "sysv",
                #[inline(always)]
                || $kernel(&$sv $(, $arg)*),
            ),
        ]
    };
}

/// `uncontended`: an acquire + release pair of weight 1, the holder recorded, nobody else
/// around; against `sem_wait` + `sem_post` and two `semop`s with `SEM_UNDO`.
pub fn uncontended(use_: Use<'_>) -> anyhow::Result<()> {
    let sem = shmsem_sem(NS, "uncontended", 1)?;
    let (px, sv) = kernel_sems("uncontended", 1)?;
    use_(&mut against_kernel!(
        done(sem.acquire()),
        kernel_pair(px, sv)
    ))
}

#[inline]
fn kernel_pair<S: KernelSem>(sem: &S) -> anyhow::Result<()> {
    sem.wait()?;
    sem.post()?;
    Ok(())
}

/// `try_full`: a try-acquire that finds the semaphore full; against `sem_trywait` and `semop`
/// with `IPC_NOWAIT` failing with `EAGAIN`.
pub fn try_full(use_: Use<'_>) -> anyhow::Result<()> {
    let sem = shmsem_sem(NS, "try_full", 1)?;
    let _held = sem.acquire()?;
    let (px, sv) = kernel_sems("try_full", 0)?;
    use_(&mut against_kernel!(
        match sem.try_acquire(1) {
            Err(Error::WouldBlock { .. }) => Ok(()),
            Ok(_) => bail!("try_acquire succeeded on a full semaphore"),
            Err(e) => Err(e.into()),
        },
        kernel_try_fails(px, sv)
    ))
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
pub fn open(use_: Use<'_>) -> anyhow::Result<()> {
    let _mapped = shmsem_sem("open", "existing", 1)?;
    let options = Semaphore::options().namespace("open");
    let px = PosixSem::create_name_only(&unique_posix_name("open"), 1)?;
    let sv = SysvSem::create(1)?;
    let key = sv.key();
    use_(&mut [
        contender(
            "shmsem",
            #[inline(always)]
            || done(options.open("existing")),
        ),
        contender(
            "posix",
            #[inline(always)]
            || Ok(PosixSem::open_close(px.as_c_str())?),
        ),
        contender(
            "sysv",
            #[inline(always)]
            || {
                std::hint::black_box(SysvSem::lookup(key)?);
                Ok(())
            },
        ),
    ])
}

/// `weighted4`: acquire weight 4 at once and release it, on a semaphore of capacity 4; against
/// 4 `sem_wait`s + 4 `sem_post`s, and one `semop` of -4 and one of +4.
pub fn weighted4(use_: Use<'_>) -> anyhow::Result<()> {
    let sem = shmsem_sem(NS, "weighted4", 4)?;
    let (px, sv) = kernel_sems("weighted4", 4)?;
    use_(&mut against_kernel!(
        done(sem.acquire_weight(4)),
        kernel_weighted(px, sv)
    ))
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
pub fn timed_acquire(use_: Use<'_>) -> anyhow::Result<()> {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let sem = shmsem_sem(NS, "timed", 1)?;
    let (px, sv) = kernel_sems("timed", 1)?;
    use_(&mut against_kernel!(
        done(sem.acquire_timeout(1, TIMEOUT)),
        kernel_timed(px, sv, TIMEOUT)
    ))
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
/// semaphores (contender `shmsem`), against the same pair in a namespace holding just one
/// (contender `baseline`). No kernel peer.
pub fn scale10k(use_: Use<'_>) -> anyhow::Result<()> {
    let fill = Semaphore::options().namespace("scale").persistent();
    for i in 0..SCALE - 1 {
        drop(
            fill.open(&format!("filler-{i:05}"))
                .context("filling the 10k namespace")?,
        );
    }
    let many = shmsem_sem("scale", "target", 1)?;
    let one = shmsem_sem("one", "target", 1)?;
    use_(&mut [
        contender(
            "shmsem",
            #[inline(always)]
            || done(many.acquire()),
        ),
        contender(
            "baseline",
            #[inline(always)]
            || done(one.acquire()),
        ),
    ])
}

/// The A/A control: the same POSIX `sem_wait` + `sem_post` pair on two POSIX semaphores,
/// measured exactly as the scenarios are. Its ratio should be 1; how far it strays says how
/// much the machine disturbed the run. Taken in slices between the scenarios, so that it
/// samples the whole run.
#[derive(Debug)]
pub struct Control {
    a: PosixSem,
    b: PosixSem,
    sizes: Option<(u64, u64)>,
    /// The per-round times per operation so far, of `a` and of `b`.
    pub samples: (Vec<f64>, Vec<f64>),
}

impl Control {
    /// Two fresh POSIX semaphores.
    pub fn new() -> anyhow::Result<Control> {
        Ok(Control {
            a: PosixSem::create(&unique_posix_name("control-a"), 1)?,
            b: PosixSem::create(&unique_posix_name("control-b"), 1)?,
            sizes: None,
            samples: (Vec::new(), Vec::new()),
        })
    }

    /// Take `rounds` more paired rounds with `plan.batch` batches.
    pub fn slice(&mut self, plan: &Plan, rounds: usize) -> anyhow::Result<()> {
        let (a, b) = (&self.a, &self.b);
        let mut op_a = move || kernel_pair(a);
        let mut op_b = move || kernel_pair(b);
        // Calibrated once: every slice uses the same batch sizes.
        let (na, nb) = match self.sizes {
            Some(sizes) => sizes,
            None => {
                let mut run_a: Batch<'_> = Box::new(|n| op_a.batch(n));
                let na = calibrate(&mut run_a, plan.batch)?;
                drop(run_a);
                let mut run_b: Batch<'_> = Box::new(|n| op_b.batch(n));
                let nb = calibrate(&mut run_b, plan.batch)?;
                drop(run_b);
                self.sizes = Some((na, nb));
                (na, nb)
            }
        };
        let mut samplers: [Sampler<'_, f64>; 2] = [
            Box::new(|| Ok(op_a.batch(na)?.as_nanos() as f64 / na as f64)),
            Box::new(|| Ok(op_b.batch(nb)?.as_nanos() as f64 / nb as f64)),
        ];
        let mut per_op = paired(rounds, &mut samplers)?.into_iter();
        self.samples.0.extend(per_op.next().into_iter().flatten());
        self.samples.1.extend(per_op.next().into_iter().flatten());
        Ok(())
    }
}
