//! A 3-member etcd cluster for the tests of the cluster scope: started on the loopback (free
//! ports, data directories and logs in a temporary directory), or each member in its own network
//! namespace so that links between members can be cut (see [`super::netns`]). Members can be
//! killed (SIGKILL), restarted on the same data directory, stopped (SIGSTOP) and continued; the
//! leader can be asked for. Dropping a [`Cluster`] kills every member (also when the test
//! panics, and then it prints the tail of each member's log), so no etcd outlives its test.
//!
//! ```ignore
//! let cluster = Cluster::start();
//! let endpoints = cluster.endpoints(); // ["http://127.0.0.1:PORT", ...]
//! let leader = cluster.wait_leader(Duration::from_secs(10));
//! cluster.kill(leader);
//! cluster.restart(leader);
//! ```

use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

use super::{die_with_parent, netns::Net};

/// Raft heartbeat, in milliseconds: small for fast tests, yet stable on a loaded 2-core machine.
pub const HEARTBEAT_MS: u64 = 100;
/// Raft election timeout, in milliseconds (10 heartbeats). etcd's smallest lease TTL follows
/// from it: ⌈1.5 × 1000 ms⌉ = 2 s.
pub const ELECTION_MS: u64 = 1000;
/// How long a fresh or restarted cluster may take to become healthy.
pub const START_DEADLINE: Duration = Duration::from_secs(30);
/// Members in a cluster.
pub const MEMBERS: usize = 3;

/// One etcd member: where it listens and its process, if running.
#[derive(Debug)]
struct Member {
    name: String,
    /// The address clients and peers reach it at.
    ip: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    /// The network namespace it runs in, if any.
    netns: Option<String>,
    child: Option<Child>,
    stopped: bool,
}

