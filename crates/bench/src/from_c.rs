//! `c_uncontended`: the uncontended pair from C, through the C interface (`libshmsem.a`), against
//! POSIX `sem_wait` + `sem_post` from the same C program.
//!
//! The program is `ffi/bench/pair.c`, carried in this executable with the header it includes; it
//! is compiled here with `cc` against `libshmsem.a` from `SHMSEM_LIB_DIR`, or else from the folder
//! of this executable (`target/release` after `cargo build --release -p shmsem-ffi`). It times
//! its own paired batches, the order alternating, as the in-process scenarios do, and prints
//! them as JSON; its instructions are counted by callgrind, batch by batch, as the counting child's
//! are. Without `cc` or the library, the row says it is unavailable and why.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use super::{
    callgrind,
    multiproc::Ctx,
    report::{Outcome, Unit},
};

/// The scenario's id.
pub const ID: &str = "c_uncontended";

/// The environment variable naming the folder of `libshmsem.a`.
pub const LIB_DIR_ENV: &str = "SHMSEM_LIB_DIR";

/// The C program and the header it includes.
const PAIR_C: &str = include_str!("../../../ffi/bench/pair.c");
const HEADER: &str = include_str!("../../../ffi/include/shmsem.h");
/// The pkg-config file, whose `Libs.private` are what `libshmsem.a` needs.
const PC: &str = include_str!("../../../ffi/shmsem.pc.in");

/// The longest one run of the program may take.
const LIMIT: Duration = Duration::from_secs(60);

/// Measure the scenario, or say why this machine cannot.
pub fn uncontended(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let lib_dir = match library(std::env::var_os(LIB_DIR_ENV), std::env::current_exe()) {
        Ok(dir) => dir,
        Err(why) => return Ok(Outcome::skipped(ID, format!("unavailable: {why}"))),
    };
    if let Err(e) = Command::new("cc").arg("--version").output() {
        return Ok(Outcome::skipped(
            ID,
            format!("unavailable: cc not found ({e}; apt-get install gcc)"),
        ));
    }
    let scratch = Scratch::create()?;
    let program = compile(&scratch.0, &lib_dir)?;

    let batch_ns = ctx.plan.batch.as_nanos().to_string();
    let out = run(
        Command::new(&program).args(["time", &ctx.plan.rounds.to_string(), &batch_ns]),
        &scratch.0.join("pair.out"),
    )?;
    let doc: serde_json::Value =
        serde_json::from_str(&out).with_context(|| format!("pair.c printed {out:?}"))?;
    let samples = |name: &str| -> anyhow::Result<Vec<f64>> {
        doc[name]
            .as_array()
            .with_context(|| format!("pair.c printed no {name:?} samples"))?
            .iter()
            .map(|v| v.as_f64().context("a sample that is not a number"))
            .collect()
    };
    let rounds = [("shmsem", samples("shmsem")?), ("posix", samples("posix")?)];
    let mut outcome = Outcome::from_rounds(ID, Unit::Ns, &rounds);

    match callgrind::version() {
        Ok(version) => {
            let n = ctx.plan.count_ops;
            let mut counted = Command::new(&program);
            counted.args(["count", &n.to_string()]);
            let counts =
                callgrind::count_command(counted, n, &scratch.0.join("callgrind"), version)?;
            if let Some(error) = counts.errors.first() {
                bail!("counting instructions: {error}");
            }
            for name in ["shmsem", "posix"] {
                if let Some(per_op) = counts.get(ID, name) {
                    outcome.instructions.push((name, per_op));
                }
            }
        }
        Err(why) => outcome.note = Some(format!("no instruction counts: {why}")),
    }
    Ok(outcome)
}

/// The folder that holds `libshmsem.a`, or why there is none: `env` (the value of
/// [`LIB_DIR_ENV`]) if set, else the folder of this executable `exe` or its parent.
fn library(
    env: Option<std::ffi::OsString>,
    exe: std::io::Result<PathBuf>,
) -> Result<PathBuf, String> {
    if let Some(dir) = env {
        let dir = PathBuf::from(dir);
        return match dir.join("libshmsem.a").is_file() {
            true => Ok(dir),
            false => Err(format!(
                "{LIB_DIR_ENV}={} has no libshmsem.a",
                dir.display()
            )),
        };
    }
    let exe = exe.map_err(|e| format!("this executable's path: {e}"))?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .find(|dir| dir.join("libshmsem.a").is_file())
        .map(Path::to_owned)
        .ok_or_else(|| {
            format!(
                "libshmsem.a not built (cargo build --release -p shmsem-ffi, or set \
                 {LIB_DIR_ENV})"
            )
        })
}

