//! `shmsem metrics`: semaphores and their statistics as OpenMetrics text (the Prometheus
//! exposition format, `application/openmetrics-text; version=1.0.0`) and as JSON.
//!
//! One metric family a number, each family's samples together (as the format requires), one
//! sample per semaphore, labelled `scope`, `namespace` and `name`, and `# EOF` last. Counter
//! families are named without `_total` and their samples with it, as OpenMetrics has it. No
//! family has a `# UNIT`: every number is a count (of weight, processes or events), and
//! OpenMetrics has no unit for counts.

use serde_json::Value;
use shmsem::{Counters, Info};

/// A gauge or a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// A number that goes up and down.
    Gauge,
    /// A number that only goes up (until the semaphore is created again).
    Counter,
}

/// One metric family: its name, type, help text and how to read it off a semaphore.
#[derive(Debug)]
pub struct Family {
    /// The family's name (a counter's samples add `_total`).
    pub name: &'static str,
    /// Gauge or counter.
    pub kind: Type,
    /// The `# HELP` text.
    pub help: &'static str,
    /// The value for one semaphore.
    pub value: Reader,
}

/// Every family `shmsem metrics` prints, in order. The README's table lists the same.
#[rustfmt::skip]
pub const FAMILIES: [Family; 8] = [
    Family::gauge("shmsem_capacity", "Most weight that may be held at once.", |i, _| i.capacity.into()),
    Family::gauge("shmsem_value", "Weight held now.", |i, _| i.value.into()),
    Family::gauge("shmsem_holders", "Processes holding weight.", |i, _| i.holders.len() as u64),
    Family::gauge("shmsem_waiters", "Processes waiting for weight.", |i, _| i.waiters.len() as u64),
    Family::counter("shmsem_waits", "Acquires that had to sleep before they got the weight or gave up.", |_, c| c.waits),
    Family::counter("shmsem_timeouts", "Timed acquires that timed out.", |_, c| c.timeouts),
    Family::counter("shmsem_reclaimed_weight", "Weight given back from dead holders by reclaims.", |_, c| c.reclaimed_weight),
    Family::counter("shmsem_wakes", "Futex wakes issued by releases and capacity changes.", |_, c| c.wakes),
];

impl Family {
    const fn gauge(name: &'static str, help: &'static str, value: Reader) -> Family {
        Family {
            name,
            kind: Type::Gauge,
            help,
            value,
        }
    }

    const fn counter(name: &'static str, help: &'static str, value: Reader) -> Family {
        Family {
            name,
            kind: Type::Counter,
            help,
            value,
        }
    }
}

/// How a family's value is read off a semaphore.
type Reader = fn(&Info, &Counters) -> u64;

/// The OpenMetrics text for `all`, ending with `# EOF` and a newline.
///
/// # Examples
///
/// ```
/// let text = shmsem_cli::openmetrics::text(&[]);
/// assert!(text.starts_with("# TYPE shmsem_capacity gauge\n"));
/// assert!(text.ends_with("# EOF\n"));
/// ```
pub fn text(all: &[(Info, Counters)]) -> String {
    let mut out = String::new();
    for family in &FAMILIES {
        let (kind, suffix) = match family.kind {
            Type::Gauge => ("gauge", ""),
            Type::Counter => ("counter", "_total"),
        };
        out.push_str(&format!("# TYPE {} {kind}\n", family.name));
        out.push_str(&format!("# HELP {} {}\n", family.name, escape(family.help)));
        for (info, counters) in all {
            out.push_str(&format!(
                "{}{suffix}{{scope=\"{}\",namespace=\"{}\",name=\"{}\"}} {}\n",
                family.name,
                escape(info.scope.as_str()),
                escape(&info.namespace),
                escape(&info.name),
                (family.value)(info, counters),
            ));
        }
    }
    out.push_str("# EOF\n");
    out
}

/// `s` as an OpenMetrics label value or help text: backslash, double quote and line feed
/// escaped (`\\`, `\"`, `\n`), everything else as it is.
///
/// # Examples
///
/// ```
/// assert_eq!(shmsem_cli::openmetrics::escape("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
/// ```
pub fn escape(s: &str) -> String {
    crate::output::escape_with(s, |c| match c {
        '\\' => Some("\\\\"),
        '"' => Some("\\\""),
        '\n' => Some("\\n"),
        _ => None,
    })
}

/// `metrics --json`: an array with `ls --json`'s object for each semaphore, plus its counters
/// (`waits`, `timeouts`, `reclaimed_weight`, `wakes`).
///
/// # Examples
///
/// ```
/// assert_eq!(shmsem_cli::openmetrics::json(&[]), serde_json::json!([]));
/// ```
pub fn json(all: &[(Info, Counters)]) -> Value {
    all.iter()
        .map(|(info, c)| {
            let mut v = crate::output::summary_json(info);
            v["waits"] = c.waits.into();
            v["timeouts"] = c.timeouts.into();
            v["reclaimed_weight"] = c.reclaimed_weight.into();
            v["wakes"] = c.wakes.into();
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shmsem::{Kind, Owner, Scope};

    fn info(name: &str, namespace: &str) -> Info {
        Info {
            name: name.to_owned(),
            scope: Scope::Global,
            namespace: namespace.to_owned(),
            kind: Kind::Persistent,
            idle_ms: 0,
            capacity: 4,
            value: 3,
            holders: Vec::new(),
            waiters: Vec::new(),
            owner: Owner {
                uid: 0,
                gid: 0,
                user: None,
                group: None,
                mode: 0o600,
            },
        }
    }

    #[test]
    fn families_are_grouped_and_counters_end_in_total() {
        let mut c = Counters::default();
        c.waits = 7;
        c.reclaimed_weight = u64::MAX;
        let all = [(info("a", "ci"), c), (info("b", "ci"), Counters::default())];
        let text = text(&all);
        assert!(text.contains(
            "# TYPE shmsem_value gauge\n# HELP shmsem_value Weight held now.\n\
             shmsem_value{scope=\"global\",namespace=\"ci\",name=\"a\"} 3\n\
             shmsem_value{scope=\"global\",namespace=\"ci\",name=\"b\"} 3\n# TYPE"
        ));
        assert!(text.contains("# TYPE shmsem_waits counter\n"));
        assert!(
            text.contains("shmsem_waits_total{scope=\"global\",namespace=\"ci\",name=\"a\"} 7\n")
        );
        assert!(text.contains(&format!(
            "shmsem_reclaimed_weight_total{{scope=\"global\",namespace=\"ci\",name=\"a\"}} {}\n",
            u64::MAX
        )));
        assert_eq!(text.lines().count(), FAMILIES.len() * 4 + 1);
        assert!(text.ends_with("\n# EOF\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let text = text(&[(info("x", "q\"\\\n"), Counters::default())]);
        assert!(text.contains(r#"namespace="q\"\\\n",name="x""#), "{text}");
    }

    #[test]
    fn json_is_ls_plus_the_counters() {
        let mut c = Counters::default();
        c.timeouts = 2;
        let v = json(&[(info("a", "ci"), c)]);
        assert_eq!(v[0]["name"], "a");
        assert_eq!(v[0]["capacity"], 4);
        assert_eq!(v[0]["holders"], 0);
        assert_eq!(v[0]["timeouts"], 2);
        assert_eq!(v[0]["wakes"], 0);
    }
}
