//! Items 1 and 3: a lock file bob owns, a namespace named like one, and table locks held by
//! another user: none of them holds alice's or root's commands past their bound, nor denies
//! anyone's `ps`.

use std::{fs, os::unix::fs::MetadataExt, time::Instant};

use shmsem::internals::layout::MAX_PROCESSES;

use crate::{
    DEADLINE_BOUND, NO_PERMISSION, PATIENCE_BOUND, QUICK_BOUND, TIMED_OUT,
    commands::{Checks, Out, Pending, create_ops, run, shown, start},
    users::{Company, World},
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

    create_ops(&w, &ns, "builds");
    let meta = fs::symlink_metadata(&seg).expect("alice's segment exists");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (w.alice.uid, w.ops.gid, 0o660),
        "alice's segment must be hers, group ops, mode 0660"
    );
    let listed = run(&w.alice, w.global(&w.alice, &ns, &["ls", "--json"]));
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
    let a = &w.alice;
    for args in [
        &["run", "builds", "--timeout", "500", "--", "true"][..],
        &["run", "fresh", "--timeout", "500", "--", "true"],
    ] {
        run(a, w.global(a, &ns, args)).ok().within(DEADLINE_BOUND);
    }
    for args in [&["ls"][..], &["show", "builds"], &["create", "fresh2"]] {
        run(a, w.global(a, &ns, args)).ok().within(QUICK_BOUND);
    }

    // Bob cannot open alice's segment to lock any byte of it, nor remove or replace it.
    assert_eq!(
        w.lock_bytes(&w.bob, &seg, 0, 1, false).map(drop),
        Err(format!("open-failed {}", libc::EACCES)),
        "bob must not be able to open alice's 0660 segment"
    );
    let s = seg.display();
    let bob_rm = w.sh(&w.bob, &format!("rm -f {s}"));
    assert_ne!(
        bob_rm.code,
        Some(0),
        "bob removed alice's segment: {bob_rm}"
    );
    let bob_mv = w.sh(&w.bob, &format!("mv -f {p} {s}"));
    assert_ne!(
        bob_mv.code,
        Some(0),
        "bob replaced alice's segment: {bob_mv}"
    );
    assert_eq!(
        fs::symlink_metadata(&seg).map(|m| m.ino()).ok(),
        Some(meta.ino()),
        "alice's segment must still be the file she created"
    );

    // One permit, one holder: carol (ops) is refused while alice holds, bob cannot even look.
    let holder = w.hold(a, &ns, "builds");
    let c = &w.carol;
    run(
        c,
        w.global(c, &ns, &["run", "builds", "--timeout", "0", "--", "true"]),
    )
    .status(TIMED_OUT);
    let b = &w.bob;
    run(
        b,
        w.global(b, &ns, &["run", "builds", "--timeout", "0", "--", "true"]),
    )
    .status(NO_PERMISSION);
    assert_eq!(shown(&w, a, &ns, "builds"), (1, vec![holder], vec![]));
    drop(bobs_lock);

    // Bob's namespace `NS2.lock` and alice's `NS2` are two namespaces, two files.
    let ns2 = w.ns("ci2");
    let bobs_ns = format!("{ns2}.lock");
    run(b, w.global(b, &bobs_ns, &["create", "x"])).ok();
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
    run(
        a,
        w.global(a, &ns2, &["run", "new", "--timeout", "500", "--", "true"]),
    )
    .ok()
    .within(DEADLINE_BOUND);
}

