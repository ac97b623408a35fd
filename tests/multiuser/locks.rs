//! Items 1 and 3: a lock file bob owns, a namespace named like one, and table locks held by
//! another user: none of them holds alice's or root's commands past their bound, nor denies
//! anyone's `ps`.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    time::{Duration, Instant},
};

use shmsem::internals::layout::MAX_PROCESSES;

use crate::{
    DEADLINE_BOUND, NO_PERMISSION, PATIENCE_BOUND, QUICK_BOUND, TIMED_OUT,
    commands::{Row, create_for_ops, create_ops, shown, take_once, together},
    hostile::Locker,
    users::{Company, User, World},
};

// =====================================================================================
// Item 1: the lock file
// =====================================================================================

/// Item 1. Bob plants `/dev/shm/shmsem.global.NS.lock`, world-writable, before alice creates
/// `NS`, and locks its table byte and every process-slot byte; later he creates a namespace
/// `NS2.lock`, whose segment sits where `NS2`'s lock file used to be, and locks that. A namespace
/// is one file now: alice's is hers (owner, group ops, mode 0660), bob can neither open, lock,
/// remove nor replace it, his locks on his own files hold none of alice's commands, and a second
/// holder of alice's capacity-1 semaphore is refused.
#[test]
fn bobs_planted_lock_file_and_his_namespace_named_like_it_give_him_no_hold_on_alices() {
    let w = World::new(Company::Alone); // plants a 0-byte file named like a global namespace
    let ns = w.ns("ci");
    let seg = w.seg(&ns);
    let planted = w.seg(&format!("{ns}.lock"));
    let p = planted.display();
    w.sh(&w.bob, &format!(": > {p} && chmod 666 {p}")).ok();
    let bobs_lock = w
        .lock_bytes(&w.bob, &planted, 0, 1 + MAX_PROCESSES as u64, false)
        .expect("bob locks the bytes of his own planted file");

    let (a, b, c) = (&w.alice, &w.bob, &w.carol);
    create_ops(&w, &ns, "builds");
    let meta = fs::symlink_metadata(&seg).expect("alice's segment exists");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (w.alice.uid, w.ops.gid, 0o660),
        "alice's segment must be hers, group ops, mode 0660"
    );
    let listed = w.run_in(a, &ns, &["ls", "--json"]);
    let row = &listed.ok().json()[0];
    assert_eq!(
        (
            row["uid"].as_u64(),
            row["gid"].as_u64(),
            row["mode"].as_str()
        ),
        (
            Some(w.alice.uid.into()),
            Some(w.ops.gid.into()),
            Some("0660")
        ),
        "{listed}"
    );
    let planted_meta = fs::symlink_metadata(&planted).expect("bob's plant is still there");
    assert_eq!(
        (planted_meta.uid(), planted_meta.len()),
        (w.bob.uid, 0),
        "the engine must not have taken over or written bob's planted file"
    );
    let mut made = w.tagged_files();
    made.sort();
    let mut expected = vec![seg.clone(), planted.clone()];
    expected.sort();
    assert_eq!(made, expected, "a namespace is one file");

    // Bob's locks on his own file hold none of alice's commands: deadline-bound ones, a new
    // semaphore (the table lock), a new process (the slot bytes), listing.
    for name in ["builds", "fresh"] {
        w.run_in(a, &ns, &take_once(name, "500"))
            .ok()
            .within(DEADLINE_BOUND);
    }
    for args in [&["ls"][..], &["show", "builds"], &["create", "fresh2"]] {
        w.run_in(a, &ns, args).ok().within(QUICK_BOUND);
    }

    // Bob cannot open alice's segment to lock any byte of it, nor remove or replace it.
    assert_eq!(
        w.lock_bytes(&w.bob, &seg, 0, 1, false).map(drop),
        Err(format!("open-failed {}", libc::EACCES)),
        "bob must not be able to open alice's 0660 segment"
    );
    let s = seg.display();
    for (script, did) in [
        (format!("rm -f {s}"), "removed"),
        (format!("mv -f {p} {s}"), "replaced"),
    ] {
        let out = w.sh(b, &script);
        assert_ne!(out.code, Some(0), "bob {did} alice's segment: {out}");
    }
    assert_eq!(
        fs::symlink_metadata(&seg).map(|m| m.ino()).ok(),
        Some(meta.ino()),
        "alice's segment must still be the file she created"
    );

    // One permit, one holder: carol (ops) is refused while alice holds, bob cannot even look.
    let holder = w.hold(a, &ns, "builds");
    for (who, code) in [(c, TIMED_OUT), (b, NO_PERMISSION)] {
        w.run_in(who, &ns, &take_once("builds", "0")).status(code);
    }
    assert_eq!(shown(&w, a, &ns, "builds"), (1, vec![holder], vec![]));
    drop(bobs_lock);

    // Bob's namespace `NS2.lock` and alice's `NS2` are two namespaces, two files.
    let ns2 = w.ns("ci2");
    let bobs_ns = format!("{ns2}.lock");
    w.run_in(b, &bobs_ns, &["create", "x"]).ok();
    let bobs_seg = w.seg(&bobs_ns);
    assert_eq!(
        fs::metadata(&bobs_seg).map(|m| m.uid()).ok(),
        Some(w.bob.uid)
    );
    let _bobs_lock = w
        .lock_bytes(b, &bobs_seg, 0, 1 + MAX_PROCESSES as u64, false)
        .expect("bob locks his own namespace");
    let start = Instant::now();
    create_ops(&w, &ns2, "builds");
    assert!(
        start.elapsed() <= QUICK_BOUND,
        "alice's create of {ns2} took {:?} while bob locks {bobs_ns}",
        start.elapsed()
    );
    let alices = fs::metadata(w.seg(&ns2)).expect("alice's segment of ns2");
    assert_eq!(alices.uid(), w.alice.uid);
    assert_ne!(
        alices.ino(),
        fs::metadata(&bobs_seg).expect("bob's segment").ino()
    );
    w.run_in(a, &ns2, &take_once("new", "500"))
        .ok()
        .within(DEADLINE_BOUND);
}

