//! The file rules of README, *Scopes and files*, and of DESIGN §1 and §9 (the threat model):
//! what the library must refuse to use as a namespace's file, what it must
//! leave alone, and that refusing touches nothing.
//!
//! A namespace is one file, its segment (`local.NS`, `global.NS`, ... in `SHMSEM_DIR`); the OFD
//! locks (byte 0 the table lock, byte `1 + slot` a process slot's liveness) are bytes of that
//! same file. There is no companion `.lock` file any more.
//!
//! Every library call happens in a fresh child process (this test binary re-executed with
//! `--exact child_role`, see `common`), each test with its own `SHMSEM_DIR`; the harness process
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

mod common;

use std::{
    fs,
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use common::{
    Kid, Reports, Spawn, TestDir, arg, arg_or, arg_u32,
    cli::{Sleeper, ls, ok, run},
    report, role, wait_for_signal,
};
use serde_json::json;
use shmsem::{Error, Scope, Semaphore, internals::layout::SEGMENT_SIZE};

/// How long any child may take: generous, for a loaded two-core machine.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(60);

// =====================================================================================
// The child side
// =====================================================================================

/// The entry point of every child process. In the harness itself (no role) it does nothing.
#[test]
fn child_role() {
    let Some(role) = role() else { return };
    match role.as_str() {
        "steps" => run_steps(&arg("steps")),
        "hold" => role_hold(),
        other => panic!("unknown role {other:?}"),
    }
}

/// A short, stable word for an outcome.
fn kind<T>(r: &Result<T, Error>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => error_kind(e),
    }
}

