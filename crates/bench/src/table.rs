//! The table `shmsem bench` prints, made from the JSON document and nothing else, so that a
//! saved `--json` run prints the same table again (`shmsem bench --from-json FILE`: how the
//! README's table is made).
//!
//! Exact figures first: instructions per operation for shmsem, POSIX and SysV, and shmsem's
//! over its peer's. Then the timed ones: each contender's median time per operation (or
//! throughput, or CPU time), and the median of the per-pair ratios with its bootstrap 95%
//! interval, the smallest ratio and the number of pairs.

use std::fmt::Write as _;

use serde_json::Value;

fn number(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

/// A figure as the table shows it: fewer digits as it grows; `—` for none.
fn show(x: Option<f64>) -> String {
    match x {
        None => "—".to_owned(),
        Some(x) if x.abs() >= 1000.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
    }
}

fn ratio(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_owned(), |r| format!("{r:.2}×"))
}

/// The lines above the table: the machine, how instructions were counted, the control.
fn header(m: &Value) -> String {
    let text = |k: &str| m[k].as_str().unwrap_or("?").to_owned();
    let cpus = m["cpus"].as_u64().unwrap_or(0);
    let mut out = format!(
        "shmsem bench ({}): Linux {}, {}, {} CPU{}",
        text("mode"),
        text("kernel"),
        text("cpu"),
        cpus,
        if cpus == 1 { "" } else { "s" }
    );
    if let Some(cpu) = m["pinned_cpu"].as_u64() {
        let _ = write!(out, "; measuring on CPU {cpu}");
        if let Some(second) = m["second_cpu"].as_u64() {
            let _ = write!(out, ", helpers across on CPU {second}");
        }
    }
    if let Some(s) = number(&m["seconds"]) {
        let _ = write!(out, "; {s:.1} s");
    }
    out.push('\n');
    let i = &m["instructions"];
    let n = i["batch_ops"][0].as_u64().unwrap_or(0);
    match i["method"].as_str() {
        Some(method) => {
            let _ = writeln!(
                out,
                "instructions: exact user-space counts per operation by {method} ({}): the \
                 timed loop's batch of {n} operations subtracted from its batch of {}",
                i["detail"].as_str().unwrap_or(""),
                i["batch_ops"][1].as_u64().unwrap_or(0)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "instructions: not counted: {}",
                i["detail"].as_str().unwrap_or("no counter")
            );
        }
    }
    for e in i["errors"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  not counted: {}", e.as_str().unwrap_or(""));
    }
    let c = &m["control"];
    if let Some(median) = number(&c["ratio_median"]) {
        let _ = write!(
            out,
            "A/A control (POSIX against itself): median {median:.3} [{:.3}, {:.3}], min {:.3}, \
             {} pairs",
            number(&c["ratio_ci95"][0]).unwrap_or(f64::NAN),
            number(&c["ratio_ci95"][1]).unwrap_or(f64::NAN),
            number(&c["ratio_min"]).unwrap_or(f64::NAN),
            c["samples"].as_u64().unwrap_or(0)
        );
        out.push_str(": ");
    }
    let _ = writeln!(out, "{}", m["verdict"].as_str().unwrap_or(""));
    out
}

