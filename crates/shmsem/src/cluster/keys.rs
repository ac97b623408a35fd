//! Where the cluster scope keeps things in etcd, and how each value is written: the one place
//! that knows the key layout and the encoding.
//!
//! Everything lives under `/shmsem/`:
//!
//! | key | value (JSON) | lease |
//! |---|---|---|
//! | `/shmsem/NS/NAME/meta` | `{"capacity":N,"kind":"auto"\|"persistent","idle_ms":N,"idle_since_ms":T}` | none |
//! | `/shmsem/NS/NAME/h/MEMBER/PERMIT` | `{"weight":W,"pid":P,"host":"H","since_ms":T}` | the holder's |
//! | `/shmsem/NS/NAME/w/MEMBER/N` | `{"weight":W,"pid":P,"host":"H","since_ms":T}` | the waiter's |
//! | `/shmsem/members/MEMBER` | `{"host":"H","pid":P,"start":S,"boot":"B","pidns":I}` | the member's |
//!
//! * `MEMBER` is the process's lease id as 16 lower-case hex digits: one lease per process
//!   (per cluster it talks to), which plays the part of a local process slot. `PERMIT` and `N`
//!   are decimal counters of that process.
//! * A holder key's `weight` is the weight held (a decimal number, at least 1); the weight held
//!   on a semaphore at any revision is the sum of the `weight` fields of its `h/` keys that exist
//!   at that revision. A holding's fencing token is its holder key's create revision.
//! * `idle_since_ms` (wall-clock ms, absent or 0: not seen idle) is set by a sweep that found an
//!   auto semaphore without holders or waiters; a later sweep removes it once `idle_ms` has
//!   passed since, if it is still idle.
//! * `since_ms` is the holder's or waiter's wall clock when it began, in ms since the epoch.
//! * In a member key, `start` is the process's start time in clock ticks since boot, `boot` the
//!   kernel's boot id and `pidns` the inode of its pid namespace: what proves, on the same
//!   host, that the process is dead (see `local_death`).
//!
//! Unknown fields are ignored, so later versions may add some.

use serde_json::{Value, json};

/// The prefix of every key of namespace `ns`.
pub fn namespace(ns: &str) -> String {
    format!("/shmsem/{ns}/")
}

/// The prefix of every key of semaphore `name` in namespace `ns`.
pub fn semaphore(ns: &str, name: &str) -> String {
    format!("/shmsem/{ns}/{name}/")
}

/// The record of a semaphore, under its prefix.
pub fn meta(prefix: &str) -> String {
    format!("{prefix}meta")
}

/// The prefix of a semaphore's holder keys.
pub fn holders(prefix: &str) -> String {
    format!("{prefix}h/")
}

/// The prefix of a semaphore's waiter keys.
pub fn waiters(prefix: &str) -> String {
    format!("{prefix}w/")
}

/// A holder key.
pub fn holder(prefix: &str, member: i64, permit: u64) -> String {
    format!("{prefix}h/{}/{permit}", hex(member))
}

/// A waiter key.
pub fn waiter(prefix: &str, member: i64, n: u64) -> String {
    format!("{prefix}w/{}/{n}", hex(member))
}

/// The prefix of the member keys.
pub const MEMBERS: &str = "/shmsem/members/";

/// A member key.
pub fn member(member: i64) -> String {
    format!("{MEMBERS}{}", hex(member))
}

/// A lease id as a member name.
pub fn hex(member: i64) -> String {
    format!("{:016x}", member as u64)
}

/// The lease id a member name stands for.
pub fn parse_member(hex: &str) -> Option<i64> {
    u64::from_str_radix(hex, 16).ok().map(|m| m as i64)
}

/// What a key under a namespace's prefix is.
#[derive(Debug, PartialEq, Eq)]
pub enum Part<'a> {
    /// `NAME/meta`.
    Meta(&'a str),
    /// `NAME/h/MEMBER/PERMIT`.
    Holder(&'a str, &'a str),
    /// `NAME/w/MEMBER/N`.
    Waiter(&'a str, &'a str),
}