fn error_kind(e: &Error) -> String {
    match e {
        Error::Timeout { .. } => "Timeout".into(),
        Error::WouldBlock { .. } => "WouldBlock".into(),
        Error::InvalidName { .. } => "InvalidName".into(),
        Error::InvalidArgument { .. } => "InvalidArgument".into(),
        Error::WeightTooLarge { .. } => "WeightTooLarge".into(),
        Error::NotHeld { .. } => "NotHeld".into(),
        Error::TableFull { .. } => "TableFull".into(),
        Error::PermissionDenied { .. } => "PermissionDenied".into(),
        Error::NotFound { .. } => "NotFound".into(),
        Error::InUse { .. } => "InUse".into(),
        Error::Removed { .. } => "Removed".into(),
        Error::Incompatible { .. } => "Incompatible".into(),
        Error::Corrupt { .. } => "Corrupt".into(),
        Error::Io { source, .. } => format!("Io:{:?}", source.kind()),
        _ => "Other".into(),
    }
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
            "list" => opts.list().map(drop),
            "reap" => opts.reap().map(drop),
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

// ----- symbolic links -----

#[test]
fn symlink_at_the_segment_path_is_refused_and_its_target_untouched() {
    let dir = TestDir::new("symseg");
    for scope in ["local", "global"] {
        let target = Precious::new(&dir, &format!("target-{scope}"));
        let ns = format!("sym{scope}");
        let seg = segment(&dir, scope, &ns);
        std::os::unix::fs::symlink(&target.path, &seg).unwrap();
        let r = steps(&dir, scope, &ns, ALL_STEPS);
        assert_all_refused(
            &r,
            ALL_STEPS,
            &format!("{scope}: symlink at the segment path"),
        );
        assert_eq!(
            r.req("open"),
            "PermissionDenied",
            "{scope}: a symlink at the segment path must be refused as PermissionDenied"
        );
        target.assert_untouched(&format!("{scope}: symlink at the segment path"));
        assert!(
            fs::symlink_metadata(&seg).unwrap().file_type().is_symlink(),
            "{scope}: the planted link was replaced"
        );
        assert_eq!(fs::read_link(&seg).unwrap(), target.path);
    }
}

#[test]
fn dangling_symlink_at_the_segment_path_is_refused_and_nothing_is_created() {
    let dir = TestDir::new("dangle");
    let missing = dir.work_file("not-there");
    let seg = segment(&dir, "local", "dangle");
    std::os::unix::fs::symlink(&missing, &seg).unwrap();
    let r = steps(&dir, "local", "dangle", ALL_STEPS);
    assert_all_refused(&r, ALL_STEPS, "dangling symlink at the segment path");
    assert_eq!(r.req("open"), "PermissionDenied", "{:?}", r.0);
    assert!(
        fs::symlink_metadata(&missing).is_err(),
        "the dangling link's target was created"
    );
    assert_eq!(
        dir.shm_files(),
        vec!["local.dangle".to_owned()],
        "something was created beside the refused link"
    );
}

// ----- names like the old lock files -----

/// What is planted at a namespace's old lock path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plant {
    /// A symlink to a file outside `SHMSEM_DIR`.
    Symlink,
    /// A symlink to nothing.
    Dangling,
    Directory,
    Fifo,
    /// An empty regular file that anyone may write, of another user when the test runs as
    /// root: what the old two-file layout left behind, or what anyone can make in `/dev/shm`.
    Leftover,
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Plant `what` at `path`; a check that it is still there, unchanged.
fn plant(dir: &TestDir, what: Plant, path: &Path) -> Box<dyn Fn(&str)> {
    let path = path.to_owned();
    let target = (what == Plant::Symlink).then(|| Precious::new(dir, "lock-target"));
    let missing = dir.work_file("lock-missing");
    let owner = if is_root() { 65534 } else { euid() };
    match what {
        Plant::Symlink => {
            std::os::unix::fs::symlink(&target.as_ref().unwrap().path, &path).unwrap()
        }
        Plant::Dangling => std::os::unix::fs::symlink(&missing, &path).unwrap(),
        Plant::Directory => fs::create_dir(&path).unwrap(),
        Plant::Fifo => mkfifo(&path),
        Plant::Leftover => {
            fs::write(&path, b"").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
            if is_root() {
                std::os::unix::fs::chown(&path, Some(owner), Some(owner)).unwrap();
            }
        }
    }
    Box::new(move |ctx: &str| {
        let meta = fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("{ctx}: the planted {what:?} is gone: {e}"));
        let ft = meta.file_type();
        match what {
            Plant::Symlink => {
                assert!(ft.is_symlink(), "{ctx}: the symlink was replaced");
                let target = target.as_ref().unwrap();
                assert_eq!(fs::read_link(&path).unwrap(), target.path, "{ctx}");
                target.assert_untouched(ctx);
            }
            Plant::Dangling => {
                assert!(ft.is_symlink(), "{ctx}: the symlink was replaced");
                assert!(
                    fs::symlink_metadata(&missing).is_err(),
                    "{ctx}: the dangling link's target was created"
                );
            }
            Plant::Directory => {
                assert!(ft.is_dir(), "{ctx}: the directory was replaced");
                assert!(
                    common::list_dir(&path).is_empty(),
                    "{ctx}: something was created in the directory"
                );
            }
            Plant::Fifo => assert!(ft.is_fifo(), "{ctx}: the FIFO was replaced"),
            Plant::Leftover => {
                assert!(ft.is_file(), "{ctx}: the file was replaced");
                assert_eq!(
                    (meta.len(), meta.mode() & 0o7777, meta.uid()),
                    (0, 0o666, owner),
                    "{ctx}: the leftover file was changed"
                );
            }
        }
    })
}

