//! A strict little parser of the OpenMetrics text that `shmsem metrics` prints: enough to tell
//! a malformed exposition from a good one, and to read its samples back.
//!
//! Every line is `# TYPE name type`, `# HELP name text`, `# UNIT name unit`, a sample
//! `name{label="value",...} number`, or `# EOF`, which must be the last line (followed by
//! exactly one line feed). A family is declared (`# TYPE`) once, before its samples, and its
//! samples are contiguous; a counter's samples are named `family_total`, a gauge's `family`.
//! Label values may use only the escapes `\\`, `\"` and `\n`.

use std::collections::{BTreeMap, BTreeSet};

/// One sample: its metric name, its labels (in order) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// A parsed exposition: each family's type, and every sample.
#[derive(Debug, Default)]
pub struct Exposition {
    pub types: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// The value of metric `name` (the sample's name, `_total` included) for semaphore `sem`.
    pub fn value(&self, name: &str, sem: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels.iter().any(|(k, v)| k == "name" && v == sem))
            .map(|s| s.value)
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

const TYPES: [&str; 8] = [
    "counter",
    "gauge",
    "unknown",
    "info",
    "stateset",
    "histogram",
    "gaugehistogram",
    "summary",
];

/// Parse `text`, or say what is wrong with it and on which line.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("does not end with `# EOF` and a line feed")?;
    let mut out = Exposition::default();
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    for (n, line) in body.lines().enumerate() {
        let err = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest.split_once(' ').ok_or_else(|| err("bare comment"))?;
            let (family, arg) = rest.split_once(' ').ok_or_else(|| err("no argument"))?;
            if !is_name(family) {
                return Err(err("bad family name"));
            }
            match keyword {
                "TYPE" => {
                    if !TYPES.contains(&arg) {
                        return Err(err("unknown type"));
                    }
                    if out
                        .types
                        .insert(family.to_owned(), arg.to_owned())
                        .is_some()
                    {
                        return Err(err("family declared twice"));
                    }
                    if arg == "counter" && family.ends_with("_total") {
                        return Err(err("a counter family's name must not end in _total"));
                    }
                    if let Some(prev) = current.replace(family.to_owned()) {
                        closed.insert(prev);
                    }
                }
                "HELP" | "UNIT" => {
                    if current.as_deref() != Some(family) {
                        return Err(err("metadata for another family than the one declared"));
                    }
                    if keyword == "UNIT" && !family.ends_with(&format!("_{arg}")) {
                        return Err(err("a family with a unit must end in it"));
                    }
                }
                _ => return Err(err("unknown comment")),
            }
            continue;
        }
        let sample = parse_sample(line).map_err(|e| err(&e))?;
        let family = current
            .clone()
            .ok_or_else(|| err("sample before any # TYPE"))?;
        let kind = out.types[&family].clone();
        let wanted = match kind.as_str() {
            "counter" => format!("{family}_total"),
            _ => family.clone(),
        };
        if sample.name != wanted {
            return Err(err(&format!("a sample of {family} must be named {wanted}")));
        }
        if closed.contains(&family) {
            return Err(err("the family's samples are not contiguous"));
        }
        if kind == "counter" && (sample.value.is_nan() || sample.value < 0.0) {
            return Err(err("a counter is negative or NaN"));
        }
        if out
            .samples
            .iter()
            .any(|s| s.name == sample.name && s.labels == sample.labels)
        {
            return Err(err("the same sample twice"));
        }
        out.samples.push(sample);
    }
    Ok(out)
}

/// `name{labels} value`.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let split = line.find(['{', ' ']).ok_or("no value")?;
    let (name, mut rest) = line.split_at(split);
    if !is_name(name) {
        return Err("bad metric name".into());
    }
    let mut labels: Vec<(String, String)> = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut s = inner;
        loop {
            if let Some(after) = s.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = s.split_once("=\"").ok_or("a label without =\"")?;
            if !is_name(key) || labels.iter().any(|(k, _)| k == key) {
                return Err(format!("bad or repeated label name {key:?}"));
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_owned(), value));
            s = &after[end + 1..];
            if let Some(after) = s.strip_prefix(',') {
                s = after;
                if s.starts_with('}') {
                    return Err("trailing comma".into());
                }
            } else if !s.starts_with('}') {
                return Err("labels not separated by a comma".into());
            }
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    if value.contains(' ') {
        return Err("a timestamp or exemplar where none is expected".into());
    }
    let value: f64 = value
        .parse()
        .map_err(|e| format!("bad value {value:?}: {e}"))?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}
