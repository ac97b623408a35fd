//! Lifecycle tests, introspection: `ps` and `show` while a process waits and another
//! holds, and `shmsem watch` in a real terminal (tmux): live changes, and a clean terminal
//! after `q` or SIGTERM.
//!
//! As in the `multiprocess_*` tests, library users are child processes that re-execute this
//! test binary in a role (see `common`), and everything else goes through the built `shmsem`
//! binary. The harness process itself never calls the library: `SHMSEM_DIR` is read once per
//! process, and every test has its own fresh one.

mod common;

use std::{
    fs,
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::{
    Spawn, TestDir,
    cli::{BIN, Sleeper, eventually, ls, ok, parties, show},
    life::{CHILD_TIMEOUT, SIGNAL_TIMEOUT, role_wait},
    mono_ns,
    roles::role_hold,
};
use serde_json::json;

// =====================================================================================
// The child side
// =====================================================================================

crate::child_roles! {
    "hold" => role_hold(SIGNAL_TIMEOUT), "wait" => role_wait(),
}

// =====================================================================================
// Introspection while a process waits
// =====================================================================================

#[test]
fn ps_and_show_list_a_waiting_process_and_a_holder() {
    let dir = TestDir::new("ps");
    let mut holder = Spawn::new(&dir, "hold")
        .arg("name", "q")
        .arg("cap", 3)
        .arg("weight", 2)
        .arg("release", "release")
        .spawn();
    let holder_pid: u64 = holder.expect("held", CHILD_TIMEOUT).parse().unwrap();
    let mut waiter = Spawn::new(&dir, "wait")
        .arg("name", "q")
        .arg("cap", 3)
        .arg("weight", 2)
        .arg("also_global", "g")
        .arg("done", "done")
        .spawn();
    waiter.expect("waiting_ns", CHILD_TIMEOUT);
    let waiter_pid = u64::from(waiter.pid());
    let ps = |pid: u64| ok(&dir, &["ps", &pid.to_string(), "--json"]).json();

    let entry = |scope: &str, ns: &str, name: &str, weight: u64, state: &str| json!({"scope": scope, "namespace": ns, "name": name, "weight": weight, "state": state});
    let waiting = json!([
        entry("global", "ci", "g", 1, "held"),
        entry("local", "default", "q", 2, "waiting"),
    ]);
    eventually("ps lists the waiter as waiting", || {
        ps(waiter_pid) == waiting
    });
    assert_eq!(
        ps(holder_pid),
        json!([entry("local", "default", "q", 2, "held")])
    );
    let v = show(&dir, "q");
    assert_eq!(parties(&v, "waiters"), [(waiter_pid, 2)], "{v}");
    assert_eq!(parties(&v, "holders"), [(holder_pid, 2)], "{v}");
    let since = v["waiters"][0]["since_ms"].as_u64().expect("since_ms");
    assert!(since > 0, "{v}");
    let all = ls(&dir, &[]);
    assert_eq!(
        (all[0]["holders"].as_u64(), all[0]["waiters"].as_u64()),
        (Some(1), Some(1))
    );
    let text = ok(&dir, &["ps", &waiter_pid.to_string()]).stdout;
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["local", "default", "q", "2", "waiting"]),
        "{text}"
    );
    // `--scope` and `--namespace` do not narrow `ps`.
    assert_eq!(
        ok(
            &dir,
            &["--scope", "self", "ps", &waiter_pid.to_string(), "--json"]
        )
        .json(),
        waiting
    );

    // The holder lets go: the waiter now holds, and waits for nothing.
    dir.signal("release");
    waiter.expect("acquired_ns", CHILD_TIMEOUT);
    holder.success(CHILD_TIMEOUT);
    assert_eq!(
        ps(waiter_pid),
        json!([
            entry("global", "ci", "g", 1, "held"),
            entry("local", "default", "q", 2, "held"),
        ])
    );
    let v = show(&dir, "q");
    assert_eq!(parties(&v, "waiters"), []);
    assert_eq!(parties(&v, "holders"), [(waiter_pid, 2)]);
    assert_eq!(ps(holder_pid), json!([]));
    dir.signal("done");
    waiter.success(CHILD_TIMEOUT);
    // A process that holds nothing: an empty array, and no text at all.
    assert_eq!(ps(waiter_pid), json!([]));
    assert_eq!(ok(&dir, &["ps", "1"]).stdout, "");
}

// =====================================================================================
// `shmsem watch` in a real terminal
// =====================================================================================