/// Issue 19 items 1 and 8: the engine makes no `NS.lock` file and reads none. Whatever is at a
/// namespace's old lock path, before the namespace is created or beside its segment, the
/// namespace works as if nothing were there, and the planted thing is left as it was.
#[test]
fn whatever_is_named_like_an_old_lock_file_is_ignored_and_untouched() {
    use Plant::*;
    let mut cases = Vec::new();
    for what in [Symlink, Dangling, Directory, Fifo, Leftover] {
        for existing in [false, true] {
            cases.push(("local", what, existing));
        }
    }
    cases.push(("global", Symlink, false));
    cases.push(("global", Leftover, true));
    for (scope, what, existing) in cases {
        let dir = TestDir::new("oldlock");
        let ctx = format!(
            "{scope}: a {what:?} at the old lock path, {}",
            if existing {
                "beside an existing segment"
            } else {
                "before the namespace exists"
            }
        );
        if existing {
            create(&dir, scope, "ol");
        }
        let unchanged = plant(&dir, what, &old_lock(&dir, scope, "ol"));
        let r = steps(&dir, scope, "ol", "try,existing_try,list,reap");
        for step in ["try", "existing_try", "list", "reap"] {
            assert_eq!(r.req(step), "ok", "{ctx}: {step} ({:?})", r.0);
        }
        unchanged(&ctx);
        assert_eq!(
            dir.shm_files(),
            vec![format!("{scope}.ol"), format!("{scope}.ol.lock")],
            "{ctx}: one segment beside the planted thing, nothing else"
        );
        assert_eq!(
            fs::metadata(segment(&dir, scope, "ol")).unwrap().len(),
            SEGMENT_SIZE as u64,
            "{ctx}"
        );
    }
}

/// Issue 19 item 8: `x.lock` is an ordinary namespace, which once was the lock file of `x`. Both
/// work side by side, each with its own semaphores, and `ls` and `ps` list it.
#[test]
fn a_namespace_named_like_a_lock_file_works_and_is_listed() {
    let dir = TestDir::new("dotlock");
    fn in_ns<'a>(scope: &'a str, ns: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        [&["--scope", scope, "--namespace", ns][..], args].concat()
    }
    ok(
        &dir,
        &in_ns(
            "local",
            "x",
            &["create", "s", "--capacity", "2", "--persistent"],
        ),
    );
    ok(
        &dir,
        &in_ns(
            "local",
            "x.lock",
            &["create", "s", "--capacity", "3", "--persistent"],
        ),
    );
    ok(
        &dir,
        &in_ns(
            "global",
            "g.lock",
            &["create", "t", "--capacity", "4", "--persistent"],
        ),
    );
    assert_eq!(
        dir.shm_files(),
        ["global.g.lock", "local.x", "local.x.lock"],
        "one file per namespace"
    );
    for f in dir.shm_files() {
        assert_eq!(
            fs::metadata(dir.shm.join(&f)).unwrap().len(),
            SEGMENT_SIZE as u64,
            "{f} is a segment"
        );
    }
    let listed = |scope: &str, ns: &str| -> Vec<(String, u64)> {
        ls(&dir, &["--scope", scope, "--namespace", ns])
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap().to_owned(),
                    v["capacity"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(listed("local", "x"), [("s".to_owned(), 2)]);
    assert_eq!(listed("local", "x.lock"), [("s".to_owned(), 3)]);
    assert_eq!(listed("global", "g.lock"), [("t".to_owned(), 4)]);

    let holder = Sleeper::spawn();
    let pid = holder.pid();
    ok(
        &dir,
        &in_ns(
            "local",
            "x",
            &["acquire", "s", "--weight", "2", "--holder", &pid],
        ),
    );
    ok(
        &dir,
        &in_ns("local", "x.lock", &["acquire", "s", "--holder", &pid]),
    );
    ok(
        &dir,
        &in_ns(
            "global",
            "g.lock",
            &["acquire", "t", "--weight", "3", "--holder", &pid],
        ),
    );
    let entry = |scope: &str, ns: &str, name: &str, weight: u64| json!({"scope": scope, "namespace": ns, "name": name, "weight": weight, "state": "held"});
    assert_eq!(
        ok(&dir, &["ps", &pid, "--json"]).json(),
        json!([
            entry("global", "g.lock", "t", 3),
            entry("local", "x", "s", 2),
            entry("local", "x.lock", "s", 1),
        ]),
        "ps lists the holder in every namespace, `.lock` ones included"
    );
    let value = |scope: &'static str, ns: &'static str, name: &'static str| {
        ok(&dir, &in_ns(scope, ns, &["show", name, "--json"])).json()["value"].as_u64()
    };
    assert_eq!(value("local", "x", "s"), Some(2));
    assert_eq!(value("local", "x.lock", "s"), Some(1));
    assert_eq!(value("global", "g.lock", "t"), Some(3));
}