// =====================================================================================
// Items 1 and 3: held table locks bound everyone's commands
// =====================================================================================

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
    run(b, w.global(b, &nb, &["create", "x"])).ok();
    run(r, w.global(r, &nr, &["create", "x", "--mode", "0666"])).ok();
    let on_bobs = w
        .lock_bytes(b, &w.seg(&nb), 0, 1, false)
        .expect("bob locks byte 0 of his namespace");
    let on_roots = w
        .lock_bytes(b, &w.seg(&nr), 0, 1, false)
        .expect("bob locks byte 0 of root's world-usable namespace");
    let na = w.ns("alice");
    let alices = w.hold(a, &na, "mine").to_string();
    let nroot = w.ns("root");
    let roots = w.hold(r, &nroot, "mine").to_string();

    let timed = |name: &'static str| ["run", name, "--timeout", "500", "--", "true"];
    let started: Vec<Pending> = vec![
        start(a, w.shmsem(a, &["ps", &alices, "--json"])),
        start(r, w.shmsem(r, &["ps", &roots, "--json"])),
        start(a, w.shmsem(a, &["ps", "1", "--json"])),
        start(r, w.shmsem(r, &["ps", "1", "--json"])),
        start(a, w.global(a, &nb, &["ls", "--json"])),
        start(a, w.global(a, &nb, &["show", "x", "--json"])),
        start(r, w.global(r, &nr, &["ls", "--json"])),
        start(r, w.global(r, &nr, &["show", "x", "--json"])),
        start(a, w.global(a, &nb, &["create", "y"])),
        start(r, w.global(r, &nr, &["create", "y"])),
        start(a, w.global(a, &nb, &timed("x"))),
        start(r, w.global(r, &nr, &timed("x"))),
        start(a, w.global(a, &nb, &timed("new"))),
        start(r, w.global(r, &nr, &timed("new"))),
        start(r, w.global(r, &nb, &timed("x"))),
    ];
    let outs: Vec<Out> = started.into_iter().map(Pending::finish).collect();
    let [
        alice_ps,
        root_ps,
        alice_ps1,
        root_ps1,
        alice_ls,
        alice_show,
        root_ls,
        root_show,
        alice_create,
        root_create,
        alice_run,
        root_run,
        alice_new,
        root_new,
        root_in_bobs,
    ] = &outs[..]
    else {
        unreachable!()
    };
    let mut checks = Checks::default();
    let bobs_pid = format!("process {}", on_roots.pid);
    checks.expect(alice_ps, 0, PATIENCE_BOUND, &[]);
    checks.lists_held(alice_ps, &na, "mine");
    checks.expect(root_ps, 0, PATIENCE_BOUND, &[]);
    checks.lists_held(root_ps, &nroot, "mine");
    for out in [
        alice_ps1, root_ps1, alice_ls, alice_show, root_ls, root_show,
    ] {
        checks.expect(out, 0, PATIENCE_BOUND, &[]);
    }
    checks.expect(alice_create, TIMED_OUT, PATIENCE_BOUND, &["table lock"]);
    checks.expect(
        root_create,
        TIMED_OUT,
        PATIENCE_BOUND,
        &["table lock", &bobs_pid],
    );
    for existing in [alice_run, root_run] {
        checks.expect(existing, 0, DEADLINE_BOUND, &[]);
    }
    checks.expect(alice_new, TIMED_OUT, DEADLINE_BOUND, &["table lock"]);
    checks.expect(
        root_new,
        TIMED_OUT,
        DEADLINE_BOUND,
        &["table lock", &bobs_pid],
    );
    checks.expect(root_in_bobs, NO_PERMISSION, QUICK_BOUND, &[]);
    checks.done();

    drop((on_bobs, on_roots));
    run(a, w.global(a, &nb, &["create", "y"]))
        .ok()
        .within(QUICK_BOUND);
    run(r, w.global(r, &nr, &["create", "y"]))
        .ok()
        .within(QUICK_BOUND);
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
    let ops = w.ops.arg();
    let ns = w.ns("ops");
    let nr = w.ns("svc");
    create_ops(&w, &ns, "m");
    run(
        r,
        w.global(
            r,
            &nr,
            &[
                "create",
                "m",
                "--persistent",
                "--group",
                &ops,
                "--mode",
                "0660",
            ],
        ),
    )
    .ok();
    let sleeper = w.sleeper(a).to_string();
    for seg in [w.seg(&ns), w.seg(&nr)] {
        assert_eq!(
            w.lock_bytes(&w.bob, &seg, 0, 1, false).map(drop),
            Err(format!("open-failed {}", libc::EACCES)),
            "bob must not be able to open the 0660 namespace {}",
            seg.display()
        );
    }
    let carols = w
        .lock_bytes(c, &w.seg(&ns), 0, 1, false)
        .expect("carol (ops) locks byte 0 of alice's namespace");
    let carols_on_roots = w
        .lock_bytes(c, &w.seg(&nr), 0, 1, false)
        .expect("carol (ops) locks byte 0 of root's namespace");

    let timed = |name: &'static str| ["run", name, "--timeout", "500", "--", "true"];
    let started: Vec<Pending> = vec![
        start(a, w.global(a, &ns, &timed("m"))),
        start(a, w.global(a, &ns, &timed("new"))),
        start(
            a,
            w.global(
                a,
                &ns,
                &["acquire", "m", "--holder", &sleeper, "--timeout", "500"],
            ),
        ),
        start(a, w.global(a, &ns, &["create", "new2"])),
        start(a, w.global(a, &ns, &["ls", "--json"])),
        start(a, w.global(a, &ns, &["show", "m", "--json"])),
        start(a, w.shmsem(a, &["ps", &sleeper, "--json"])),
        start(r, w.global(r, &nr, &timed("m"))),
        start(r, w.global(r, &nr, &timed("new"))),
        start(r, w.global(r, &nr, &["create", "new2"])),
        start(r, w.global(r, &nr, &["ls", "--json"])),
    ];
    let outs: Vec<Out> = started.into_iter().map(Pending::finish).collect();
    let [
        run_m,
        run_new,
        acquire,
        create,
        ls,
        show,
        ps,
        root_m,
        root_new,
        root_create,
        root_ls,
    ] = &outs[..]
    else {
        unreachable!()
    };
    let mut checks = Checks::default();
    let carols_pid = format!("process {}", carols_on_roots.pid);
    for out in [run_m, root_m] {
        checks.expect(out, 0, DEADLINE_BOUND, &[]);
    }
    for out in [run_new, acquire] {
        checks.expect(out, TIMED_OUT, DEADLINE_BOUND, &["table lock"]);
    }
    checks.expect(
        root_new,
        TIMED_OUT,
        DEADLINE_BOUND,
        &["table lock", &carols_pid],
    );
    checks.expect(create, TIMED_OUT, PATIENCE_BOUND, &["table lock"]);
    checks.expect(
        root_create,
        TIMED_OUT,
        PATIENCE_BOUND,
        &["table lock", &carols_pid],
    );
    for out in [ls, show, ps, root_ls] {
        checks.expect(out, 0, PATIENCE_BOUND, &[]);
    }
    checks.done();

    drop((carols, carols_on_roots));
    run(a, w.global(a, &ns, &["create", "new2"]))
        .ok()
        .within(QUICK_BOUND);
    run(r, w.global(r, &nr, &["create", "new2"]))
        .ok()
        .within(QUICK_BOUND);
    run(
        a,
        w.global(
            a,
            &ns,
            &["acquire", "m", "--holder", &sleeper, "--timeout", "500"],
        ),
    )
    .ok();
    run(a, w.global(a, &ns, &["release", "m", "--holder", &sleeper])).ok();
}

// =====================================================================================
// Item 3: nobody can deny everyone's ps
// =====================================================================================

/// `ps` of alice and of root, each for a process of its own holding a semaphore, started at
/// once: both must answer in time and list that holding.
fn both_ps_list_their_own(w: &World) {
    let (a, r) = (&w.alice, &w.root);
    let (na, nr) = (w.ns("alice"), w.ns("root"));
    let alices = w.hold(a, &na, "mine").to_string();
    let roots = w.hold(r, &nr, "mine").to_string();
    let outs: Vec<Out> = [(a, &alices), (r, &roots)]
        .map(|(who, pid)| start(who, w.shmsem(who, &["ps", pid, "--json"])))
        .into_iter()
        .map(Pending::finish)
        .collect();
    let mut checks = Checks::default();
    for (ps, ns) in outs.iter().zip([&na, &nr]) {
        checks.expect(ps, 0, PATIENCE_BOUND, &[]);
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
    run(b, w.global(b, &nf, &["create", "x"])).ok();
    let _full = w
        .lock_bytes(b, &w.seg(&nf), 1, MAX_PROCESSES as u64, false)
        .expect("bob locks every slot byte of his namespace");
    both_ps_list_their_own(&w);
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
    both_ps_list_their_own(&w);
}
