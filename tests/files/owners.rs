//! Segments of another user, with a writable mode, or of the wrong size.

use super::*;

// ----- owner -----

#[test]
fn a_segment_of_another_user_is_refused_in_local_scope() {
    let Some((dir, seg)) = namespace_as_root("owner", "local", "own", "changing a file's owner")
    else {
        return;
    };
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
    let Some((dir, seg)) = namespace_as_root(
        "gowner",
        "global",
        "shared",
        "running a child as another user",
    ) else {
        return;
    };
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
