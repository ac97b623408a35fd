//! The file rules of SPEC §5.1 and §5.4 (research `reliability.md` §3.4, §5 "Hostile filesystem
//! tests"): what the library must refuse to use as a namespace's segment or lock file, and that
//! refusing touches nothing.
//!
//! Every library call happens in a fresh child process (this test binary re-executed with
//! `--exact child_role`, see `common`), each test with its own `SHMSEM_DIR`; the harness process
//! only plants files, changes owners and modes, and compares. A child runs a list of *steps*
//! and reports each outcome as a short word (`ok`, or the error variant: `PermissionDenied`,
//! `Corrupt`, ...); a panic in a child fails the test with its transcript.
//!
//! The rules asserted here, and why:
//!
//! * **Symbolic links** at the segment or lock path are refused (`PermissionDenied`, the
//!   `O_NOFOLLOW` refusal) and the link's target keeps its bytes, length and mtime; a dangling
//!   link's target is not created.
//! * **Owner.** In `local` and `self` scope the files must belong to the calling user: a segment
//!   or lock file of another uid is refused (SPEC §5.4: `fstat` checks the owner; research §3.4
//!   rule 3: "`st_uid` == expected owner (self for user/session scope ...)"). In `global` scope
//!   the namespace's owner is whoever created it and access is what the OS grants (SPEC §2
//!   "owner", §4 `--group`/`--mode`), so another user's file is accepted there: a positive
//!   control, so that the owner check is not applied to every scope.
//! * **Mode.** In `local` scope neither group nor others may write the files (research §3.4 rule
//!   3: "mode without group/other write unless the scope says so"; the local scope lives in a
//!   0700 per-user directory and its files are created 0600). So 0666, 0660 and 0602 are
//!   refused; 0600 is accepted. (Read bits for group/other are not asserted either way.)
//! * **Link count.** A segment or lock file with a second hard link is refused: someone planted
//!   or kept a name for it (research §3.4 rule 3, `st_nlink == 1`).
//! * **Size.** A segment whose size is not the layout's is refused with `Corrupt` or
//!   `Incompatible` by every entry point, and is not silently replaced by a fresh one (its size
//!   is unchanged afterwards). A directory or a FIFO at either path is refused too.
//! * **Unlinked while mapped** (logind `RemoveIPC`, an administrator's `rm`): process A holds
//!   the only permit of a capacity-1 semaphore; the segment (and in a second variant, also the
//!   lock file) is unlinked; a process B that opens the same namespace and name must *not* get
//!   that permit: any error is acceptable (`WouldBlock` because B found and shares A's segment,
//!   or an error saying the namespace was removed), `Ok` is the silent doubling SPEC §5.4
//!   forbids. Then, when a *different* segment has taken the name (B could not find A's), A must
//!   notice: A's next `open` and `list` in that namespace fail instead of going on with the
//!   nameless segment (a namespace split is detected, not silent).
//! * **Names.** A name or namespace longer than 200 bytes (or with `/`, or `..`) is refused with
//!   `InvalidName` before any file is touched: the directory's entries and an existing segment's
//!   bytes are unchanged.
//!
//! Tests that change owners need root; without it they print why and pass vacuously.

mod common;

