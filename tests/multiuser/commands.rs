//! Running commands as someone: `shmsem`, a shell script, a sleeper or a holder as one of a
//! test's users ([`World::command`] and the methods beside it), what a command did ([`Out`]),
//! commands started together and each timed alone ([`Pending`]), and what `show` and `ps` said.

use std::{
    fmt, fs,
    io::{self, Read},
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    HANG_LIMIT, PATIENCE_BOUND,
    users::{User, World, lock},
};

impl World {
    /// `program ARGS` as `who`, with a clean environment (no `SHMSEM_DIR`, no `SHMSEM_SELF`).
    pub fn command(&self, who: &User, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", "/")
            .env("LC_ALL", "C")
            .current_dir("/")
            .stdin(Stdio::null());
        if who.uid != 0 {
            let (uid, gid, groups) = (who.uid, who.gid, who.groups.clone());
            // SAFETY: between fork and exec the closure makes only the setgroups, setresgid and
            // setresuid system calls, on memory allocated before the fork.
            unsafe {
                c.pre_exec(move || {
                    if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                        || libc::setresgid(gid, gid, gid) != 0
                        || libc::setresuid(uid, uid, uid) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                })
            };
        }
        c
    }

    /// `shmsem ARGS` as `who`.
    pub fn shmsem(&self, who: &User, args: &[&str]) -> Command {
        self.command(who, &self.shmsem.clone(), args)
    }

    /// `shmsem --scope SCOPE --namespace NS ARGS` as `who`.
    pub fn scoped(&self, who: &User, scope: &str, ns: &str, args: &[&str]) -> Command {
        let all = [&["--scope", scope, "--namespace", ns][..], args].concat();
        self.shmsem(who, &all)
    }

    /// `shmsem --scope global --namespace NS ARGS` as `who`.
    pub fn global(&self, who: &User, ns: &str, args: &[&str]) -> Command {
        self.scoped(who, "global", ns, args)
    }

    /// Run `shmsem --scope global --namespace NS ARGS` as `who`, and say what it did.
    pub fn run_in(&self, who: &User, ns: &str, args: &[&str]) -> Out {
        run(who, self.global(who, ns, args))
    }

    /// `sh -c SCRIPT` as `who`.
    pub fn sh(&self, who: &User, script: &str) -> Out {
        run(
            who,
            self.command(who, Path::new("/bin/sh"), &["-c", script]),
        )
    }

    /// Keep `child` to be killed when the test ends.
    pub fn keep(&self, child: Child) {
        lock(&self.children).push(child);
    }

    /// Start `c` in the background, without output, to be killed when the test ends; `what`
    /// names it if it cannot start. Returns its pid.
    pub fn background(&self, mut c: Command, what: &str) -> u32 {
        let child = c
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let pid = child.id();
        self.keep(child);
        pid
    }

    /// `sleep 120` as `who`, in the background: a live process of that user. Returns its pid.
    pub fn sleeper(&self, who: &User) -> u32 {
        self.background(self.command(who, Path::new("sleep"), &["120"]), "sleep")
    }

    /// `shmsem run NAME -- sleep 120` as `who` in global namespace `ns`, in the background;
    /// returns the holder's pid (the `sleep`, which `show` lists) once it holds.
    pub fn hold(&self, who: &User, ns: &str, name: &str) -> u32 {
        let run_pid = self.background(
            self.global(who, ns, &["run", name, "--", "sleep", "120"]),
            "shmsem run",
        );
        poll(Duration::from_secs(10), Duration::from_millis(20), || {
            let shown = run(who, self.global(who, ns, &["show", name, "--json"]));
            if shown.code == Some(0)
                && let Some(p) = holder_started_by(&shown, run_pid)
            {
                return Ok(p);
            }
            Err(format!(
                "{} never came to hold {ns}/{name}: {shown}",
                who.role
            ))
        })
    }
}

/// Ask `probe` every `nap` until it answers `Ok`, and return that answer; once `limit` has
/// passed, fail saying what `probe` said last.
pub fn poll<T, E: fmt::Display>(
    limit: Duration,
    nap: Duration,
    mut probe: impl FnMut() -> Result<T, E>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match probe() {
            Ok(answer) => return answer,
            Err(why) => assert!(Instant::now() < deadline, "{why}"),
        }
        thread::sleep(nap);
    }
}

/// The holder, listed by `show --json` output `shown`, that is a child of process `parent`.
pub fn holder_started_by(shown: &Out, parent: u32) -> Option<u32> {
    pids(&shown.json()["holders"])
        .into_iter()
        .find(|&p| parent_of(p) == Some(parent))
}