// =====================================================================================
// Items 1 and 3: held table locks bound everyone's commands
// =====================================================================================

/// `locker` takes the table lock (byte 0) of alice's namespace `na` and of root's `nr`
/// (semaphore `existing` in each). Returns the locks, held until dropped, and the commands of
/// alice in `na` and of root in `nr` meanwhile, with what each must do: `run existing --timeout
/// 500` succeeds within 1.5 s (it needs no table lock); `run new --timeout 500` exits 75 within
/// 1.5 s, and `create` of a new semaphore (no deadline of its own) exits 75 after the bounded
/// patience, each saying so and, for root, naming the locker's process; `ls` and `show` answer
/// in time.
fn table_locks_held_by<'a>(
    w: &'a World,
    locker: &User,
    na: &str,
    nr: &str,
    existing: &str,
) -> ([Locker; 2], Vec<Row<'a>>) {
    let locks = [na, nr].map(|ns| {
        w.lock_bytes(locker, &w.seg(ns), 0, 1, false)
            .unwrap_or_else(|e| panic!("{} locks byte 0 of {ns}: {e}", locker.role))
    });
    let naming = vec!["table lock".to_owned(), format!("process {}", locks[1].pid)];
    let mut rows: Vec<Row<'a>> = Vec::new();
    for (who, ns, says) in [(&w.alice, na, &naming[..1]), (&w.root, nr, &naming)] {
        let table: [(&[&str], i32, Duration, &[String]); 5] = [
            (&take_once(existing, "500"), 0, DEADLINE_BOUND, &[]),
            (&take_once("new", "500"), TIMED_OUT, DEADLINE_BOUND, says),
            (&["create", "new2"], TIMED_OUT, PATIENCE_BOUND, says),
            (&["ls", "--json"], 0, PATIENCE_BOUND, &[]),
            (&["show", existing, "--json"], 0, PATIENCE_BOUND, &[]),
        ];
        for (args, code, bound, says) in table {
            rows.push((who, w.global(who, ns, args), code, bound, says.to_vec()));
        }
    }
    (locks, rows)
}

/// Once the table locks are let go, alice in `na` and root in `nr` create a new semaphore at once.
fn both_create_at_once(w: &World, na: &str, nr: &str) {
    for (who, ns) in [(&w.alice, na), (&w.root, nr)] {
        w.run_in(who, ns, &["create", "new2"])
            .ok()
            .within(QUICK_BOUND);
    }
}

/// Items 1 and 3. Bob holds the table lock (byte 0) of two namespaces: his own (mode 0666, so
/// alice may use it too) and a root service's that root made world-usable (`--mode 0666`).
/// Nothing hangs: `ps` of alice and of root (which opens every namespace it may) answers in time
/// and lists what each holds elsewhere; `ls` and `show` answer; a `--timeout 500` command returns
/// within 1.5 s (at once if it needs no table lock, else with exit 75); a command without a
/// deadline (`create` of a new semaphore) exits 75 after the bounded patience, root's naming
/// bob's process. Root never uses bob's file at all (exit 77 at once).
#[test]
fn bobs_table_lock_never_holds_alices_or_roots_commands_past_their_bound() {
    let w = World::new(Company::Shared);
    let (a, b, r) = (&w.alice, &w.bob, &w.root);
    let nb = w.ns("bob");
    let nr = w.ns("svc");
    w.run_in(b, &nb, &["create", "x"]).ok();
    w.run_in(r, &nr, &["create", "x", "--mode", "0666"]).ok();
    let (locks, mut rows) = table_locks_held_by(&w, b, &nb, &nr, "x");
    for who in [a, r] {
        let ps1 = w.shmsem(who, &["ps", "1", "--json"]);
        rows.push((who, ps1, 0, PATIENCE_BOUND, vec![]));
    }
    let in_bobs = w.global(r, &nb, &take_once("x", "500"));
    rows.push((r, in_bobs, NO_PERMISSION, QUICK_BOUND, vec![]));
    alice_and_root_ps_list_their_own(&w, rows);

    drop(locks);
    both_create_at_once(&w, &nb, &nr);
}

