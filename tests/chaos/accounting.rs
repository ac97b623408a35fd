//! The final accounting (see the test's module docs) and the report of the counts.

use std::{os::unix::process::ExitStatusExt, sync::atomic::Ordering::SeqCst, time::Duration};

use crate::{
    common::Kid,
    config::{CHILD_LIMIT, NAMES, SPECS, without},
    procs::{cli_command, role_spawn},
    run::Run,
    witness::{GRANTS_BY_NAME, MAX_INSIDE, STOP, Stat},
};

/// The witness's counts in the report, a line each: each count with its label.
const COUNTS: &[&[(&str, Stat)]] = &[
    &[
        ("grants", Stat::Grants),
        ("blocking", Stat::Blocking),
        ("timed", Stat::Timed),
        ("try", Stat::Try),
        ("enter", Stat::Enters),
        ("acquire_for", Stat::External),
        ("in fork children", Stat::ChildGrants),
        ("unlabelled", Stat::Unlabelled),
        ("unwitnessed", Stat::Unwitnessed),
    ],
    &[
        ("exits on the same thread", Stat::SelfExits),
        ("exits across threads", Stat::CrossExits),
        ("release_for", Stat::ExternalReleases),
        ("timeouts", Stat::Timeouts),
        ("would-block", Stat::WouldBlock),
        ("busy", Stat::Busy),
        ("weight too large", Stat::TooLarge),
    ],
    &[
        ("remove(false)", Stat::Removes),
        ("remove(true)", Stat::ForceRemoves),
        ("removals refused in use", Stat::RemovesInUse),
        ("removals of the already gone", Stat::RemovesGone),
        ("found removed", Stat::Removed),
        ("re-creations", Stat::Recreations),
        ("re-opens", Stat::Reopens),
        ("set_capacity", Stat::Capacity),
    ],
    &[
        ("reaps", Stat::Reaps),
        ("weight reclaimed", Stat::Reclaimed),
        ("lists", Stat::Lists),
        ("infos", Stat::Infos),
        ("forks", Stat::Forks),
        ("fork children killed", Stat::ForkChildKilled),
        ("fork exit checks", Stat::ForkChecks),
    ],
    &[
        ("strict violations", Stat::VStrict),
        ("per-incarnation violations", Stat::VIncarnation),
        ("values above capacity", Stat::VValue),
        ("fork violations", Stat::VFork),
        ("unexpected errors", Stat::Errors),
        ("witness full", Stat::WitnessFull),
    ],
];

impl Run {
    fn audit(&mut self, when: &str) -> Vec<(String, String)> {
        let mut kid = role_spawn(&self.dir, "audit", 0).spawn();
        let (status, reports) = kid.try_finish(CHILD_LIMIT);
        if !status.is_some_and(|s| s.success()) {
            self.fail(format!("the audit {when} failed: {status:?} {reports:?}"));
        }
        reports.0
    }

