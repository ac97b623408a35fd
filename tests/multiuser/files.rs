//! Items 2, 4, 7 and 8, the namespace's one file: root never adopts another user's unlinked
//! segment, deleting the file is for its owner and root alone, a hard link planted by a group
//! member leaves it working, and names ending in `.lock` are namespaces like any other.

use std::{fs, os::unix::fs::MetadataExt, path::Path};

use crate::{
    DEADLINE_BOUND, NO_PERMISSION, QUICK_BOUND, SHM, TIMED_OUT,
    commands::{create_for_ops, create_ops, kill, ps_lists_held, shown, take_once},
    users::{Company, World},
};

// =====================================================================================
// Item 2: adoption
// =====================================================================================

/// Item 2. Bob holds a semaphore of global namespace `svc`, then unlinks the segment while his
/// processes keep it open, and holds its table lock through his descriptor. Root's
/// `create x --persistent --mode 0600` makes a fresh file of root's (it never maps bob's
/// nameless segment, found through `/proc`), holding nothing, and bob's lock holds none of
/// root's commands. Alice, another user, likewise makes her own.
#[test]
fn root_never_adopts_a_segment_another_user_unlinked_and_holds() {
    let w = World::new(Company::Shared);
    let b = &w.bob;
    for (creator, suffix, mode) in [(&w.root, "svc", "0600"), (&w.alice, "svc2", "0660")] {
        let ns = w.ns(suffix);
        let seg = w.seg(&ns);
        w.run_in(b, &ns, &["create", "x", "--persistent"]).ok();
        w.hold(b, &ns, "x");
        let _bobs = w
            .lock_bytes(b, &seg, 0, 1, true)
            .expect("bob unlinks his segment and locks its byte 0");
        assert!(!seg.exists(), "bob's segment must be unlinked");

        w.run_in(
            creator,
            &ns,
            &["create", "x", "--persistent", "--mode", mode],
        )
        .ok()
        .within(QUICK_BOUND);
        let meta = fs::symlink_metadata(&seg).unwrap_or_else(|_| {
            panic!(
                "{}'s create left no file at {}",
                creator.role,
                seg.display()
            )
        });
        assert_eq!(
            (meta.uid(), meta.mode() & 0o7777, meta.nlink()),
            (creator.uid, u32::from_str_radix(&mode[1..], 8).unwrap(), 1),
            "{}'s namespace must be a fresh file of its own",
            creator.role
        );
        let listed = w.run_in(creator, &ns, &["ls", "--json"]);
        let rows = listed.ok().json();
        let row = &rows[0];
        assert_eq!(
            (
                row["uid"].as_u64(),
                row["value"].as_u64(),
                row["holders"].as_u64()
            ),
            (Some(creator.uid.into()), Some(0), Some(0)),
            "{} sees bob's segment: {listed}",
            creator.role
        );
        for name in ["x", "fresh"] {
            w.run_in(creator, &ns, &take_once(name, "500"))
                .ok()
                .within(DEADLINE_BOUND);
        }
    }
}

// =====================================================================================
// Item 4: one permit, one holder
// =====================================================================================

/// Item 4 as the issue found it: alice (ops, 0660) holds a capacity-1 semaphore and an
/// administrator deletes the namespace's "stale lock" `….lock`. There is no such file any more
/// (nothing to delete), and neither alice nor carol is admitted a second time, by `run` or by
/// `acquire`; the permit moves to carol only when alice lets go.
#[test]
fn removing_the_old_lock_path_admits_no_second_holder() {
    let w = World::new(Company::Shared);
    let (a, c) = (&w.alice, &w.carol);
    let ns = w.ns("rt7");
    create_ops(&w, &ns, "m");
    let holder = w.hold(a, &ns, "m");
    let carols = w.sleeper(c).to_string();
    let lock_path = w.seg(&format!("{ns}.lock"));
    assert!(
        !lock_path.exists(),
        "a namespace is one file: no {}",
        lock_path.display()
    );
    let _ = fs::remove_file(&lock_path); // the administrator's clean-up
    for who in [a, c] {
        w.run_in(who, &ns, &take_once("m", "0")).status(TIMED_OUT);
    }
    let acquire = |ms| ["acquire", "m", "--holder", &carols, "--timeout", ms];
    w.run_in(c, &ns, &acquire("300"))
        .status(TIMED_OUT)
        .within(DEADLINE_BOUND);
    assert_eq!(shown(&w, a, &ns, "m"), (1, vec![holder], vec![]));
    assert_eq!(
        fs::metadata(w.seg(&ns)).map(|m| m.uid()).ok(),
        Some(w.alice.uid)
    );

    kill(holder);
    w.run_in(c, &ns, &acquire("5000")).ok();
    w.run_in(a, &ns, &take_once("m", "0")).status(TIMED_OUT);
    w.run_in(c, &ns, &["release", "m", "--holder", &carols])
        .ok();
}

