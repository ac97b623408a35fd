//! `shmsem metrics`, end to end through the built binary: the output is strict OpenMetrics, and
//! the counters it shows move when acquires wait and time out, releases wake and reclaims give
//! back a killed holder's weight.

mod common;

use std::process::Stdio;

use common::{
    TestDir,
    cli::{self, Sleeper, eventually},
    openmetrics::{Exposition, parse},
};

/// `shmsem metrics ARGS`, parsed strictly.
fn metrics(dir: &TestDir, extra: &[&str]) -> Exposition {
    let args = [&["metrics"][..], extra].concat();
    let out = cli::ok(dir, &args).stdout;
    parse(&out).unwrap_or_else(|e| panic!("not OpenMetrics ({e}):\n{out}"))
}

/// The value of metric `name` for semaphore `sem`, as an integer.
fn value(e: &Exposition, name: &str, sem: &str) -> u64 {
    e.value(name, sem)
        .unwrap_or_else(|| panic!("no {name} for {sem} in {e:?}")) as u64
}

#[test]
fn metrics_output_is_openmetrics_with_every_family_and_label() {
    let dir = TestDir::new("metrics-format");
    // Nothing yet: only the families, and # EOF.
    let empty = metrics(&dir, &[]);
    assert!(empty.samples.is_empty());
    assert_eq!(empty.types.len(), 8);
    cli::ok(&dir, &["create", "a", "--capacity", "3", "--persistent"]);
    cli::ok(&dir, &["create", "b.2-x", "--persistent"]);
    let holder = Sleeper::spawn();
    cli::ok(
        &dir,
        &["acquire", "a", "--weight", "2", "--holder", &holder.pid()],
    );
    let e = metrics(&dir, &[]);
    let expected: Vec<(&str, &str)> = vec![
        ("shmsem_capacity", "gauge"),
        ("shmsem_value", "gauge"),
        ("shmsem_holders", "gauge"),
        ("shmsem_waiters", "gauge"),
        ("shmsem_waits", "counter"),
        ("shmsem_timeouts", "counter"),
        ("shmsem_reclaimed_weight", "counter"),
        ("shmsem_wakes", "counter"),
    ];
    for (family, kind) in &expected {
        assert_eq!(e.types.get(*family).map(String::as_str), Some(*kind));
    }
    assert_eq!(e.samples.len(), 2 * expected.len());
    for s in &e.samples {
        let keys: Vec<&str> = s.labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["scope", "namespace", "name"], "{s:?}");
        assert_eq!(s.labels[0].1, "local");
        assert_eq!(s.labels[1].1, "default");
    }
    assert_eq!(value(&e, "shmsem_capacity", "a"), 3);
    assert_eq!(value(&e, "shmsem_value", "a"), 2);
    assert_eq!(value(&e, "shmsem_holders", "a"), 1);
    assert_eq!(value(&e, "shmsem_value", "b.2-x"), 0);
    for counter in ["waits", "timeouts", "reclaimed_weight", "wakes"] {
        assert_eq!(value(&e, &format!("shmsem_{counter}_total"), "a"), 0);
    }
    // --namespace chooses the namespace; --all covers every one.
    cli::ok(&dir, &["--namespace", "ci", "create", "c", "--persistent"]);
    let ci = metrics(&dir, &["--namespace", "ci"]);
    assert_eq!(ci.samples.len(), expected.len());
    assert_eq!(ci.samples[0].labels[1].1, "ci");
    let all = metrics(&dir, &["--all"]);
    assert_eq!(all.samples.len(), 3 * expected.len());
    // --json: `ls --json`'s fields and the counters.
    let json = cli::ok(&dir, &["metrics", "--json"]).json();
    let a = &json[0];
    assert_eq!(
        (a["name"].as_str(), a["capacity"].as_u64()),
        (Some("a"), Some(3))
    );
    assert_eq!(
        (a["value"].as_u64(), a["holders"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(a["timeouts"], 0);
    assert_eq!(a["reclaimed_weight"], 0);
    let ls = &cli::ls(&dir, &[])[0];
    for (k, v) in ls.as_object().unwrap() {
        assert_eq!(&a[k], v, "{k}");
    }
}

#[test]
fn a_timeout_and_a_wait_are_counted_and_a_release_that_wakes_too() {
    let dir = TestDir::new("metrics-timeout");
    let holder = Sleeper::spawn();
    cli::ok(&dir, &["acquire", "full", "--holder", &holder.pid()]);
    let before = metrics(&dir, &[]);
    assert_eq!(value(&before, "shmsem_timeouts_total", "full"), 0);
    assert_eq!(value(&before, "shmsem_waits_total", "full"), 0);
    let r = cli::run(&dir, &["acquire", "full", "--timeout", "50"]);
    assert_eq!(r.code, 75, "{r:?}");
    let after = metrics(&dir, &[]);
    assert_eq!(value(&after, "shmsem_timeouts_total", "full"), 1);
    // It slept before it gave up: one acquire, one wait.
    assert_eq!(value(&after, "shmsem_waits_total", "full"), 1);
    let r = cli::run(&dir, &["run", "full", "--timeout", "50", "--", "true"]);
    assert_eq!(r.code, 75, "{r:?}");
    assert_eq!(
        value(&metrics(&dir, &[]), "shmsem_timeouts_total", "full"),
        2
    );
    // A wait that ends with the weight: counted as a wait, not a timeout, and the release that
    // hands the weight over wakes it.
    let mut waiter = cli::command(&dir, &["run", "full", "--", "true"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawning shmsem run");
    eventually("the waiter sleeps", || {
        value(&metrics(&dir, &[]), "shmsem_waiters", "full") == 1
    });
    cli::ok(&dir, &["release", "full", "--holder", &holder.pid()]);
    assert!(waiter.wait().expect("waiting for shmsem run").success());
    let end = metrics(&dir, &[]);
    assert_eq!(value(&end, "shmsem_waits_total", "full"), 3);
    assert_eq!(value(&end, "shmsem_timeouts_total", "full"), 2);
    assert!(value(&end, "shmsem_wakes_total", "full") >= 1);
    assert_eq!(value(&end, "shmsem_value", "full"), 0);
}

#[test]
fn a_killed_holders_weight_is_counted_when_reaped() {
    let dir = TestDir::new("metrics-reclaim");
    let mut holder = Sleeper::spawn();
    let pid = holder.pid();
    cli::ok(&dir, &["create", "z", "--capacity", "5", "--persistent"]);
    cli::ok(&dir, &["acquire", "z", "--weight", "3", "--holder", &pid]);
    assert_eq!(
        value(&metrics(&dir, &[]), "shmsem_reclaimed_weight_total", "z"),
        0
    );
    holder.kill();
    cli::ok(&dir, &["reap"]);
    let e = metrics(&dir, &[]);
    assert_eq!(value(&e, "shmsem_reclaimed_weight_total", "z"), 3);
    assert_eq!(value(&e, "shmsem_value", "z"), 0);
    // A new life of the semaphore counts from zero.
    cli::ok(&dir, &["rm", "z"]);
    cli::ok(&dir, &["create", "z", "--persistent"]);
    assert_eq!(
        value(&metrics(&dir, &[]), "shmsem_reclaimed_weight_total", "z"),
        0
    );
}

#[test]
fn the_parser_is_strict() {
    let good =
        "# TYPE a counter\n# HELP a A.\na_total{x=\"q\\\"\\n\"} 1\n# TYPE b gauge\nb 2\n# EOF\n";
    let e = parse(good).unwrap();
    assert_eq!(e.samples[0].labels, [("x".to_owned(), "q\"\n".to_owned())]);
    for bad in [
        "# TYPE a counter\na_total 1\n",                          // no # EOF
        "# TYPE a counter\na 1\n# EOF\n",                         // a counter without _total
        "b 2\n# EOF\n",                                           // undeclared
        "# TYPE a gauge\na{x=\"\\t\"} 1\n# EOF\n",                // a bad escape
        "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n# EOF\n", // not contiguous
        "# TYPE a gauge\na{x=\"1\",} 1\n# EOF\n",                 // a trailing comma
        "# TYPE a gauge\n# EOF\na 1\n# EOF\n",                    // # EOF not last
        "# TYPE a gauge\n# UNIT a seconds\na 1\n# EOF\n",         // a unit not in the name
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}
