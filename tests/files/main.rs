//! The file rules of README, *Scopes and files*, and of DESIGN §1 and §9 (the threat model):
//! what the library must refuse to use as a namespace's file, what it must
//! leave alone, and that refusing touches nothing.
//!
//! A namespace is one file, its segment (`local.NS`, `global.NS`, ... in `SHMSEM_DIR`); the OFD
//! locks (byte 0 the table lock, byte `1 + slot` a process slot's liveness) are bytes of that
//! same file. There is no companion `.lock` file any more.
//!
//! Every library call happens in a fresh child process (this test binary re-executed with
//! `--ignored --exact child_role`, see `common`), each test with its own `SHMSEM_DIR`; the harness process
//! only plants files, changes owners and modes, runs the `shmsem` binary and compares. A child
//! runs a list of *steps* and reports each outcome as a short word (`ok`, or the error variant:
//! `PermissionDenied`, `Corrupt`, ...); a panic in a child fails the test with its transcript.
//!
//! The rules asserted here, and why:
//!
//! * **Symbolic links** at the segment path are refused (`PermissionDenied`, the `O_NOFOLLOW`
//!   refusal) and the link's target keeps its bytes, length and mtime; a dangling link's target
//!   is not created.
//! * **Owner.** In `local` and `self` scope the segment must belong to the calling user: one of
//!   another uid is refused (DESIGN §1: `fstat` checks the owner). In `global` scope the
//!   namespace's owner is whoever created it and access is what the OS grants (README, *Scopes
//!   and files*, and `--group`/`--mode`), so another user's segment is accepted there: a positive control, so
//!   that the owner check is not applied to every scope.
//! * **Mode.** In `local` scope neither group nor others may write the segment (the local
//!   scope lives in a 0700 per-user directory and its files are created 0600). So 0666, 0660 and 0602 are
//!   refused; 0600 is accepted. (Read bits for group/other are not asserted either way.)
//! * **Hard links** are accepted (`segment::check_file`, DESIGN §9, attack 7): a link grants nothing
//!   the segment's owner and mode do not already grant, so a link planted elsewhere must not
//!   break the namespace: its users keep sharing it, exclusion included, and the link is left
//!   alone.
//! * **Size and type.** A segment whose size is not the layout's is refused with `Corrupt` or
//!   `Incompatible` by every entry point, and is not silently replaced by a fresh one (its size
//!   is unchanged afterwards). A directory or a FIFO at the segment path is refused too.
//! * **Names like the old lock files.** Whatever sits at `NS.lock` beside a segment (a symlink,
//!   a dangling one, a directory, a FIFO, an empty file of another user such as an older version
//!   left) is no part of namespace `NS`: it works as if nothing were there, and the planted
//!   thing is not touched. And `x.lock` is an ordinary namespace name: it works beside `x`,
//!   independently of it, and `ls` and `ps` list it (DESIGN §9, attack 8). `ps`, which opens every
//!   namespace it finds, must not fail because one path is not a segment (ignored: it does, an
//!   open engine bug).
//! * **Unlinked while mapped** (logind `RemoveIPC`, an administrator's `rm`): process A holds
//!   the only permit of a capacity-1 semaphore; the segment is unlinked; a process B that opens
//!   the same namespace and name must *not* get that permit: any error is acceptable
//!   (`WouldBlock` because B found and shares A's segment, or an error saying the namespace was
//!   removed), `Ok` is the silent doubling DESIGN §1 forbids. Then, when a *different* segment
//!   has taken the name (B could not find A's), A must notice: A's next `open` and `list` in that
//!   namespace fail instead of going on with the nameless segment (a namespace split is
//!   detected, not silent). The same holds when the segment has a second name, planted
//!   elsewhere: the unlinked path is what counts, not the link count.
//! * **Names.** A name or namespace longer than 200 bytes (or with `/`, or `..`) is refused with
//!   `InvalidName` before any file is touched: the directory's entries and an existing segment's
//!   bytes are unchanged.
//!
//! Tests that change owners or run a child as another user need root; without it they print why
//! and pass vacuously.