/// `run NAME --timeout MS -- true`: take one permit of `name` and give it back, waiting at most
/// `ms` milliseconds for it.
pub fn take_once<'a>(name: &'a str, ms: &'a str) -> [&'a str; 6] {
    ["run", name, "--timeout", ms, "--", "true"]
}

/// The parent of process `pid`.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `PID-START` of process `pid`, as `SHMSEM_SELF` names a tree.
pub fn tree_id(pid: u32) -> String {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading a stat file");
    let start = stat[stat.rfind(')').expect("a stat line") + 1..]
        .split_whitespace()
        .nth(19)
        .expect("field 22 of a stat line");
    format!("{pid}-{start}")
}

pub fn kill(pid: u32) {
    // SAFETY: sending a signal to a pid.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

// ===== running commands =====

/// What one command did.
#[derive(Debug)]
pub struct Out {
    who: &'static str,
    args: Vec<String>,
    /// `None`: killed by a signal (or by us, when it hung).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
    pub hung: bool,
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{} ran {:?}: exit {:?} after {:?}{}; stdout {:?}; stderr {:?}]",
            self.who,
            self.args,
            self.code,
            self.took,
            if self.hung { " (HUNG, killed)" } else { "" },
            self.stdout,
            self.stderr
        )
    }
}

impl Out {
    /// Exited with `code`; a failing `shmsem` (not a `sh -c` script) said why on stderr, in a
    /// line starting `shmsem: `.
    pub fn status(&self, code: i32) -> &Out {
        assert!(
            !self.hung && self.code == Some(code),
            "expected exit {code}: {self}"
        );
        if code != 0 && self.args.first().is_some_and(|a| a != "-c") {
            assert!(
                self.stderr.starts_with("shmsem: "),
                "expected a `shmsem: ` message: {self}"
            );
        }
        self
    }

    pub fn ok(&self) -> &Out {
        self.status(0)
    }

    /// Took no longer than `bound`.
    pub fn within(&self, bound: Duration) -> &Out {
        assert!(
            !self.hung && self.took <= bound,
            "took longer than {bound:?}: {self}"
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self}"))
    }
}

/// Expectations on several commands started together, all checked before the test fails, so
/// that one failure does not hide the others.
#[derive(Debug, Default)]
pub struct Checks(Vec<String>);

impl Checks {
    /// `out` exited with `code` within `bound`, saying each of `says` on stderr.
    pub fn expect(&mut self, out: &Out, code: i32, bound: Duration, says: &[String]) {
        let mut why = Vec::new();
        if out.hung || out.code != Some(code) {
            why.push(format!("exit {code} expected"));
        }
        if out.took > bound {
            why.push(format!("took longer than {bound:?}"));
        }
        for text in says {
            if !out.stderr.contains(text) {
                why.push(format!("{text:?} expected on stderr"));
            }
        }
        if !why.is_empty() {
            self.0.push(format!("{}: {out}", why.join(", ")));
        }
    }

    /// `ps` output `out` lists `ns/name` held with weight 1.
    pub fn lists_held(&mut self, out: &Out, ns: &str, name: &str) {
        let held = (ns.to_owned(), name.to_owned(), "held".to_owned(), 1);
        if out.code != Some(0) || !ps_entries(out).contains(&held) {
            self.0
                .push(format!("{ns}/{name} held with weight 1 expected: {out}"));
        }
    }

