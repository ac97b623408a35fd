//! Instruction counts by callgrind, for machines without a hardware counter: this executable
//! again, in the `count` role (see `count`), under
//!
//! ```text
//! valgrind --tool=callgrind --collect-atstart=no '--toggle-collect=*shmsem_bench_batch' \
//!     '--dump-after=*shmsem_bench_batch' --combine-dumps=yes --collect-systime=yes …
//! ```
//!
//! Collection is on only while a batch loop runs, and every return from one dumps (and resets)
//! the totals; so each dump's `totals:` line is exactly one batch: its instructions (`Ir`) and
//! system calls (`sysCount`). The child says on stdout, in order, which operation and how many
//! operations each dump is; each operation has batches of `n`, `n` again and `2n`, and the
//! figure per operation is the difference of the last two over `n`. (The first is not used:
//! callgrind counts system calls even while collection is off, and adds them to the next dump.)

use std::{
    fs::File,
    os::unix::fs::DirBuilderExt,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use super::{
    count::{Counts, LOOP_PATTERN, OPS_ENV, PerOp, ROLE},
    procs,
};

/// The longest the counting run may take.
const LIMIT: Duration = Duration::from_secs(120);

/// `valgrind-X.Y.Z` if valgrind runs here; else why not.
pub fn version() -> Result<String, String> {
    match Command::new("valgrind").arg("--version").output() {
        Ok(out) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        Ok(out) => Err(format!("`valgrind --version` failed ({})", out.status)),
        Err(e) => Err(format!(
            "valgrind is not installed ({e}; `apt-get install valgrind` gives the instructions \
             column)"
        )),
    }
}

/// Run the counting child under callgrind with `n` operations per count, its files under
/// `scratch`, and turn its dumps into counts per operation.
pub fn count(
    n: u64,
    scratch: &Path,
    helper_args: &[&str],
    version: String,
) -> anyhow::Result<Counts> {
    let exe = procs::this_exe().context("finding the current executable")?;
    let mut child = Command::new(&exe);
    child
        .args(helper_args)
        .env(procs::ROLE_ENV, ROLE)
        .env(OPS_ENV, n.to_string());
    count_command(child, n, &scratch.join("callgrind"), version)
}

/// Run `program` under callgrind, its files (and its `SHMSEM_DIR`) in the new folder `dir`, and
/// turn its dumps into counts per operation. It runs its batches of `n` operations in functions
/// whose names end in `shmsem_bench_batch`, and labels them on stdout as the counting child does.
pub fn count_command(
    program: Command,
    n: u64,
    dir: &Path,
    version: String,
) -> anyhow::Result<Counts> {
    let shm_dir = dir.join("shmsem");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&shm_dir)
        .with_context(|| format!("creating {}", shm_dir.display()))?;
    let out_file = dir.join("callgrind.out");
    let stdout_path = dir.join("stdout");
    let stderr_path = dir.join("stderr");
    let mut child = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "-q",
            "--collect-atstart=no",
            &format!("--callgrind-out-file={}", out_file.display()),
            &format!("--toggle-collect={LOOP_PATTERN}"),
            &format!("--dump-after={LOOP_PATTERN}"),
            "--combine-dumps=yes",
            "--collect-systime=yes",
        ])
        .arg(program.get_program())
        .args(program.get_args())
        .envs(program.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env(shmsem::DIR_ENV, &shm_dir)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).context("creating callgrind's stdout")?)
        .stderr(File::create(&stderr_path).context("creating callgrind's stderr")?)
        .spawn()
        .context("starting valgrind")?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for valgrind")? {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("valgrind did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    if !status.success() {
        bail!("valgrind exited with {status}: {}", stderr.trim());
    }
    let labels = std::fs::read_to_string(&stdout_path).context("reading the child's stdout")?;
    let dumps = std::fs::read_to_string(&out_file)
        .with_context(|| format!("reading {}", out_file.display()))?;
    let mut counts = per_op(&labels, &dumps, n)?;
    counts.detail = version;
    Ok(counts)
}

/// One dump of a callgrind output file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    /// What triggered it (`--dump-after=…`, `Program termination`).
    pub trigger: String,
    /// Instructions.
    pub ir: u64,
    /// System calls.
    pub syscalls: u64,
}

/// The dumps of a (combined) callgrind output file, in order, with their `totals:`.
pub fn dumps(text: &str) -> anyhow::Result<Vec<Dump>> {
    let mut out = Vec::new();
    let mut trigger = String::new();
    let mut syscall_column = None;
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("desc: Trigger:") {
            trigger = t.trim().to_owned();
        } else if let Some(events) = line.strip_prefix("events:") {
            syscall_column = events.split_whitespace().position(|e| e == "sysCount");
        } else if let Some(totals) = line.strip_prefix("totals:") {
            let values = totals
                .split_whitespace()
                .map(str::parse::<u64>)
                .collect::<Result<Vec<u64>, _>>()
                .with_context(|| format!("callgrind's line {line:?}"))?;
            // Trailing zero columns may be left out.
            let column = |i: Option<usize>| i.and_then(|i| values.get(i)).copied().unwrap_or(0);
            out.push(Dump {
                trigger: std::mem::take(&mut trigger),
                ir: column(Some(0)),
                syscalls: column(syscall_column),
            });
        }
    }
    Ok(out)
}

