//! The results: one [`Outcome`] per scenario, judged against the targets of SPEC §6, printed as
//! a table or as JSON, with the machine they were measured on.

use serde_json::{Map, Value, json};

/// The unit of a scenario's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Nanoseconds per operation (lower is better).
    Ns,
    /// Operations per second (higher is better).
    OpsPerSec,
    /// Milliseconds (lower is better).
    Ms,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::OpsPerSec => "ops/s",
            Unit::Ms => "ms",
        }
    }

    /// Digits after the point.
    fn decimals(self, x: f64) -> usize {
        match self {
            Unit::Ns if x < 100.0 => 1,
            Unit::Ns | Unit::OpsPerSec => 0,
            Unit::Ms => 2,
        }
    }

    fn show(self, x: f64) -> String {
        format!("{x:.*}", self.decimals(x))
    }
}

/// One scenario's figures. `None` means not measured: never possible (POSIX reclaim), no
/// counterpart (scale10k), or an error.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The scenario id.
    pub id: &'static str,
    /// The unit of `shmsem`, `posix` and `sysv`.
    pub unit: Unit,
    /// shmsem's figure.
    pub shmsem: Option<f64>,
    /// POSIX's figure.
    pub posix: Option<f64>,
    /// SysV's figure.
    pub sysv: Option<f64>,
    /// Further figures, reported as extra JSON fields (e.g. `p50`).
    pub extra: Vec<(&'static str, f64)>,
    /// Why the scenario could not be measured.
    pub error: Option<String>,
}

impl Outcome {
    /// An outcome with the three figures and nothing else.
    pub fn new(
        id: &'static str,
        unit: Unit,
        shmsem: f64,
        posix: Option<f64>,
        sysv: Option<f64>,
    ) -> Outcome {
        Outcome {
            id,
            unit,
            shmsem: Some(shmsem),
            posix,
            sysv,
            extra: Vec::new(),
            error: None,
        }
    }

    /// A scenario that failed.
    pub fn failed(id: &'static str, error: &anyhow::Error) -> Outcome {
        Outcome {
            id,
            unit: target(id).map_or(Unit::Ns, |t| t.unit),
            shmsem: None,
            posix: None,
            sysv: None,
            extra: Vec::new(),
            error: Some(format!("{error:#}")),
        }
    }

    fn extra(&self, key: &str) -> Option<f64> {
        self.extra.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }

    /// shmsem / POSIX.
    pub fn ratio_posix(&self) -> Option<f64> {
        ratio(self.shmsem, self.posix)
    }

    /// shmsem / SysV.
    fn ratio_sysv(&self) -> Option<f64> {
        ratio(self.shmsem, self.sysv)
    }