#[path = "../common/mod.rs"]
mod common;
mod links;
mod names;
mod owners;
mod paths;

use std::{
    fs,
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use common::{
    Kid, Reports, Spawn, TestDir, arg, arg_or, arg_u32,
    cli::{Sleeper, ls, ok, run},
    report, wait_for_signal,
};
use serde_json::json;
use shmsem::{Error, Scope, Semaphore, internals::layout::SEGMENT_SIZE};

/// How long any child may take: generous, for a loaded two-core machine.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(60);

// =====================================================================================
// The child side
// =====================================================================================

crate::child_roles! {
    "steps" => run_steps(&arg("steps")), "hold" => role_hold(),
}

/// A short, stable word for an outcome.
fn kind<T>(r: &Result<T, Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => error_kind(e),
    }
}

/// The name of `e`'s variant (what its `Debug` starts with); for `Io`, with the kind of the
/// underlying error: `Io:NotFound`.
fn error_kind(e: &Error) -> String {
    if let Error::Io { source, .. } = e {
        return format!("Io:{:?}", source.kind());
    }
    let debug = format!("{e:?}");
    let end = debug
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(debug.len());
    debug[..end].to_owned()
}

fn options() -> shmsem::Options {
    let scope: Scope = arg_or("scope", "local").parse().expect("scope");
    Semaphore::options()
        .scope(scope)
        .namespace(arg_or("ns", shmsem::DEFAULT_NAMESPACE))
        .capacity(arg_u32("cap", 1))
}

/// Run comma-separated steps, reporting each outcome under the step's name (a step may appear
/// once per list). Every error is also printed in full, for the transcript.
///
/// | step | does |
/// |---|---|
/// | `open` | get-or-create `name` |
/// | `try` | get-or-create `name`, then `try_acquire(1)` and release |
/// | `existing` | `open_existing(name)` |
/// | `existing_try` | `open_existing(name)`, then `try_acquire(1)` and release |
/// | `list` | `list()` |
/// | `reap` | `reap()` |
/// | `sleepN` | sleep N ms |
fn run_steps(steps: &str) {
    let name = arg_or("name", "a");
    let opts = options();
    for step in steps.split(',').filter(|s| !s.is_empty()) {
        let outcome: Result<(), Error> = match step {
            "open" => opts.open(&name).map(drop),
            "try" => opts.open(&name).and_then(|s| s.try_acquire(1).map(drop)),
            "existing" => opts.open_existing(&name).map(drop),
            "existing_try" => opts
                .open_existing(&name)
                .and_then(|s| s.try_acquire(1).map(drop)),
            "list" => opts.to_namespace().and_then(|n| n.list()).map(drop),
            "reap" => opts.to_namespace().and_then(|n| n.reap()).map(drop),
            s if s.starts_with("sleep") => {
                let ms: u64 = s["sleep".len()..].parse().expect("sleepN");
                std::thread::sleep(Duration::from_millis(ms));
                continue;
            }
            other => panic!("unknown step {other:?}"),
        };
        if let Err(e) = &outcome {
            println!("step {step}: {e}");
        }
        report(step, kind(&outcome));
    }
    report("done", "1");
}

/// Take weight 1 of `name` (capacity `cap`), report `held`, wait for the `probe` signal, run
/// `steps`, wait for the `release` signal, give the weight back.
fn role_hold() {
    let name = arg("name");
    let sem = options()
        .open(&name)
        .unwrap_or_else(|e| panic!("opening {name}: {e}"));
    let permit = sem
        .acquire_timeout(1, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("acquiring {name}: {e}"));
    report("held", std::process::id());
    wait_for_signal("probe", SIGNAL_TIMEOUT);
    run_steps(&arg_or("steps", ""));
    wait_for_signal("release", SIGNAL_TIMEOUT);
    drop(permit);
    report("released", "1");
}

// =====================================================================================
// The parent side
// =====================================================================================