    pub fn done(self) {
        assert!(
            self.0.is_empty(),
            "{} failed expectations:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

/// A command to start together with others, and what it must do: `(who, command, code, bound,
/// says)`, exit `code` within `bound`, saying each of `says` on stderr.
pub type Row<'a> = (&'a User, Command, i32, Duration, Vec<String>);

/// Start the command of every row at once, wait for them all, and check each against its row.
/// Returns what each did, in the rows' order, and the checks, to add to and finish.
pub fn together(rows: Vec<Row<'_>>) -> (Vec<Out>, Checks) {
    let mut expected = Vec::new();
    let started: Vec<Pending> = rows
        .into_iter()
        .map(|(who, c, code, bound, says)| {
            expected.push((code, bound, says));
            start(who, c)
        })
        .collect();
    let outs: Vec<Out> = started.into_iter().map(Pending::finish).collect();
    let mut checks = Checks::default();
    for (out, (code, bound, says)) in outs.iter().zip(expected) {
        checks.expect(out, code, bound, &says);
    }
    (outs, checks)
}

/// A started command, watched by a thread of its own that notes when it exits (so that commands
/// started together are each timed alone) and kills it at [`HANG_LIMIT`].
pub struct Pending {
    who: &'static str,
    args: Vec<String>,
    watcher: thread::JoinHandle<(Option<i32>, Duration, bool)>,
    readers: Vec<thread::JoinHandle<String>>,
}

pub fn start(who: &User, mut c: Command) -> Pending {
    let args = c
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = c.spawn().expect("starting a command");
    let mut readers = Vec::new();
    let out: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("piped"));
    let err: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("piped"));
    for mut pipe in [out, err] {
        readers.push(thread::spawn(move || {
            let mut s = Vec::new();
            let _ = pipe.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        }));
    }
    let watcher = thread::spawn(move || {
        let mut nap = Duration::from_micros(200);
        loop {
            if let Some(s) = child.try_wait().expect("waiting for a command") {
                return (s.code(), started.elapsed(), false);
            }
            if started.elapsed() > HANG_LIMIT {
                let _ = child.kill();
                let s = child.wait().expect("waiting for a killed command");
                return (s.code(), started.elapsed(), true);
            }
            thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(5));
        }
    });
    Pending {
        who: who.role,
        args,
        watcher,
        readers,
    }
}

impl Pending {
    /// Wait for it to exit (or be killed as hung) and for its output.
    pub fn finish(self) -> Out {
        let (code, took, hung) = self.watcher.join().expect("the watcher thread");
        let mut texts = self
            .readers
            .into_iter()
            .map(|r| r.join().unwrap_or_default());
        Out {
            who: self.who,
            args: self.args,
            code,
            stdout: texts.next().unwrap_or_default(),
            stderr: texts.next().unwrap_or_default(),
            took,
            hung,
        }
    }
}

pub fn run(who: &User, c: Command) -> Out {
    start(who, c).finish()
}

/// Pids of a `show --json` party list.
pub fn pids(parties: &Value) -> Vec<u32> {
    parties
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["pid"].as_u64().map(|p| p as u32))
                .collect()
        })
        .unwrap_or_default()
}

/// `(namespace, name, state, weight)` of every entry of a `ps --json` document.
pub fn ps_entries(out: &Out) -> Vec<(String, String, String, u64)> {
    let v = out.json();
    let all = v
        .as_array()
        .unwrap_or_else(|| panic!("ps --json is not an array: {out}"));
    all.iter()
        .map(|e| {
            (
                e["namespace"].as_str().unwrap_or_default().to_owned(),
                e["name"].as_str().unwrap_or_default().to_owned(),
                e["state"].as_str().unwrap_or_default().to_owned(),
                e["weight"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// `ps` lists `ns/name` held with weight 1.
pub fn lists_held(out: &Out, ns: &str, name: &str) {
    let held = (ns.to_owned(), name.to_owned(), "held".to_owned(), 1);
    assert!(
        ps_entries(out).contains(&held),
        "expected {ns}/{name} held with weight 1: {out}"
    );
}

/// `ps PID --json` as `who` answers in time and lists `ns/name` held with weight 1.
pub fn ps_lists_held(w: &World, who: &User, pid: u32, ns: &str, name: &str) {
    let ps = run(who, w.shmsem(who, &["ps", &pid.to_string(), "--json"]));
    ps.ok().within(PATIENCE_BOUND);
    lists_held(&ps, ns, name);
}

/// `show NAME --json` of global namespace `ns` as `who`: value and holder pids.
pub fn shown(w: &World, who: &User, ns: &str, name: &str) -> (u64, Vec<u32>, Vec<u32>) {
    let out = run(who, w.global(who, ns, &["show", name, "--json"]));
    out.ok();
    let v = out.json();
    (
        v["value"].as_u64().expect("value"),
        pids(&v["holders"]),
        pids(&v["waiters"]),
    )
}

/// `who` creates persistent `name` in `ns`, with `more` arguments, for group ops (mode 0660).
pub fn create_for_ops(w: &World, who: &User, ns: &str, name: &str, more: &[&str]) {
    let ops = w.ops.arg();
    let shared = ["--persistent", "--group", &ops, "--mode", "0660"];
    w.run_in(who, ns, &[&["create", name][..], &shared, more].concat())
        .ok();
}

/// alice creates capacity-1 persistent `name` in `ns`, group ops, mode 0660.
pub fn create_ops(w: &World, ns: &str, name: &str) {
    create_for_ops(w, &w.alice, ns, name, &["--capacity", "1"]);
}