    /// Whether the §6 target is met; `None` where there is no target or no figure.
    pub fn met(&self) -> Option<bool> {
        if self.error.is_some() {
            return None;
        }
        target(self.id).and_then(|t| (t.met)(self))
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

/// A scenario's target from SPEC §6.
#[derive(Debug)]
pub struct Target {
    /// The scenario id.
    pub id: &'static str,
    /// Its unit.
    pub unit: Unit,
    /// The target, as the table and the JSON show it.
    pub text: &'static str,
    met: fn(&Outcome) -> Option<bool>,
}

/// The scenarios, in the order they run and print, with their targets.
pub const TARGETS: [Target; 9] = [
    Target {
        id: "uncontended",
        unit: Unit::Ns,
        text: "≤ 1.5× POSIX and ≤ 0.1× SysV",
        met: |o| Some(o.ratio_posix()? <= 1.5 && o.ratio_sysv()? <= 0.1),
    },
    Target {
        id: "try_full",
        unit: Unit::Ns,
        text: "≤ 1.0× sem_trywait",
        met: |o| Some(o.ratio_posix()? <= 1.0),
    },
    Target {
        id: "open",
        unit: Unit::Ns,
        text: "≤ 0.1× sem_open+sem_close",
        met: |o| Some(o.ratio_posix()? <= 0.1),
    },
    Target {
        id: "pingpong",
        unit: Unit::Ns,
        text: "≤ 1.0× POSIX",
        met: |o| Some(o.ratio_posix()? <= 1.0),
    },
    Target {
        id: "contended4",
        unit: Unit::OpsPerSec,
        text: "≥ 1.0× POSIX",
        met: |o| Some(o.ratio_posix()? >= 1.0),
    },
    Target {
        id: "weighted4",
        unit: Unit::Ns,
        text: "≤ 0.5× 4 POSIX waits",
        met: |o| Some(o.ratio_posix()? <= 0.5),
    },
    Target {
        id: "timed",
        unit: Unit::Ns,
        text: "none in §6",
        met: |_| None,
    },
    Target {
        id: "reclaim",
        unit: Unit::Ms,
        text: "p99 ≤ 60 ms",
        met: |o| Some(o.shmsem? <= 60.0),
    },
    Target {
        id: "scale10k",
        unit: Unit::Ns,
        text: "≤ 1.2× with 1 semaphore",
        met: |o| Some(o.extra("ratio_baseline")? <= 1.2),
    },
];

/// The target of scenario `id`.
pub fn target(id: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.id == id)
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
        }
    }

    /// The header line of the table.
    pub fn header(&self) -> String {
        format!(
            "shmsem bench ({}): Linux {}, {}, {} CPU{}",
            self.mode,
            self.kernel,
            self.cpu,
            self.cpus,
            if self.cpus == 1 { "" } else { "s" }
        )
    }
}

/// Round to `decimals` digits after the point, as a JSON number.
fn num(x: f64, decimals: usize) -> Value {
    let scale = 10f64.powi(decimals as i32);
    json!((x * scale).round() / scale)
}

fn opt(x: Option<f64>, decimals: usize) -> Value {
    x.filter(|x| x.is_finite())
        .map_or(Value::Null, |x| num(x, decimals))
}

/// The JSON document: `{"machine": {...}, "results": [...]}`.
pub fn json(machine: &Machine, outcomes: &[Outcome]) -> Value {
    let results: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let d = |x: Option<f64>| opt(x, o.unit.decimals(x.unwrap_or(0.0)).max(1));
            let mut m = Map::new();
            m.insert("scenario".into(), json!(o.id));
            m.insert("unit".into(), json!(o.unit.as_str()));
            m.insert("shmsem".into(), d(o.shmsem));
            m.insert("posix".into(), d(o.posix));
            m.insert("sysv".into(), d(o.sysv));
            m.insert("ratio_posix".into(), opt(o.ratio_posix(), 3));
            m.insert("target".into(), json!(target(o.id).map_or("", |t| t.text)));
            m.insert("met".into(), o.met().map_or(Value::Null, Value::Bool));
            for &(key, value) in &o.extra {
                let decimals = if key.starts_with("ratio") { 3 } else { 2 };
                m.insert(key.into(), opt(Some(value), decimals));
            }
            if let Some(e) = &o.error {
                m.insert("error".into(), json!(e));
            }
            Value::Object(m)
        })
        .collect();
    json!({
        "machine": {
            "kernel": machine.kernel,
            "cpu": machine.cpu,
            "cpus": machine.cpus,
            "mode": machine.mode,
            "shmsem_version": env!("CARGO_PKG_VERSION"),
        },
        "results": results,
    })
}

