//! `shmsem --scope cluster` against a 3-member etcd cluster on the loopback: create, ls, show
//! (holders with host, pid, since and token), ps, run (SHMSEM_TOKEN, timeouts, try, its command
//! stopped when the holding is lost), wait, set, rm, metrics, reap, watch, a SIGKILLed `run`'s
//! weight back at once, and the typed errors of a cluster that cannot be reached or used.
//!
//! One etcd cluster serves the whole binary (`common::etcd::shared_endpoints`); each test uses
//! its own namespace.

mod common;

use std::{
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use common::{TestDir, cli::BIN, cli::Run};

const TTL_S: u64 = 2;

fn endpoints() -> String {
    common::etcd::shared_endpoints()
}

/// `shmsem --scope cluster --namespace NS ARGS`, endpoints from SHMSEM_CLUSTER.
fn command(dir: &TestDir, ns: &str, args: &[&str]) -> Command {
    let mut c = common::cli::command(dir, &["--scope", "cluster", "--namespace", ns]);
    c.args(args)
        .env("SHMSEM_CLUSTER", endpoints())
        .env("SHMSEM_CLUSTER_TTL", TTL_S.to_string())
        .env_remove("SHMSEM_CLUSTER_HOST");
    c
}

fn run(dir: &TestDir, ns: &str, args: &[&str]) -> Run {
    let out = command(dir, ns, args).output().expect("running shmsem");
    Run::new(args, out)
}

fn ok(dir: &TestDir, ns: &str, args: &[&str]) -> Run {
    let r = run(dir, ns, args);
    assert_eq!(r.code, 0, "{r:?}");
    r
}

/// A `shmsem run` in the background; its stderr piped.
fn background(dir: &TestDir, ns: &str, args: &[&str]) -> Child {
    command(dir, ns, args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting shmsem run")
}

/// Wait for `path` to hold a line; its contents.
fn wait_file(path: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = std::fs::read_to_string(path)
            && s.ends_with('\n')
        {
            return s.trim().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned()
}

/// The whole life of one semaphore through the command, with a `run` holding 2 of it.
#[test]
fn create_ls_show_ps_run_wait_set_rm_metrics() {
    let dir = TestDir::new("clc-life");
    let ns = "life";
    let line = ok(
        &dir,
        ns,
        &["create", "db", "--capacity", "3", "--persistent"],
    )
    .stdout;
    assert!(
        line.starts_with("db ") && line.contains("persistent"),
        "{line}"
    );
    let ls = ok(&dir, ns, &["ls", "--json"]).json();
    assert_eq!(ls[0]["name"], "db");
    assert_eq!(ls[0]["scope"], "cluster");
    assert_eq!(ls[0]["capacity"], 3);
    assert_eq!(ls[0]["value"], 0);

    let token_file = dir.work_file("token");
    let script = format!("echo $SHMSEM_TOKEN > {}; sleep 60", token_file.display());
    let mut holder = background(
        &dir,
        ns,
        &["run", "db", "--weight", "2", "--", "sh", "-c", &script],
    );
    let token: u64 = wait_file(&token_file)
        .parse()
        .expect("SHMSEM_TOKEN is a number");
    let show = ok(&dir, ns, &["show", "db", "--json"]).json();
    assert_eq!(show["value"], 2);
    let h = &show["holders"][0];
    assert_eq!(h["pid"], holder.id());
    assert_eq!(h["weight"], 2);
    assert_eq!(h["token"], token);
    assert_eq!(h["host"], hostname());
    assert!(h["since_ms"].as_u64().unwrap() > 0);
    let text = ok(&dir, ns, &["show", "db"]).stdout;
    assert!(
        text.contains("HOST") && text.contains("TOKEN") && text.contains(&token.to_string()),
        "{text}"
    );

    let ps = ok(&dir, ns, &["ps", &holder.id().to_string(), "--json"]).json();
    let held: Vec<_> = ps
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] == "cluster")
        .collect();
    assert_eq!(held.len(), 1, "{ps}");
    assert_eq!(
        (
            held[0]["name"].as_str(),
            held[0]["weight"].as_u64(),
            held[0]["state"].as_str()
        ),
        (Some("db"), Some(2), Some("held"))
    );

    // Full for 2 more: a try fails at once, a timed run times out no earlier than asked.
    run(
        &dir,
        ns,
        &["run", "db", "--weight", "2", "--timeout", "0", "--", "true"],
    )
    .failed(75);
    let t = Instant::now();
    run(
        &dir,
        ns,
        &[
            "run",
            "db",
            "--weight",
            "2",
            "--timeout",
            "300ms",
            "--",
            "true",
        ],
    )
    .failed(75);
    assert!(t.elapsed() >= Duration::from_millis(300));
    run(&dir, ns, &["wait", "db", "--timeout", "300ms"]).failed(75);
    let r = run(&dir, ns, &["rm", "db"]);
    r.failed(1);
    assert!(r.stderr.contains("held"), "{r:?}");

    // More capacity: the 2 fit now.
    ok(&dir, ns, &["set", "db", "--capacity", "4"]);
    ok(
        &dir,
        ns,
        &["run", "db", "--weight", "2", "--timeout", "0", "--", "true"],
    );
    let metrics = ok(&dir, ns, &["metrics"]).stdout;
    assert!(
        metrics.contains("shmsem_capacity{scope=\"cluster\",namespace=\"life\",name=\"db\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shmsem_value{scope=\"cluster\",namespace=\"life\",name=\"db\"} 2"),
        "{metrics}"
    );

    // SIGKILL the `run`: its death is proven here, so the weight is back long before its TTL;
    // and its command was told to stop (its parent died).
    holder.kill().unwrap();
    holder.wait().unwrap();
    ok(
        &dir,
        ns,
        &[
            "run",
            "db",
            "--weight",
            "4",
            "--timeout",
            "10s",
            "--",
            "true",
        ],
    );
    ok(&dir, ns, &["wait", "db", "--timeout", "10s"]);
    let reaped = ok(&dir, ns, &["reap", "--json"]).json();
    assert!(reaped.as_array().unwrap().is_empty(), "{reaped}");

    ok(&dir, ns, &["set", "db", "--auto"]);
    assert_eq!(
        ok(&dir, ns, &["show", "db", "--json"]).json()["kind"],
        "auto"
    );
    ok(&dir, ns, &["rm", "db"]);
    run(&dir, ns, &["show", "db"]).failed(1);
    assert_eq!(
        ok(&dir, ns, &["ls", "--json"]).json(),
        serde_json::json!([])
    );
}

/// A `run` stopped (SIGSTOP) past its lease: meanwhile another `run` gets the weight; once
/// continued, it says on stderr that the holding was lost and stops its command with SIGTERM
/// (the command's trap runs), exiting with the command's status.
#[test]
fn run_stops_its_command_when_the_holding_is_lost() {
    let dir = TestDir::new("clc-lost");
    let ns = "lost";
    let started = dir.work_file("started");
    let termed = dir.work_file("termed");
    let script = format!(
        "trap 'echo term > {t}; exit 7' TERM; echo up > {s}; while :; do sleep 0.05; done",
        t = termed.display(),
        s = started.display()
    );
    let holder = background(&dir, ns, &["run", "x", "--", "sh", "-c", &script]);
    wait_file(&started);
    let pid = holder.id() as i32;
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let t = Instant::now();
    ok(&dir, ns, &["run", "x", "--timeout", "20s", "--", "true"]);
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "granted while the holder's lease was alive"
    );
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("was lost") && stderr.contains("SIGTERM"),
        "{stderr}"
    );
    assert_eq!(wait_file(&termed), "term");
}