// ----- owner -----

#[test]
fn a_segment_of_another_user_is_refused_in_local_scope() {
    if !is_root() {
        eprintln!("skipped: changing a file's owner needs root");
        return;
    }
    let dir = TestDir::new("owner");
    create(&dir, "local", "own");
    let seg = segment(&dir, "local", "own");
    std::os::unix::fs::chown(&seg, Some(65534), Some(65534)).unwrap();
    let r = steps(&dir, "local", "own", ALL_STEPS);
    assert_all_refused(&r, "open,existing", "local segment owned by 65534");
    assert_eq!(
        r.req("open"),
        "PermissionDenied",
        "local segment owned by another user: {:?}",
        r.0
    );
    assert_eq!(fs::metadata(&seg).unwrap().uid(), 65534, "owner changed");
}

/// The positive control of the owner rule: in `global` scope another user's segment is used,
/// as far as its mode lets the OS admit the caller. Root creates the namespace (mode 0666, the
/// global default) and an unprivileged user, `nobody`, uses it: root's privilege plays no part.
#[test]
fn a_segment_of_another_user_is_accepted_in_global_scope() {
    if !is_root() {
        eprintln!("skipped: running a child as another user needs root");
        return;
    }
    let dir = TestDir::new("gowner");
    create(&dir, "global", "shared");
    let seg = segment(&dir, "global", "shared");
    assert_eq!(fs::metadata(&seg).unwrap().mode() & 0o777, 0o666);
    let r = Spawn::new(&dir, "steps")
        .label("nobody's steps in root's global namespace")
        .user(65534, 65534)
        .arg("scope", "global")
        .arg("ns", "shared")
        .arg("steps", "try,existing_try,list,reap")
        .spawn()
        .success(CHILD_TIMEOUT);
    for step in ["try", "existing_try", "list", "reap"] {
        assert_eq!(
            r.req(step),
            "ok",
            "global namespace of another user: {step} ({:?})",
            r.0
        );
    }
    let meta = fs::metadata(&seg).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (0, 0o666),
        "using the namespace changed its owner or mode"
    );
}

// ----- mode -----

#[test]
fn a_group_or_world_writable_segment_is_refused_in_local_scope() {
    let dir = TestDir::new("mode");
    // Positive control: the mode the library creates is accepted.
    create(&dir, "local", "control");
    let seg = segment(&dir, "local", "control");
    assert_eq!(fs::metadata(&seg).unwrap().mode() & 0o777, 0o600);
    let r = steps(&dir, "local", "control", "try,existing_try,list,reap");
    for step in ["try", "existing_try", "list", "reap"] {
        assert_eq!(r.req(step), "ok", "local 0600: {step}");
    }
    let mut failures = Vec::new();
    for mode in [0o666, 0o660, 0o602] {
        let ns = format!("m{mode:o}");
        create(&dir, "local", &ns);
        let seg = segment(&dir, "local", &ns);
        fs::set_permissions(&seg, fs::Permissions::from_mode(mode)).unwrap();
        let r = steps(&dir, "local", &ns, ALL_STEPS);
        for step in ["open", "existing"] {
            if r.req(step) == "ok" {
                failures.push(format!("{mode:04o}: {step} ok"));
            }
        }
        assert_eq!(
            fs::metadata(&seg).unwrap().mode() & 0o777,
            mode,
            "the library changed the mode of a refused segment"
        );
    }
    assert!(
        failures.is_empty(),
        "group- or world-writable local segments were accepted: {failures:?}"
    );
}

