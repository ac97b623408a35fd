//! End-to-end tests of the `shmsem` binary (README, *In a shell*).
//!
//! Every test gets its own fresh directory as `SHMSEM_DIR`, so tests running in parallel never
//! meet. Holders are helper processes (`sleep`) that the tests spawn and kill, named with
//! `--holder PID`, except where the default holder (the parent process: this test harness) is
//! what is tested.

mod common;

use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use common::{
    TestDir,
    cli::{BIN, Sleeper as Helper, eventually},
};
use serde_json::Value;

/// A test's fresh directory (its `SHMSEM_DIR` and its own files), removed at the end of the test.
struct Env {
    dir: TestDir,
}

impl Env {
    fn new(test: &str) -> Env {
        Env {
            dir: TestDir::new(test),
        }
    }

    /// `shmsem ARGS` with this test's directory and no inherited `self` tree.
    fn command(&self, args: &[&str]) -> Command {
        common::cli::command(&self.dir, args)
    }

    /// Run `shmsem ARGS` to completion.
    fn run(&self, args: &[&str]) -> Run {
        let start = Instant::now();
        let out = self.command(args).output().expect("running shmsem");
        Run::new(args, out, start.elapsed())
    }

    /// Run `shmsem ARGS`, which must succeed.
    fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(r.code, 0, "{r:?}");
        r
    }

    /// `show NAME --json`.
    fn show(&self, name: &str) -> Value {
        self.ok(&["show", name, "--json"]).json()
    }
}

/// What one run of `shmsem` did.
#[derive(Debug)]
struct Run {
    #[allow(dead_code)] // read through `Debug`, in failure messages
    args: Vec<String>,
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn new(args: &[&str], out: Output, took: Duration) -> Run {
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.stdout))
    }

    /// Failed with `code` and one line on stderr starting `shmsem: `; that line.
    fn failed(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "{self:?}");
        assert!(self.stderr.starts_with("shmsem: "), "{self:?}");
        assert_eq!(self.stderr.lines().count(), 1, "{self:?}");
        assert!(!self.stderr.contains("panicked"), "{self:?}");
        self.stderr.trim_end()
    }
}

/// Fields of an `ls` text row.
fn fields(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn exists(path: &Path) -> bool {
    path.try_exists().unwrap_or(false)
}

// ===== create, ls, show =====

#[test]
fn create_prints_its_line_and_is_get_or_create() {
    let env = Env::new("create");
    let r = env.ok(&["create", "build", "--capacity", "3"]);
    assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
    assert_eq!(
        fields(&r.stdout)[..6],
        ["build", "auto", "3", "0", "0", "0"]
    );

    // Reopening keeps the capacity it was created with.
    let r = env.ok(&["create", "build", "--capacity", "5"]);
    assert_eq!(
        fields(&r.stdout)[..6],
        ["build", "auto", "3", "0", "0", "0"]
    );
    let v = env.ok(&["create", "build", "--json"]).json();
    assert_eq!(v["capacity"], 3);
    assert_eq!(v["name"], "build");

    // The line is laid out as `ls` lays it out.
    let ls = env.ok(&["ls"]);
    assert_eq!(ls.stdout.lines().nth(1), Some(r.stdout.trim_end()));

    let r = env.ok(&["create", "keep", "--persistent", "--capacity", "2"]);
    assert_eq!(
        fields(&r.stdout)[..6],
        ["keep", "persistent", "2", "0", "0", "0"]
    );
    let v = env
        .ok(&["create", "idle", "--idle-ms", "1234", "--json"])
        .json();
    assert_eq!(
        (v["kind"].as_str(), v["idle_ms"].as_u64()),
        (Some("auto"), Some(1234))
    );
}

#[test]
fn ls_and_show_json_have_the_documented_shape() {
    let env = Env::new("json");
    let holder = Helper::spawn();
    env.ok(&["create", "b", "--capacity", "4", "--persistent"]);
    env.ok(&["create", "a", "--capacity", "2"]);
    env.ok(&["acquire", "a", "--holder", &holder.pid()]);

    let ls = env.ok(&["ls", "--json"]).json();
    let all = ls.as_array().expect("ls --json is an array");
    assert_eq!(all.len(), 2);
    let a = &all[0];
    assert_eq!(a["name"], "a");
    assert_eq!(a["scope"], "local");
    assert_eq!(a["namespace"], "default");
    assert_eq!(a["kind"], "auto");
    for (key, want) in [
        ("capacity", 2),
        ("value", 1),
        ("holders", 1),
        ("waiters", 0),
    ] {
        assert_eq!(a[key].as_u64(), Some(want), "{key} in {a}");
    }
    // The owner of the namespace's files: names, ids, and the local scope's mode.
    assert_eq!(a["mode"], "0600", "{a}");
    assert!(a["owner"].is_string() && a["group"].is_string(), "{a}");
    assert!(a["uid"].is_u64() && a["gid"].is_u64(), "{a}");
    let b = &all[1];
    assert_eq!(
        (b["name"].as_str(), b["kind"].as_str()),
        (Some("b"), Some("persistent"))
    );
    assert_eq!(
        (b["capacity"].as_u64(), b["value"].as_u64()),
        (Some(4), Some(0))
    );

    let show = env.show("a");
    assert_eq!(show["capacity"], 2);
    assert_eq!(show["value"], 1);
    let holders = show["holders"].as_array().expect("holders is an array");
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0]["pid"].to_string(), holder.pid());
    assert_eq!(holders[0]["weight"], 1);
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let since = holders[0]["since_ms"]
        .as_u64()
        .expect("since_ms is a number");
    assert!(
        since <= now_ms && now_ms - since < 60_000,
        "since_ms {since}, now {now_ms}"
    );
    assert_eq!(show["waiters"].as_array().map(Vec::len), Some(0));

    // A namespace is a separate table.
    let other = env.ok(&["ls", "--json", "--namespace", "other"]).json();
    assert_eq!(other.as_array().map(Vec::len), Some(0));
}

