//! Paths that are not a plain segment: symlinks, a directory or FIFO at the segment path, old lock names, `.lock` names.

use super::*;

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