// ----- size and type -----

#[test]
fn a_segment_of_the_wrong_size_is_refused_and_not_replaced() {
    let dir = TestDir::new("size");
    let size = SEGMENT_SIZE as u64;
    let mut failures = Vec::new();
    for (i, len) in [0, 100, 128, 4096, size - 4096, size - 1, size + 4096]
        .into_iter()
        .enumerate()
    {
        let ns = format!("size{i}");
        create(&dir, "local", &ns);
        let seg = segment(&dir, "local", &ns);
        fs::File::options()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len)
            .unwrap();
        let r = steps(&dir, "local", &ns, "open,existing,list,reap,try");
        for step in ["open", "existing", "list", "reap", "try"] {
            let got = r.req(step);
            if got != "Corrupt" && got != "Incompatible" {
                failures.push(format!("size {len}: {step} gave {got}"));
            }
        }
        assert_eq!(
            fs::metadata(&seg).unwrap().len(),
            len,
            "size {len}: the refused segment was resized or replaced"
        );
    }
    assert!(
        failures.is_empty(),
        "wrong-size segments must give Corrupt or Incompatible: {failures:?}"
    );
}

#[test]
fn a_directory_or_fifo_at_the_segment_path_is_refused() {
    let dir = TestDir::new("types");
    for what in ["dir", "fifo"] {
        let ns = format!("t{what}");
        let seg = segment(&dir, "local", &ns);
        match what {
            "dir" => fs::create_dir(&seg).unwrap(),
            _ => mkfifo(&seg),
        }
        let r = steps(&dir, "local", &ns, ALL_STEPS);
        assert_all_refused(
            &r,
            "open,existing",
            &format!("a {what} at the segment path"),
        );
        let meta = fs::symlink_metadata(&seg).unwrap();
        assert!(
            if what == "dir" {
                meta.is_dir()
            } else {
                meta.file_type().is_fifo()
            },
            "the {what} at the segment path was replaced"
        );
    }
    assert_eq!(
        dir.shm_files(),
        ["local.tdir", "local.tfifo"],
        "something was created beside the refused paths"
    );
}

// ----- hard links -----

/// Issue 19 item 7: a second name for a segment, planted outside `SHMSEM_DIR` while a process
/// holds its only permit, denies nobody: a new process opens the namespace, sees the permit
/// held (`WouldBlock`, the same segment, not a fresh one), gets it once the holder lets go; the
/// holder goes on undisturbed; the link is left alone.
#[test]
fn a_planted_hard_link_to_a_segment_does_not_break_the_namespace() {
    for scope in ["local", "global"] {
        let dir = TestDir::new("hardlink");
        let mut a: Kid = Spawn::new(&dir, "hold")
            .label(format!("A {scope}"))
            .arg("scope", scope)
            .arg("ns", "hl")
            .arg("name", "m")
            .arg("cap", 1)
            .arg("steps", "sleep300,open,list,reap")
            .spawn();
        a.expect("held", CHILD_TIMEOUT);
        let seg = segment(&dir, scope, "hl");
        // The work directory is beside SHMSEM_DIR, on the same file system.
        let link = dir.work_file("planted");
        fs::hard_link(&seg, &link).unwrap();
        assert_eq!(fs::metadata(&seg).unwrap().nlink(), 2);

        let r = steps_named(&dir, scope, "hl", "m", "try,existing_try,list,reap");
        for step in ["try", "existing_try"] {
            assert_eq!(
                r.req(step),
                "WouldBlock",
                "{scope}: with a planted link, a new process must share A's segment and find \
                 its only permit held ({step}; {:?})",
                r.0
            );
        }
        for step in ["list", "reap"] {
            assert_eq!(r.req(step), "ok", "{scope}: {step} ({:?})", r.0);
        }

        dir.signal("probe");
        a.expect("done", CHILD_TIMEOUT);
        let ra = a.reports();
        dir.signal("release");
        a.success(CHILD_TIMEOUT);
        for step in ["open", "list", "reap"] {
            assert_eq!(
                ra.req(step),
                "ok",
                "{scope}: the holder's {step} ({:?})",
                ra.0
            );
        }

        let r = steps_named(&dir, scope, "hl", "m", "try,existing_try");
        for step in ["try", "existing_try"] {
            assert_eq!(
                r.req(step),
                "ok",
                "{scope}: the permit, given back, is free to others ({step}; {:?})",
                r.0
            );
        }
        let (s, l) = (fs::metadata(&seg).unwrap(), fs::metadata(&link).unwrap());
        assert_eq!(
            (l.dev(), l.ino(), l.nlink()),
            (s.dev(), s.ino(), 2),
            "{scope}: the planted link was changed"
        );
        assert_eq!(dir.shm_files(), [format!("{scope}.hl")], "{scope}");
    }
}

