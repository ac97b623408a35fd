//! Issue 19, "Other users": a global namespace must be safe from those outside its group, and a
//! root service safe from everyone (README, *Scopes and files*; DESIGN §9).
//!
//! Every test runs as root (CI runs as root; run elsewhere, each test fails saying so, it never
//! skips) and makes three unprivileged users and a group of its own: alice and carol in group
//! `ops`, bob outside it. It runs the built `shmsem` binary as them, and as root, in the `global`
//! scope (`/dev/shm/shmsem.global.NS`: no `SHMSEM_DIR`, which would put every user's `local`
//! files in one flat directory) and in the users' `local` scope (`/dev/shm/shmsem.user.UID`),
//! and replays the items, asserting the fixed behaviour:
//!
//! | item | what bob (or carol) did | tests |
//! |---|---|---|
//! | 1 | owned and locked alice's lock file; a namespace named like it | [`locks::bobs_planted_lock_file_and_his_namespace_named_like_it_give_him_no_hold_on_alices`] |
//! | 1, 3 | held a table lock: alice's and root's commands hung | [`locks::bobs_table_lock_never_holds_alices_or_roots_commands_past_their_bound`], [`locks::a_group_member_holding_the_table_lock_makes_alices_commands_fail_in_time`] |
//! | 3 | any user denied everyone's `ps` | [`locks::another_users_locked_full_namespace_does_not_break_alices_or_roots_ps`], [`locks::garbage_files_named_like_namespaces_do_not_break_alices_or_roots_ps`] |
//! | 2 | root adopted bob's unlinked segment | [`files::root_never_adopts_a_segment_another_user_unlinked_and_holds`] |
//! | 4 | removing the lock file gave one permit to two users | [`files::removing_the_old_lock_path_admits_no_second_holder`], [`files::deleting_an_in_use_segment_is_a_forced_removal_only_its_owner_or_root_can_make`] |
//! | 5 | `--holder` for anyone's process; slots left by failed acts | [`holders::acting_for_another_users_process_is_refused`], [`holders::failed_and_finished_acts_for_a_holder_leave_the_process_table_as_it_was`] |
//! | 6 | bob squatted alice's per-user directory | [`user_dir::squatting_alices_per_user_directory_never_denies_her_local_scope`], [`user_dir::squatting_her_fallback_names_too_never_makes_alice_use_bobs_directory`] |
//! | 7 | a group member planted a hard link | [`files::a_hard_link_planted_by_a_group_member_leaves_the_namespace_working`] |
//! | 8 | namespace names ending in `.lock` | [`files::namespaces_named_like_lock_files_are_separate_and_visible_to_ps`] |
//!
//! Deleting a segment in use is accepted, and documented (DESIGN §9 item 4), as a forced removal
//! (`shmsem rm --force`): the engine cannot see other users' descriptors. What item 4 asserts is
//! who can do it: only the file's owner or root (`/dev/shm` is sticky).
//!
//! Root uses only files root owns (DESIGN §9), so root's commands are attacked in root's own
//! namespaces, made usable by everyone (`--mode 0666`) or by group ops (`--group ops --mode
//! 0660`) for the purpose; in another user's namespace root is refused at once (exit 77).
//!
//! Accounts come from `groupadd`/`useradd`/`userdel`/`groupdel` (Debian's `passwd` package, of
//! priority `required`); where `useradd` is missing, numeric ids that no account uses stand in
//! (the kernel needs no account to run a process as a uid; `SHX_NUMERIC_IDS=1` chooses that path
//! where `useradd` exists). A [`World`] guard owns everything a test makes: when the test ends,
//! passed or failed, it kills every process of its users, removes every file in `/dev/shm` whose
//! name carries the test's tag, the users' per-user directories, the users and the group.
//!
//! Hostile locks are held by this test binary re-executed as the user in the role `lock` (an OFD
//! write lock on a byte range of a file the user can open, held until the test lets go).
//!
//! Tests run in parallel, and `ps` opens every global namespace on the machine: the tests that
//! plant files or locks that could break *another* test's `ps` run alone ([`HOSTILE`]); so does
//! every test where `/dev/shm` is smaller than 256 MiB (a container's default 64 MiB holds one
//! test's segments, not several).
//!
//! Modules: [`users`], the users, the group and the [`World`] guard that removes them;
//! [`commands`], running commands as someone and reading what they did; [`hostile`], the
//! lock-holding role; and the tests by item: [`locks`] (1 and 3), [`files`] (2, 4, 7 and 8),
//! [`holders`] (5), [`user_dir`] (6).
//!
//! [`World`]: users::World
//! [`HOSTILE`]: users::HOSTILE

mod commands;
#[path = "../common/mod.rs"]
mod common;
mod files;
mod holders;
mod hostile;
mod locks;
mod user_dir;
mod users;

use std::time::Duration;

use hostile::role_lock;

/// The `shmsem` binary of this build.
pub const SHMSEM: &str = env!("CARGO_BIN_EXE_shmsem");
/// Where the `global` scope's files and the per-user directories live.
pub const SHM: &str = "/dev/shm";
/// A command given `--timeout 500` returns within this, whatever other users hold.
pub const DEADLINE_BOUND: Duration = Duration::from_millis(1500);
/// A command that needs no lock another user could hold returns within this.
pub const QUICK_BOUND: Duration = Duration::from_millis(1500);
/// A command without a deadline of its own: the engine's lock patience (5 s) and slack.
pub const PATIENCE_BOUND: Duration = Duration::from_secs(8);
/// Any command still running after this is killed and reported as hung.
pub const HANG_LIMIT: Duration = Duration::from_secs(30);
/// Exit statuses of the CLI.
pub const TIMED_OUT: i32 = 75;
pub const NO_PERMISSION: i32 = 77;

// =====================================================================================
// The child side: this binary re-executed as another user
// =====================================================================================

crate::child_roles! {
    "lock" => role_lock(),
}
