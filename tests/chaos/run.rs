//! The state of a run on the test's side, and starting its role processes.

use std::{
    fs,
    path::PathBuf,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use crate::{
    common::TestDir,
    config::{EARLY_MS, EARLY_PERCENT, FORKERS, MAX_MIN_LIFE_MS, REAPERS, SLEEPER_ENV, WORKERS},
    kill::{Kills, kill_point},
    procs::{role_spawn, sleeper_command, witness_path},
    rng::Rng,
    witness::{Witness, child_owner, forker_owner, worker_owner},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Worker(usize),
    Forker(usize),
    Reaper(usize),
}

impl Kind {
    /// The witness owners of its processes (for a forker: itself and its child).
    pub fn owners(self) -> Vec<usize> {
        match self {
            Kind::Worker(i) => vec![worker_owner(i)],
            Kind::Forker(j) => vec![forker_owner(j), child_owner(j)],
            Kind::Reaper(_) => Vec::new(),
        }
    }
    pub fn main_owner(self) -> Option<usize> {
        match self {
            Kind::Worker(i) => Some(worker_owner(i)),
            Kind::Forker(j) => Some(forker_owner(j)),
            Kind::Reaper(_) => None,
        }
    }
}

/// A running role process, and the `sleep` a worker acts for.
pub struct Role {
    pub kind: Kind,
    pub child: Child,
    pub reaped: bool,
    pub born: Instant,
    pub min_life: Duration,
    pub sleeper: Option<Child>,
    /// The kill point it was started with (`SHMSEM_FAILPOINT`), if any.
    pub point: Option<String>,
}

impl Drop for Role {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(s) = &mut self.sleeper {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

pub struct Run {
    pub dir: TestDir,
    pub w: Witness,
    pub shm: PathBuf,
    pub rng: Rng,
    pub roles: Vec<Role>,
    pub cli: Option<(Child, Option<String>)>,
    pub cli_runs: u64,
    pub kills: Kills,
    pub crashes: u64,
    pub orphans: u64,
    pub failures: Vec<String>,
}

impl Run {
    pub fn new() -> Run {
        let dir = TestDir::new("chaos");
        Witness::create(&witness_path(&dir));
        let w = Witness::open(&witness_path(&dir));
        let shm = fs::canonicalize(&dir.shm).expect("canonical SHMSEM_DIR");
        Run {
            dir,
            w,
            shm,
            rng: Rng::seeded(),
            roles: Vec::new(),
            cli: None,
            cli_runs: 0,
            kills: Kills::default(),
            crashes: 0,
            orphans: 0,
            failures: Vec::new(),
        }
    }

    pub fn fail(&mut self, msg: String) {
        eprintln!("chaos: FAILURE: {msg}");
        self.failures.push(msg);
    }

    pub fn spawn(&mut self, kind: Kind) -> Role {
        let (role, index) = match kind {
            Kind::Worker(i) => ("worker", i),
            Kind::Forker(j) => ("forker", j),
            Kind::Reaper(k) => ("reaper", k),
        };
        let sleeper = match kind {
            Kind::Worker(_) => Some(sleeper_command().spawn().expect("spawning sleep")),
            _ => None,
        };
        let mut cmd = role_spawn(&self.dir, role, index).command();
        cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
        if let Some(s) = &sleeper {
            cmd.env(SLEEPER_ENV, s.id().to_string());
        }
        // The reaper puts nothing in the witness, so it may die by itself anywhere.
        let point = match kind {
            Kind::Reaper(_) if self.rng.below(100) < 60 => kill_point(&mut self.rng, ""),
            _ => None,
        };
        if let Some(p) = &point {
            cmd.env(shmsem::failpoint::ENV, p);
        }
        let child = cmd.spawn().expect("spawning a role");
        Role {
            kind,
            child,
            reaped: false,
            born: Instant::now(),
            min_life: Duration::from_millis(if self.rng.below(100) < EARLY_PERCENT {
                self.rng.range(0, EARLY_MS)
            } else {
                self.rng.range(0, MAX_MIN_LIFE_MS)
            }),
            sleeper,
            point,
        }
    }

    pub fn start(&mut self) {
        let kinds: Vec<Kind> = (0..WORKERS)
            .map(Kind::Worker)
            .chain((0..FORKERS).map(Kind::Forker))
            .chain((0..REAPERS).map(Kind::Reaper))
            .collect();
        for k in kinds {
            let r = self.spawn(k);
            self.roles.push(r);
        }
    }
}
