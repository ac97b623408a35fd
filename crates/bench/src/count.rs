//! Instruction counts per operation, the first figure of every in-process scenario: exact and
//! repeatable where times are not.
//!
//! Counts are taken of the very loop that is timed, `inproc::shmsem_bench_batch` (the operation
//! inlined into it, one copy per operation, never inlined itself), run twice per operation
//! after a warm-up: with `n` and with `2n` operations. The figure is
//! `(count(2n) − count(n)) / n`: everything a batch does once (its prologue, reading the clock
//! twice) is in both counts and cancels exactly, and what remains is one iteration: every
//! user-space instruction of the operation, libc included, plus the loop's own increment and
//! branch (two or three instructions, the same code for every contender). Nothing else is
//! subtracted. Kernel work is not counted: the system calls per operation are reported beside
//! the count where callgrind can say (SysV's operations and POSIX's `sem_open` are mostly
//! kernel work).
//!
//! Two ways to count, chosen by [`count`]:
//! * `perf_event_open`, the hardware instructions counter restricted to user space, enabled
//!   around each batch in this process (three runs each, the smallest kept);
//! * callgrind, where the machine has no hardware counter (most VMs): this executable again
//!   under `valgrind --tool=callgrind`, collecting only inside the batch loop and dumping its
//!   totals each time the loop returns (see `callgrind`). Under valgrind the clock is read with
//!   a system call (there is no vDSO), so an operation that reads the clock shows one system
//!   call and its libc wrapper's instructions in place of the vDSO's.
//!
//! `SHMSEM_BENCH_COUNTER=perf|callgrind|none` forces one way (or none).

use std::{collections::BTreeMap, io::Write, path::Path};

use anyhow::Context;

use super::{callgrind, inproc, measure::Plan, procs};

/// The environment variable that chooses how to count.
pub const COUNTER_ENV: &str = "SHMSEM_BENCH_COUNTER";
/// The role (in `procs::ROLE_ENV`) of the process that callgrind runs.
pub const ROLE: &str = "count";
/// The environment variable giving that process the number of operations per count.
pub const OPS_ENV: &str = "SHMSEM_BENCH_COUNT_OPS";
/// Every copy of the batch loop, as `--toggle-collect` and `--dump-after` match them: the
/// demangled name ends so for each copy (valgrind 3.19 does not match `*name*` here).
pub const LOOP_PATTERN: &str = "*shmsem_bench_batch";

/// Calls of an operation before it is counted.
const WARM_UP: u64 = 200;

/// One contender's counts per operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerOp {
    /// User-space instructions.
    pub instructions: f64,
    /// System calls, where the method can tell (callgrind).
    pub syscalls: Option<f64>,
}

/// Every count of a run, and how they were made.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// `perf_event_open` or `callgrind`; `None` when nothing could count.
    pub method: Option<&'static str>,
    /// The tool's version, or why nothing could count.
    pub detail: String,
    /// `n`: the counts are of `n` and `2n` operations.
    pub ops: u64,
    /// Per `(scenario, contender)`.
    pub per_op: BTreeMap<(String, String), PerOp>,
    /// What could not be counted, and why.
    pub errors: Vec<String>,
}

impl Counts {
    /// The count of `contender` in `scenario`, if measured.
    pub fn get(&self, scenario: &str, contender: &str) -> Option<PerOp> {
        self.per_op
            .get(&(scenario.to_owned(), contender.to_owned()))
            .copied()
    }

    fn unavailable(detail: String) -> Counts {
        Counts {
            detail,
            ..Counts::default()
        }
    }
}

