//! The cluster scope on the loopback: an acquire + release pair's latency (p50 and p99) beside a
//! local-scope pair's, and the time a SIGKILLed holder's weight takes to come back (on this host,
//! where its death is proven at once; and from "another host", where only its lease's expiry
//! frees it). The scenarios start their own one-member etcd (from `etcd` on `PATH`) in a
//! temporary directory and stop it at the end; without `etcd`, their rows say so.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use shmsem::{Scope, Semaphore};

use super::{
    drive::{self, kill_holder},
    multiproc::Ctx,
    procs,
    report::{Outcome, Unit},
    roles::Impl,
    stats::percentile,
};

/// What the rows say when there is no etcd to measure against.
const UNAVAILABLE: &str = "unavailable: etcd not found on PATH (Debian package etcd-server)";
/// The lease TTL of the reclaim scenario's holders, in seconds.
const TTL_S: u64 = 2;

/// A one-member etcd on the loopback, killed and its directory removed when dropped.
struct Etcd {
    child: Child,
    dir: PathBuf,
    endpoint: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn find_etcd() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Etcd {
    /// Start one; `Ok(Err(why))` when there is none to start (no `etcd` on `PATH`, or a library
    /// built without the cluster scope).
    fn start() -> anyhow::Result<Result<Etcd, String>> {
        // A library built without its feature `cluster` says so at once.
        let probe = Semaphore::options()
            .scope(Scope::Cluster)
            .cluster(["http://127.0.0.1:1"])
            .open("probe");
        if let Err(e @ shmsem::Error::Unsupported { .. }) = probe {
            return Ok(Err(format!("unavailable: {e}")));
        }
        let Some(bin) = find_etcd() else {
            return Ok(Err(UNAVAILABLE.to_owned()));
        };
        let dir = std::env::temp_dir().join(format!("shmsem-bench-etcd-{}", std::process::id()));
        let (client, peer) = (free_port()?, free_port()?);
        let endpoint = format!("http://127.0.0.1:{client}");
        std::fs::create_dir_all(&dir).context("creating etcd's directory")?;
        let log = std::fs::File::create(dir.join("etcd.log"))?;
        let child = Command::new(bin)
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting etcd")?;
        let etcd = Etcd {
            child,
            dir,
            endpoint,
        };
        // Ready once a semaphore can be opened on it.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match etcd.sem("ready", "ready", 1) {
                Ok(_) => return Ok(Ok(etcd)),
                Err(e) if Instant::now() >= deadline => {
                    return Err(e.context("etcd did not answer within 15 s"));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn sem(&self, ns: &str, name: &str, capacity: u32) -> anyhow::Result<Semaphore> {
        Semaphore::options()
            .scope(Scope::Cluster)
            .cluster([self.endpoint.as_str()])
            .namespace(ns)
            .capacity(capacity)
            .persistent()
            .open(name)
            .with_context(|| format!("opening cluster semaphore {ns}/{name}"))
    }

    /// How a helper names a semaphore of this etcd (see [`open_spec`]).
    fn spec(&self, host: &str, ns_name: &str) -> String {
        format!("cluster@{}@{host}@{TTL_S}@{ns_name}", self.endpoint)
    }
}

/// A helper's cluster semaphore from its spec `cluster@ENDPOINT@HOST@TTL@NAMESPACE/NAME`: the
/// host it names itself by (empty: its own) and its lease TTL are set in its environment first.
/// Called by a helper before it starts any thread.
pub fn open_spec(spec: &str) -> anyhow::Result<Semaphore> {
    let parts: Vec<&str> = spec.splitn(5, '@').collect();
    let [_, endpoint, host, ttl, ns_name] = parts[..] else {
        bail!("{spec:?} is not cluster@ENDPOINT@HOST@TTL@NAMESPACE/NAME");
    };
    let (ns, name) = ns_name
        .split_once('/')
        .with_context(|| format!("{spec:?} has no NAMESPACE/NAME"))?;
    // SAFETY: called by a helper before it starts any thread (see `roles::requested`).
    unsafe {
        std::env::set_var("SHMSEM_CLUSTER_TTL", ttl);
        if !host.is_empty() {
            std::env::set_var("SHMSEM_CLUSTER_HOST", host);
        }
    }
    Semaphore::options()
        .scope(Scope::Cluster)
        .cluster([endpoint])
        .namespace(ns)
        .open_existing(name)
        .with_context(|| format!("opening {spec}"))
}

/// The latency of acquire + release pairs: the cluster's beside the local scope's.
pub fn pair(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let etcd = match Etcd::start()? {
        Ok(etcd) => etcd,
        Err(why) => return Ok(Outcome::skipped("cluster_pair", why)),
    };
    let n = if ctx.plan.quick { 100 } else { 2_000 };
    let time_pairs = |sem: &Semaphore, n: usize| -> anyhow::Result<Vec<f64>> {
        let mut ms = Vec::with_capacity(n);
        for i in 0..n + n / 10 {
            let t = Instant::now();
            drop(sem.acquire()?);
            if i >= n / 10 {
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        Ok(ms)
    };
    let mut cluster = time_pairs(&etcd.sem("bench", "pair", 1)?, n)?;
    let mut local = time_pairs(&drive::shmsem_sem("cluster-pair", "local", 1)?, n)?;
    let mut o = Outcome::new("cluster_pair", Unit::Ms);
    o.median = vec![("shmsem", percentile(&mut cluster, 50.0))];
    o.extra = vec![
        ("p99", percentile(&mut cluster, 99.0)),
        // In ns: far below the JSON's resolution in ms.
        ("local_p50_ns", percentile(&mut local, 50.0) * 1e6),
        ("local_p99_ns", percentile(&mut local, 99.0) * 1e6),
        ("pairs", n as f64),
    ];
    Ok(o)
}

/// From the SIGKILL of a holder to a waiter's acquire returning: holders on this host (their
/// death proven, their lease revoked at once), p99 as the figure and p50 beside it; and one
/// holder that names another host, which only its lease's expiry (TTL 2 s) frees.
pub fn reclaim(ctx: &Ctx) -> anyhow::Result<Outcome> {
    let etcd = match Etcd::start()? {
        Ok(etcd) => etcd,
        Err(why) => return Ok(Outcome::skipped("cluster_reclaim", why)),
    };
    let sem = etcd.sem("bench", "victim", 1)?;
    let wait = |sem: &Semaphore| -> anyhow::Result<u64> {
        let permit = sem
            .acquire_timeout(1, Duration::from_secs(30))
            .context("a SIGKILLed holder's weight did not come back within 30 s")?;
        let at = procs::mono_ns();
        drop(permit);
        Ok(at)
    };
    // Kill a holder that says it runs on `host` ("": this one); how long until the weight came.
    let kill_on = |host: &str| {
        let spec = [etcd.spec(host, "bench/victim")];
        kill_holder(
            ctx.helper_args,
            Impl::Shmsem,
            &spec,
            Duration::from_millis(200),
            || wait(&sem),
        )
    };
    let kills = if ctx.plan.quick { 2 } else { 10 };
    let mut here = Vec::new();
    for _ in 0..kills {
        here.push(kill_on("")?.as_secs_f64() * 1e3);
    }
    let remote = kill_on("elsewhere.invalid")?;
    let mut o = Outcome::new("cluster_reclaim", Unit::Ms);
    o.median = vec![("shmsem", percentile(&mut here, 99.0))];
    o.extra = vec![
        ("p50", percentile(&mut here, 50.0)),
        ("remote_ms", remote.as_secs_f64() * 1e3),
        ("ttl_s", TTL_S as f64),
        ("kills", kills as f64),
    ];
    Ok(o)
}