/// Run `steps` in a fresh child in `scope`/`ns`; its reports.
fn steps(dir: &TestDir, scope: &str, ns: &str, steps: &str) -> Reports {
    steps_named(dir, scope, ns, "a", steps)
}

fn steps_named(dir: &TestDir, scope: &str, ns: &str, name: &str, steps: &str) -> Reports {
    Spawn::new(dir, "steps")
        .label(format!("steps {scope}/{ns}/{name}: {steps}"))
        .arg("scope", scope)
        .arg("ns", ns)
        .arg("name", name)
        .arg("steps", steps)
        .spawn()
        .success(CHILD_TIMEOUT)
}

/// Create the namespace `ns` of `scope` with semaphore `a` (in a child that then exits).
fn create(dir: &TestDir, scope: &str, ns: &str) {
    let r = steps(dir, scope, ns, "open");
    assert_eq!(r.req("open"), "ok", "creating {scope}/{ns}");
}

/// The segment of `ns` in `scope`, in `SHMSEM_DIR` (flat, see `scope.rs`): the namespace's one
/// file.
fn segment(dir: &TestDir, scope: &str, ns: &str) -> PathBuf {
    dir.shm.join(format!("{scope}.{ns}"))
}

/// Where the lock file of `ns` was in the old two-file layout: beside the segment, with `.lock`
/// appended. Now only the segment path of namespace `NS.lock`.
fn old_lock(dir: &TestDir, scope: &str, ns: &str) -> PathBuf {
    dir.shm.join(format!("{scope}.{ns}.lock"))
}

/// Every step of `steps` must have been refused (any error, never `ok`).
fn assert_all_refused(r: &Reports, steps: &str, what: &str) {
    for step in steps.split(',') {
        let got = r.req(step);
        assert_ne!(
            got, "ok",
            "{what}: step {step} succeeded; it must be refused ({:?})",
            r.0
        );
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() }
}

fn is_root() -> bool {
    euid() == 0
}

/// As root: a fresh test directory named after `test`, with the namespace `ns` of `scope` (and
/// its semaphore `a`) created, and that namespace's segment. Otherwise `None`, once it has said
/// that the test is skipped because `what` needs root.
fn namespace_as_root(test: &str, scope: &str, ns: &str, what: &str) -> Option<(TestDir, PathBuf)> {
    if !is_root() {
        eprintln!("skipped: {what} needs root");
        return None;
    }
    let dir = TestDir::new(test);
    create(&dir, scope, ns);
    let seg = segment(&dir, scope, ns);
    Some((dir, seg))
}

/// A file outside `SHMSEM_DIR` that a planted link points at: bytes, length and an mtime an
/// hour in the past, so that any write would show.
struct Precious {
    path: PathBuf,
    bytes: Vec<u8>,
    mtime: SystemTime,
}

impl Precious {
    fn new(dir: &TestDir, name: &str) -> Precious {
        let path = dir.work_file(name);
        let bytes = b"precious: not a shmsem segment\n".to_vec();
        fs::write(&path, &bytes).expect("writing the link target");
        let mtime = SystemTime::now() - Duration::from_secs(3600);
        let f = fs::File::options()
            .write(true)
            .open(&path)
            .expect("opening the link target");
        f.set_modified(mtime).expect("setting the target's mtime");
        let mtime = fs::metadata(&path).unwrap().modified().unwrap();
        Precious { path, bytes, mtime }
    }

    fn assert_untouched(&self, what: &str) {
        let meta = fs::symlink_metadata(&self.path).expect("the link target still exists");
        assert!(meta.is_file(), "{what}: the target is no longer a file");
        assert_eq!(
            fs::read(&self.path).unwrap(),
            self.bytes,
            "{what}: the target's bytes changed"
        );
        assert_eq!(
            meta.modified().unwrap(),
            self.mtime,
            "{what}: the target's mtime changed"
        );
        assert_eq!(
            meta.mode() & 0o7777,
            0o644,
            "{what}: the target's mode changed"
        );
    }
}

const ALL_STEPS: &str = "open,existing,list,reap";