    /// Every semaphore in `reports` (of an audit): value, holders' sum, holders, waiters.
    fn audited(reports: &[(String, String)]) -> Vec<(String, [u64; 4], String)> {
        reports
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("sem.")?;
                let f: Vec<u64> = v
                    .split_whitespace()
                    .take(4)
                    .map(|x| x.parse().expect("a number"))
                    .collect();
                Some((name.to_owned(), [f[0], f[1], f[2], f[3]], v.clone()))
            })
            .collect()
    }

    /// Every value 0, no holders, no waiters.
    fn expect_empty(&mut self, when: &str) {
        let reports = self.audit(when);
        for (name, [value, sum, holders, waiters], line) in Self::audited(&reports) {
            if value != 0 || sum != 0 || holders != 0 || waiters != 0 {
                self.fail(format!(
                    "{when}: {name} is not empty: value {value}, holders {holders} (weight \
                     {sum}), waiters {waiters} ({line})"
                ));
            }
        }
    }

    /// The final accounting (see the module docs).
    pub fn final_accounting(&mut self) {
        // The CLI's reap first, then the library's in a fresh process.
        let out = cli_command(&self.dir, &["reap"])
            .output()
            .expect("running shmsem reap");
        if !out.status.success() {
            self.fail(format!("the final shmsem reap failed: {out:?}"));
        }
        self.expect_empty("after every process died and a reap");
        let ls = cli_command(&self.dir, &["ls", "--json"])
            .output()
            .expect("running shmsem ls");
        match serde_json::from_slice::<serde_json::Value>(&ls.stdout) {
            Ok(serde_json::Value::Array(items)) => {
                for i in items {
                    if i["value"] != 0 || i["holders"] != 0 || i["waiters"] != 0 {
                        self.fail(format!("shmsem ls after the final reap: {i}"));
                    }
                }
            }
            other => self.fail(format!("shmsem ls --json: {other:?} {ls:?}")),
        }

        // Live holders: every value is what they hold.
        self.w.cell(STOP).store(0, SeqCst);
        let mut holders: Vec<Kid> = (0..2)
            .map(|i| role_spawn(&self.dir, "hold", i).spawn())
            .collect();
        let mut held = [0u64; NAMES];
        for h in &mut holders {
            if h.wait_for("ready", CHILD_LIMIT).is_none() {
                self.fail("a final holder did not get ready".to_owned());
            }
            for (n, spec) in SPECS.iter().enumerate() {
                held[n] += h
                    .wait_for(&format!("held.{}", spec.name), Duration::ZERO)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            }
        }
        let reports = self.audit("with two live holders");
        let audited = Self::audited(&reports);
        for (n, spec) in SPECS.iter().enumerate() {
            match audited.iter().find(|(name, _, _)| name == spec.name) {
                Some((_, [value, sum, _, waiters], line)) => {
                    if *value != held[n] || *sum != held[n] || *waiters != 0 {
                        self.fail(format!(
                            "with live holders holding {} of {}: {line} (value, holders' \
                             weight, holders, waiters, ...)",
                            held[n], spec.name
                        ));
                    }
                }
                None => self.fail(format!("{} vanished under live holders", spec.name)),
            }
        }
        // One gives back and exits, the other is SIGKILLed.
        let killed = holders[1].sigkill();
        if killed.signal() != Some(libc::SIGKILL) {
            self.fail(format!(
                "the second final holder ended before its kill: {killed:?}"
            ));
        }
        self.w.cell(STOP).store(1, SeqCst);
        let (status, reports) = holders[0].try_finish(CHILD_LIMIT);
        if !status.is_some_and(|s| s.success()) {
            self.fail(format!(
                "the first final holder failed: {status:?} {reports:?}"
            ));
        }
        self.expect_empty("after the final holders ended and a reap");

        // Idle auto semaphores go.
        if without("idle") {
            return;
        }
        let mut kid = role_spawn(&self.dir, "idle", 0).spawn();
        let (status, reports) = kid.try_finish(CHILD_LIMIT);
        if !status.is_some_and(|s| s.success()) {
            self.fail(format!("the idle check failed: {status:?} {reports:?}"));
        }
        for (k, v) in &reports.0 {
            if let Some(name) = k.strip_prefix("left.")
                && v.starts_with("auto")
            {
                self.fail(format!(
                    "auto semaphore {name} was not swept past its idle period: {v}"
                ));
            }
        }
    }

    pub fn report(&self, elapsed: Duration) {
        let w = &self.w;
        let s = |x: Stat| w.stat(x);
        let k = &self.kills;
        eprintln!(
            "chaos: {:.1?}: {} kills (workers {}, forkers {}, fork children {}, reapers {}, \
             shmsem reap {}; {} before registering), {} role crashes, {} orphans reaped, {} \
             shmsem reap runs; deaths at kill points {:?}",
            elapsed,
            k.total(),
            k.workers,
            k.forkers,
            k.fork_children,
            k.reapers,
            k.cli,
            k.early,
            self.crashes,
            self.orphans,
            self.cli_runs,
            k.points
        );
        for line in COUNTS {
            let counts: Vec<String> = line
                .iter()
                .map(|(label, x)| format!("{label} {}", s(*x)))
                .collect();
            eprintln!("chaos: {}", counts.join(", "));
        }
        let by_name: Vec<String> = SPECS
            .iter()
            .enumerate()
            .map(|(n, spec)| {
                format!(
                    "{} {} (max inside {}/{})",
                    spec.name,
                    w.get(GRANTS_BY_NAME + n),
                    w.get(MAX_INSIDE + n),
                    spec.cap.1
                )
            })
            .collect();
        eprintln!("chaos: grants by name: {}", by_name.join(", "));
        eprintln!("chaos: violations in all: {}", self.violations());
    }

    pub fn violations(&self) -> u64 {
        [Stat::VStrict, Stat::VIncarnation, Stat::VValue, Stat::VFork]
            .into_iter()
            .map(|x| self.w.stat(x))
            .sum()
    }
}