impl Member {
    fn client_url(&self) -> String {
        format!("http://{}:{}", self.ip, self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://{}:{}", self.ip, self.peer_port)
    }

    fn addr(&self) -> SocketAddr {
        format!("{}:{}", self.ip, self.client_port)
            .parse()
            .expect("a member's address")
    }
}

/// A running 3-member etcd cluster; dropping it kills every member and removes its files (and
/// its network namespaces, if it has any).
#[derive(Debug)]
pub struct Cluster {
    members: Mutex<Vec<Member>>,
    initial_cluster: String,
    /// The etcd binary.
    etcd: PathBuf,
    /// Declared before `dir`: the namespaces go before the files.
    net: Option<Net>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Start 3 members on 127.0.0.1 (free ports) and wait until the cluster is healthy; panics
    /// with the members' log tails if it is not within [`START_DEADLINE`], or saying what to
    /// install if etcd is missing.
    pub fn start() -> Cluster {
        let mut last = String::new();
        // A free port found by binding port 0 may be taken by someone else before etcd binds it:
        // try again on fresh ports then.
        for _ in 0..3 {
            let ports = free_ports(2 * MEMBERS);
            let addrs = (0..MEMBERS)
                .map(|i| ("127.0.0.1".to_owned(), ports[2 * i], ports[2 * i + 1], None))
                .collect();
            let cluster = Cluster::launch(addrs, None);
            match cluster.wait_healthy_result(START_DEADLINE) {
                Ok(()) => return cluster,
                Err(e) if cluster.any_log_contains("address already in use") => last = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last}");
    }

    /// Start 3 members, each in its own network namespace with its own address on a bridge that
    /// the test (in the root namespace) reaches them through, so that [`Cluster::partition`]
    /// can cut links between members. Needs root, `ip` and `iptables`; panics saying which is
    /// missing.
    pub fn start_partitionable() -> Cluster {
        let net = Net::create(MEMBERS);
        let addrs = (0..MEMBERS)
            .map(|i| (net.ip(i), 2379, 2380, Some(net.namespace(i))))
            .collect();
        let cluster = Cluster::launch(addrs, Some(net));
        if let Err(e) = cluster.wait_healthy_result(START_DEADLINE) {
            panic!("{e}");
        }
        cluster
    }

    fn launch(addrs: Vec<(String, u16, u16, Option<String>)>, net: Option<Net>) -> Cluster {
        let etcd = etcd_binary();
        let dir = tempfile::Builder::new()
            .prefix("shmsem-etcd-")
            .tempdir()
            .expect("creating the cluster's directory");
        let members: Vec<Member> = addrs
            .into_iter()
            .enumerate()
            .map(|(i, (ip, client_port, peer_port, netns))| Member {
                name: format!("m{i}"),
                ip,
                client_port,
                peer_port,
                data_dir: dir.path().join(format!("m{i}.etcd")),
                log: dir.path().join(format!("m{i}.log")),
                netns,
                child: None,
                stopped: false,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let cluster = Cluster {
            members: Mutex::new(members),
            initial_cluster,
            etcd,
            net,
            dir,
        };
        for i in 0..MEMBERS {
            cluster.spawn(i);
        }
        cluster
    }

    fn spawn(&self, i: usize) {
        let mut members = self.members.lock().unwrap();
        let m = &mut members[i];
        assert!(m.child.is_none(), "member {i} is already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("opening a member's log");
        let mut cmd = match &m.netns {
            // `ip netns exec` enters the namespace and executes etcd in its own process.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&self.etcd);
                c
            }
            None => Command::new(&self.etcd),
        };
        cmd.args(["--name", &m.name])
            .arg(format!("--data-dir={}", m.data_dir.display()))
            .arg(format!("--listen-client-urls={}", m.client_url()))
            .arg(format!("--advertise-client-urls={}", m.client_url()))
            .arg(format!("--listen-peer-urls={}", m.peer_url()))
            .arg(format!("--initial-advertise-peer-urls={}", m.peer_url()))
            .arg(format!("--initial-cluster={}", self.initial_cluster))
            .arg("--initial-cluster-state=new")
            .arg(format!("--initial-cluster-token={}", self.token()))
            .arg(format!("--heartbeat-interval={HEARTBEAT_MS}"))
            .arg(format!("--election-timeout={ELECTION_MS}"))
            .arg("--logger=zap")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file handle"))
            .stderr(log);
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting etcd member {i}: {e}"));
        m.child = Some(child);
        m.stopped = false;
    }

    /// A token unique to this cluster, so that members of two clusters never join each other.
    fn token(&self) -> String {
        self.dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The client URLs of all members, running or not, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .lock()
            .unwrap()
            .iter()
            .map(Member::client_url)
            .collect()
    }

    /// The client URL of member `i`.
    pub fn endpoint(&self, i: usize) -> String {
        self.members.lock().unwrap()[i].client_url()
    }

    /// The process id of member `i`, if it is running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members.lock().unwrap()[i]
            .child
            .as_ref()
            .map(Child::id)
    }

    /// The directory the data directories and logs are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kill member `i` with SIGKILL and reap it. Its data directory stays for [`restart`].
    ///
    /// [`restart`]: Cluster::restart
    pub fn kill(&self, i: usize) {
        let mut members = self.members.lock().unwrap();
        let m = &mut members[i];
        if let Some(mut child) = m.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        m.stopped = false;
    }

    /// Start member `i` again on its data directory (after [`Cluster::kill`]). Does not wait:
    /// see [`Cluster::wait_healthy`]. Like every member, it is killed when the thread that
    /// started it ends (`PR_SET_PDEATHSIG`), so call this from the thread that owns the cluster.
    pub fn restart(&self, i: usize) {
        self.spawn(i);
    }

    /// Stop member `i` with SIGSTOP (it keeps its sockets but answers nothing).
    pub fn stop(&self, i: usize) {
        self.signal(i, libc::SIGSTOP);
        self.members.lock().unwrap()[i].stopped = true;
    }

    /// Continue member `i` with SIGCONT after [`Cluster::stop`].
    pub fn cont(&self, i: usize) {
        self.signal(i, libc::SIGCONT);
        self.members.lock().unwrap()[i].stopped = false;
    }

    fn signal(&self, i: usize, sig: libc::c_int) {
        let pid = self
            .pid(i)
            .unwrap_or_else(|| panic!("member {i} is not running"));
        // SAFETY: kill(2) with the pid of our own unreaped child and a valid signal number.
        let r = unsafe { libc::kill(pid as libc::pid_t, sig) };
        assert_eq!(r, 0, "signal {sig} to member {i} (pid {pid}) failed");
    }

    /// Cut the links between member `a` and member `b` (both directions); the test's own
    /// connections to both stay. Only on a cluster from [`Cluster::start_partitionable`].
    pub fn partition(&self, a: usize, b: usize) {
        self.net().cut(a, b);
    }

    /// Cut member `i` off from every other member.
    pub fn isolate(&self, i: usize) {
        for j in (0..MEMBERS).filter(|&j| j != i) {
            self.partition(i, j);
        }
    }

    /// Restore every link between members.
    pub fn heal(&self) {
        self.net().heal();
    }

    fn net(&self) -> &Net {
        self.net
            .as_ref()
            .expect("partitions need a cluster from Cluster::start_partitionable")
    }

    /// Whether member `i` answers `/health` with `true` (which needs a leader) within `timeout`.
    pub fn healthy(&self, i: usize, timeout: Duration) -> bool {
        let addr = self.members.lock().unwrap()[i].addr();
        http(addr, "GET", "/health", "", timeout)
            .is_some_and(|body| body.replace(' ', "").contains("\"health\":\"true\""))
    }

    /// Wait until every running, unstopped member is healthy; panics after `timeout` with the
    /// members' log tails.
    pub fn wait_healthy(&self, timeout: Duration) {
        if let Err(e) = self.wait_healthy_result(timeout) {
            panic!("{e}");
        }
    }

    fn wait_healthy_result(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let (live, exited) = self.live_members();
            if let Some(i) = exited {
                return Err(format!(
                    "etcd member {i} exited while the cluster was starting\n{}",
                    self.log_tails(30)
                ));
            }
            let step = Duration::from_millis(500);
            if live.iter().all(|&i| self.healthy(i, step)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the etcd cluster was not healthy within {timeout:?} (members {live:?} \
                     running)\n{}",
                    self.log_tails(30)
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The running, unstopped members, and the first one whose process has exited unasked.
    fn live_members(&self) -> (Vec<usize>, Option<usize>) {
        let mut members = self.members.lock().unwrap();
        let mut live = Vec::new();
        let mut exited = None;
        for (i, m) in members.iter_mut().enumerate() {
            if let Some(child) = m.child.as_mut() {
                if child.try_wait().ok().flatten().is_some() {
                    exited.get_or_insert(i);
                } else if !m.stopped {
                    live.push(i);
                }
            }
        }
        (live, exited)
    }

    /// The member that a running member names as the leader and that itself claims to be it,
    /// if any answers within a short time.
    pub fn leader(&self) -> Option<usize> {
        let (live, _) = self.live_members();
        let addrs: Vec<SocketAddr> = {
            let members = self.members.lock().unwrap();
            members.iter().map(Member::addr).collect()
        };
        for i in live {
            let Some(body) = http(
                addrs[i],
                "POST",
                "/v3/maintenance/status",
                "{}",
                Duration::from_millis(500),
            ) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
                continue;
            };
            let me = v["header"]["member_id"].as_str();
            let leader = v["leader"].as_str();
            if me.is_some() && me == leader {
                return Some(i);
            }
        }
        None
    }

    /// Wait for a leader; panics after `timeout` with the members' log tails.
    pub fn wait_leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.leader() {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no etcd leader within {timeout:?}\n{}",
                self.log_tails(30)
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether any member's log contains `text`.
    fn any_log_contains(&self, text: &str) -> bool {
        let members = self.members.lock().unwrap();
        members
            .iter()
            .any(|m| fs::read_to_string(&m.log).is_ok_and(|l| l.contains(text)))
    }

    /// The last `lines` lines of each member's log, for failure messages.
    pub fn log_tails(&self, lines: usize) -> String {
        let members = self.members.lock().unwrap();
        let mut out = String::new();
        for m in members.iter() {
            let log = fs::read_to_string(&m.log).unwrap_or_default();
            let all: Vec<&str> = log.lines().collect();
            out.push_str(&format!(
                "--- etcd {} ({}), last lines:\n",
                m.name,
                m.log.display()
            ));
            for l in &all[all.len().saturating_sub(lines)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.log_tails(20));
        }
        let members = self.members.get_mut().unwrap_or_else(|e| e.into_inner());
        for m in members.iter_mut() {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // `net` and `dir` are dropped next: namespaces and rules, then files.
    }
}

/// The etcd server on `PATH`; panics saying what to install if there is none.
fn etcd_binary() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "etcd not found on PATH: the cluster tests need etcd 3.4 or later (Debian: \
                 apt-get install etcd-server)"
            )
        })
}

/// `n` distinct free TCP ports on 127.0.0.1.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}

/// One HTTP/1.1 request with a short timeout; the body of a 200 answer, or `None`.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: \
         application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, rest) = raw.split_once("\r\n\r\n")?;
    if head.split(' ').nth(1) != Some("200") {
        return None;
    }
    // A chunked answer: etcd's answers here are one JSON object in one chunk.
    let body = match (rest.find('{'), rest.rfind('}')) {
        (Some(a), Some(b)) if a < b => &rest[a..=b],
        _ => rest,
    };
    Some(body.to_owned())
}

