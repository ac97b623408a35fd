//! `shmsem ps`: what one process holds or waits for.

use shmsem::{Activity, Options, Scope, State};

use crate::output::{self, emit, emit_json};

/// List what `pid` holds or waits for in every scope and namespace this process may open,
/// whatever `--scope` and `--namespace` say; with `--scope cluster`, also what it holds or
/// waits for in that cluster namespace (the `pid` of this host).
pub fn ps(opts: &Options, pid: u32, json: bool) -> anyhow::Result<()> {
    let mut activity = shmsem::ps(pid)?;
    if opts.scope_of() == Scope::Cluster {
        activity.extend(cluster_activity(opts, pid)?);
    }
    if json {
        emit_json(&output::activity_json(&activity))
    } else {
        emit(&output::activity_text(&activity))
    }
}

/// What `pid` of this host holds or waits for in the cluster namespace of `opts`.
fn cluster_activity(opts: &Options, pid: u32) -> anyhow::Result<Vec<Activity>> {
    let host = std::env::var("SHMSEM_CLUSTER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for info in opts.to_namespace()?.list()? {
        for (parties, state) in [
            (&info.holders, State::Held),
            (&info.waiters, State::Waiting),
        ] {
            let weight: u64 = parties
                .iter()
                .filter(|p| p.pid == pid && p.host.as_deref() == Some(host.as_str()))
                .map(|p| p.weight)
                .sum();
            if weight > 0 {
                out.push(Activity {
                    scope: Scope::Cluster,
                    namespace: info.namespace.clone(),
                    name: info.name.clone(),
                    weight,
                    state,
                });
            }
        }
    }
    Ok(out)
}
