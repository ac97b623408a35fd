//! `shmsem bench [--json] [--quick] [--svg FILE] [--from-json FILE]`: shmsem against the
//! kernel's semaphores (POSIX named semaphores, SysV with `SEM_UNDO`), scenario by scenario,
//! side by side in one run, judged against the targets listed in the README's *Benchmarks*
//! section, and made trustworthy as that section describes:
//!
//! 1. instruction counts for every in-process scenario, exact (`count`, `callgrind`);
//! 2. the measuring thread pinned to one CPU; each scenario timed in hundreds of short paired
//!    batches, the order alternating, summarised as the median of the per-pair ratios with a
//!    bootstrap 95% interval and the minimum (`measure`, `stats`);
//! 3. an A/A control (POSIX against POSIX), taken in slices before every scenario and after
//!    the last; if its median leaves 0.9–1.1, no timed target is judged (`report`).
//!
//! | file | what |
//! |---|---|
//! | `peers.rs` | the kernel semaphores, behind one small trait |
//! | `pin.rs` | CPU affinity |
//! | `procs.rs` | helper processes: start, talk, kill, reap; the watchdog |
//! | `roles.rs` | what a helper does in its role, and the ping-pong protocol |
//! | `drive.rs` | the parent's side: semaphores for helpers, killing a holder |
//! | `measure.rs` | the plan, batch sizing, paired rounds |
//! | `stats.rs` | medians, the bootstrap interval, the control's band |
//! | `inproc.rs` | the in-process scenarios as fixtures, and the A/A control |
//! | `count.rs` | instruction counts: the counted loop, `perf_event_open` |
//! | `callgrind.rs` | instruction counts under valgrind |
//! | `multiproc.rs` | ping-pong, contention, reclaim |
//! | `idle.rs` | 100 idle waiters |
//! | `asynchronous.rs` | the async API: uncontended, and a hand-off between processes |
//! | `from_c.rs` | the uncontended pair from C, through `libshmsem.a` |
//! | `cluster.rs` | the cluster scope on a one-member etcd: pair latency, reclaim |
//! | `targets.rs` | the targets in the README's *Benchmarks* section |
//! | `report.rs` | outcomes, judged; the JSON |
//! | `table.rs` | the table, from the JSON |
//! | `plot.rs` | the SVG plot |
//!
//! Helpers are this executable again, started with the `helper_args` given to [`run`] (for
//! the CLI, `shmsem bench --quick`) and `SHMSEM_BENCH_ROLE` set: [`run`] plays the role
//! instead of benchmarking when it finds that variable. Every run keeps its shmsem files in a fresh temporary `SHMSEM_DIR`, names its POSIX
//! and SysV semaphores uniquely, and removes all of them at the end, on error too.

mod asynchronous;
mod callgrind;
mod cluster;
mod count;
pub mod drive;
mod from_c;
mod idle;
pub mod inproc;
mod measure;
mod multiproc;
pub mod peers;
pub mod pin;
mod plot;
pub mod procs;
mod report;
pub mod roles;
mod stats;
mod table;
mod targets;

use std::{
    io::{IsTerminal, Read, Write},
    path::Path,
    time::Instant,
};

use anyhow::{Context, bail};

use self::{
    inproc::{Control, Fixture},
    measure::Plan,
    multiproc::{Ctx, Placement},
    pin::Cpus,
    report::{Machine, Outcome, Report, Unit},
    stats::{Better, Summary},
};

/// How a scenario is measured.
#[derive(Clone, Copy)]
enum Scenario {
    /// In this process: counted and timed from its fixture.
    InProcess(Fixture),
    /// With helper processes.
    Processes(fn(&Ctx) -> anyhow::Result<Outcome>),
}

/// The scenarios, in the order of `targets::TARGETS`.
const SCENARIOS: [(&str, Scenario); 16] = [
    ("uncontended", Scenario::InProcess(inproc::uncontended)),
    ("try_full", Scenario::InProcess(inproc::try_full)),
    ("open", Scenario::InProcess(inproc::open)),
    (
        "pingpong_same_cpu",
        Scenario::Processes(|c| multiproc::pingpong(c, Placement::SameCpu)),
    ),
    (
        "pingpong_cross_cpu",
        Scenario::Processes(|c| multiproc::pingpong(c, Placement::CrossCpu)),
    ),
    ("contended4", Scenario::Processes(multiproc::contended4)),
    ("weighted4", Scenario::InProcess(inproc::weighted4)),
    ("timed", Scenario::InProcess(inproc::timed_acquire)),
    ("idle100", Scenario::Processes(idle::idle100)),
    ("reclaim", Scenario::Processes(multiproc::reclaim)),
    ("scale10k", Scenario::InProcess(inproc::scale10k)),
    (
        "async_uncontended",
        Scenario::InProcess(asynchronous::uncontended),
    ),
    ("async_handoff", Scenario::Processes(asynchronous::handoff)),
    (from_c::ID, Scenario::Processes(from_c::uncontended)),
    ("cluster_pair", Scenario::Processes(cluster::pair)),
    ("cluster_reclaim", Scenario::Processes(cluster::reclaim)),
];