/// Item 1 (the hang), from inside the group: bob cannot open alice's 0660 namespace at all, but
/// carol (ops) can, and holds its table lock, and that of a root service shared with group ops
/// (`--group ops --mode 0660`). Alice's and root's commands return in time, never hang: those
/// that need no table lock succeed, `--timeout 500` ones needing it exit 75 within 1.5 s, others
/// exit 75 after the bounded patience with a message saying which lock; root's name carol's
/// process. Once carol lets go, the namespaces work as before.
#[test]
fn a_group_member_holding_the_table_lock_makes_alices_commands_fail_in_time() {
    let w = World::new(Company::Shared);
    let (a, c, r) = (&w.alice, &w.carol, &w.root);
    let ns = w.ns("ops");
    create_ops(&w, &ns, "m");
    let nr = w.ns("svc");
    create_for_ops(&w, r, &nr, "m", &[]);
    let sleeper = w.sleeper(a).to_string();
    for seg in [w.seg(&ns), w.seg(&nr)] {
        assert_eq!(
            w.lock_bytes(&w.bob, &seg, 0, 1, false).map(drop),
            Err(format!("open-failed {}", libc::EACCES)),
            "bob must not be able to open the 0660 namespace {}",
            seg.display()
        );
    }
    let (locks, mut rows) = table_locks_held_by(&w, c, &ns, &nr, "m");
    let acquire = ["acquire", "m", "--holder", &sleeper, "--timeout", "500"];
    let acquiring = w.global(a, &ns, &acquire);
    let ps = w.shmsem(a, &["ps", &sleeper, "--json"]);
    rows.push((
        a,
        acquiring,
        TIMED_OUT,
        DEADLINE_BOUND,
        vec!["table lock".into()],
    ));
    rows.push((a, ps, 0, PATIENCE_BOUND, vec![]));
    together(rows).1.done();

    drop(locks);
    both_create_at_once(&w, &ns, &nr);
    w.run_in(a, &ns, &acquire).ok();
    w.run_in(a, &ns, &["release", "m", "--holder", &sleeper])
        .ok();
}

// =====================================================================================
// Item 3: nobody can deny everyone's ps
// =====================================================================================

/// `ps` of alice and of root, each for a process of its own holding a semaphore, started at once
/// and together with the commands of `alongside`: both must answer in time and list that
/// holding, and each of the others do what its row says.
fn alice_and_root_ps_list_their_own(w: &World, alongside: Vec<Row<'_>>) {
    let (a, r) = (&w.alice, &w.root);
    let (na, nr) = (w.ns("alice"), w.ns("root"));
    let alices = w.hold(a, &na, "mine").to_string();
    let roots = w.hold(r, &nr, "mine").to_string();
    let mut rows: Vec<Row<'_>> = [(a, &alices), (r, &roots)]
        .map(|(who, pid)| {
            let ps = w.shmsem(who, &["ps", pid, "--json"]);
            (who, ps, 0, PATIENCE_BOUND, vec![])
        })
        .into();
    rows.extend(alongside);
    let (outs, mut checks) = together(rows);
    for (ps, ns) in outs.iter().zip([&na, &nr]) {
        checks.lists_held(ps, ns, "mine");
    }
    checks.done();
}

/// Item 3, "any user hangs everyone's `ps`", with the other lock bytes: bob makes a global
/// namespace anyone may open (0666) and locks every process-slot byte of it, so that no other
/// process can register there. `ps` of alice and of root, which open every namespace they may,
/// must still answer in time and list what each holds in a namespace of its own.
#[test]
fn another_users_locked_full_namespace_does_not_break_alices_or_roots_ps() {
    let w = World::new(Company::Alone);
    let b = &w.bob;
    let nf = w.ns("full");
    w.run_in(b, &nf, &["create", "x"]).ok();
    let _full = w
        .lock_bytes(b, &w.seg(&nf), 1, MAX_PROCESSES as u64, false)
        .expect("bob locks every slot byte of his namespace");
    alice_and_root_ps_list_their_own(&w, Vec::new());
}

/// Item 3, "any user hangs everyone's `ps`", with files: `/dev/shm` is writable by all, so bob
/// can plant files named like global namespaces that are no segments: garbage that anyone may
/// open, and an empty file only he (and root) may open. `ps` of alice and of root must still
/// answer and list what each holds in a namespace of its own.
#[test]
fn garbage_files_named_like_namespaces_do_not_break_alices_or_roots_ps() {
    let w = World::new(Company::Alone);
    let junk = w.seg(&w.ns("junk"));
    let empty = w.seg(&w.ns("empty"));
    w.sh(
        &w.bob,
        &format!(
            "echo garbage > {j} && chmod 666 {j} && : > {e} && chmod 600 {e}",
            j = junk.display(),
            e = empty.display()
        ),
    )
    .ok();
    alice_and_root_ps_list_their_own(&w, Vec::new());
}