#[test]
fn ls_text_has_a_header_and_a_row_per_semaphore() {
    let env = Env::new("lstext");
    env.ok(&["create", "one"]);
    env.ok(&["create", "two", "--capacity", "7"]);
    let ls = env.ok(&["ls"]);
    let lines: Vec<_> = ls.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{ls:?}");
    assert_eq!(
        fields(lines[0]),
        [
            "NAME", "KIND", "CAPACITY", "VALUE", "HOLDERS", "WAITERS", "OWNER"
        ]
    );
    let two = fields(lines[2]);
    assert_eq!(two[..6], ["two", "auto", "7", "0", "0", "0"]);
    // The owner: `user:group mode`, this user's, with the local scope's mode.
    assert_eq!(two.len(), 8, "{ls:?}");
    assert_eq!(two[6].split(':').count(), 2, "{ls:?}");
    assert_eq!(two[7], "0600", "{ls:?}");
}

#[test]
fn show_text_lists_the_holder_pid_and_weight() {
    let env = Env::new("showtext");
    let holder = Helper::spawn();
    env.ok(&["create", "s", "--capacity", "5"]);
    env.ok(&["acquire", "s", "--weight", "3", "--holder", &holder.pid()]);
    let show = env.ok(&["show", "s"]);
    let row = show
        .stdout
        .lines()
        .find(|l| fields(l).first() == Some(&holder.pid().as_str()))
        .unwrap_or_else(|| panic!("no row for the holder: {show:?}"));
    assert_eq!(fields(row)[1], "3", "{show:?}");
    assert!(show.stdout.contains("value:      3"), "{show:?}");
}

// ===== acquire and release =====

#[test]
fn capacity_two_admits_two_holders_and_a_third_would_block() {
    let env = Env::new("cap2");
    let (h1, h2) = (Helper::spawn(), Helper::spawn());
    env.ok(&["acquire", "pool", "--capacity", "2", "--holder", &h1.pid()]);
    env.ok(&["acquire", "pool", "--holder", &h2.pid()]);
    let third = env.run(&["acquire", "pool", "--timeout", "0", "--holder", &h1.pid()]);
    let line = third.failed(75);
    assert!(line.contains("would block"), "{third:?}");
    // The command's own advice replaces the library's, which names methods.
    assert!(
        line.ends_with(
            "; --timeout T (such as 250ms or 2s) waits up to T, and no --timeout as long as it \
             takes"
        ),
        "{third:?}"
    );
    assert!(!line.contains("Semaphore::"), "{third:?}");
    assert!(third.took < Duration::from_secs(1), "{third:?}");
    assert_eq!(env.show("pool")["value"], 2);
}

