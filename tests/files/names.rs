//! Bad names, and `ps` robustness against what is not a segment.

use super::*;

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
