//! Holders proven dead on this host: a member key whose host, boot id and pid namespace are
//! this process's, and whose process (pid with its start time) no longer runs, is a process that
//! died; its lease is revoked at once, so its holdings come back now rather than when the lease
//! expires. A member of another host is never judged: without proof, only its lease speaks.

use std::time::Instant;

use etcd_client::GetOptions;

use super::{client::Client, keys, lease};
use crate::{
    error::Result,
    sys::{self, Identity, Liveness},
};

/// The members of the cluster that ran on this host and are dead now, as (lease id, member).
pub async fn dead_here(
    client: &Client,
    deadline: Option<Instant>,
) -> Result<Vec<(i64, keys::Member)>> {
    let mut etcd = client.etcd.clone();
    let resp = client
        .call(
            deadline,
            etcd.get(keys::MEMBERS, Some(GetOptions::new().with_prefix())),
        )
        .await?;
    let me = lease::me();
    let mut dead = Vec::new();
    for kv in resp.kvs() {
        let key = String::from_utf8_lossy(kv.key());
        let Some(id) = key.strip_prefix(keys::MEMBERS).and_then(keys::parse_member) else {
            continue;
        };
        let Some(m) = keys::Member::decode(kv.value()) else {
            continue;
        };
        let here =
            m.host == me.host && m.boot == me.boot && m.pidns == me.pidns && !m.boot.is_empty();
        if !here || m.pid == me.pid && m.start == me.start {
            continue;
        }
        let who = Identity {
            pid: m.pid,
            start_time: m.start,
        };
        if sys::liveness(who) == Liveness::Dead {
            dead.push((id, m));
        }
    }
    Ok(dead)
}

/// Revoke the leases of the members proven dead on this host; returns how many.
pub async fn revoke_dead(client: &Client, deadline: Option<Instant>) -> Result<usize> {
    let dead = dead_here(client, deadline).await?;
    let mut n = 0;
    for (id, _) in dead {
        let mut etcd = client.etcd.clone();
        if client.call(deadline, etcd.lease_revoke(id)).await.is_ok() {
            n += 1;
        }
    }
    Ok(n)
}