use std::{
    fs,
    os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use common::{Kid, Reports, Spawn, TestDir, arg, arg_or, arg_u32, report, role, wait_for_signal};
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

/// The segment and lock file of `ns` in `scope`, in `SHMSEM_DIR` (flat, see `scope.rs`).
fn files(dir: &TestDir, scope: &str, ns: &str) -> (PathBuf, PathBuf) {
    let seg = dir.shm.join(format!("{scope}.{ns}"));
    let lock = dir.shm.join(format!("{scope}.{ns}.lock"));
    (seg, lock)
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

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
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
        let (seg, _lock) = files(&dir, scope, &ns);
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
    let (seg, lock) = files(&dir, "local", "dangle");
    std::os::unix::fs::symlink(&missing, &seg).unwrap();
    let r = steps(&dir, "local", "dangle", ALL_STEPS);
    assert_all_refused(&r, ALL_STEPS, "dangling symlink at the segment path");
    assert!(
        fs::symlink_metadata(&missing).is_err(),
        "the dangling link's target was created"
    );
    // Same at the lock path.
    fs::remove_file(&seg).unwrap();
    let _ = fs::remove_file(&lock);
    std::os::unix::fs::symlink(&missing, &lock).unwrap();
    let r = steps(&dir, "local", "dangle", ALL_STEPS);
    assert_eq!(
        r.req("open"),
        "PermissionDenied",
        "a dangling symlink at the lock path"
    );
    assert!(
        fs::symlink_metadata(&missing).is_err(),
        "the dangling lock link's target was created"
    );
}

#[test]
fn symlink_at_the_lock_path_is_refused_and_its_target_untouched() {
    let dir = TestDir::new("symlock");
    // 1. Before the namespace exists: creation must not follow it.
    let target = Precious::new(&dir, "target-new");
    let (seg, lock) = files(&dir, "local", "fresh");
    std::os::unix::fs::symlink(&target.path, &lock).unwrap();
    let r = steps(&dir, "local", "fresh", "open");
    assert_eq!(
        r.req("open"),
        "PermissionDenied",
        "symlink at the lock path of a new namespace"
    );
    target.assert_untouched("symlink at the lock path of a new namespace");
    assert!(
        fs::symlink_metadata(&seg).is_err(),
        "a segment was created beside a refused lock file"
    );

    // 2. An existing namespace whose lock file was replaced by a link.
    let target = Precious::new(&dir, "target-old");
    create(&dir, "local", "old");
    let (_seg, lock) = files(&dir, "local", "old");
    fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(&target.path, &lock).unwrap();
    let r = steps(&dir, "local", "old", ALL_STEPS);
    assert_all_refused(&r, "open,existing", "symlink at the lock path");
    assert_eq!(r.req("open"), "PermissionDenied");
    target.assert_untouched("symlink at the lock path of an existing namespace");
}

// ----- owner -----

#[test]
fn files_of_another_user_are_refused_in_local_scope() {
    if !is_root() {
        eprintln!("skipped: changing a file's owner needs root");
        return;
    }
    let dir = TestDir::new("owner");
    for which in ["segment", "lock"] {
        let ns = format!("own{which}");
        create(&dir, "local", &ns);
        let (seg, lock) = files(&dir, "local", &ns);
        let path = if which == "segment" { &seg } else { &lock };
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
        let r = steps(&dir, "local", &ns, ALL_STEPS);
        assert_all_refused(
            &r,
            "open,existing",
            &format!("local {which} owned by 65534"),
        );
        assert_eq!(
            r.req("open"),
            "PermissionDenied",
            "local {which} owned by another user: {:?}",
            r.0
        );
        assert_eq!(fs::metadata(path).unwrap().uid(), 65534, "owner changed");
    }
}

#[test]
fn files_of_another_user_are_accepted_in_global_scope() {
    if !is_root() {
        eprintln!("skipped: changing a file's owner needs root");
        return;
    }
    let dir = TestDir::new("gowner");
    create(&dir, "global", "shared");
    let (seg, lock) = files(&dir, "global", "shared");
    for path in [&seg, &lock] {
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    }
    let r = steps(&dir, "global", "shared", "try,existing_try,list,reap");
    for step in ["try", "existing_try", "list", "reap"] {
        assert_eq!(
            r.req(step),
            "ok",
            "global namespace of another user: {step} ({:?})",
            r.0
        );
    }
}

// ----- mode -----

#[test]
fn group_or_world_writable_files_are_refused_in_local_scope() {
    let dir = TestDir::new("mode");
    // Positive control: the mode the library creates is accepted.
    create(&dir, "local", "control");
    let (seg, lock) = files(&dir, "local", "control");
    assert_eq!(fs::metadata(&seg).unwrap().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(&lock).unwrap().mode() & 0o777, 0o600);
    let r = steps(&dir, "local", "control", "try,existing_try,list,reap");
    for step in ["try", "existing_try", "list", "reap"] {
        assert_eq!(r.req(step), "ok", "local 0600: {step}");
    }
    let mut failures = Vec::new();
    for which in ["segment", "lock"] {
        for mode in [0o666, 0o660, 0o602] {
            let ns = format!("m{which}{mode:o}");
            create(&dir, "local", &ns);
            let (seg, lock) = files(&dir, "local", &ns);
            let path = if which == "segment" { &seg } else { &lock };
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
            let r = steps(&dir, "local", &ns, ALL_STEPS);
            for step in ["open", "existing"] {
                if r.req(step) == "ok" {
                    failures.push(format!("{which} {mode:04o}: {step} ok"));
                }
            }
            assert_eq!(
                fs::metadata(path).unwrap().mode() & 0o777,
                mode,
                "the library changed the mode of a refused file"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "group- or world-writable local files were accepted: {failures:?}"
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
        let (seg, _lock) = files(&dir, "local", &ns);
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
fn a_directory_or_fifo_at_either_path_is_refused() {
    let dir = TestDir::new("types");
    let mkfifo = |p: &Path| {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    };
    for (i, (which, what)) in [
        ("segment", "dir"),
        ("segment", "fifo"),
        ("lock", "dir"),
        ("lock", "fifo"),
    ]
    .into_iter()
    .enumerate()
    {
        let ns = format!("t{i}");
        let (seg, lock) = files(&dir, "local", &ns);
        if which == "lock" {
            create(&dir, "local", &ns);
            fs::remove_file(&lock).unwrap();
        }
        let path = if which == "segment" { &seg } else { &lock };
        match what {
            "dir" => fs::create_dir(path).unwrap(),
            _ => mkfifo(path),
        }
        let r = steps(&dir, "local", &ns, ALL_STEPS);
        assert_all_refused(
            &r,
            "open,existing",
            &format!("a {what} at the {which} path"),
        );
        let meta = fs::symlink_metadata(path).unwrap();
        assert!(
            if what == "dir" {
                meta.is_dir()
            } else {
                meta.file_type().is_fifo()
            },
            "the {what} at the {which} path was replaced"
        );
    }
}

// ----- hard links -----

#[test]
fn a_hard_linked_segment_or_lock_file_is_refused() {
    let dir = TestDir::new("hardlink");
    for which in ["segment", "lock"] {
        let ns = format!("hl{which}");
        create(&dir, "local", &ns);
        let (seg, lock) = files(&dir, "local", &ns);
        let path = if which == "segment" { &seg } else { &lock };
        // The work directory is beside SHMSEM_DIR, on the same file system.
        let extra = dir.work_file(&format!("extra-{which}"));
        fs::hard_link(path, &extra).unwrap();
        assert_eq!(fs::metadata(path).unwrap().nlink(), 2);
        let r = steps(&dir, "local", &ns, ALL_STEPS);
        assert_all_refused(&r, "open,existing", &format!("a hard-linked {which}"));
        assert_eq!(
            r.req("open"),
            "PermissionDenied",
            "a hard-linked {which}: {:?}",
            r.0
        );
        // Removing the extra name makes it acceptable again.
        fs::remove_file(&extra).unwrap();
        let r = steps(&dir, "local", &ns, "try");
        assert_eq!(r.req("try"), "ok", "{which} with one link again");
    }
}

// ----- unlinked while mapped -----

/// A holds the only permit of capacity-1 `m` in namespace `u`; the files are unlinked
/// (`also_lock`: the lock file too); B must not get a permit; then a fresh segment is put at the
/// name and A must notice the split.
fn unlinked_while_mapped(also_lock: bool) {
    let dir = TestDir::new(if also_lock { "unlink2" } else { "unlink1" });
    let mut a: Kid = Spawn::new(&dir, "hold")
        .label("A")
        .arg("ns", "u")
        .arg("name", "m")
        .arg("cap", 1)
        // After the probe signal: wait past any rate limit of the check, then open and list.
        .arg("steps", "sleep300,open,list")
        .spawn();
    a.expect("held", CHILD_TIMEOUT);
    let (seg, lock) = files(&dir, "local", "u");
    fs::remove_file(&seg).unwrap();
    if also_lock {
        fs::remove_file(&lock).unwrap();
    }

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
    // namespace in the same directory and its files are renamed into place.
    create(&dir, "local", "other");
    let (oseg, olock) = files(&dir, "local", "other");
    let _ = fs::remove_file(&seg);
    let _ = fs::remove_file(&lock);
    fs::rename(&oseg, &seg).unwrap();
    fs::rename(&olock, &lock).unwrap();

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

#[test]
fn a_segment_and_lock_unlinked_while_mapped_are_not_silently_doubled() {
    unlinked_while_mapped(true);
}

/// A lock file left without a segment and without any live process is no obstacle: creating the
/// namespace works (the rules above must not lock a namespace out for good).
#[test]
fn a_stale_lock_file_without_a_segment_does_not_block_creation() {
    let dir = TestDir::new("stale");
    create(&dir, "local", "st");
    let (seg, _lock) = files(&dir, "local", "st");
    fs::remove_file(&seg).unwrap();
    let r = steps(&dir, "local", "st", "try,list,reap");
    for step in ["try", "list", "reap"] {
        assert_eq!(r.req(step), "ok", "stale lock file: {step} ({:?})", r.0);
    }
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