// ----- unlinked while mapped -----

/// A holds the only permit of capacity-1 `m` in namespace `u`; the segment is unlinked (after a
/// second name was planted for it elsewhere, with `planted_link`); B must not get a permit; then
/// a fresh segment is put at the name and A must notice the split.
fn unlinked_while_mapped(planted_link: bool) {
    let dir = TestDir::new(if planted_link { "unlink2" } else { "unlink1" });
    let mut a: Kid = Spawn::new(&dir, "hold")
        .label("A")
        .arg("ns", "u")
        .arg("name", "m")
        .arg("cap", 1)
        // After the probe signal: wait past any rate limit of the check, then open and list.
        .arg("steps", "sleep300,open,list")
        .spawn();
    a.expect("held", CHILD_TIMEOUT);
    let seg = segment(&dir, "local", "u");
    if planted_link {
        fs::hard_link(&seg, dir.work_file("planted")).unwrap();
    }
    fs::remove_file(&seg).unwrap();

    // B, a new process, opens the same namespace and name.
    let r = steps_named(&dir, "local", "u", "m", "try,existing_try");
    for step in ["try", "existing_try"] {
        assert_ne!(
            r.req(step),
            "ok",
            "B got a permit of a capacity-1 semaphore that A holds, after A's segment was \
             unlinked: the namespace silently doubled ({step}; {:?})",
            r.0
        );
    }

    // Another segment takes the name (what happens when B cannot reach A's): C creates a
    // namespace in the same directory and its segment is renamed into place.
    create(&dir, "local", "other");
    let _ = fs::remove_file(&seg);
    fs::rename(segment(&dir, "local", "other"), &seg).unwrap();

    dir.signal("probe");
    let reports = {
        a.expect("done", CHILD_TIMEOUT);
        a.reports()
    };
    dir.signal("release");
    a.success(CHILD_TIMEOUT);
    for step in ["open", "list"] {
        assert_ne!(
            reports.req(step),
            "ok",
            "A went on using its unlinked segment after another took the name: {step} \
             succeeded ({:?})",
            reports.0
        );
    }
}

#[test]
fn a_segment_unlinked_while_mapped_is_not_silently_doubled() {
    unlinked_while_mapped(false);
}

/// Hard links are accepted now, so a segment may have a second name when its path is unlinked.
/// That name must not make the unlink a silent split.
#[test]
fn a_hard_linked_segment_unlinked_while_mapped_is_not_silently_doubled() {
    unlinked_while_mapped(true);
}