/// What the note column says: the figures the target is judged on that the other columns do
/// not show, or the error.
fn note(o: &Outcome) -> String {
    if let Some(e) = &o.error {
        return format!("error: {e}");
    }
    match o.id {
        "uncontended" => o
            .ratio_sysv()
            .map_or_else(String::new, |r| format!("{r:.3}× SysV")),
        "reclaim" => {
            let mut parts = Vec::new();
            if let Some(p50) = o.extra("p50") {
                parts.push(format!("p50 {p50:.2} ms"));
            }
            if let Some(p50) = o.extra("p50_sysv") {
                parts.push(format!("SysV p50 {p50:.2} ms"));
            }
            if let Some(n) = o.extra("kills") {
                parts.push(format!("{n} kills each"));
            }
            parts.push("POSIX: never".to_owned());
            parts.join(", ")
        }
        "scale10k" => match (o.extra("baseline"), o.extra("ratio_baseline")) {
            (Some(b), Some(r)) => format!("1 semaphore: {b:.1} ns; 10k/1 = {r:.3}×"),
            _ => String::new(),
        },
        "contended4" => "capacity 1, 4 processes; higher is better".to_owned(),
        "weighted4" => "acquire 4 + release 4".to_owned(),
        "pingpong" => "round trip".to_owned(),
        _ => String::new(),
    }
}

/// The table, header line first.
pub fn table(machine: &Machine, outcomes: &[Outcome]) -> String {
    let mut rows: Vec<[String; 9]> = vec![[
        "scenario".into(),
        "unit".into(),
        "shmsem".into(),
        "POSIX".into(),
        "SysV".into(),
        "shmsem/POSIX".into(),
        "target".into(),
        "met".into(),
        "note".into(),
    ]];
    for o in outcomes {
        let show = |x: Option<f64>| x.map_or_else(|| "—".to_owned(), |x| o.unit.show(x));
        let posix = match (o.id, o.posix) {
            ("reclaim", None) if o.error.is_none() => "never".to_owned(),
            (_, x) => show(x),
        };
        rows.push([
            o.id.to_owned(),
            o.unit.as_str().to_owned(),
            show(o.shmsem),
            posix,
            show(o.sysv),
            o.ratio_posix()
                .map_or_else(|| "—".to_owned(), |r| format!("{r:.2}×")),
            target(o.id).map_or("", |t| t.text).to_owned(),
            match o.met() {
                Some(true) => "✓",
                Some(false) => "✗",
                None => "—",
            }
            .to_owned(),
            note(o),
        ]);
    }
    let mut widths = [0usize; 9];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Numbers right-aligned, text left-aligned; the last column unpadded.
    let right = [false, false, true, true, true, true, false, false, false];
    let mut out = machine.header();
    out.push('\n');
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i > 0 {
                line.push_str("  ");
            }
            if right[i] {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else if i + 1 < row.len() {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_judged() {
        let o = Outcome::new("uncontended", Unit::Ns, 20.0, Some(16.0), Some(400.0));
        assert_eq!(o.met(), Some(true));
        let o = Outcome::new("uncontended", Unit::Ns, 44.0, Some(16.0), Some(400.0));
        assert_eq!(o.met(), Some(false));
        let o = Outcome::new("contended4", Unit::OpsPerSec, 2e6, Some(1e6), None);
        assert_eq!(o.met(), Some(true));
        let o = Outcome::new("timed", Unit::Ns, 1.0, Some(1.0), None);
        assert_eq!(o.met(), None);
        let mut o = Outcome::new("scale10k", Unit::Ns, 46.0, None, None);
        o.extra.push(("ratio_baseline", 1.05));
        assert_eq!(o.met(), Some(true));
        let o = Outcome::failed("open", &anyhow::anyhow!("boom"));
        assert_eq!(o.met(), None);
    }

    #[test]
    fn json_has_the_documented_shape() {
        let m = Machine {
            kernel: "6".into(),
            cpu: "x".into(),
            cpus: 2,
            mode: "quick",
        };
        let mut o = Outcome::new("reclaim", Unit::Ms, 49.5, None, Some(0.2));
        o.extra.push(("p50", 25.0));
        let v = json(&m, &[o]);
        let r = &v["results"][0];
        assert_eq!(r["scenario"], "reclaim");
        assert_eq!(r["unit"], "ms");
        assert_eq!(r["posix"], Value::Null);
        assert_eq!(r["ratio_posix"], Value::Null);
        assert_eq!(r["met"], true);
        assert_eq!(r["p50"], 25.0);
        assert_eq!(v["machine"]["cpus"], 2);
    }
}