/// Run the comparison of the README's *Benchmarks* section and print it: a table, or with `json` one JSON document;
/// with `from_json`, print the table of a saved JSON document instead. `quick` finishes in
/// under 30 s.
///
/// `helper_args` are the arguments that bring this executable back to this function in a
/// helper process (`SHMSEM_BENCH_ROLE` set), where it plays the helper's role instead. It must be
/// called before the process starts any thread: it sets `SHMSEM_DIR`.
pub fn run(
    helper_args: &'static [&'static str],
    json: bool,
    quick: bool,
    svg: Option<&Path>,
    from_json: Option<&Path>,
) -> anyhow::Result<()> {
    if let Some(outcome) = count::requested() {
        return outcome;
    }
    if let Some(outcome) = roles::requested() {
        return outcome;
    }
    if let Some(path) = from_json {
        return print_saved(path);
    }
    let started = Instant::now();
    let workspace = procs::Workspace::create()?;
    let cpus = Cpus::choose().context("sched_getaffinity")?;
    let plan = Plan::new(quick);
    let mut machine = Machine::detect(quick);
    machine.pinned_cpu = Some(cpus.main);
    machine.second_cpu = cpus.other;
    let progress = Progress(std::io::stderr().is_terminal());

    progress.say("counting instructions");
    let counts = count::count(&plan, workspace.path(), helper_args);
    pin::pin(0, cpus.main).with_context(|| format!("pinning to CPU {}", cpus.main))?;
    let ctx = Ctx {
        plan,
        helper_args,
        cpus,
    };
    let mut control = Control::new()?;
    let mut outcomes = Vec::with_capacity(SCENARIOS.len());
    for (id, scenario) in SCENARIOS {
        progress.say(&format!("measuring {id}"));
        control.slice(&plan, plan.control_slice)?;
        let outcome = match scenario {
            Scenario::InProcess(fixture) => in_process(id, fixture, &plan, &counts),
            Scenario::Processes(measure) => measure(&ctx),
        };
        outcomes.push(outcome.unwrap_or_else(|e| Outcome::failed(id, &e)));
    }
    control.slice(&plan, plan.control_slice)?;
    progress.say("");
    let report = Report {
        machine,
        counts,
        control: Summary::of_pairs(&control.samples.0, &control.samples.1, Better::Lower),
        outcomes,
        seconds: started.elapsed().as_secs_f64(),
    };
    let doc = report::json(&report);
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{doc}")?;
    } else {
        write!(out, "{}", table::from_json(&doc))?;
    }
    out.flush()?;
    if let Some(path) = svg {
        let header = table::from_json(&doc)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        std::fs::write(path, plot::svg(&header, &report.outcomes))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let failed: Vec<&str> = report
        .outcomes
        .iter()
        .filter(|o| o.error.is_some())
        .map(|o| o.id)
        .collect();
    if !failed.is_empty() {
        bail!("could not measure {}", failed.join(", "));
    }
    Ok(())
}

/// An in-process scenario: its paired timings, with its instruction counts.
fn in_process(
    id: &'static str,
    fixture: Fixture,
    plan: &Plan,
    counts: &count::Counts,
) -> anyhow::Result<Outcome> {
    let rounds = inproc::time(plan, fixture)?;
    let mut outcome = Outcome::from_rounds(id, Unit::Ns, &rounds);
    outcome.instructions = rounds
        .iter()
        .filter_map(|(name, _)| Some((*name, counts.get(id, name)?)))
        .collect();
    Ok(outcome)
}

/// `--from-json FILE`: the table of a saved run.
fn print_saved(path: &Path) -> anyhow::Result<()> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
    } else {
        text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    }
    let doc: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a `shmsem bench --json` document", path.display()))?;
    if !doc["results"].is_array() {
        bail!(
            "{} has no `results`: not a `shmsem bench --json` document",
            path.display()
        );
    }
    let mut out = std::io::stdout().lock();
    write!(out, "{}", table::from_json(&doc))?;
    out.flush()?;
    Ok(())
}

/// One line of progress on stderr, rewritten in place, if stderr is a terminal.
struct Progress(bool);

impl Progress {
    fn say(&self, what: &str) {
        if self.0 {
            eprint!("\r{what:60}\r");
            if !what.is_empty() {
                eprint!("{what}…");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In `pin.rs`'s stead: the criterion benches include that file, and test nothing.
    #[test]
    fn pins_a_thread() {
        // In a thread of its own, so that the test harness's other threads are unaffected.
        std::thread::spawn(|| {
            let cpus = Cpus::choose().expect("sched_getaffinity");
            assert!(cpus.all.contains(&cpus.main));
            assert_ne!(cpus.other, Some(cpus.main));
            pin::pin(0, cpus.main).expect("pin");
            assert_eq!(pin::allowed().expect("allowed"), vec![cpus.main]);
            assert!(pin::pin(0, libc::CPU_SETSIZE as usize).is_err());
        })
        .join()
        .expect("the pinning thread");
    }

    #[test]
    fn scenarios_and_targets_agree() {
        let ids: Vec<&str> = SCENARIOS.iter().map(|(id, _)| *id).collect();
        let targets: Vec<&str> = targets::TARGETS.iter().map(|t| t.id).collect();
        assert_eq!(ids, targets);
        for (id, _) in inproc::SCENARIOS {
            assert!(
                SCENARIOS
                    .iter()
                    .any(|(i, s)| *i == id && matches!(s, Scenario::InProcess(_))),
                "{id}"
            );
        }
    }
}
