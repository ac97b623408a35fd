//! A stopped process is alive (DESIGN §3): a holder that
//! is SIGSTOPped keeps its permit however long it stays stopped and however often anyone
//! reaps; once it is continued and gives the permit back, the waiter gets it.
//!
//! One semaphore of capacity 1. The holder `H` takes it and is SIGSTOPped for [`STOP`]. Meanwhile
//! a waiter `W` waits with a timeout of [`WAIT`] (so its own bounded sleeps reclaim every ~50 ms
//! too), a reaper `R` runs `Options::reap()` every [`REAP_EVERY`] and samples `info()`, and the
//! test runs `shmsem reap --json` and `shmsem show --json`. Every reap must return nothing, every
//! sample must list `H` holding 1 with value 1, and `W` must not get the permit while `H` is
//! stopped. Then `H` is continued and releases, and `W` must get the permit, after `H` began its
//! release (`CLOCK_MONOTONIC` of both, compared).
//!
//! Children re-execute this test binary (`--exact child_role`) with `SHMSEM_STOP_ROLE` naming
//! their role; the harness process never calls the library.

use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering::SeqCst},
        mpsc::{self, Receiver, RecvTimeoutError},
    },
    thread,
    time::{Duration, Instant},
};

use shmsem::{Error, Semaphore};

const ROLE_ENV: &str = "SHMSEM_STOP_ROLE";
const CHILD_TEST: &str = "child_role";
const MARK: &str = "@@stop ";
const SEM: &str = "stopped";
/// How long the holder stays stopped.
const STOP: Duration = Duration::from_secs(3);
/// The waiter's timeout.
const WAIT: Duration = Duration::from_secs(5);
/// How often the reaper reaps.
const REAP_EVERY: Duration = Duration::from_millis(200);
/// The most any child may take: generous, for a loaded two-core machine.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// `CLOCK_MONOTONIC` in nanoseconds: comparable between processes, unlike `Instant`.
fn mono_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, exclusively borrowed timespec.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

// =====================================================================================
// Child side
// =====================================================================================

/// The entry point of every child process; in the harness (no role) it returns at once.
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    match role.as_str() {
        "holder" => role_holder(),
        "waiter" => role_waiter(),
        "reaper" => role_reaper(),
        other => panic!("unknown role {other:?}"),
    }
}

fn report(key: &str, value: impl std::fmt::Display) {
    println!("\n{MARK}{key} {value}");
}

fn open() -> Semaphore {
    Semaphore::options()
        .capacity(1)
        .open(SEM)
        .unwrap_or_else(|e| panic!("opening {SEM}: {e}"))
}

/// Lines the parent writes to our stdin, as they come.
fn parent_lines() -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim().to_owned()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Take the permit, hold it until told to release, report when the release began.
fn role_holder() {
    let sem = open();
    let permit = sem
        .try_acquire(1)
        .expect("the holder takes the free permit");
    report("held", std::process::id());
    let cmd = parent_lines().recv().expect("a command from the parent");
    assert_eq!(cmd, "release", "holder told {cmd:?}");
    report("release_ns", mono_ns());
    permit.forget();
    match sem.exit(1) {
        Ok(()) => report("released", "ok"),
        Err(e) => report("released", format!("error:{e:?}")),
    }
}

/// Wait for the permit with a timeout; report the outcome and when it came.
fn role_waiter() {
    let sem = open();
    let start = Instant::now();
    report("waiting", mono_ns());
    let r = sem.acquire_timeout(1, WAIT);
    let end = mono_ns();
    report("end_ns", end);
    report("waited_ms", start.elapsed().as_millis());
    report(
        "result",
        match &r {
            Ok(_) => "ok".to_owned(),
            Err(Error::Timeout { .. }) => "Timeout".to_owned(),
            Err(e) => format!("error:{e:?}"),
        },
    );
}

