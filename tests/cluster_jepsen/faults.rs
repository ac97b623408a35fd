//! The faults of the Jepsen-style test, on a fixed schedule: kill and restart a member, stop the
//! leader past the election timeout, stop a holding client past its lease's time to live,
//! isolate the leader, cut one link, kill and restart a follower. Each is logged with its time.

use std::{
    thread,
    time::{Duration, Instant},
};

use crate::common::{
    etcd::{Cluster, ELECTION_MS},
    is_stopped, mono_ns,
};

/// The lease time to live the clients use (`SHMSEM_CLUSTER_TTL`), in seconds.
pub const TTL_S: u64 = 3;

/// What was done, when.
#[derive(Debug)]
pub struct Faults {
    start: Instant,
    pub log: Vec<String>,
}

/// A client stopped while it held a permit: the token it held, and when it was stopped and
/// continued (`CLOCK_MONOTONIC` ns).
#[derive(Debug, Clone, Copy)]
pub struct StoppedHolder {
    pub token: i64,
    pub stopped_ns: u64,
    pub continued_ns: u64,
}

const HEALTHY: Duration = Duration::from_secs(30);

impl Faults {
    pub fn new() -> Faults {
        Faults {
            start: Instant::now(),
            log: Vec::new(),
        }
    }

    fn note(&mut self, what: String) {
        let t = self.start.elapsed().as_secs_f64();
        eprintln!("[jepsen +{t:5.1}s] {what}");
        self.log.push(format!("+{t:5.1}s {what}"));
    }

    fn leader(&mut self, cluster: &Cluster) -> usize {
        cluster.wait_leader(HEALTHY)
    }

    /// Kill member `i` (SIGKILL), wait `down`, restart it on its data, wait until healthy.
    pub fn kill_restart(&mut self, cluster: &Cluster, i: usize, why: &str, down: Duration) {
        self.note(format!("kill member {i} ({why})"));
        cluster.kill(i);
        thread::sleep(down);
        self.note(format!("restart member {i}"));
        cluster.restart(i);
        cluster.wait_healthy(HEALTHY);
    }

    /// SIGSTOP the leader for `for_` (longer than the election timeout), then SIGCONT it.
    pub fn stop_leader(&mut self, cluster: &Cluster, for_: Duration) {
        assert!(for_ > Duration::from_millis(ELECTION_MS));
        let l = self.leader(cluster);
        self.note(format!("SIGSTOP leader {l} for {for_:?}"));
        cluster.stop(l);
        thread::sleep(for_);
        cluster.cont(l);
        self.note(format!("SIGCONT member {l}"));
        cluster.wait_healthy(HEALTHY);
    }

    /// Cut the leader off from both other members for `for_`, then heal.
    pub fn isolate_leader(&mut self, cluster: &Cluster, for_: Duration) {
        let l = self.leader(cluster);
        self.note(format!(
            "isolate leader {l} from the other members for {for_:?}"
        ));
        cluster.isolate(l);
        thread::sleep(for_);
        cluster.heal();
        self.note("heal".to_owned());
        cluster.wait_healthy(HEALTHY);
    }

    /// Cut the one link between the leader and one follower for `for_`, then heal.
    pub fn cut_link(&mut self, cluster: &Cluster, for_: Duration) {
        let l = self.leader(cluster);
        let f = (l + 1) % 3;
        self.note(format!(
            "cut the link {l}-{f} (leader-follower) for {for_:?}"
        ));
        cluster.partition(l, f);
        thread::sleep(for_);
        cluster.heal();
        self.note("heal".to_owned());
        cluster.wait_healthy(HEALTHY);
    }

    pub fn kill_restart_leader(&mut self, cluster: &Cluster, down: Duration) {
        let l = self.leader(cluster);
        self.kill_restart(cluster, l, "the leader", down);
    }

    pub fn kill_follower(&mut self, cluster: &Cluster, down: Duration) {
        let l = self.leader(cluster);
        self.kill_restart(cluster, (l + 2) % 3, "a follower", down);
    }

    /// Wait until client `pid`'s last logged line (in `log`) says it holds a permit, SIGSTOP it
    /// for the lease's time to live plus 3 s, SIGCONT it. `None` if it never held within 10 s.
    pub fn stop_holder(&mut self, pid: u32, log: &std::path::Path) -> Option<StoppedHolder> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut token = None;
        while token.is_none() && Instant::now() < deadline {
            signal(pid, libc::SIGSTOP);
            // SIGSTOP takes effect asynchronously: read the log only once the client stands.
            while !is_stopped(pid) {
                thread::sleep(Duration::from_millis(1));
            }
            token = std::fs::read_to_string(log).ok().and_then(|text| {
                let last = text.lines().last()?;
                let mut f = last.split_whitespace().skip(1);
                (f.next()? == "held").then(|| f.next()?.parse::<i64>().ok())?
            });
            if token.is_none() {
                signal(pid, libc::SIGCONT);
                thread::sleep(Duration::from_millis(5));
            }
        }
        let token = token?;
        let stopped_ns = mono_ns();
        let for_ = Duration::from_secs(TTL_S + 3);
        self.note(format!(
            "SIGSTOP client pid {pid} holding token {token} for {for_:?} (lease TTL {TTL_S} s)"
        ));
        thread::sleep(for_);
        let continued_ns = mono_ns();
        signal(pid, libc::SIGCONT);
        self.note(format!("SIGCONT client pid {pid}"));
        Some(StoppedHolder {
            token,
            stopped_ns,
            continued_ns,
        })
    }

    pub fn settle(&mut self, d: Duration) {
        thread::sleep(d);
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child, which the test reaps only after this.
    let r = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(r, 0, "signal {sig} to client {pid}");
}