/// `watch` draws the cluster's semaphores on a terminal (a pseudo-terminal from script(1)).
#[test]
fn watch_draws_the_cluster_namespace() {
    let dir = TestDir::new("clc-watch");
    let ns = "watch";
    ok(&dir, ns, &["create", "seen", "--capacity", "2"]);
    let line = format!(
        "stty rows 30 cols 100; exec {BIN} --scope cluster --namespace {ns} watch --interval 100ms"
    );
    let out = Command::new("timeout")
        .args(["-s", "INT", "3", "script", "-qfec", &line, "/dev/null"])
        .env(shmsem::DIR_ENV, &dir.shm)
        .env("SHMSEM_CLUSTER", endpoints())
        .env("TERM", "xterm")
        .env("COLUMNS", "100")
        .env("LINES", "30")
        .stdin(Stdio::null())
        .output()
        .expect("running script(1) (package bsdutils)");
    let screen = String::from_utf8_lossy(&out.stdout);
    // The screen is drawn cell by cell: look for the words.
    assert!(
        screen.contains("cluster") && screen.contains("seen") && screen.contains("0/2"),
        "{screen}"
    );
}

/// Errors: no endpoints anywhere (exit 1, saying how to give them); an endpoint where nothing
/// listens (exit 1, "unavailable", within seconds); holding for another process (`acquire`),
/// which a lease cannot do (exit 1, pointing to `run`); an unknown semaphore (exit 1).
#[test]
fn errors_are_typed_and_prompt() {
    let dir = TestDir::new("clc-errors");
    let out = command(&dir, "e", &["ls"])
        .env_remove("SHMSEM_CLUSTER")
        .output()
        .unwrap();
    let r = Run::new(&["ls"], out);
    r.failed(1);
    assert!(r.stderr.contains("SHMSEM_CLUSTER"), "{r:?}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let t = Instant::now();
    let r = run(
        &dir,
        "e",
        &["--cluster", &format!("http://127.0.0.1:{port}"), "ls"],
    );
    r.failed(1);
    assert!(r.stderr.contains("unavailable"), "{r:?}");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    let r = run(&dir, "e", &["acquire", "a"]);
    r.failed(1);
    assert!(r.stderr.contains("shmsem run"), "{r:?}");
    run(&dir, "e", &["show", "nothing-here"]).failed(1);
    run(&dir, "e", &["grant", "--group", "0"]).failed(1);
}