/// Count every in-process scenario's contenders: by `perf_event_open` if it works here, else
/// by callgrind if valgrind is installed, else not at all (the reason in `detail`). `scratch`
/// is a directory for callgrind's files; `helper_args` lead this executable back to
/// [`requested`].
pub fn count(plan: &Plan, scratch: &Path, helper_args: &[&str]) -> Counts {
    let n = plan.count_ops;
    let by_callgrind = || match callgrind::version() {
        Ok(version) => callgrind::count(n, scratch, helper_args, version)
            .unwrap_or_else(|e| Counts::unavailable(format!("callgrind failed: {e:#}"))),
        Err(why) => Counts::unavailable(why),
    };
    match std::env::var(COUNTER_ENV).ok().as_deref() {
        Some("none") => Counts::unavailable(format!("not counted ({COUNTER_ENV}=none)")),
        Some("perf") => by_perf(n).unwrap_or_else(Counts::unavailable),
        Some("callgrind") => by_callgrind(),
        Some(other) => Counts::unavailable(format!(
            "{COUNTER_ENV}={other:?} is not perf, callgrind or none"
        )),
        None => by_perf(n).unwrap_or_else(|perf_why| {
            let mut counts = by_callgrind();
            if counts.method.is_none() {
                counts.detail = format!("{perf_why}; {}", counts.detail);
            }
            counts
        }),
    }
}

/// What measures one operation (`scenario`, `contender`), given warmed up: runs its batch of
/// `n` and of `2n`.
pub type Measure<'m> = &'m mut dyn FnMut(&str, &str, &mut dyn inproc::Op) -> anyhow::Result<()>;

