//! One suite for both implementations of [`Liveness`]: [`Os`] with real child processes (`sleep`,
//! SIGKILLed and reaped, or left a zombie), and [`Declared`] with a table of made-up ones.

use std::{
    fs::File,
    os::{
        fd::{AsFd, AsRawFd},
        unix::process::CommandExt,
    },
    process::{Child, Command, Stdio},
    sync::{Mutex, MutexGuard, PoisonError},
};

use super::{Declared, Liveness, Os, Probe};
use crate::{
    holders::{
        ENGINE, EXTERNAL, lock_offset, lock_slot, locked_here, testing::Fixture, unlock_slot,
    },
    sys::{self, Identity},
};

/// Processes of one test, and the liveness that judges them.
trait World {
    /// The implementation under test.
    fn liveness(&self) -> &dyn Liveness;
    /// Start a process; it runs until [`World::kill`].
    fn start(&mut self) -> Identity;
    /// Start a process that holds the lock byte of `slot` of `fx` for as long as it lives, as an
    /// engine process holds its own slot's.
    fn start_engine(&mut self, fx: &Fixture, slot: u32) -> Identity;
    /// SIGKILL `who`; with `reap`, wait for it too, else leave it a zombie.
    fn kill(&mut self, who: Identity, reap: bool);
}

/// The kernel's processes: children running `sleep`.
#[derive(Default)]
struct Real {
    children: Vec<Child>,
}

/// Held while a test of this binary starts a child. A child forked by one test thread holds a
/// copy of every descriptor of the process until it execs, the lock-holding descriptions of other
/// tests' engine processes included, so a killed engine process's byte could stay locked for as
/// long as someone else's child takes to exec. `Command::spawn` returns once its child has
/// exec'd (and so closed those copies), so starting children one at a time, and opening a
/// lock-holding description only under this lock, leaves each description with its own child
/// alone.
static FORKS: Mutex<()> = Mutex::new(());

fn forks() -> MutexGuard<'static, ()> {
    FORKS.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Real {
    /// Start `cmd`; the caller holds [`forks`].
    fn spawn(&mut self, mut cmd: Command) -> Identity {
        let child = cmd
            .arg("600")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawning sleep");
        let pid = child.id();
        self.children.push(child);
        sys::identity(pid)
            .expect("reading /proc")
            .expect("the child runs")
    }
}

impl World for Real {
    fn liveness(&self) -> &dyn Liveness {
        &Os
    }

    fn start(&mut self) -> Identity {
        let _forks = forks();
        self.spawn(Command::new("sleep"))
    }

    fn start_engine(&mut self, fx: &Fixture, slot: u32) -> Identity {
        let _forks = forks();
        // A description of its own, locked here and inherited by the child alone: the lock then
        // lives exactly as long as the child, whose death closes the last descriptor of it.
        let own: File = sys::reopen(fx.seg.file().as_fd()).expect("reopening the segment");
        assert!(
            sys::try_lock_byte(own.as_fd(), lock_offset(slot)).expect("locking"),
            "slot {slot}'s byte is free before its process starts"
        );
        let raw = own.as_raw_fd();
        let mut cmd = Command::new("sleep");
        // SAFETY: the closure runs in the child between fork and exec and only calls fcntl on a
        // descriptor number, which is async-signal-safe and allocates nothing.
        unsafe {
            cmd.pre_exec(move || sys::keep_across_exec(raw));
        }
        let who = self.spawn(cmd);
        drop(own);
        who
    }

    fn kill(&mut self, who: Identity, reap: bool) {
        let at = self
            .children
            .iter()
            .position(|c| c.id() == who.pid)
            .expect("a child of this test");
        let mut child = self.children.swap_remove(at);
        child.kill().expect("SIGKILL");
        if reap {
            child.wait().expect("reaping");
            return;
        }
        // Wait for the exit without reaping: the child stays a zombie, its descriptors closed.
        // SAFETY: `siginfo_t` is a plain C struct for which all-zero bytes are a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, exclusively borrowed `siginfo_t` for the call.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                who.pid,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        assert_eq!(r, 0, "waitid: {}", std::io::Error::last_os_error());
        self.children.push(child); // reaped when the world is dropped
    }
}

impl Drop for Real {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Made-up processes in a [`Declared`] table.
#[derive(Default)]
struct Table {
    declared: Declared,
    started: u32,
}

impl World for Table {
    fn liveness(&self) -> &dyn Liveness {
        &self.declared
    }

    fn start(&mut self) -> Identity {
        self.started += 1;
        let who = Identity {
            pid: 4_000_000 + self.started,
            start_time: 1_000 + u64::from(self.started),
        };
        self.declared.born(who);
        who
    }

    fn start_engine(&mut self, _: &Fixture, _: u32) -> Identity {
        self.start()
    }

