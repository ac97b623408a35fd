//! Item 6, the per-user directory: bob squatting alice's directory names, in every form, never
//! denies her `local` and `self` scopes nor makes her use a directory of his.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    QUICK_BOUND, SHM, TIMED_OUT,
    commands::{holder_started_by, poll, ps_lists_held, run, take_once, tree_id},
    users::{Company, World},
};

// =====================================================================================
// Item 6: the per-user directory
// =====================================================================================

/// The directory of the `local` segment of namespace `ns` that process `pid` has open.
fn local_dir_of(pid: u32, ns: &str) -> Option<PathBuf> {
    let suffix = format!("/local.{ns}");
    fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .find(|t| t.to_string_lossy().ends_with(&suffix))
        .and_then(|t| t.parent().map(Path::to_path_buf))
}

/// Alice's local scope works, and is hers alone, while bob squats: `local` and `self` work,
/// two of her processes meet in one directory (a second holder is refused), `ps` sees it, and
/// the directory she uses is a real 0700 directory of hers under no directory of bob's.
fn alice_has_her_local_scope(w: &World, squats: &[PathBuf]) {
    let a = &w.alice;
    let ns = w.ns("loc");
    let local = |args: &[&str]| run(a, w.scoped(a, "local", &ns, args));
    local(&["create", "m", "--capacity", "1"])
        .ok()
        .within(QUICK_BOUND);
    let in_local = w.scoped(a, "local", &ns, &["run", "m", "--", "sleep", "120"]);
    let run_pid = w.background(in_local, "alice's local holder");
    let holder = poll(Duration::from_secs(10), Duration::from_millis(20), || {
        let out = local(&["show", "m", "--json"]);
        out.ok();
        holder_started_by(&out, run_pid).ok_or_else(|| format!("alice's local holder: {out}"))
    });
    local(&take_once("m", "0")).status(TIMED_OUT);
    ps_lists_held(w, a, holder, &ns, "m");

    let dir = local_dir_of(holder, &ns).expect("alice's holder has her local segment open");
    let meta = fs::symlink_metadata(&dir).expect("alice's directory");
    assert!(
        meta.is_dir() && meta.uid() == a.uid && meta.mode() & 0o777 == 0o700,
        "alice's local directory {} must be a 0700 directory of hers: uid {} mode {:o}",
        dir.display(),
        meta.uid(),
        meta.mode()
    );
    for above in dir.ancestors() {
        let m = fs::symlink_metadata(above).expect("an ancestor");
        assert!(
            m.uid() != w.bob.uid && !m.file_type().is_symlink(),
            "alice's local directory {} lies under {}, bob's or a link",
            dir.display(),
            above.display()
        );
    }
    for squat in squats {
        assert_ne!(&dir, squat, "alice uses bob's squat");
        if fs::symlink_metadata(squat).is_ok_and(|m| m.is_dir()) {
            assert_eq!(
                fs::read_dir(squat).map(|d| d.count()).ok(),
                Some(0),
                "alice wrote into bob's {}",
                squat.display()
            );
        }
    }

    // `self`: a tree rooted at one of alice's processes.
    let root = w.sleeper(a);
    let mut c = w.scoped(a, "self", &ns, &["create", "t"]);
    c.env(shmsem::SELF_ENV, tree_id(root));
    run(a, c).ok().within(QUICK_BOUND);
}

/// Item 6 as the issue found it: bob's `mkdir -m 0700 /dev/shm/shmsem.user.ALICE` before alice's
/// first use. It never denies alice her `local` and `self` scopes (nor `ps`), and never makes
/// her use a directory bob owns.
#[test]
fn squatting_alices_per_user_directory_never_denies_her_local_scope() {
    let w = World::new(Company::Shared);
    let primary = Path::new(SHM).join(format!("shmsem.user.{}", w.alice.uid));
    assert!(!primary.exists());
    w.sh(&w.bob, &format!("mkdir -m 0700 {}", primary.display()))
        .ok();
    alice_has_her_local_scope(&w, &[primary]);
}

/// Item 6, a bolder bob: besides the first choice he takes the next names too, in every form: a
/// world-writable directory of his, a symbolic link to his directory, a plain file, another 0700
/// directory. Alice still gets her scopes, in a directory of her own.
#[test]
fn squatting_her_fallback_names_too_never_makes_alice_use_bobs_directory() {
    let w = World::new(Company::Shared);
    let primary = Path::new(SHM).join(format!("shmsem.user.{}", w.alice.uid));
    let next = |n: u32| PathBuf::from(format!("{}.{n}", primary.display()));
    let p = primary.display();
    let script = format!(
        "mkdir -m 0700 {p} && mkdir -m 0777 {n0} && chmod 0777 {n0} && ln -s {p} {n1} && \
         : > {n2} && mkdir -m 0700 {n3}",
        n0 = next(1).display(),
        n1 = next(2).display(),
        n2 = next(3).display(),
        n3 = next(4).display(),
    );
    w.sh(&w.bob, &script).ok();
    alice_has_her_local_scope(&w, &[primary.clone(), next(1), next(2), next(3), next(4)]);
}