/// What the note column says: the figures the target is judged on that the other columns do
/// not show, or why a figure is missing.
fn note(r: &Value) -> String {
    if let Some(e) = r["error"].as_str() {
        return format!("error: {e}");
    }
    if let Some(n) = r["note"].as_str() {
        return n.to_owned();
    }
    let s = |k: &str| number(&r[k]);
    let summary = |k: &str| {
        let v = &r[k];
        number(&v["median"]).map(|m| {
            format!(
                "{m:.3} [{:.3}, {:.3}]",
                number(&v["ci95"][0]).unwrap_or(f64::NAN),
                number(&v["ci95"][1]).unwrap_or(f64::NAN)
            )
        })
    };
    let mut parts = Vec::new();
    if let Some(sv) = summary("ratio_sysv") {
        parts.push(format!("{sv}× SysV"));
    }
    match r["scenario"].as_str().unwrap_or("") {
        "contended4" => {
            if let Some(c) = summary("ratio_cpu") {
                parts.push(format!("CPU/op {c}× POSIX"));
            }
            if let (Some(a), Some(b)) = (s("cpu_ns_per_op"), s("cpu_ns_per_op_posix")) {
                parts.push(format!("CPU/op {a:.0} vs {b:.0} ns"));
            }
        }
        "idle100" => {
            if let (Some(p), Some(c), Some(cp)) = (
                s("core_percent"),
                s("context_switches"),
                s("context_switches_posix"),
            ) {
                parts.push(format!(
                    "{p:.2}% of a core; context switches {c:.0} vs POSIX {cp:.0}; {:.0} s",
                    s("seconds").unwrap_or(f64::NAN)
                ));
            }
        }
        "reclaim" => {
            if let (Some(p50), Some(sv)) = (s("p50"), s("p50_sysv")) {
                parts.push(format!(
                    "p50 {p50:.2} ms, SysV p50 {sv:.2} ms; POSIX: never"
                ));
            }
        }
        "cluster_pair" => {
            if let (Some(p99), Some(l50), Some(l99)) =
                (s("p99"), s("local_p50_ns"), s("local_p99_ns"))
            {
                parts.push(format!(
                    "p50 above, p99 {p99:.2} ms; local scope p50 {l50:.0} ns, p99 {l99:.0} ns \
                     (each pair timed alone); one-member etcd on the loopback"
                ));
            }
        }
        "cluster_reclaim" => {
            if let (Some(p50), Some(r), Some(t)) = (s("p50"), s("remote_ms"), s("ttl_s")) {
                parts.push(format!(
                    "same host p50 {p50:.0} ms (death proven, lease revoked); another host \
                     {r:.0} ms (lease TTL {t:.0} s)"
                ));
            }
        }
        "scale10k" => {
            if let Some(b) = s("baseline") {
                parts.push(format!("peer: 1 semaphore, {}", show(Some(b))));
            }
        }
        "weighted4" => parts.push("acquire 4 + release 4".to_owned()),
        "pingpong_same_cpu" | "pingpong_cross_cpu" => parts.push("round trip".to_owned()),
        _ => {}
    }
    parts.join("; ")
}