/// Pair the child's labels (`dump SCENARIO CONTENDER OPS ok|error …`, `skip …`) with the
/// batches' dumps, in order, and make per-operation figures: for each operation, the
/// difference between its two batches over the difference of their sizes.
pub fn per_op(labels: &str, text: &str, n: u64) -> anyhow::Result<Counts> {
    let batches: Vec<Dump> = dumps(text)?
        .into_iter()
        .filter(|d| d.trigger.starts_with("--dump-after"))
        .collect();
    let mut counts = Counts {
        method: Some("callgrind"),
        ops: n,
        ..Counts::default()
    };
    // (scenario, contender) → [(ops, dump)], in order.
    type Batches = Vec<(u64, Dump)>;
    let mut runs: Vec<((String, String), Batches)> = Vec::new();
    let mut next = batches.into_iter();
    for line in labels.lines() {
        let words: Vec<&str> = line.splitn(5, ' ').collect();
        match words[..] {
            ["dump", scenario, contender, ops, status] => {
                let Some(dump) = next.next() else {
                    bail!("the child ran more batches than callgrind dumped");
                };
                let key = (scenario.to_owned(), contender.to_owned());
                if status != "ok" {
                    counts
                        .errors
                        .push(format!("{scenario} {contender}: {status}"));
                    continue;
                }
                let ops: u64 = ops
                    .parse()
                    .with_context(|| format!("the counting child said {line:?}"))?;
                match runs.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, list)) => list.push((ops, dump)),
                    None => runs.push((key, vec![(ops, dump)])),
                }
            }
            ["skip", scenario, contender, ..] => {
                let why = words.get(3..).map(|w| w.join(" ")).unwrap_or_default();
                counts.errors.push(format!("{scenario} {contender}: {why}"));
            }
            _ => bail!("the counting child said {line:?}"),
        }
    }
    if next.next().is_some() {
        bail!("callgrind dumped more batches than the child ran");
    }
    for ((scenario, contender), list) in runs {
        // The last two: the first absorbed system calls made while collection was off.
        let [_, (ops1, one), (ops2, two)] = &list[..] else {
            counts.errors.push(format!(
                "{scenario} {contender}: {} batches counted, not 3",
                list.len()
            ));
            continue;
        };
        let (ops1, ops2) = (*ops1, *ops2);
        if ops2 <= ops1 {
            bail!("{scenario} {contender}: batches of {ops1} then {ops2} operations");
        }
        if one.ir == 0 {
            bail!(
                "callgrind counted nothing in {scenario} {contender}'s batch: no function matched {LOOP_PATTERN}"
            );
        }
        let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / (ops2 - ops1) as f64;
        counts.per_op.insert(
            (scenario, contender),
            PerOp {
                instructions: per(one.ir, two.ir),
                syscalls: Some(per(one.syscalls, two.syscalls)),
            },
        );
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of a combined file from valgrind 3.19, cut down.
    const FILE: &str = "# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npid: 1\n\
        part: 0\ndesc: Trigger: --dump-after=*shmsem_bench_batch\nevents: Ir sysCount sysTime\n\
        totals: 12000 902 33\n\n\
        part: 1\ndesc: Trigger: --dump-after=*shmsem_bench_batch\nevents: Ir sysCount sysTime\n\
        summary: 1700 77 98\nfn=x\n0 1700 20\ntotals: 12000 2\n\n\
        part: 2\ndesc: Trigger: --dump-after=*shmsem_bench_batch\nevents: Ir sysCount sysTime\n\
        totals: 82000 4002 55\n\n\
        part: 3\ndesc: Trigger: --dump-after=*shmsem_bench_batch\nevents: Ir sysCount sysTime\n\
        totals: 13000\n\n\
        part: 4\ndesc: Trigger: Program termination\nevents: Ir sysCount sysTime\ntotals: 0\n";

    #[test]
    fn reads_every_dump() {
        let d = dumps(FILE).expect("dumps");
        assert_eq!(d.len(), 5);
        assert_eq!((d[0].ir, d[0].syscalls), (12000, 902));
        assert_eq!((d[1].ir, d[1].syscalls), (12000, 2));
        assert_eq!((d[2].ir, d[2].syscalls), (82000, 4002));
        assert_eq!((d[3].ir, d[3].syscalls), (13000, 0));
        assert_eq!(d[4].trigger, "Program termination");
    }

    #[test]
    fn takes_the_difference_of_two_batches() {
        let labels = "dump uncontended sysv 1000 ok\ndump uncontended sysv 1000 ok\n\
                      skip open * no sem_open\ndump uncontended sysv 2000 ok\n\
                      dump uncontended posix 1000 ok\n";
        let c = per_op(labels, FILE, 1000).expect("counts");
        assert_eq!(
            c.get("uncontended", "sysv"),
            Some(PerOp {
                instructions: 70.0,
                syscalls: Some(4.0)
            })
        );
        assert_eq!(c.get("uncontended", "posix"), None);
        assert_eq!(
            c.errors,
            vec![
                "open *: no sem_open".to_owned(),
                "uncontended posix: 1 batches counted, not 3".to_owned()
            ]
        );
        assert!(
            per_op("dump empty - 1 ok\n", FILE, 1000).is_err(),
            "3 dumps, 1 label"
        );
    }
}