#[test]
fn a_timeout_is_not_early() {
    let env = Env::new("timeout");
    let holder = Helper::spawn();
    env.ok(&["acquire", "full", "--holder", &holder.pid()]);
    let waiter = Helper::spawn();
    let r = env.run(&[
        "acquire",
        "full",
        "--timeout",
        "300",
        "--holder",
        &waiter.pid(),
    ]);
    let line = r.failed(75);
    assert!(line.contains("timed out"), "{r:?}");
    assert!(
        line.ends_with("; `shmsem show full` lists its holders"),
        "{r:?}"
    );
    assert!(!line.contains("Semaphore::info"), "{r:?}");
    assert!(r.took >= Duration::from_millis(300), "{r:?}");
    assert!(r.took < Duration::from_secs(5), "{r:?}");
}

#[test]
fn weights_add_up_to_the_capacity() {
    let env = Env::new("weights");
    let (h1, h2, h3) = (Helper::spawn(), Helper::spawn(), Helper::spawn());
    env.ok(&["create", "w", "--capacity", "5"]);
    env.ok(&["acquire", "w", "--weight", "3", "--holder", &h1.pid()]);
    env.ok(&["acquire", "w", "--weight", "2", "--holder", &h2.pid()]);
    let r = env.run(&["acquire", "w", "--timeout", "100", "--holder", &h3.pid()]);
    r.failed(75);
    let show = env.show("w");
    assert_eq!(show["value"], 5);
    let mut held: Vec<(String, u64)> = show["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["pid"].to_string(), h["weight"].as_u64().unwrap()))
        .collect();
    held.sort_by_key(|h| h.1);
    assert_eq!(held, [(h2.pid(), 2), (h1.pid(), 3)]);

    // Giving back 2 of the 3 makes room for 1 (and exactly 2).
    env.ok(&["release", "w", "--count", "2", "--holder", &h1.pid()]);
    env.ok(&[
        "acquire",
        "w",
        "--weight",
        "2",
        "--timeout",
        "0",
        "--holder",
        &h3.pid(),
    ]);
    assert_eq!(env.show("w")["value"], 5);
}

#[test]
fn releasing_more_than_held_is_an_error_that_changes_nothing() {
    let env = Env::new("overrelease");
    let holder = Helper::spawn();
    env.ok(&["acquire", "r", "--capacity", "3", "--holder", &holder.pid()]);
    let r = env.run(&["release", "r", "--count", "2", "--holder", &holder.pid()]);
    assert!(r.failed(1).contains("cannot release 2"), "{r:?}");
    assert_eq!(env.show("r")["value"], 1);
    env.ok(&["release", "r", "--holder", &holder.pid()]);
    assert_eq!(env.show("r")["value"], 0);
    // Nothing is held now: even 1 is too much.
    env.run(&["release", "r", "--holder", &holder.pid()])
        .failed(1);
    // A semaphore that does not exist.
    env.run(&["release", "nope"]).failed(1);
}

#[test]
fn the_default_holder_is_the_parent_process() {
    let env = Env::new("parent");
    // No --timeout: waits as long as it takes (and gets it at once).
    env.ok(&["acquire", "mine", "--weight", "2", "--capacity", "2"]);
    let show = env.show("mine");
    assert_eq!(show["holders"][0]["pid"], std::process::id());
    assert_eq!(show["holders"][0]["weight"], 2);
    env.ok(&["release", "mine", "--count", "2"]);
    assert_eq!(env.show("mine")["value"], 0);
}

// ===== run =====

#[test]
fn run_passes_the_exit_status_through_and_releases() {
    let env = Env::new("run");
    let r = env.run(&["run", "job", "--", "sh", "-c", "exit 7"]);
    assert_eq!(r.code, 7, "{r:?}");
    let show = env.show("job");
    assert_eq!(show["value"], 0);
    assert_eq!(show["holders"].as_array().map(Vec::len), Some(0));

    // The command sees the semaphore held while it runs.
    let inner = format!("{BIN} show wide --json");
    let args = ["run", "wide", "--weight", "2", "--capacity", "3", "--"];
    let r = env.ok(&[&args[..], &["sh", "-c", &inner]].concat());
    let seen: Value = serde_json::from_str(&r.stdout).expect("the child's JSON");
    assert_eq!(seen["value"], 2);

    // A death by signal is 128 + the signal.
    let r = env.run(&["run", "job", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(r.code, 128 + 9, "{r:?}");
    assert_eq!(env.show("job")["value"], 0);

    // A command that does not exist.
    let r = env.run(&["run", "job", "--", "/nonexistent/shmsem-test-command"]);
    assert!(r.failed(127).contains("cannot run"), "{r:?}");
    assert_eq!(env.show("job")["value"], 0);
}

#[test]
fn run_times_out_without_running_the_command() {
    let env = Env::new("runtimeout");
    let holder = Helper::spawn();
    env.ok(&[
        "acquire",
        "one",
        "--capacity",
        "1",
        "--holder",
        &holder.pid(),
    ]);
    let marker = env.dir.work_file("ran");
    let marker_s = marker.to_str().unwrap();
    let r = env.run(&["run", "one", "--timeout", "100", "--", "touch", marker_s]);
    r.failed(75);
    assert!(r.took >= Duration::from_millis(100), "{r:?}");
    assert!(!exists(&marker), "the command ran");
    let r = env.run(&["run", "one", "--timeout", "0", "--", "touch", marker_s]);
    r.failed(75);
    assert!(!exists(&marker), "the command ran");
}

#[test]
fn sigterm_to_run_reaches_the_child() {
    let env = Env::new("sigterm");
    let ready = env.dir.work_file("trap-set");
    let script = r#"trap "exit 42" TERM; touch "$1"; sleep 5 & wait"#;
    let start = Instant::now();
    // The orphaned `sleep 5` would keep a captured pipe open: no pipes.
    let mut run = env
        .command(&[
            "run",
            "t",
            "--",
            "sh",
            "-c",
            script,
            "sh",
            ready.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning shmsem run");
    eventually("the child set its trap", || exists(&ready));
    let kill = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .expect("running kill");
    assert!(kill.success());
    let status = run.wait().expect("waiting for shmsem run");
    assert_eq!(status.code(), Some(42), "{status:?}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "the child was not interrupted"
    );
    assert_eq!(env.show("t")["value"], 0);
}

// ===== bad input =====

#[test]
fn bad_names_and_numbers_are_usage_errors() {
    let env = Env::new("usage");
    for args in [
        &["create", "a/b"][..],
        &["create", ".."],
        &["create", ""],
        &["--namespace", "x y", "ls"],
        &["create", "ok", "--capacity", "0"],
        &["create", "ok", "--capacity", "many"],
        &["create", "ok", "--mode", "0999"],
        &["acquire", "ok", "--weight", "0"],
        &["acquire", "ok", "--timeout", "-1"],
        &["release", "ok", "--count", "1.5"],
        &["--scope", "machine", "ls"],
        &["ls", "--bogus"],
        &["run", "ok"],
        &["frobnicate"],
    ] {
        let r = env.run(args);
        r.failed(2);
    }
    let r = env.run(&["create", "a/b"]);
    assert!(r.stderr.contains("invalid name"), "{r:?}");
    // Nothing was created by any of them.
    assert_eq!(env.ok(&["ls", "--json"]).json(), serde_json::json!([]));
}

#[test]
fn state_dependent_errors_exit_1() {
    let env = Env::new("state");
    env.ok(&["create", "three", "--capacity", "3"]);
    let r = env.run(&[
        "acquire",
        "three",
        "--weight",
        "4",
        "--holder",
        &std::process::id().to_string(),
    ]);
    let line = r.failed(1);
    assert!(line.contains("larger than the capacity"), "{r:?}");
    assert!(
        line.ends_with("; `shmsem set three --capacity N` raises it"),
        "{r:?}"
    );
    let r = env.run(&["show", "absent", "--scope", "global", "--namespace", "ci"]);
    assert!(
        r.failed(1).ends_with(
            "; `shmsem ls --scope global --namespace ci` lists the semaphores of this --scope \
             and --namespace"
        ),
        "{r:?}"
    );
    env.run(&["rm", "absent"]).failed(1);
    env.run(&["create", "g", "--group", "no-such-group-shmsem"])
        .failed(1);
}

#[test]
fn an_io_error_names_its_cause_once() {
    let env = Env::new("io");
    // A `SHMSEM_DIR` below a regular file: creating it fails with ENOTDIR.
    let file = env.dir.work_file("a-file");
    std::fs::write(&file, b"").expect("creating a file");
    let dir = file.join("shm");
    let out = env
        .command(&["create", "x"])
        .env("SHMSEM_DIR", &dir)
        .output()
        .expect("running shmsem");
    let r = Run::new(&["create", "x"], out, Duration::ZERO);
    let line = r.failed(1);
    let cause = std::io::Error::from_raw_os_error(libc::ENOTDIR).to_string();
    assert_eq!(line.matches(&cause).count(), 1, "{r:?}");
    assert_eq!(
        line,
        format!("shmsem: creating {} failed: {cause}", dir.display())
    );
}

#[test]
fn help_and_version_exit_0() {
    let env = Env::new("help");
    assert!(env.ok(&["--help"]).stdout.contains("Usage"));
    assert!(env.ok(&["run", "--help"]).stdout.contains("--timeout"));
    assert!(env.ok(&["--version"]).stdout.starts_with("shmsem "));
}

// ===== rm and reap =====

#[test]
fn rm_refuses_while_held_unless_forced() {
    let env = Env::new("rm");
    let holder = Helper::spawn();
    env.ok(&["acquire", "x", "--holder", &holder.pid()]);
    let r = env.run(&["rm", "x"]);
    let line = r.failed(1);
    assert!(line.contains("held"), "{r:?}");
    assert!(
        line.ends_with("; `shmsem rm x --force` removes it anyway"),
        "{r:?}"
    );
    assert_eq!(env.show("x")["value"], 1);
    env.ok(&["rm", "x", "--force"]);
    env.run(&["show", "x"]).failed(1);
    assert_eq!(env.ok(&["ls", "--json"]).json(), serde_json::json!([]));

    env.ok(&["create", "idle"]);
    env.ok(&["rm", "idle"]);
    env.run(&["show", "idle"]).failed(1);
}

#[test]
fn reap_reports_a_dead_external_holder() {
    let env = Env::new("reap");
    let mut holder = Helper::spawn();
    let pid = holder.pid();
    env.ok(&[
        "acquire",
        "z",
        "--capacity",
        "3",
        "--weight",
        "2",
        "--holder",
        &pid,
    ]);
    holder.kill();
    let reaped = env.ok(&["reap", "--json"]).json();
    let reaped = reaped.as_array().expect("reap --json is an array");
    assert_eq!(reaped.len(), 1, "{reaped:?}");
    assert_eq!(reaped[0]["semaphore"], "z");
    assert_eq!(reaped[0]["pid"].to_string(), pid);
    assert_eq!(reaped[0]["weight"], 2);
    let show = env.show("z");
    assert_eq!(show["value"], 0);
    assert_eq!(show["holders"].as_array().map(Vec::len), Some(0));
    // Nothing is left to reap.
    assert_eq!(env.ok(&["reap", "--json"]).json(), serde_json::json!([]));
}

// ===== the self scope =====

#[test]
fn self_scope_is_seen_by_descendants_only() {
    let env = Env::new("self");
    let r = env.ok(&[
        "tree", "--", BIN, "--scope", "self", "run", "x", "--", BIN, "--scope", "self", "show",
        "x", "--json",
    ]);
    let seen: Value = serde_json::from_str(&r.stdout).expect("the child's JSON");
    assert_eq!(seen["scope"], "self");
    assert_eq!(seen["value"], 1);
    assert_eq!(seen["holders"].as_array().map(Vec::len), Some(1));

    // A separate tree is a stranger. (Global flags go after the subcommand too.)
    let r = env.run(&["tree", "--", BIN, "show", "x", "--scope", "self"]);
    assert!(r.failed(1).contains("no semaphore"), "{r:?}");
}