/// Warm up and measure every contender of every in-process fixture. `skipped` hears of what
/// could not be measured, and why.
pub fn visit(measure: Measure<'_>, skipped: &mut dyn FnMut(&str, &str, anyhow::Error)) {
    for (id, fixture) in inproc::SCENARIOS {
        let result = fixture(&mut |contenders| {
            for c in contenders {
                let warm = (0..WARM_UP).try_for_each(|_| c.op.once());
                if let Err(e) = warm.and_then(|()| measure(id, c.name, &mut *c.op)) {
                    skipped(id, c.name, e);
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            skipped(id, "*", e);
        }
    }
}

/// If this process is callgrind's (`procs::ROLE_ENV` is [`ROLE`]), run every batch and return;
/// `None` for an ordinary start.
pub fn requested() -> Option<anyhow::Result<()>> {
    (std::env::var(procs::ROLE_ENV).ok()? == ROLE).then(counted_child)
}

/// Callgrind's side: run each operation's batches of `n`, `n` again and `2n`, saying on stdout,
/// in order, which batch each of callgrind's dumps is (`dump SCENARIO CONTENDER OPS ok|error
/// …`), and what was skipped (`skip SCENARIO CONTENDER why`). The first batch is not used: it
/// absorbs the system calls that callgrind counts while collection is off (the warm-up's, the
/// fixture's) and adds to the next dump; only instructions are clean of them. Nothing runs
/// between the last two batches (their labels are made after both).
fn counted_child() -> anyhow::Result<()> {
    let n: u64 = std::env::var(OPS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{OPS_ENV} is not a number"))?;
    let lines = std::cell::RefCell::new(Vec::new());
    visit(
        &mut |scenario, contender, op| {
            let sizes = [n, n, 2 * n];
            let results = sizes.map(|ops| op.batch(ops).map(drop));
            for (ops, result) in sizes.into_iter().zip(results) {
                let status = match result {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => format!("error {}", one_line(&e)),
                };
                lines
                    .borrow_mut()
                    .push(format!("dump {scenario} {contender} {ops} {status}"));
            }
            Ok(())
        },
        &mut |scenario, contender, e| {
            lines
                .borrow_mut()
                .push(format!("skip {scenario} {contender} {}", one_line(&e)));
        },
    );
    let mut out = std::io::stdout().lock();
    for line in lines.into_inner() {
        writeln!(out, "{line}").context("writing to the parent")?;
    }
    out.flush().context("writing to the parent")
}

/// An error on one line.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

// ===== perf_event_open =====

/// `perf_event_attr` as of its first version (64 bytes): the kernel accepts it as such.
#[repr(C)]
#[derive(Debug, Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

const PERF_TYPE_HARDWARE: u32 = 0;
const PERF_COUNT_HW_INSTRUCTIONS: u64 = 1;
const FLAG_DISABLED: u64 = 1 << 0;
const FLAG_EXCLUDE_KERNEL: u64 = 1 << 5;
const FLAG_EXCLUDE_HV: u64 = 1 << 6;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
const IOC_ENABLE: libc::c_ulong = 0x2400;
const IOC_DISABLE: libc::c_ulong = 0x2401;
const IOC_RESET: libc::c_ulong = 0x2403;

/// This thread's user-space instructions counter.
#[derive(Debug)]
struct Counter(std::os::fd::OwnedFd);

impl Counter {
    fn open() -> std::io::Result<Counter> {
        use std::os::fd::FromRawFd;
        let attr = PerfEventAttr {
            kind: PERF_TYPE_HARDWARE,
            size: std::mem::size_of::<PerfEventAttr>() as u32,
            config: PERF_COUNT_HW_INSTRUCTIONS,
            flags: FLAG_DISABLED | FLAG_EXCLUDE_KERNEL | FLAG_EXCLUDE_HV,
            ..PerfEventAttr::default()
        };
        // SAFETY: `attr` is a valid `perf_event_attr` of the size it declares, alive for the
        // call; pid 0 and cpu -1 count this thread on any CPU; group -1 is no group.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttr,
                0 as libc::pid_t,
                -1 as libc::c_int,
                -1 as libc::c_int,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        Ok(Counter(unsafe {
            std::os::fd::OwnedFd::from_raw_fd(fd as libc::c_int)
        }))
    }

    fn ioctl(&self, request: libc::c_ulong) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: the perf ioctls used here take an integer argument (0: this event only).
        if unsafe { libc::ioctl(self.0.as_raw_fd(), request, 0) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// The instructions of one batch of `n` operations.
    fn measure(&self, n: u64, op: &mut dyn inproc::Op) -> anyhow::Result<u64> {
        use std::os::fd::AsRawFd;
        self.ioctl(IOC_RESET)?;
        self.ioctl(IOC_ENABLE)?;
        let result = op.batch(n);
        self.ioctl(IOC_DISABLE)?;
        result?;
        let mut value = 0u64;
        // SAFETY: `value` is 8 writable bytes, what a counter without `read_format` returns.
        let got = unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&mut value as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if got != std::mem::size_of::<u64>() as isize {
            return Err(std::io::Error::last_os_error()).context("reading the counter");
        }
        Ok(value)
    }
}

/// Count in this process with the hardware counter; `Err` says why not.
fn by_perf(n: u64) -> Result<Counts, String> {
    let counter =
        Counter::open().map_err(|e| format!("no hardware counter (perf_event_open: {e})"))?;
    let mut per_op = BTreeMap::new();
    let mut errors = Vec::new();
    visit(
        &mut |scenario, contender, op| {
            // The smallest of three: a hardware counter can only over-count.
            let mut best = |ops: u64| -> anyhow::Result<u64> {
                let mut best = u64::MAX;
                for _ in 0..3 {
                    best = best.min(counter.measure(ops, op)?);
                }
                Ok(best)
            };
            let (one, two) = (best(n)?, best(2 * n)?);
            let instructions = two.saturating_sub(one) as f64 / n as f64;
            per_op.insert(
                (scenario.to_owned(), contender.to_owned()),
                PerOp {
                    instructions,
                    syscalls: None,
                },
            );
            Ok(())
        },
        &mut |scenario, contender, e| errors.push(format!("{scenario} {contender}: {e:#}")),
    );
    Ok(Counts {
        method: Some("perf_event_open"),
        detail: "hardware instructions counter, user space only".to_owned(),
        ops: n,
        per_op,
        errors,
    })
}
