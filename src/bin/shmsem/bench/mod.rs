//! `shmsem bench [--json] [--quick]`: shmsem against the kernel's semaphores (POSIX named
//! semaphores, SysV with `SEM_UNDO`), scenario by scenario, side by side in one run, judged
//! against the targets of SPEC §6.
//!
//! | file | what |
//! |---|---|
//! | `peers.rs` | the kernel semaphores, behind one small trait |
//! | `procs.rs` | helper processes: start, talk, kill, reap; the watchdog |
//! | `roles.rs` | what a helper does in its role, and the ping-pong protocol |
//! | `drive.rs` | the parent's side: semaphores for helpers, killing a holder |
//! | `measure.rs` | batch sizing, interleaved repetitions, medians and percentiles |
//! | `inproc.rs` | the scenarios measured in this process |
//! | `multiproc.rs` | the scenarios with helper processes |
//! | `report.rs` | targets, the table, the JSON |
//!
//! Helpers are this executable again, started as `shmsem bench --quick` with
//! `SHMSEM_BENCH_ROLE` set: [`run`] plays the role instead of benchmarking when it finds that
//! variable. Every run keeps its shmsem files in a fresh temporary `SHMSEM_DIR`, names its POSIX
//! and SysV semaphores uniquely, and removes all of them at the end, on error too.

mod drive;
mod inproc;
mod measure;
mod multiproc;
mod peers;
mod plot;
mod procs;
mod report;
mod roles;

use std::io::{IsTerminal, Write};

use anyhow::{Context, bail};

use self::{
    measure::Plan,
    multiproc::Ctx,
    report::{Machine, Outcome},
};

/// The arguments that bring a helper back here.
const HELPER_ARGS: &[&str] = &["bench", "--quick"];

type Scenario = fn(&Ctx) -> anyhow::Result<Outcome>;

/// The scenarios, in the order of SPEC §6 (and of `report::TARGETS`).
const SCENARIOS: [(&str, Scenario); 9] = [
    ("uncontended", |c| inproc::uncontended(&c.plan)),
    ("try_full", |c| inproc::try_full(&c.plan)),
    ("open", |c| inproc::open(&c.plan)),
    ("pingpong", multiproc::pingpong),
    ("contended4", multiproc::contended4),
    ("weighted4", |c| inproc::weighted4(&c.plan)),
    ("timed", |c| inproc::timed_acquire(&c.plan)),
    ("reclaim", multiproc::reclaim),
    ("scale10k", |c| inproc::scale10k(&c.plan)),
];

/// Run the comparison of SPEC §6 and print it: a table, or with `json` one JSON document.
/// `quick` finishes in well under 30 s, the default in under 3 minutes.
///
/// In a helper process (`SHMSEM_BENCH_ROLE` set) it plays the helper's role instead. It must be
/// called before the process starts any thread: it sets `SHMSEM_DIR`.
pub fn run(json: bool, quick: bool, svg: Option<&std::path::Path>) -> anyhow::Result<()> {
    if let Some(outcome) = roles::requested() {
        return outcome;
    }
    let _dir = procs::Workspace::create()?;
    let ctx = Ctx {
        plan: Plan::new(quick),
        helper_args: HELPER_ARGS,
    };
    let machine = Machine::detect(quick);
    let progress = std::io::stderr().is_terminal();
    let mut outcomes = Vec::with_capacity(SCENARIOS.len());
    for (id, scenario) in SCENARIOS {
        if progress {
            eprint!("\rmeasuring {id}…{:20}", "");
        }
        outcomes.push(scenario(&ctx).unwrap_or_else(|e| Outcome::failed(id, &e)));
    }
    if progress {
        eprint!("\r{:40}\r", "");
    }
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", report::json(&machine, &outcomes))?;
    } else {
        write!(out, "{}", report::table(&machine, &outcomes))?;
    }
    out.flush()?;
    if let Some(path) = svg {
        std::fs::write(path, plot::svg(&machine.header(), &outcomes))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.error.is_some())
        .map(|o| o.id)
        .collect();
    if !failed.is_empty() {
        bail!("could not measure {}", failed.join(", "));
    }
    Ok(())
}