/// Reap and sample until told to stop: `sample` lines of
/// `reaped=… value=… holders=pid:w,… waiters=pid,…`.
fn role_reaper() {
    let sem = open();
    let stop = parent_lines();
    let mut n = 0;
    loop {
        let reaped = match shmsem::Namespace::default().reap() {
            Ok(list) if list.is_empty() => "-".to_owned(),
            Ok(list) => list
                .iter()
                .map(|r| format!("{}:{}:{}", r.semaphore, r.pid, r.weight))
                .collect::<Vec<_>>()
                .join(","),
            Err(e) => format!("error:{e:?}"),
        };
        let info = sem.info().expect("info");
        let holders: Vec<String> = info
            .holders
            .iter()
            .map(|p| format!("{}:{}", p.pid, p.weight))
            .collect();
        let waiters: Vec<String> = info.waiters.iter().map(|p| p.pid.to_string()).collect();
        report(
            "sample",
            format!(
                "reaped={reaped} value={} holders={} waiters={}",
                info.value,
                holders.join(","),
                waiters.join(",")
            ),
        );
        n += 1;
        match stop.recv_timeout(REAP_EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => break,
        }
    }
    report("samples", n);
}

// =====================================================================================
// Parent side
// =====================================================================================

/// A fresh directory under the system temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "shmsem-stop-{test}-{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, SeqCst),
            mono_ns()
        ));
        std::fs::create_dir_all(&p).expect("creating the test directory");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process running this test binary in a role.
struct Kid {
    label: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<(String, String)>,
    seen: Vec<(String, String)>,
    log: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

impl Kid {
    fn spawn(shm: &Path, role: &str) -> Kid {
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, role)
            .env(shmsem::DIR_ENV, shm)
            .env_remove(shmsem::SELF_ENV)
            .env_remove(shmsem::failpoint::ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {role}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        let out_log = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find(MARK) {
                    let rest = &line[at + MARK.len()..];
                    let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                    let _ = tx.send((k.to_owned(), v.trim().to_owned()));
                }
                let mut l = out_log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let err_log = log.clone();
        thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            err_log.lock().unwrap().push_str(&s);
        });
        let stdin = child.stdin.take();
        Kid {
            label: role.to_owned(),
            child,
            stdin,
            lines,
            seen: Vec::new(),
            log,
            status: None,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn transcript(&self) -> String {
        format!(
            "--- {} (pid {}) status {:?}\n{}",
            self.label,
            self.child.id(),
            self.status,
            self.log.lock().unwrap()
        )
    }

    /// Take in whatever the child reported so far.
    fn drain(&mut self) {
        while let Ok(kv) = self.lines.try_recv() {
            self.seen.push(kv);
        }
    }

    fn has(&mut self, key: &str) -> bool {
        self.drain();
        self.seen.iter().any(|(k, _)| k == key)
    }

    /// The value the child reports under `key`, waiting for it.
    fn expect(&mut self, key: &str) -> String {
        if let Some((_, v)) = self.seen.iter().find(|(k, _)| k == key) {
            return v.clone();
        }
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((k, v)) => {
                    self.seen.push((k.clone(), v.clone()));
                    if k == key {
                        return v;
                    }
                }
                Err(_) => {
                    thread::sleep(Duration::from_millis(20));
                    panic!(
                        "{} did not report {key:?}\n{}",
                        self.label,
                        self.transcript()
                    )
                }
            }
        }
    }

    fn all(&mut self, key: &str) -> Vec<String> {
        self.drain();
        self.seen
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("writing to a child");
        stdin.flush().expect("flushing a child's stdin");
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait for a normal exit with status 0 (killing it and failing after the timeout).
    fn success(&mut self) {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not exit within {CHILD_TIMEOUT:?}\n{}",
                    self.label,
                    self.transcript()
                );
            }
            thread::sleep(Duration::from_millis(2));
        };
        self.status = Some(status);
        // Let the readers catch the last lines.
        thread::sleep(Duration::from_millis(20));
        self.drain();
        assert!(
            status.success(),
            "{} failed: {status:?} (signal {:?})\n{}",
            self.label,
            status.signal(),
            self.transcript()
        );
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            // A stopped child dies of SIGKILL too.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid of our own child and a valid signal number.
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(
        r,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// The state letter of `/proc/PID/stat` (`T` for stopped).
fn proc_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading stat");
    let after = &stat[stat.rfind(')').expect("stat has a comm") + 1..];
    after.trim_start().chars().next().expect("a state")
}