/// Item 4, deleting the one file there is now while it is in use: accepted and documented as a
/// forced removal (DESIGN §9 item 4; as `shmsem rm --force`), since the engine cannot see other
/// users' descriptors. What is guaranteed is who can do it: only the file's owner or root, for
/// `/dev/shm` is sticky. Bob (outside ops) and carol (ops, not the owner) can neither unlink nor
/// rename alice's segment (EPERM), and alice's holder keeps holding.
#[test]
fn deleting_an_in_use_segment_is_a_forced_removal_only_its_owner_or_root_can_make() {
    let w = World::new(Company::Shared);
    let (a, b, c) = (&w.alice, &w.bob, &w.carol);
    let ns = w.ns("rt8");
    let seg = w.seg(&ns);
    create_ops(&w, &ns, "m");
    let holder = w.hold(a, &ns, "m");
    let ino = fs::metadata(&seg).expect("alice's segment").ino();
    assert_ne!(
        fs::metadata(SHM).expect(SHM).mode() & 0o1000,
        0,
        "{SHM} must be sticky"
    );
    let s = seg.display();
    for who in [b, c] {
        for script in [format!("rm -f {s}"), format!("mv -f {s} {s}-moved")] {
            let out = w.sh(who, &script);
            assert!(
                out.code != Some(0) && out.stderr.contains("Operation not permitted"),
                "{} must get EPERM on alice's segment: {out}",
                who.role
            );
        }
    }
    assert_eq!(fs::metadata(&seg).map(|m| m.ino()).ok(), Some(ino));
    w.run_in(c, &ns, &take_once("m", "0")).status(TIMED_OUT);
    assert_eq!(shown(&w, a, &ns, "m"), (1, vec![holder], vec![]));
}

// =====================================================================================
// Item 7: hard links
// =====================================================================================

/// Item 7. Carol (ops) plants hard links, in a 0700 directory of her own, to alice's 0660
/// segment and to a root service's (`--group ops --mode 0660`). Both namespaces keep working
/// for everyone they admit (alice and carol; root in its own), bob stays out, and a capacity-1
/// semaphore still has one holder.
#[test]
fn a_hard_link_planted_by_a_group_member_leaves_the_namespace_working() {
    let w = World::new(Company::Shared);
    let (a, b, c, r) = (&w.alice, &w.bob, &w.carol, &w.root);
    let ns = w.ns("link");
    let nr = w.ns("svc");
    create_ops(&w, &ns, "m");
    create_for_ops(&w, r, &nr, "m", &["--capacity", "1"]);
    let hideout = Path::new(SHM).join(format!("{}-carol", w.tag));
    w.sh(
        c,
        &format!(
            "mkdir -m 0700 {d} && ln {s} {d}/alices && ln {t} {d}/roots",
            d = hideout.display(),
            s = w.seg(&ns).display(),
            t = w.seg(&nr).display()
        ),
    )
    .ok();

    for (ns, users) in [(&ns, [a, c]), (&nr, [r, c])] {
        assert_eq!(fs::metadata(w.seg(ns)).expect("the segment").nlink(), 2);
        for who in users {
            w.run_in(who, ns, &take_once("m", "500"))
                .ok()
                .within(DEADLINE_BOUND);
            w.run_in(who, ns, &["ls"]).ok().within(QUICK_BOUND);
        }
        let owner = users[0];
        w.run_in(owner, ns, &["create", "n"])
            .ok()
            .within(QUICK_BOUND);
        let holder = w.hold(owner, ns, "m");
        for (who, code) in [(c, TIMED_OUT), (b, NO_PERMISSION)] {
            w.run_in(who, ns, &take_once("m", "0")).status(code);
        }
        assert_eq!(shown(&w, owner, ns, "m"), (1, vec![holder], vec![]));
    }
}

// =====================================================================================
// Item 8: names ending in .lock
// =====================================================================================

/// Item 8. `NS` and `NS.lock` are two namespaces with one file each: a capacity-1 semaphore of
/// the same name is held in both at once, a second holder is refused in each, `ls` lists it, and
/// `ps` of alice lists the holding in `NS.lock`; so does root's for a root service's
/// `NS2.lock`.
#[test]
fn namespaces_named_like_lock_files_are_separate_and_visible_to_ps() {
    let w = World::new(Company::Shared);
    let (a, c, r) = (&w.alice, &w.carol, &w.root);
    let base = w.ns("q");
    let dotted = format!("{base}.lock");
    for ns in [&base, &dotted] {
        create_ops(&w, ns, "m");
    }
    let h_base = w.hold(a, &base, "m");
    let h_dotted = w.hold(a, &dotted, "m");
    assert_ne!(
        fs::metadata(w.seg(&base)).expect("NS").ino(),
        fs::metadata(w.seg(&dotted)).expect("NS.lock").ino()
    );
    for (ns, holder) in [(&base, h_base), (&dotted, h_dotted)] {
        w.run_in(c, ns, &take_once("m", "0")).status(TIMED_OUT);
        assert_eq!(shown(&w, a, ns, "m"), (1, vec![holder], vec![]));
    }
    let listed = w.run_in(a, &dotted, &["ls", "--json"]);
    let row = &listed.ok().json()[0];
    assert_eq!(
        (row["name"].as_str(), row["value"].as_u64()),
        (Some("m"), Some(1)),
        "{listed}"
    );
    ps_lists_held(&w, a, h_dotted, &dotted, "m");

    let roots = format!("{}.lock", w.ns("svc"));
    let h_root = w.hold(r, &roots, "m");
    ps_lists_held(&w, r, h_root, &roots, "m");
}