/// `ps` lists a process's activity in every namespace it may open, and skips what it may not;
/// something at a namespace path that is not a segment (an empty file the old two-file layout
/// left as `NS.lock`, or a directory anyone can make in `/dev/shm`) must not make it fail for
/// the namespaces that are fine.
#[test]
fn ps_is_not_broken_by_what_is_not_a_segment() {
    let dir = TestDir::new("psjunk");
    ok(&dir, &["--namespace", "x", "create", "s", "--persistent"]);
    let holder = Sleeper::spawn();
    let pid = holder.pid();
    ok(
        &dir,
        &["--namespace", "x", "acquire", "s", "--holder", &pid],
    );
    let want =
        json!([{"scope": "local", "namespace": "x", "name": "s", "weight": 1, "state": "held"}]);
    let lock = old_lock(&dir, "local", "x");
    fs::write(&lock, b"").unwrap();
    let r = run(&dir, &["ps", &pid, "--json"]);
    assert_eq!(r.code, 0, "an empty x.lock of the old layout: {r:?}");
    assert_eq!(r.json(), want, "an empty x.lock of the old layout: {r:?}");
    fs::remove_file(&lock).unwrap();
    fs::create_dir(segment(&dir, "global", "junk")).unwrap();
    let r = run(&dir, &["ps", &pid, "--json"]);
    assert_eq!(
        (r.code, r.json()),
        (0, want),
        "a directory global.junk: {r:?}"
    );
}

// ----- names -----

/// A fingerprint of a directory: every entry's name, kind and length, and the bytes of every
/// regular file.
fn fingerprint(dir: &Path) -> Vec<(String, String, u64, u64)> {
    let mut out = Vec::new();
    for name in common::list_dir(dir) {
        let p = dir.join(&name);
        let meta = fs::symlink_metadata(&p).unwrap();
        let hash = if meta.is_file() {
            fs::read(&p)
                .unwrap()
                .iter()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                    (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
                })
        } else {
            0
        };
        out.push((name, format!("{:?}", meta.file_type()), meta.len(), hash));
    }
    out
}

#[test]
fn overlong_or_bad_names_are_refused_before_any_file_is_touched() {
    let dir = TestDir::new("names");
    create(&dir, "local", "keep");
    let before = fingerprint(&dir.shm);
    let long = "x".repeat(201);
    // (namespace, name) pairs, each refused.
    let cases: Vec<(String, String)> = vec![
        ("keep".into(), long.clone()),
        (long.clone(), "a".into()),
        ("new".into(), long.clone()),
        ("keep".into(), "a/b".into()),
        ("keep".into(), "..".into()),
        ("..".into(), "a".into()),
        ("a/b".into(), "a".into()),
    ];
    for (ns, name) in &cases {
        let r = Spawn::new(&dir, "steps")
            .label(format!("bad name {}/{}", ns.len(), name.len()))
            .arg("ns", ns)
            .arg("name", name)
            .arg("steps", "open,existing")
            .spawn()
            .success(CHILD_TIMEOUT);
        for step in ["open", "existing"] {
            assert_eq!(
                r.req(step),
                "InvalidName",
                "namespace {:?} name {:?}: {step}",
                &ns[..ns.len().min(20)],
                &name[..name.len().min(20)]
            );
        }
        // list and reap take only a namespace.
        if ns.len() > 200 || ns.contains('/') || ns == ".." {
            let r = Spawn::new(&dir, "steps")
                .arg("ns", ns)
                .arg("steps", "list,reap")
                .spawn()
                .success(CHILD_TIMEOUT);
            assert_eq!(r.req("list"), "InvalidName");
            assert_eq!(r.req("reap"), "InvalidName");
        }
    }
    assert_eq!(
        fingerprint(&dir.shm),
        before,
        "a refused name touched the directory or the existing segment"
    );
    assert!(
        common::list_dir(&dir.root)
            .iter()
            .all(|n| n == "shm" || n == "work"),
        "something was created beside SHMSEM_DIR: {:?}",
        common::list_dir(&dir.root)
    );
}
