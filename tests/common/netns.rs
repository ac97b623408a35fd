//! A small network of namespaces for partition tests: a bridge in the root namespace with an
//! address of its own, and one network namespace per member joined to the bridge by a veth pair,
//! each with its own address on the bridge's /24. The test (in the root namespace) reaches every
//! member through the bridge. A link between two members is cut by iptables DROP rules inside
//! both members' namespaces (so the test's own connections stay up), and healed by flushing
//! them. Dropping a [`Net`] deletes the namespaces (and their veths), the bridge and the root
//! namespace's rule. It needs root, `ip` (iproute2) and `iptables`.

use std::{
    path::Path,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

/// A bridge and one network namespace per member.
#[derive(Debug)]
pub struct Net {
    bridge: String,
    /// The first three octets of the /24, e.g. `10.77.3`.
    prefix: String,
    namespaces: Vec<String>,
    /// Whether the root namespace's FORWARD rule that lets bridged traffic through was added.
    forward_rule: bool,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Net {
    /// Create the bridge and `n` namespaces; panics saying why if it cannot (not root, `ip` or
    /// `iptables` missing, a command failing).
    pub fn create(n: usize) -> Net {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "partition tests put etcd members in network namespaces, which needs root (running \
             as uid {euid})"
        );
        for (tool, package) in [("ip", "iproute2"), ("iptables", "iptables")] {
            assert!(
                Command::new(tool).arg("-V").output().is_ok(),
                "`{tool}` not found: partition tests need it (Debian: apt-get install {package})"
            );
        }
        remove_stale();
        let pid = std::process::id();
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        // Interface names have at most 15 bytes: `ssv` + 7 digits + `x` + 2 + `x` + 1.
        let id = format!("{pid}x{}", k % 100);
        let h = pid.wrapping_mul(31).wrapping_add(k);
        let prefix = format!("10.{}.{}", 64 + h % 128, (h / 128) % 256);
        let mut net = Net {
            bridge: format!("ssb{id}"),
            prefix,
            namespaces: Vec::new(),
            forward_rule: false,
        };
        let br = net.bridge.clone();
        run("ip", &["link", "add", &br, "type", "bridge"]);
        run(
            "ip",
            &["addr", "add", &format!("{}.1/24", net.prefix), "dev", &br],
        );
        run("ip", &["link", "set", &br, "up"]);
        // Where bridged frames pass the root namespace's iptables (br_netfilter), a FORWARD
        // policy of DROP (as Docker sets) would cut every member off: let this bridge through.
        run(
            "iptables",
            &["-I", "FORWARD", "-i", &br, "-o", &br, "-j", "ACCEPT"],
        );
        net.forward_rule = true;
        for i in 0..n {
            let ns = format!("shmsem-{pid}-{k}-{i}");
            run("ip", &["netns", "add", &ns]);
            net.namespaces.push(ns.clone());
            let host = format!("ssv{id}x{i}");
            let inner = format!("ssi{id}x{i}");
            run(
                "ip",
                &["link", "add", &host, "type", "veth", "peer", "name", &inner],
            );
            run("ip", &["link", "set", &inner, "netns", &ns]);
            run("ip", &["link", "set", &host, "master", &br]);
            run("ip", &["link", "set", &host, "up"]);
            let addr = format!("{}/24", net.ip(i));
            run("ip", &["-n", &ns, "addr", "add", &addr, "dev", &inner]);
            run("ip", &["-n", &ns, "link", "set", &inner, "up"]);
            run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    /// Member `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, 10 + i)
    }

    /// Member `i`'s namespace.
    pub fn namespace(&self, i: usize) -> String {
        self.namespaces[i].clone()
    }

    /// Drop all traffic between members `a` and `b`, both ways, in both namespaces.
    pub fn cut(&self, a: usize, b: usize) {
        for (me, other) in [(a, b), (b, a)] {
            let ns = &self.namespaces[me];
            let peer = self.ip(other);
            iptables(ns, &["-A", "INPUT", "-s", &peer, "-j", "DROP"]);
            iptables(ns, &["-A", "OUTPUT", "-d", &peer, "-j", "DROP"]);
        }
    }

    /// Remove every DROP rule: all links are whole again.
    pub fn heal(&self) {
        for ns in &self.namespaces {
            iptables(ns, &["-F", "INPUT"]);
            iptables(ns, &["-F", "OUTPUT"]);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        if self.forward_rule {
            let br = &self.bridge;
            let _ = Command::new("iptables")
                .args(["-D", "FORWARD", "-i", br, "-o", br, "-j", "ACCEPT"])
                .output();
        }
    }
}

/// Remove what a test process that was killed before it could clean up left: its namespaces
/// (`shmsem-PID-…`), bridges (`ssbPIDx…`) and FORWARD rules, for every PID no longer running.
fn remove_stale() {
    let dead = |pid: &str| {
        pid.parse::<u32>()
            .is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists())
    };
    let out = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    for line in out(&["netns", "list"]).lines() {
        let ns = line.split_whitespace().next().unwrap_or("");
        if let Some(pid) = ns.strip_prefix("shmsem-").and_then(|r| r.split('-').next())
            && dead(pid)
        {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
    for line in out(&["-o", "link", "show", "type", "bridge"]).lines() {
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        if let Some(pid) = name.strip_prefix("ssb").and_then(|r| r.split('x').next())
            && dead(pid)
        {
            let _ = Command::new("ip").args(["link", "del", name]).output();
            let _ = Command::new("iptables")
                .args(["-D", "FORWARD", "-i", name, "-o", name, "-j", "ACCEPT"])
                .output();
        }
    }
}

fn iptables(ns: &str, args: &[&str]) {
    let all = [&["netns", "exec", ns, "iptables", "-w"][..], args].concat();
    run("ip", &all);
}

/// Run a command; panic with its output if it fails.
fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {} failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
}
