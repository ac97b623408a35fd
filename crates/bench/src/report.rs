//! The results: one [`Outcome`] per scenario, judged against the targets in the README's *Benchmarks* section, and the
//! run's JSON document (README, *Benchmarks*), from which `table` prints the table.
//!
//! A target is judged on the median of its per-pair ratios (and, for `uncontended`, on the
//! instruction counts as well). When the A/A control says the machine was too noisy, no timed
//! target is judged: every `met` is `null`; `met_instructions` still is, counts being exact.

use serde_json::{Map, Value, json};

pub use super::targets::target;
use super::{
    count::{Counts, PerOp},
    stats::{self, Better, CONTROL_BAND, Summary},
    targets::and,
};

/// The unit of a scenario's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Nanoseconds per operation (lower is better).
    Ns,
    /// Operations per second (higher is better).
    OpsPerSec,
    /// Milliseconds (lower is better).
    Ms,
    /// Milliseconds of CPU time, all processes together (lower is better).
    CpuMs,
}

impl Unit {
    /// As the JSON and the table spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::OpsPerSec => "ops/s",
            Unit::Ms => "ms",
            Unit::CpuMs => "ms CPU",
        }
    }
}

/// One scenario's figures. Lists are keyed by contender: `shmsem`, `posix`, `sysv`, or what
/// the scenario compares with (`baseline`); a contender missing was not measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The scenario id.
    pub id: &'static str,
    /// The unit of `median` and `best`.
    pub unit: Unit,
    /// Per contender: the median of its batches (or windows, or the scenario's own figure).
    pub median: Vec<(&'static str, f64)>,
    /// Per contender: its best batch (least time, most throughput).
    pub best: Vec<(&'static str, f64)>,
    /// Per contender: instructions (and system calls) per operation.
    pub instructions: Vec<(&'static str, PerOp)>,
    /// shmsem over the target's peer, pair by pair.
    pub ratio: Option<Summary>,
    /// Further ratios, pair by pair: `sysv` (shmsem over SysV), `cpu` (CPU time per operation).
    pub more_ratios: Vec<(&'static str, Summary)>,
    /// Further figures, reported as extra JSON fields (e.g. `p50`).
    pub extra: Vec<(&'static str, f64)>,
    /// Why a figure is missing, when that is no error (one CPU: no cross-CPU ping-pong).
    pub note: Option<String>,
    /// Why the scenario could not be measured.
    pub error: Option<String>,
}

impl Outcome {
    /// An outcome with nothing measured yet.
    pub fn new(id: &'static str, unit: Unit) -> Outcome {
        Outcome {
            id,
            unit,
            median: Vec::new(),
            best: Vec::new(),
            instructions: Vec::new(),
            ratio: None,
            more_ratios: Vec::new(),
            extra: Vec::new(),
            note: None,
            error: None,
        }
    }

    /// A scenario that failed.
    pub fn failed(id: &'static str, error: &anyhow::Error) -> Outcome {
        let mut o = Outcome::new(id, target(id).map_or(Unit::Ns, |t| t.unit));
        o.error = Some(format!("{error:#}"));
        o
    }

    /// A scenario that this machine cannot measure, and why.
    pub fn skipped(id: &'static str, why: String) -> Outcome {
        let mut o = Outcome::new(id, target(id).map_or(Unit::Ns, |t| t.unit));
        o.note = Some(why);
        o
    }

    /// An outcome from paired rounds: each contender's samples, one per round (times per
    /// operation, or throughputs for [`Unit::OpsPerSec`]). The ratio is shmsem's over the
    /// target's peer, round by round; shmsem's over SysV's too where SysV ran and is not the
    /// peer.
    pub fn from_rounds(
        id: &'static str,
        unit: Unit,
        rounds: &[(&'static str, Vec<f64>)],
    ) -> Outcome {
        let mut o = Outcome::new(id, unit);
        for (name, samples) in rounds {
            o.median.push((name, stats::median(&mut samples.clone())));
            let best = if unit == Unit::OpsPerSec {
                stats::maximum(samples)
            } else {
                stats::minimum(samples)
            };
            o.best.push((name, best));
        }
        let better = if unit == Unit::OpsPerSec {
            Better::Higher
        } else {
            Better::Lower
        };
        let peer = target(id).map_or("posix", |t| t.peer);
        let of = |name: &str| rounds.iter().find(|(k, _)| *k == name).map(|(_, v)| v);
        if let (Some(s), Some(p)) = (of("shmsem"), of(peer)) {
            o.ratio = Summary::of_pairs(s, p, better);
        }
        if peer != "sysv" {
            let sysv = of("shmsem").zip(of("sysv"));
            if let Some(sv) = sysv.and_then(|(s, v)| Summary::of_pairs(s, v, better)) {
                o.more_ratios.push(("sysv", sv));
            }
        }
        o
    }

    /// The median figure of `contender`.
    pub fn median_of(&self, contender: &str) -> Option<f64> {
        find(&self.median, contender)
    }

    /// An extra figure.
    pub fn extra(&self, key: &str) -> Option<f64> {
        find(&self.extra, key)
    }

    /// A further ratio.
    pub fn more_ratio(&self, key: &str) -> Option<&Summary> {
        self.more_ratios
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, s)| s)
    }

    /// Instructions per operation, shmsem's over the peer's.
    pub fn instructions_ratio(&self) -> Option<f64> {
        let peer = target(self.id).map_or("posix", |t| t.peer);
        let of = |c: &str| {
            self.instructions
                .iter()
                .find(|(k, _)| *k == c)
                .map(|(_, p)| p.instructions)
        };
        match (of("shmsem"), of(peer)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        }
    }

    /// Whether the §6 target is met: `None` without a target, without the figures it needs, or
    /// when the machine was too noisy to judge.
    pub fn met(&self, noisy: bool) -> Option<bool> {
        let t = target(self.id)?;
        if noisy || self.error.is_some() {
            return None;
        }
        let timed = (t.timed)(self);
        match t.instructions {
            Some(instructions) => and(timed, instructions(self)),
            None => timed,
        }
    }

    /// Whether the instruction part of the target is met, for targets that have one.
    pub fn met_instructions(&self) -> Option<bool> {
        (target(self.id)?.instructions?)(self)
    }
}

fn find(list: &[(&'static str, f64)], key: &str) -> Option<f64> {
    list.iter()
        .find(|(k, _)| *k == key)
        .map(|&(_, v)| v)
        .filter(|v| v.is_finite())
}

/// The machine the figures come from.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `uname -r`.
    pub kernel: String,
    /// The CPU model, from `/proc/cpuinfo`.
    pub cpu: String,
    /// CPUs available to this process.
    pub cpus: usize,
    /// `quick` or `default`.
    pub mode: &'static str,
    /// The CPU the measuring thread is pinned to.
    pub pinned_cpu: Option<usize>,
    /// The CPU of cross-CPU helpers.
    pub second_cpu: Option<usize>,
}

impl Machine {
    /// Look at this machine.
    pub fn detect(quick: bool) -> Machine {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = ["model name", "Hardware", "cpu model", "Processor"]
            .iter()
            .find_map(|key| {
                cpuinfo.lines().find_map(|line| {
                    let (k, v) = line.split_once(':')?;
                    (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_owned())
                })
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        Machine {
            kernel,
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mode: if quick { "quick" } else { "default" },
            pinned_cpu: None,
            second_cpu: None,
        }
    }
}

/// Everything a run found.
#[derive(Debug)]
pub struct Report {
    /// Where.
    pub machine: Machine,
    /// The instruction counts, and how they were made.
    pub counts: Counts,
    /// The A/A control's ratios.
    pub control: Option<Summary>,
    /// The scenarios.
    pub outcomes: Vec<Outcome>,
    /// How long the run took.
    pub seconds: f64,
}

impl Report {
    /// Whether the control says the machine was too noisy to judge timed targets.
    pub fn noisy(&self) -> bool {
        stats::too_noisy(self.control.as_ref())
    }
}

/// Round to `decimals` digits after the point, as a JSON number; `null` if not finite.
pub fn num(x: f64, decimals: usize) -> Value {
    if !x.is_finite() {
        return Value::Null;
    }
    let scale = 10f64.powi(decimals as i32);
    json!((x * scale).round() / scale)
}

/// Digits worth printing for a figure in `unit`.
fn decimals(unit: Unit, x: f64) -> usize {
    match unit {
        Unit::Ns if x < 100.0 => 1,
        Unit::Ns | Unit::OpsPerSec => 0,
        Unit::Ms | Unit::CpuMs => 2,
    }
}

/// `{"median", "ci95", "min", "samples"}` of a ratio summary.
fn summary(s: &Summary) -> Value {
    json!({
        "median": num(s.median, 3),
        "ci95": [num(s.ci95.0, 3), num(s.ci95.1, 3)],
        "min": num(s.min, 3),
        "samples": s.samples,
    })
}

/// One scenario as JSON.
fn outcome(o: &Outcome, noisy: bool) -> Value {
    let by_contender = |list: &[(&'static str, f64)]| -> Value {
        if list.is_empty() {
            return Value::Null;
        }
        let map: Map<String, Value> = list
            .iter()
            .map(|&(k, v)| (k.to_owned(), num(v, decimals(o.unit, v).max(1))))
            .collect();
        Value::Object(map)
    };
    let counts = |pick: fn(&PerOp) -> Option<f64>| -> Value {
        if o.instructions.is_empty() {
            return Value::Null;
        }
        let map: Map<String, Value> = o
            .instructions
            .iter()
            .map(|(k, p)| ((*k).to_owned(), pick(p).map_or(Value::Null, |x| num(x, 1))))
            .collect();
        Value::Object(map)
    };
    let mut m = Map::new();
    m.insert("scenario".into(), json!(o.id));
    m.insert("unit".into(), json!(o.unit.as_str()));
    m.insert("instructions".into(), counts(|p| Some(p.instructions)));
    m.insert("syscalls".into(), counts(|p| p.syscalls));
    m.insert(
        "instructions_ratio".into(),
        o.instructions_ratio().map_or(Value::Null, |r| num(r, 3)),
    );
    for &c in &["shmsem", "posix", "sysv", "baseline"] {
        if c != "baseline" || o.median_of(c).is_some() {
            m.insert(
                c.into(),
                o.median_of(c)
                    .map_or(Value::Null, |x| num(x, decimals(o.unit, x).max(1))),
            );
        }
    }
    m.insert("best".into(), by_contender(&o.best));
    let r = o.ratio.as_ref();
    m.insert(
        "ratio_median".into(),
        r.map_or(Value::Null, |s| num(s.median, 3)),
    );
    m.insert(
        "ratio_ci95".into(),
        r.map_or(Value::Null, |s| json!([num(s.ci95.0, 3), num(s.ci95.1, 3)])),
    );
    m.insert("ratio_min".into(), r.map_or(Value::Null, |s| num(s.min, 3)));
    m.insert(
        "samples".into(),
        r.map_or(Value::Null, |s| json!(s.samples)),
    );
    for (key, s) in &o.more_ratios {
        m.insert(format!("ratio_{key}"), summary(s));
    }
    m.insert("target".into(), json!(target(o.id).map_or("", |t| t.text)));
    m.insert("met".into(), o.met(noisy).map_or(Value::Null, Value::Bool));
    if target(o.id).is_some_and(|t| t.instructions.is_some()) {
        m.insert(
            "met_instructions".into(),
            o.met_instructions().map_or(Value::Null, Value::Bool),
        );
    }
    for &(key, value) in &o.extra {
        m.insert(
            key.into(),
            num(value, if key.starts_with("ratio") { 3 } else { 2 }),
        );
    }
    if let Some(note) = &o.note {
        m.insert("note".into(), json!(note));
    }
    if let Some(e) = &o.error {
        m.insert("error".into(), json!(e));
    }
    Value::Object(m)
}

/// The JSON document: `{"machine": {...}, "results": [...]}` (README, *Benchmarks*).
pub fn json(report: &Report) -> Value {
    let noisy = report.noisy();
    let machine = &report.machine;
    let counts = &report.counts;
    let control = report.control.as_ref().map_or(Value::Null, |c| {
        json!({
            "what": "POSIX sem_wait + sem_post against itself (A/A), paired like every scenario",
            "ratio_median": num(c.median, 3),
            "ratio_ci95": [num(c.ci95.0, 3), num(c.ci95.1, 3)],
            "ratio_min": num(c.min, 3),
            "samples": c.samples,
            "band": [CONTROL_BAND.0, CONTROL_BAND.1],
        })
    });
    let verdict = match &report.control {
        Some(c) if noisy => format!(
            "too noisy: the A/A control's median was {:.3}, outside {}–{}; no timed target judged",
            c.median, CONTROL_BAND.0, CONTROL_BAND.1
        ),
        None => {
            "too noisy: the A/A control could not be measured; no timed target judged".to_owned()
        }
        Some(c) => format!(
            "quiet enough: the A/A control's median was {:.3}, within {}–{}",
            c.median, CONTROL_BAND.0, CONTROL_BAND.1
        ),
    };
    json!({
        "machine": {
            "kernel": machine.kernel,
            "cpu": machine.cpu,
            "cpus": machine.cpus,
            "mode": machine.mode,
            "shmsem_version": env!("CARGO_PKG_VERSION"),
            "pinned_cpu": machine.pinned_cpu,
            "second_cpu": machine.second_cpu,
            "instructions": {
                "method": counts.method,
                "detail": counts.detail,
                "batch_ops": [counts.ops, 2 * counts.ops],
                "errors": counts.errors,
            },
            "control": control,
            "noisy": noisy,
            "verdict": verdict,
            "seconds": num(report.seconds, 1),
        },
        "results": report.outcomes.iter().map(|o| outcome(o, noisy)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratio(median: f64) -> Summary {
        Summary {
            median,
            ci95: (median * 0.95, median * 1.05),
            min: median * 0.9,
            samples: 600,
        }
    }

    fn uncontended(time: f64, sysv: f64, instructions: [f64; 2]) -> Outcome {
        let mut o = Outcome::new("uncontended", Unit::Ns);
        o.median = vec![("shmsem", 20.0), ("posix", 16.0), ("sysv", 400.0)];
        o.ratio = Some(ratio(time));
        o.more_ratios.push(("sysv", ratio(sysv)));
        o.instructions = vec![
            (
                "shmsem",
                PerOp {
                    instructions: instructions[0],
                    syscalls: Some(0.0),
                },
            ),
            (
                "posix",
                PerOp {
                    instructions: instructions[1],
                    syscalls: Some(0.0),
                },
            ),
        ];
        o
    }

    fn report(control: f64, outcomes: Vec<Outcome>) -> Report {
        Report {
            machine: Machine::detect(true),
            counts: Counts::default(),
            control: Some(ratio(control)),
            outcomes,
            seconds: 12.0,
        }
    }

    #[test]
    fn targets_are_judged() {
        assert_eq!(uncontended(1.05, 0.05, [60.0, 35.0]).met(false), Some(true));
        assert_eq!(uncontended(1.2, 0.05, [60.0, 35.0]).met(false), Some(false));
        let o = uncontended(1.05, 0.05, [80.0, 35.0]);
        assert_eq!(
            (o.met(false), o.met_instructions()),
            (Some(false), Some(false))
        );
        let mut o = Outcome::new("contended4", Unit::OpsPerSec);
        o.ratio = Some(ratio(1.2));
        o.more_ratios.push(("cpu", ratio(0.9)));
        assert_eq!(o.met(false), Some(true));
        let mut o = Outcome::new("timed", Unit::Ns);
        o.ratio = Some(ratio(0.5));
        assert_eq!(o.met(false), None);
        let mut o = Outcome::new("idle100", Unit::CpuMs);
        o.extra.push(("core_percent", 2.5));
        assert_eq!(o.met(false), Some(false));
        assert_eq!(
            Outcome::failed("open", &anyhow::anyhow!("boom")).met(false),
            None
        );
    }

    #[test]
    fn a_noisy_control_sets_every_met_to_null() {
        let outcomes = || {
            let mut scale = Outcome::new("scale10k", Unit::Ns);
            scale.ratio = Some(ratio(1.0));
            vec![uncontended(1.05, 0.05, [60.0, 35.0]), scale]
        };
        let quiet = json(&report(1.02, outcomes()));
        assert_eq!(quiet["machine"]["noisy"], false);
        assert_eq!(quiet["results"][0]["met"], true);
        assert_eq!(quiet["results"][1]["met"], true);
        for control in [1.3, 0.8] {
            let noisy = json(&report(control, outcomes()));
            assert_eq!(noisy["machine"]["noisy"], true);
            assert!(
                noisy["machine"]["verdict"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("too noisy")),
                "{noisy}"
            );
            for r in noisy["results"].as_array().expect("results") {
                assert_eq!(r["met"], Value::Null, "{r}");
            }
            // Counts are exact: their verdict stands.
            assert_eq!(noisy["results"][0]["met_instructions"], true);
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let v = json(&report(1.0, vec![uncontended(1.05, 0.05, [70.0, 35.0])]));
        let r = &v["results"][0];
        assert_eq!(r["scenario"], "uncontended");
        assert_eq!(r["instructions"]["shmsem"], 70.0);
        assert_eq!(r["instructions"]["posix"], 35.0);
        assert_eq!(r["instructions_ratio"], 2.0);
        assert_eq!(r["ratio_median"], 1.05);
        let ci = r["ratio_ci95"].as_array().expect("[lo, hi]");
        assert_eq!(ci.len(), 2);
        assert!(
            ci[0].as_f64() < Some(1.05) && ci[1].as_f64() > Some(1.05),
            "{ci:?}"
        );
        assert_eq!(r["ratio_min"], 0.945);
        assert_eq!(r["samples"], 600);
        assert_eq!(r["ratio_sysv"]["median"], 0.05);
        assert_eq!(v["machine"]["control"]["ratio_median"], 1.0);
        assert_eq!(v["machine"]["control"]["samples"], 600);
        assert_eq!(v["machine"]["seconds"], 12.0);
    }
}