/// Compile `pair.c` in `dir` against `libshmsem.a` in `lib_dir`; the program's path.
fn compile(dir: &Path, lib_dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::write(dir.join("pair.c"), PAIR_C).context("writing pair.c")?;
    std::fs::write(dir.join("shmsem.h"), HEADER).context("writing shmsem.h")?;
    let private = PC
        .lines()
        .find_map(|l| l.strip_prefix("Libs.private:"))
        .context("shmsem.pc.in has no Libs.private")?;
    let program = dir.join("pair");
    let out = Command::new("cc")
        .args([
            "-std=c11",
            "-D_GNU_SOURCE",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
        ])
        .arg(dir)
        .arg(dir.join("pair.c"))
        .arg("-o")
        .arg(&program)
        .arg(lib_dir.join("libshmsem.a"))
        .args(private.split_whitespace())
        .output()
        .context("running cc")?;
    if !out.status.success() {
        bail!(
            "cc could not compile pair.c against {}: {}",
            lib_dir.join("libshmsem.a").display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(program)
}

/// Run `command` (on the measuring thread's CPU, which it inherits) for at most [`LIMIT`], its
/// stdout into `out_file`; that output.
fn run(command: &mut Command, out_file: &Path) -> anyhow::Result<String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out_file).context("creating pair's stdout")?)
        .stderr(Stdio::piped())
        .spawn()
        .context("starting pair")?;
    let started = Instant::now();
    while child.try_wait().context("waiting for pair")?.is_none() {
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("pair did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().context("waiting for pair")?;
    if !out.status.success() {
        bail!(
            "pair exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    std::fs::read_to_string(out_file).context("reading pair's stdout")
}

/// A fresh folder for the program (in the temporary directory, which allows executing it, where
/// `/dev/shm` may not), removed when done.
struct Scratch(PathBuf);

impl Scratch {
    fn create() -> anyhow::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!("shmsem-bench-c.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_library_or_says_why_not() {
        let dir = std::env::temp_dir().join(format!("shmsem-bench-c-test.{}", std::process::id()));
        let deps = dir.join("deps");
        std::fs::create_dir_all(&deps).expect("a scratch folder");
        let exe = || Ok(deps.join("shmsem"));

        let why = library(None, exe()).expect_err("nothing built");
        assert!(why.contains("libshmsem.a not built"), "{why}");
        let why = library(Some(deps.clone().into()), exe()).expect_err("an empty folder");
        assert!(why.contains("has no libshmsem.a"), "{why}");

        std::fs::write(dir.join("libshmsem.a"), b"!<arch>\n").expect("an archive");
        assert_eq!(library(None, exe()), Ok(dir.clone()));
        std::fs::write(deps.join("libshmsem.a"), b"!<arch>\n").expect("an archive");
        assert_eq!(library(None, exe()), Ok(deps.clone()));
        assert_eq!(library(Some(dir.clone().into()), exe()), Ok(dir.clone()));
        std::fs::remove_dir_all(&dir).expect("removing the scratch folder");
    }

    #[test]
    fn an_unavailable_row_says_so() {
        let o = Outcome::skipped(ID, "unavailable: cc not found".to_owned());
        assert_eq!(o.note.as_deref(), Some("unavailable: cc not found"));
        assert_eq!(o.met(false), None);
        assert!(o.error.is_none(), "a missing tool is no failure of the run");
    }

    #[test]
    fn the_program_links_with_what_the_pc_file_names() {
        let private = PC.lines().find_map(|l| l.strip_prefix("Libs.private:"));
        assert!(private.is_some_and(|l| l.contains("-lpthread")), "{PC}");
        assert!(
            PAIR_C.contains("shmsem_bench_batch"),
            "callgrind's toggle pattern"
        );
    }
}