/// The table, from a `shmsem bench --json` document.
pub fn from_json(doc: &Value) -> String {
    const COLUMNS: [(&str, bool); 15] = [
        ("scenario", false),
        ("instr shmsem", true),
        ("POSIX", true),
        ("SysV", true),
        ("×peer", true),
        ("syscalls", true),
        ("unit", false),
        ("shmsem", true),
        ("POSIX", true),
        ("SysV", true),
        ("time ×peer [95% CI]", true),
        ("min", true),
        ("pairs", true),
        ("target", false),
        ("met", false),
    ];
    let mut rows: Vec<Vec<String>> = vec![
        COLUMNS
            .iter()
            .map(|(h, _)| (*h).to_owned())
            .chain(["note".to_owned()])
            .collect(),
    ];
    for r in doc["results"].as_array().into_iter().flatten() {
        let instr = |c: &str| number(&r["instructions"][c]);
        let sys = |c: &str| number(&r["syscalls"][c]).map(|x| format!("{x:.0}"));
        let syscalls = match (sys("shmsem"), sys("posix"), sys("sysv")) {
            (None, None, None) => "—".to_owned(),
            (a, b, c) => [a, b, c]
                .map(|x| x.unwrap_or_else(|| "—".to_owned()))
                .join("·"),
        };
        let ci = match (number(&r["ratio_median"]), number(&r["ratio_ci95"][0])) {
            (Some(m), Some(lo)) => format!(
                "{m:.3} [{lo:.3}, {:.3}]",
                number(&r["ratio_ci95"][1]).unwrap_or(f64::NAN)
            ),
            (Some(m), None) => format!("{m:.3}"),
            _ => "—".to_owned(),
        };
        let posix = match (r["scenario"].as_str(), number(&r["posix"])) {
            (Some("reclaim"), None) if r["error"].is_null() => "never".to_owned(),
            (_, x) => show(x),
        };
        rows.push(vec![
            r["scenario"].as_str().unwrap_or("?").to_owned(),
            show(instr("shmsem")),
            show(instr("posix")),
            show(instr("sysv")),
            ratio(number(&r["instructions_ratio"])),
            syscalls,
            r["unit"].as_str().unwrap_or("").to_owned(),
            show(number(&r["shmsem"])),
            posix,
            show(number(&r["sysv"])),
            ci,
            number(&r["ratio_min"]).map_or_else(|| "—".to_owned(), |m| format!("{m:.3}")),
            r["samples"]
                .as_u64()
                .map_or_else(|| "—".to_owned(), |n| n.to_string()),
            r["target"].as_str().unwrap_or("").to_owned(),
            match r["met"].as_bool() {
                Some(true) => "✓",
                Some(false) => "✗",
                None => "—",
            }
            .to_owned(),
            note(r),
        ]);
    }
    let mut widths = vec![0usize; COLUMNS.len() + 1];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = header(&doc["machine"]);
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = " ".repeat(widths[i] - cell.chars().count());
            if i > 0 {
                line.push_str("  ");
            }
            if COLUMNS.get(i).is_some_and(|(_, right)| *right) {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(
        "instructions are exact (user space only; syscalls: per operation, shmsem·POSIX·SysV, \
         where callgrind counted them); every other figure is timed: medians of paired batches, \
         the ratio per pair\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prints_a_saved_run() {
        let doc = json!({
            "machine": {
                "kernel": "6.1", "cpu": "Test CPU", "cpus": 2, "mode": "quick",
                "pinned_cpu": 1, "second_cpu": 0, "seconds": 21.5,
                "instructions": {"method": "callgrind", "detail": "valgrind-3.19.0",
                                 "batch_ops": [2000, 4000], "errors": []},
                "control": {"ratio_median": 1.01, "ratio_ci95": [0.99, 1.02], "ratio_min": 0.7,
                            "samples": 660},
                "noisy": false, "verdict": "quiet enough",
            },
            "results": [
                {"scenario": "uncontended", "unit": "ns",
                 "instructions": {"shmsem": 262.0, "posix": 35.0, "sysv": 21.0},
                 "syscalls": {"shmsem": 0.0, "posix": 0.0, "sysv": 2.0},
                 "instructions_ratio": 7.486, "shmsem": 41.7, "posix": 10.3, "sysv": 672.0,
                 "ratio_median": 4.04, "ratio_ci95": [3.9, 4.2], "ratio_min": 3.1,
                 "samples": 600, "ratio_sysv": {"median": 0.06, "ci95": [0.05, 0.07]},
                 "target": "t", "met": false},
                {"scenario": "reclaim", "unit": "ms", "instructions": null, "shmsem": 25.0,
                 "posix": null, "sysv": 2.9, "ratio_median": null, "target": "p99 ≤ 60 ms",
                 "met": null, "p50": 12.2, "p50_sysv": 0.26},
            ],
        });
        let t = from_json(&doc);
        assert!(
            t.starts_with("shmsem bench (quick): Linux 6.1, Test CPU, 2 CPUs"),
            "{t}"
        );
        assert!(t.contains("by callgrind (valgrind-3.19.0)"), "{t}");
        assert!(
            t.contains("batch of 2000 operations subtracted from its batch of 4000"),
            "{t}"
        );
        assert!(
            t.contains("median 1.010 [0.990, 1.020], min 0.700, 660 pairs"),
            "{t}"
        );
        let row = t
            .lines()
            .find(|l| l.starts_with("uncontended"))
            .expect("row");
        for cell in [
            "262",
            "35.0",
            "21.0",
            "7.49×",
            "0·0·2",
            "4.040 [3.900, 4.200]",
            "✗",
        ] {
            assert!(row.contains(cell), "{cell} in {row}");
        }
        assert!(row.contains("0.060 [0.050, 0.070]× SysV"), "{row}");
        let row = t.lines().find(|l| l.starts_with("reclaim")).expect("row");
        assert!(
            row.contains("never") && row.contains("p50 12.20 ms"),
            "{row}"
        );
    }
}