/// Split the rest of a key after its namespace prefix.
pub fn part(rest: &str) -> Option<Part<'_>> {
    let (name, tail) = rest.split_once('/')?;
    if tail == "meta" {
        return Some(Part::Meta(name));
    }
    let (kind, tail) = tail.split_once('/')?;
    let (member, _) = tail.split_once('/')?;
    match kind {
        "h" => Some(Part::Holder(name, member)),
        "w" => Some(Part::Waiter(name, member)),
        _ => None,
    }
}

/// A semaphore's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub capacity: u32,
    pub persistent: bool,
    pub idle_ms: u32,
    pub idle_since_ms: u64,
}

impl Meta {
    pub fn encode(&self) -> String {
        json!({
            "capacity": self.capacity,
            "kind": if self.persistent { "persistent" } else { "auto" },
            "idle_ms": self.idle_ms,
            "idle_since_ms": self.idle_since_ms,
        })
        .to_string()
    }

    pub fn decode(bytes: &[u8]) -> Option<Meta> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        Some(Meta {
            capacity: u32::try_from(v.get("capacity")?.as_u64()?).ok()?,
            persistent: v.get("kind")?.as_str()? == "persistent",
            idle_ms: v
                .get("idle_ms")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            idle_since_ms: v.get("idle_since_ms").and_then(Value::as_u64).unwrap_or(0),
        })
    }
}

/// A holder's or a waiter's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub weight: u32,
    pub pid: u32,
    pub host: String,
    pub since_ms: u64,
}

impl Party {
    pub fn encode(&self) -> String {
        json!({
            "weight": self.weight,
            "pid": self.pid,
            "host": self.host,
            "since_ms": self.since_ms,
        })
        .to_string()
    }

    /// A value that is not a party of this layout (written by something else) counts as a
    /// party of weight `u32::MAX` when it is a holder: unknown weight is never taken as free.
    pub fn decode(bytes: &[u8]) -> Party {
        let v: Option<Value> = serde_json::from_slice(bytes).ok();
        let get = |k: &str| v.as_ref().and_then(|v| v.get(k));
        Party {
            weight: get("weight")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(u32::MAX),
            pid: get("pid")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            host: get("host").and_then(Value::as_str).unwrap_or("").to_owned(),
            since_ms: get("since_ms").and_then(Value::as_u64).unwrap_or(0),
        }
    }
}

/// A member's value: who the process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub host: String,
    pub pid: u32,
    pub start: u64,
    pub boot: String,
    pub pidns: u64,
}

impl Member {
    pub fn encode(&self) -> String {
        json!({
            "host": self.host,
            "pid": self.pid,
            "start": self.start,
            "boot": self.boot,
            "pidns": self.pidns,
        })
        .to_string()
    }

    pub fn decode(bytes: &[u8]) -> Option<Member> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        Some(Member {
            host: v.get("host")?.as_str()?.to_owned(),
            pid: u32::try_from(v.get("pid")?.as_u64()?).ok()?,
            start: v.get("start")?.as_u64()?,
            boot: v.get("boot")?.as_str()?.to_owned(),
            pidns: v.get("pidns")?.as_u64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_back_into_their_parts() {
        let p = semaphore("ci", "db");
        let rest = |k: String| k[namespace("ci").len()..].to_owned();
        assert_eq!(part(&rest(meta(&p))), Some(Part::Meta("db")));
        let h = rest(holder(&p, 0x1a, 3));
        assert_eq!(part(&h), Some(Part::Holder("db", "000000000000001a")));
        let w = rest(waiter(&p, 0x1a, 4));
        assert_eq!(part(&w), Some(Part::Waiter("db", "000000000000001a")));
        assert_eq!(parse_member("000000000000001a"), Some(0x1a));
    }

    #[test]
    fn values_round_trip_and_foreign_holders_count_as_full() {
        let m = Meta {
            capacity: 3,
            persistent: false,
            idle_ms: 10,
            idle_since_ms: 0,
        };
        assert_eq!(Meta::decode(m.encode().as_bytes()), Some(m));
        let p = Party {
            weight: 2,
            pid: 7,
            host: "h".into(),
            since_ms: 9,
        };
        assert_eq!(Party::decode(p.encode().as_bytes()), p);
        assert_eq!(Party::decode(b"garbage").weight, u32::MAX);
        assert_eq!(Party::decode(b"{\"weight\":5}").weight, 5);
    }
}
