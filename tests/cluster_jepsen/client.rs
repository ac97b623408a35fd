//! A client process of the Jepsen-style test: acquires weights 1–3 on the cluster semaphore
//! (mostly blocking with a timeout, sometimes `try_acquire`), holds for a while checking its
//! permit, releases, and again, until the parent creates the `stop` signal file. It logs every
//! step to `work/client-<i>.log`, one line `<ns> <step> <token> <weight>` each: `start` and
//! `failed` (token 0) around an acquire that did not succeed, then `held` (acquired, and each
//! `check()` that said `Ok`), `lost` or `released` (the steps [`super::checker::parse_log`]
//! reads). It reports its counts on exit.
//!
//! A belief's time is taken *before* the `check()` that confirms it, so that a pause between
//! the two can only make the logged time earlier, never later than what `check()` vouched for.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    thread,
    time::{Duration, Instant},
};

use shmsem::{Error, Scope, Semaphore};

use crate::common::{arg, arg_u32, mono_ns, report, work_dir};

/// The namespace, name and capacity of the semaphore under test.
pub const NAMESPACE: &str = "jepsen";
pub const NAME: &str = "s";
pub const CAPACITY: u32 = 4;

/// What one client did.
#[derive(Debug, Default)]
struct Counts {
    attempts: u64,
    granted: u64,
    timeouts: u64,
    would_block: u64,
    unavailable: u64,
    checks: u64,
    lost: u64,
    released: u64,
    errors: u64,
}

/// A small deterministic generator (xorshift64*), seeded per client.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

struct Log(File);

impl Log {
    fn line(&mut self, at_ns: u64, step: &str, token: u64, weight: u32) {
        // One write per line, unbuffered: a stopped or killed client leaves whole lines.
        self.0
            .write_all(format!("{at_ns} {step} {token} {weight}\n").as_bytes())
            .expect("writing the client's log");
    }
}

/// The `client` role: parameters `index` and `endpoints` (comma-separated).
pub fn run() {
    let index = arg_u32("index", 0);
    let endpoints: Vec<String> = arg("endpoints").split(',').map(str::to_owned).collect();
    let path = work_dir().join(format!("client-{index}.log"));
    let mut log = Log(OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("opening the client's log"));
    let sem = open(&endpoints);
    report("ready", index);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((u64::from(index) + 1) * 0x1000_0001));
    let mut n = Counts::default();
    let stop = work_dir().join("stop");
    while !stop.exists() {
        let weight = 1 + rng.below(3) as u32;
        n.attempts += 1;
        log.line(mono_ns(), "start", 0, weight);
        let got = if rng.below(4) == 0 {
            sem.try_acquire(weight)
        } else {
            sem.acquire_timeout(weight, Duration::from_millis(1500))
        };
        let permit = match got {
            Ok(p) => p,
            Err(e) => {
                log.line(mono_ns(), "failed", 0, weight);
                match e {
                    Error::Timeout { .. } => n.timeouts += 1,
                    Error::WouldBlock { .. } => n.would_block += 1,
                    Error::Unavailable { .. } => n.unavailable += 1,
                    other => {
                        n.errors += 1;
                        eprintln!("client {index}: acquire({weight}): {other}");
                    }
                }
                thread::sleep(Duration::from_millis(20 + rng.below(50)));
                continue;
            }
        };
        n.granted += 1;
        let token = permit
            .token()
            .expect("a cluster-scope permit has a fencing token");
        let hold = Duration::from_millis(20 + rng.below(200));
        let start = Instant::now();
        let mut lost = false;
        loop {
            let at = mono_ns();
            n.checks += 1;
            match permit.check() {
                Ok(()) => log.line(at, "held", token, weight),
                Err(Error::Lost { .. }) => {
                    log.line(mono_ns(), "lost", token, weight);
                    n.lost += 1;
                    lost = true;
                    break;
                }
                Err(e) => panic!("client {index}: check() of token {token}: {e}"),
            }
            if start.elapsed() >= hold {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        drop(permit);
        if !lost {
            log.line(mono_ns(), "released", token, weight);
            n.released += 1;
        }
    }
    report(
        "counts",
        format!(
            "attempts={} granted={} timeouts={} would_block={} unavailable={} checks={} lost={} \
             released={} errors={}",
            n.attempts,
            n.granted,
            n.timeouts,
            n.would_block,
            n.unavailable,
            n.checks,
            n.lost,
            n.released,
            n.errors
        ),
    );
}

/// Open (or create) the semaphore, trying again while the cluster is unavailable.
fn open(endpoints: &[String]) -> Semaphore {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = Semaphore::options()
            .scope(Scope::Cluster)
            .cluster(endpoints.iter().cloned())
            .namespace(NAMESPACE)
            .capacity(CAPACITY)
            .open(NAME);
        match r {
            Ok(sem) => return sem,
            Err(e) if Instant::now() < deadline => {
                eprintln!("opening the cluster semaphore: {e}; trying again");
                thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("opening the cluster semaphore: {e}"),
        }
    }
}