/// The endpoints, comma-separated, of one 3-member cluster shared by every test of this test
/// binary: started on first use by a thread that lives as long as the harness (the members die
/// with the thread that started them, `PR_SET_PDEATHSIG`), and dropped, files too, by an exit
/// handler when the harness exits. Each test uses its own namespace on it.
pub fn shared_endpoints() -> String {
    use std::sync::{Mutex, OnceLock, mpsc};

    static ENDPOINTS: OnceLock<String> = OnceLock::new();
    static SHARED: Mutex<Option<Cluster>> = Mutex::new(None);
    extern "C" fn drop_shared() {
        if let Some(cluster) = SHARED.lock().unwrap_or_else(|e| e.into_inner()).take() {
            drop(cluster);
        }
    }
    ENDPOINTS
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let cluster = Cluster::start();
                let endpoints = cluster.endpoints().join(",");
                *SHARED.lock().unwrap_or_else(|e| e.into_inner()) = Some(cluster);
                // SAFETY: registers a plain `extern "C" fn()` that lives as long as the program.
                unsafe { libc::atexit(drop_shared) };
                tx.send(endpoints).ok();
                loop {
                    std::thread::park();
                }
            });
            rx.recv()
                .expect("the shared etcd cluster did not start: see the panic above")
        })
        .clone()
}