fn cli(shm: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_shmsem"))
        .args(args)
        .env(shmsem::DIR_ENV, shm)
        .env_remove(shmsem::SELF_ENV)
        .env_remove(shmsem::failpoint::ENV)
        .stdin(Stdio::null())
        .output()
        .expect("running the shmsem CLI");
    assert!(
        out.status.success(),
        "shmsem {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "shmsem {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn a_stopped_holder_keeps_its_permit() {
    let dir = TempDir::new("held");
    let shm = dir.0.clone();

    let mut holder = Kid::spawn(&shm, "holder");
    let h: u32 = holder.expect("held").parse().expect("pid");
    assert_eq!(h, holder.pid());

    signal(h, libc::SIGSTOP);
    let stopped_at = Instant::now();
    while proc_state(h) != 'T' {
        assert!(
            stopped_at.elapsed() < Duration::from_secs(5),
            "holder {h} did not stop"
        );
        thread::sleep(Duration::from_millis(1));
    }

    let mut waiter = Kid::spawn(&shm, "waiter");
    let mut reaper = Kid::spawn(&shm, "reaper");
    waiter.expect("waiting");

    // From outside: the CLI sees the stopped holder, and reaps nothing.
    thread::sleep(Duration::from_millis(500));
    let shown = cli(&shm, &["show", SEM, "--json"]);
    let reaped = cli(&shm, &["reap", "--json"]);
    assert_eq!(shown["value"], 1, "shmsem show while stopped: {shown}");
    assert_eq!(
        shown["holders"],
        serde_json::json!([{"pid": h, "weight": 1, "since_ms": shown["holders"][0]["since_ms"]}]),
        "shmsem show while stopped must list the stopped holder: {shown}"
    );
    assert_eq!(
        reaped,
        serde_json::json!([]),
        "shmsem reap took something from a stopped holder"
    );

    // The stop lasts STOP; the reaper stops sampling before the holder is continued.
    thread::sleep(STOP.saturating_sub(stopped_at.elapsed()));
    reaper.send("stop");
    reaper.success();
    let stop_len = stopped_at.elapsed();
    assert_eq!(proc_state(h), 'T', "the holder must still be stopped");
    assert!(
        !waiter.has("result"),
        "the waiter finished while the holder was stopped: {:?}",
        waiter.seen
    );
    assert!(
        waiter.alive(),
        "the waiter exited while the holder was stopped"
    );

    // Continue and release: the waiter gets the permit.
    signal(h, libc::SIGCONT);
    holder.send("release");
    let release_ns: u64 = holder.expect("release_ns").parse().expect("ns");
    assert_eq!(holder.expect("released"), "ok", "the holder's release");
    holder.success();
    let result = waiter.expect("result");
    let end_ns: u64 = waiter.expect("end_ns").parse().expect("ns");
    let waited_ms: u64 = waiter.expect("waited_ms").parse().expect("ms");
    waiter.success();
    assert_eq!(
        result, "ok",
        "the waiter did not get the permit after the release"
    );
    assert!(
        end_ns >= release_ns,
        "the waiter got the permit {} ns before the holder began to release it",
        release_ns - end_ns
    );

    // Every reaper sample, all taken while the holder was stopped.
    let samples = reaper.all("sample");
    let expect_prefix = format!("reaped=- value=1 holders={h}:1 waiters=");
    for s in &samples {
        assert!(
            s.starts_with(&expect_prefix),
            "a reap while the holder was stopped saw {s:?}, expected {expect_prefix}…"
        );
    }
    let with_waiter = samples
        .iter()
        .filter(|s| {
            s.rsplit_once("waiters=")
                .is_some_and(|(_, w)| w.split(',').any(|p| p == waiter.pid().to_string()))
        })
        .count();
    assert!(
        samples.len() >= 5,
        "only {} reaps in {stop_len:?}",
        samples.len()
    );
    assert!(
        with_waiter > 0,
        "no sample listed the waiter {}: {samples:?}",
        waiter.pid()
    );

    let after = cli(&shm, &["show", SEM, "--json"]);
    assert_eq!(after["value"], 0, "after the waiter gave back: {after}");
    assert_eq!(after["holders"], serde_json::json!([]), "{after}");

    println!(
        "stopped: holder {h} stopped {stop_len:.1?}; {} reaps by the reaper (every {REAP_EVERY:?}) \
         + 1 `shmsem reap`, all empty, all listing {h}:1 with value 1 ({with_waiter} also \
         listing the waiter); waiter got the permit after {waited_ms} ms, {:.1} ms after the \
         release began",
        samples.len(),
        (end_ns - release_ns) as f64 / 1e6
    );
}