/// A tmux server of our own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        let found = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "tmux is required to test `shmsem watch` in a terminal and is not installed: \
             `apt-get install -y tmux` (.ci/run installs it)"
        );
        Tmux {
            socket: format!("shmsem-life-{}-{}", std::process::id(), mono_ns()),
        }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .env("TERM", "xterm-256color")
            .env_remove(shmsem::SELF_ENV)
            .stdin(Stdio::null())
            .output()
            .expect("running tmux");
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        out
    }

    /// A detached 100×20 session running `script` in `sh`.
    fn session(&self, name: &str, script: &str) {
        self.cmd(&[
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "100",
            "-y",
            "20",
            script,
        ]);
    }

    fn capture(&self, session: &str) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", session]).stdout)
            .into_owned()
    }

    fn display(&self, session: &str, format: &str) -> String {
        let out = self.cmd(&["display-message", "-p", "-t", session, format]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Poll the pane until `cond` holds; the screen then. Panics after 10 s.
    fn until(&self, session: &str, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.capture(session);
            if cond(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// After `watch` ended in `session`: it left the alternate screen, showed the cursor, and
    /// put the tty modes back as the script's `stty -g` saw them before (`{tag}.before`) and
    /// after (`{tag}.after`); the status it exited with.
    fn assert_clean(&self, session: &str, dir: &TestDir, tag: &str) -> String {
        let screen = self.until(session, "watch to end", |s| s.contains("WATCH-ENDED"));
        assert_eq!(
            self.display(session, "#{alternate_on}"),
            "0",
            "still on the alternate screen:\n{screen}"
        );
        assert_eq!(
            self.display(session, "#{cursor_flag}"),
            "1",
            "the cursor is still hidden"
        );
        let read = |suffix: &str| {
            fs::read_to_string(dir.work_file(&format!("{tag}.{suffix}")))
                .unwrap_or_else(|e| panic!("{tag}.{suffix}: {e}"))
        };
        assert_eq!(
            read("before"),
            read("after"),
            "the tty modes were not restored"
        );
        assert!(
            !screen.contains("shmsem watch ·"),
            "the frame is left on screen:\n{screen}"
        );
        read("exit").trim().to_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A script for a tmux pane: save the tty modes, run `shmsem watch ARGS` (as its own `sh`, whose
/// pid goes to `{tag}.pid`), save its status and the tty modes again, and linger.
fn watch_script(dir: &TestDir, tag: &str, args: &str) -> String {
    format!(
        "stty -g > {w}/{tag}.before; \
         {env}={shm} sh -c 'echo $$ > {w}/{tag}.pid; exec {BIN} watch {args}'; \
         echo $? > {w}/{tag}.exit; stty -g > {w}/{tag}.after; echo WATCH-ENDED; sleep 60",
        w = dir.work.display(),
        env = shmsem::DIR_ENV,
        shm = dir.shm.display(),
    )
}

/// The line of semaphore `name` on a `watch` screen.
fn watch_line<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen.lines().find(|l| {
        l.trim_start_matches(['│', ' '])
            .starts_with(&format!("{name} "))
    })
}

#[test]
fn watch_shows_changes_live_and_leaves_the_terminal_clean() {
    let dir = TestDir::new("watch");
    let tmux = Tmux::new();
    ok(&dir, &["create", "w", "--capacity", "2"]);
    tmux.session("all", &watch_script(&dir, "all", ""));

    let screen = tmux.until("all", "the first frame", |s| {
        watch_line(s, "w").is_some_and(|l| l.contains(" 0/2 "))
    });
    assert!(
        screen.contains("shmsem watch · scope local · namespace default"),
        "{screen}"
    );
    assert!(
        screen.contains("1 semaphore · 0 holders · 0 waiters"),
        "{screen}"
    );
    assert_eq!(
        tmux.display("all", "#{alternate_on}"),
        "1",
        "watch draws on the alternate screen"
    );

    // An acquire shows within a refresh (500 ms): value, bar and holder.
    let holder = Sleeper::spawn();
    ok(&dir, &["acquire", "w", "--holder", &holder.pid()]);
    let t = Instant::now();
    let screen = tmux.until("all", "the acquire to show", |s| {
        watch_line(s, "w").is_some_and(|l| l.contains(" 1/2 "))
    });
    let seen_after = t.elapsed();
    let line = watch_line(&screen, "w").unwrap();
    assert!(line.contains('█') && line.contains('░'), "{screen}");
    let held = format!("{} ×1", holder.pid());
    assert!(
        screen
            .lines()
            .any(|l| l.contains("held") && l.contains(&held)),
        "{screen}"
    );
    eprintln!(
        "watch: an acquire showed after {} ms",
        seen_after.as_millis()
    );
    assert!(seen_after < Duration::from_millis(1500), "{seen_after:?}");

    // q quits with status 0, and the terminal is as it was.
    tmux.cmd(&["send-keys", "-t", "all", "q"]);
    assert_eq!(tmux.assert_clean("all", &dir, "all"), "0");

    // One semaphore, a faster refresh, and SIGTERM instead of a key: 128 + 15, and clean too.
    tmux.session("one", &watch_script(&dir, "one", "w --interval 100"));
    tmux.until("one", "the named semaphore", |s| {
        watch_line(s, "w").is_some_and(|l| l.contains(" 1/2 ")) && s.contains(&held)
    });
    ok(&dir, &["release", "w", "--holder", &holder.pid()]);
    tmux.until("one", "the release to show", |s| {
        watch_line(s, "w").is_some_and(|l| l.contains(" 0/2 "))
    });
    let pid = fs::read_to_string(dir.work_file("one.pid")).expect("the watch pid");
    let killed = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .expect("running kill");
    assert!(killed.success());
    assert_eq!(tmux.assert_clean("one", &dir, "one"), "143");
}