    fn kill(&mut self, who: Identity, _reap: bool) {
        self.declared.died(who);
    }
}

/// Probe `slot` and check whether the probe left its byte held by this process, as it must for
/// every answer but `Operated`.
fn probe(world: &dyn World, fx: &Fixture, slot: u32) -> Probe {
    let ctx = fx.ctx();
    let answer = world.liveness().probe(ctx, slot).expect("probing");
    assert_eq!(
        locked_here(ctx, slot),
        answer != Probe::Operated,
        "after {answer:?}, whether the prober holds slot {slot}'s byte"
    );
    if answer != Probe::Operated {
        unlock_slot(ctx, slot);
    }
    answer
}

/// A fresh segment whose slot `slot` records, as `kind`, a process the world has just started
/// (an engine process registered there for [`ENGINE`]).
fn recorded(world: &mut dyn World, slot: u32, kind: u32) -> (Fixture, Identity) {
    let fx = Fixture::new();
    let who = if kind == ENGINE {
        world.start_engine(&fx, slot)
    } else {
        world.start()
    };
    fx.record_slot(slot, kind, who);
    (fx, who)
}

fn a_live_engine_process_is_operated_and_may_recount(world: &mut dyn World) {
    let (fx, _) = recorded(world, 3, ENGINE);
    assert_eq!(probe(world, &fx, 3), Probe::Operated);
    assert!(world.liveness().may_live(fx.ctx(), 3));
}

fn a_killed_engine_process_is_dead_and_its_recount_may_be_taken_over(world: &mut dyn World) {
    let (fx, who) = recorded(world, 3, ENGINE);
    world.kill(who, true);
    assert!(!world.liveness().may_live(fx.ctx(), 3));
    assert_eq!(probe(world, &fx, 3), Probe::Dead);
}

/// The process recorded in `slot` as `kind` dies (and is `reaped` or not): the slot probes dead.
fn probes_dead_once_killed(world: &mut dyn World, slot: u32, kind: u32, reaped: bool) {
    let (fx, who) = recorded(world, slot, kind);
    world.kill(who, reaped);
    assert_eq!(probe(world, &fx, slot), Probe::Dead);
}

fn an_engine_process_that_exited_unreaped_is_dead(world: &mut dyn World) {
    probes_dead_once_killed(world, 5, ENGINE, false);
}

fn a_live_external_holder_nobody_acts_for_is_quiescent(world: &mut dyn World) {
    let (fx, _) = recorded(world, 7, EXTERNAL);
    assert_eq!(probe(world, &fx, 7), Probe::Quiescent);
    assert!(
        !world.liveness().may_live(fx.ctx(), 7),
        "an external holder runs no recount"
    );
}

fn a_killed_and_reaped_external_holder_is_dead(world: &mut dyn World) {
    probes_dead_once_killed(world, 7, EXTERNAL, true);
}

fn an_external_holder_that_exited_unreaped_is_dead(world: &mut dyn World) {
    probes_dead_once_killed(world, 7, EXTERNAL, false);
}

/// What a slot sees when the pid it recorded was reused by a later process.
fn a_recorded_pid_now_naming_a_process_started_at_another_time_is_dead(world: &mut dyn World) {
    let fx = Fixture::new();
    let now = world.start();
    for start_time in [now.start_time - 1, now.start_time + 1] {
        let recorded = Identity {
            pid: now.pid,
            start_time,
        };
        fx.record_slot(7, EXTERNAL, recorded);
        assert_eq!(probe(world, &fx, 7), Probe::Dead, "recorded {recorded:?}");
    }
    fx.record_slot(7, EXTERNAL, now);
    assert_eq!(probe(world, &fx, 7), Probe::Quiescent);
}

fn a_slot_someone_acts_for_is_operated_even_when_its_holder_is_dead(world: &mut dyn World) {
    let (fx, who) = recorded(world, 9, EXTERNAL);
    world.kill(who, true);
    // Another process's description (a CLI acting for the holder) holds the byte.
    let acting = sys::reopen(fx.seg.file().as_fd()).expect("reopening the segment");
    assert!(sys::try_lock_byte(acting.as_fd(), lock_offset(9)).expect("locking"));
    assert_eq!(probe(world, &fx, 9), Probe::Operated);
    assert!(world.liveness().may_live(fx.ctx(), 9));
    drop(acting);
    assert_eq!(probe(world, &fx, 9), Probe::Dead);
}

fn a_slot_another_thread_of_this_process_holds_is_operated(world: &mut dyn World) {
    let (fx, who) = recorded(world, 9, EXTERNAL);
    world.kill(who, true);
    assert!(lock_slot(fx.ctx(), 9).expect("locking"));
    let answer = world.liveness().probe(fx.ctx(), 9).expect("probing");
    assert!(world.liveness().may_live(fx.ctx(), 9));
    unlock_slot(fx.ctx(), 9);
    assert_eq!(answer, Probe::Operated);
}

fn a_free_slot_is_free(world: &mut dyn World) {
    let fx = Fixture::new();
    assert_eq!(probe(world, &fx, 11), Probe::Free);
    assert!(!world.liveness().may_live(fx.ctx(), 11));
}

/// One test per case, in module `$implementation`, for the world `$world` makes.
macro_rules! conformance {
    ($implementation:ident, $world:expr) => {
        conformance!(
            $implementation,
            $world,
            [
                a_live_engine_process_is_operated_and_may_recount,
                a_killed_engine_process_is_dead_and_its_recount_may_be_taken_over,
                an_engine_process_that_exited_unreaped_is_dead,
                a_live_external_holder_nobody_acts_for_is_quiescent,
                a_killed_and_reaped_external_holder_is_dead,
                an_external_holder_that_exited_unreaped_is_dead,
                a_recorded_pid_now_naming_a_process_started_at_another_time_is_dead,
                a_slot_someone_acts_for_is_operated_even_when_its_holder_is_dead,
                a_slot_another_thread_of_this_process_holds_is_operated,
                a_free_slot_is_free,
            ]
        );
    };
    ($implementation:ident, $world:expr, [$($case:ident),* $(,)?]) => {
        mod $implementation {
            use super::*;

            $(
                #[test]
                fn $case() {
                    super::$case(&mut $world);
                }
            )*
        }
    };
}

conformance!(os, Real::default());
conformance!(declared, Table::default());
