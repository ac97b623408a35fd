//! The targets of README, *Benchmarks*, scenario by scenario, and how an outcome is judged against them.
//!
//! A timed target is judged on the median of the per-pair ratios, never on a single batch;
//! `uncontended` also has an instruction target, judged on the exact counts.

use super::report::{Outcome, Unit};

/// Three-valued and: false if either is, unknown if either is, else true.
pub fn and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// A scenario's target, as the README's *Benchmarks* section lists it.
#[derive(Debug)]
pub struct Target {
    /// The scenario id.
    pub id: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// The contender shmsem's ratio is taken against.
    pub peer: &'static str,
    /// The target, as the table and the JSON show it.
    pub text: &'static str,
    /// The timed part of the target, judged on an outcome: `None` without the figures.
    pub timed: fn(&Outcome) -> Option<bool>,
    /// The instruction part, for targets that have one.
    pub instructions: Option<fn(&Outcome) -> Option<bool>>,
}

/// The median of the per-pair ratios.
fn median(o: &Outcome) -> Option<f64> {
    o.ratio.map(|r| r.median)
}

/// The target of both ping-pong scenarios, whichever CPUs the two sides run on.
const PINGPONG: Target = Target {
    id: "pingpong",
    unit: Unit::Ns,
    peer: "posix",
    text: "≤ 1.0× POSIX",
    timed: |o| Some(median(o)? <= 1.0),
    instructions: None,
};

/// The scenarios, in the order they run and print, with their targets.
pub const TARGETS: [Target; 16] = [
    Target {
        id: "uncontended",
        unit: Unit::Ns,
        peer: "posix",
        text: "time ≤ 1.1× POSIX, ≤ 0.1× SysV; instructions ≤ 2× POSIX",
        timed: |o| Some(median(o)? <= 1.1 && o.more_ratio("sysv")?.median <= 0.1),
        instructions: Some(|o| Some(o.instructions_ratio()? <= 2.0)),
    },
    Target {
        id: "try_full",
        unit: Unit::Ns,
        peer: "posix",
        text: "≤ 1.0× sem_trywait",
        timed: |o| Some(median(o)? <= 1.0),
        instructions: None,
    },
    Target {
        id: "open",
        unit: Unit::Ns,
        peer: "posix",
        text: "≤ 0.1× sem_open + sem_close",
        timed: |o| Some(median(o)? <= 0.1),
        instructions: None,
    },
    Target {
        id: "pingpong_same_cpu",
        ..PINGPONG
    },
    Target {
        id: "pingpong_cross_cpu",
        ..PINGPONG
    },
    Target {
        id: "contended4",
        unit: Unit::OpsPerSec,
        peer: "posix",
        text: "throughput ≥ 1.0× POSIX, CPU/op ≤ 1.0× POSIX",
        timed: |o| Some(median(o)? >= 1.0 && o.more_ratio("cpu")?.median <= 1.0),
        instructions: None,
    },
    Target {
        id: "weighted4",
        unit: Unit::Ns,
        peer: "posix",
        text: "≤ 0.5× 4 POSIX waits",
        timed: |o| Some(median(o)? <= 0.5),
        instructions: None,
    },
    Target {
        id: "timed",
        unit: Unit::Ns,
        peer: "posix",
        text: "none in §6",
        timed: |_| None,
        instructions: None,
    },
    Target {
        id: "idle100",
        unit: Unit::CpuMs,
        peer: "posix",
        text: "CPU ≤ 1% of one core in total",
        timed: |o| Some(o.extra("core_percent")? <= 1.0),
        instructions: None,
    },
    Target {
        id: "reclaim",
        unit: Unit::Ms,
        peer: "sysv",
        text: "p99 ≤ 60 ms",
        timed: |o| Some(o.median_of("shmsem")? <= 60.0),
        instructions: None,
    },
    Target {
        id: "scale10k",
        unit: Unit::Ns,
        peer: "baseline",
        text: "≤ 1.2× with 1 semaphore",
        timed: |o| Some(median(o)? <= 1.2),
        instructions: None,
    },
    Target {
        id: "async_uncontended",
        unit: Unit::Ns,
        peer: "blocking",
        text: "≤ 1.2× the blocking call (tokio in-process, for scale)",
        timed: |o| Some(median(o)? <= 1.2),
        instructions: None,
    },
    Target {
        id: "async_handoff",
        unit: Unit::Ns,
        peer: "blocking",
        text: "none in §6 (blocking and POSIX for scale)",
        timed: |_| None,
        instructions: None,
    },
    Target {
        id: "c_uncontended",
        unit: Unit::Ns,
        peer: "posix",
        text: "as from Rust: time ≤ 1.1× POSIX; instructions ≤ 2× POSIX",
        timed: |o| Some(median(o)? <= 1.1),
        instructions: Some(|o| Some(o.instructions_ratio()? <= 2.0)),
    },
    Target {
        id: "cluster_pair",
        unit: Unit::Ms,
        peer: "local",
        text: "none in §6 (a quorum write each way)",
        timed: |_| None,
        instructions: None,
    },
    Target {
        id: "cluster_reclaim",
        unit: Unit::Ms,
        peer: "local",
        text: "same host: p99 ≤ 1000 ms; elsewhere: ≤ TTL + election",
        timed: |o| Some(o.median_of("shmsem")? <= 1000.0),
        instructions: None,
    },
];

/// The target of scenario `id`.
pub fn target(id: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.id == id)
}
