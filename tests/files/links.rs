//! Hard links planted to a segment, and a segment unlinked while mapped.

use super::*;

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
