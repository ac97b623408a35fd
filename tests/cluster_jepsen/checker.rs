//! The checker of a cluster-scope history: no etcd here, only what was recorded.
//!
//! 1. **Capacity.** It replays the puts and deletes of holder keys
//!    (`/shmsem/<ns>/<name>/h/<member>/<permit>`, as a watch from revision 1 with `prev_kv`
//!    delivers them) in revision order, and after the last event of every revision asserts that
//!    the weights of the semaphore's live holder keys add up to at most its capacity. A holder
//!    key's value is the weight as decimal text, or JSON with a `weight` field (the library's
//!    encoding). A delete of a key the replay does not hold, or a value without a weight, is a
//!    violation too: the history would be incomplete or unreadable.
//! 2. **Beliefs.** Each client logs when it believed it held a permit, with the permit's token
//!    (the create revision of its holder key): when it got it and every time `check()` said
//!    `Ok` (the time is taken *before* the call, so an `Ok` covers it). Watches during the test
//!    stamp the time each holder key's deletion was first received (`CLOCK_MONOTONIC`, the same
//!    clock the clients use). A belief at time `t` in token `T`, whose holder key `K` was
//!    deleted and the deletion received at `D`, is a violation if `t > D + slack`, unless `T`
//!    was *superseded* at `t`.
//!
//! **Superseded.** Token `T` of key `K` is superseded at time `t` when the same key `K` was
//! created again at a later revision `T' > T` and that incarnation had not been seen deleted by
//! `t − slack`: the client does hold `K` at `t`, only under a later token, and a resource that
//! checks tokens refuses `T` (it has seen `T'`). A belief in a token no holder key was ever
//! created with, or a belief after the client itself logged the token lost or released, is
//! always a violation.

use std::collections::{BTreeMap, HashMap};

/// One event of the history of holder keys, as a watch with `prev_kv` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The revision of the transaction that made the change.
    pub revision: i64,
    pub key: String,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key was written: its value and create revision (the token when it is new).
    Put { value: String, create_revision: i64 },
    /// The key was deleted (released, or its lease expired or was revoked).
    Delete,
}

/// When a watch of the test first received the deletion of one incarnation of a holder key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// The deleted incarnation's create revision: its token.
    pub token: i64,
    /// `CLOCK_MONOTONIC` nanoseconds at receipt.
    pub at_ns: u64,
}

/// What a client logged about one permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// It believed it held the permit with this token at this time (acquired, or `check()` Ok).
    Held,
    /// `check()` said the permit was lost.
    Lost,
    /// It released the permit.
    Released,
}

/// One line of a client's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Belief {
    pub client: String,
    pub token: i64,
    pub at_ns: u64,
    pub step: Step,
}

/// What the checker found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Revisions replayed (that touched holder keys).
    pub revisions: usize,
    pub puts: usize,
    pub deletes: usize,
    /// The largest total weight held on each semaphore at any revision.
    pub peak: BTreeMap<String, u64>,
    /// Beliefs checked, and those excused because their token was superseded.
    pub beliefs: usize,
    pub superseded: usize,
    pub violations: Vec<String>,
}

/// The semaphore prefix (`/shmsem/<ns>/<name>/`) of a holder key, or `None` if `key` is not
/// one.
pub fn holder_semaphore(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("/shmsem/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() != 5 || parts[2] != "h" || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let len = "/shmsem/".len() + parts[0].len() + parts[1].len() + 2;
    Some(&key[..len])
}

/// The weight in a holder key's value: decimal text, or JSON with a `weight` field.
pub fn weight(value: &str) -> Option<u64> {
    if let Ok(w) = value.trim().parse() {
        return Some(w);
    }
    serde_json::from_str::<serde_json::Value>(value).ok()?["weight"].as_u64()
}

/// Replay `events` (in the order etcd gave them) against `capacity` (per semaphore prefix).
pub fn check_capacity(events: &[Event], capacity: &HashMap<String, u64>, v: &mut Verdict) {
    let mut live: HashMap<&str, (&str, u64)> = HashMap::new();
    let mut held: HashMap<&str, u64> = HashMap::new();
    let mut i = 0;
    let mut last_rev = 0;
    while i < events.len() {
        let rev = events[i].revision;
        if rev < last_rev {
            v.violations
                .push(format!("revision {rev} comes after revision {last_rev}"));
        }
        last_rev = rev;
        let mut touched = Vec::new();
        while i < events.len() && events[i].revision == rev {
            let e = &events[i];
            i += 1;
            let Some(sem) = holder_semaphore(&e.key) else {
                continue;
            };
            touched.push(sem);
            let before = live.get(e.key.as_str()).map_or(0, |&(_, w)| w);
            match &e.change {
                Change::Put { value, .. } => {
                    v.puts += 1;
                    let Some(w) = weight(value) else {
                        v.violations.push(format!(
                            "revision {rev}: {} has no weight: {value:?}",
                            e.key
                        ));
                        continue;
                    };
                    live.insert(&e.key, (sem, w));
                    *held.entry(sem).or_default() += w;
                    *held.entry(sem).or_default() -= before;
                }
                Change::Delete => {
                    v.deletes += 1;
                    if live.remove(e.key.as_str()).is_none() {
                        v.violations.push(format!(
                            "revision {rev}: {} deleted but never put: the history is incomplete",
                            e.key
                        ));
                    }
                    *held.entry(sem).or_default() -= before;
                }
            }
        }
        if touched.is_empty() {
            continue;
        }
        v.revisions += 1;
        touched.sort();
        touched.dedup();
        for sem in touched {
            let total = held.get(sem).copied().unwrap_or(0);
            let peak = v.peak.entry(sem.to_owned()).or_default();
            *peak = (*peak).max(total);
            match capacity.get(sem) {
                None => v.violations.push(format!(
                    "revision {rev}: holders on {sem}, a semaphore not under test"
                )),
                Some(&cap) if total > cap => {
                    let mut keys: Vec<String> = live
                        .iter()
                        .filter(|(_, (s, _))| *s == sem)
                        .map(|(k, (_, w))| format!("{k}={w}"))
                        .collect();
                    keys.sort();
                    v.violations.push(format!(
                        "revision {rev}: {sem} holds {total} > capacity {cap}: {}",
                        keys.join(", ")
                    ));
                }
                Some(_) => {}
            }
        }
    }
}

/// Check every belief against the deletions seen (`seen`, per holder key) and the history.
pub fn check_beliefs(
    events: &[Event],
    seen: &HashMap<String, Vec<Seen>>,
    beliefs: &[Belief],
    slack_ns: u64,
    v: &mut Verdict,
) {
    // Token → key, and key → its tokens in order.
    let mut key_of: HashMap<i64, &str> = HashMap::new();
    let mut tokens: HashMap<&str, Vec<i64>> = HashMap::new();
    for e in events {
        if let Change::Put {
            create_revision, ..
        } = e.change
            && holder_semaphore(&e.key).is_some()
            && key_of.insert(create_revision, &e.key).is_none()
        {
            tokens.entry(&e.key).or_default().push(create_revision);
        }
    }
    let deleted_at = |key: &str, token: i64| {
        seen.get(key)
            .and_then(|s| s.iter().filter(|s| s.token == token).map(|s| s.at_ns).min())
    };
    // Tokens each client has logged lost or released, and when.
    let mut ended: HashMap<(&str, i64), (u64, Step)> = HashMap::new();
    for b in beliefs.iter().filter(|b| b.step != Step::Held) {
        let e = ended
            .entry((&b.client, b.token))
            .or_insert((b.at_ns, b.step));
        if b.at_ns < e.0 {
            *e = (b.at_ns, b.step);
        }
    }
    for b in beliefs.iter().filter(|b| b.step == Step::Held) {
        v.beliefs += 1;
        let who = format!("client {} at {} ns, token {}", b.client, b.at_ns, b.token);
        if let Some(&(t, step)) = ended.get(&(b.client.as_str(), b.token))
            && t < b.at_ns
        {
            v.violations.push(format!(
                "{who}: believed it held after it logged {step:?} at {t} ns"
            ));
            continue;
        }
        let Some(&key) = key_of.get(&b.token) else {
            v.violations.push(format!(
                "{who}: no holder key was ever created with this token"
            ));
            continue;
        };
        let Some(d) = deleted_at(key, b.token) else {
            continue; // never seen deleted: held until the end
        };
        if b.at_ns <= d + slack_ns {
            continue;
        }
        let later = tokens[key]
            .iter()
            .filter(|&&t| t > b.token)
            .any(|&t| deleted_at(key, t).is_none_or(|d2| b.at_ns <= d2 + slack_ns));
        if later {
            v.superseded += 1;
        } else {
            v.violations.push(format!(
                "{who}: believed it held {key} {} ms after its deletion was seen",
                (b.at_ns - d) / 1_000_000
            ));
        }
    }
}

/// Parse a client's log: lines `<ns> held|lost|released <token> …`; other lines (other steps,
/// such as `start` and `failed`) are ignored.
pub fn parse_log(client: &str, text: &str) -> Vec<Belief> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let at_ns = f.next()?.parse().ok()?;
            let step = match f.next()? {
                "held" => Step::Held,
                "lost" => Step::Lost,
                "released" => Step::Released,
                _ => return None,
            };
            let token = f.next()?.parse().ok()?;
            Some(Belief {
                client: client.to_owned(),
                token,
                at_ns,
                step,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "/shmsem/ns/s/";
    const SEC: u64 = 1_000_000_000;

    fn put(revision: i64, key: &str, value: &str) -> Event {
        put_again(revision, key, value, revision)
    }

    fn put_again(revision: i64, key: &str, value: &str, create_revision: i64) -> Event {
        Event {
            revision,
            key: key.to_owned(),
            change: Change::Put {
                value: value.to_owned(),
                create_revision,
            },
        }
    }

    fn del(revision: i64, key: &str) -> Event {
        Event {
            revision,
            key: key.to_owned(),
            change: Change::Delete,
        }
    }

    fn cap4() -> HashMap<String, u64> {
        HashMap::from([(S.to_owned(), 4)])
    }

    fn capacity(events: &[Event]) -> Verdict {
        let mut v = Verdict::default();
        check_capacity(events, &cap4(), &mut v);
        v
    }

    fn held(client: &str, token: i64, at_ns: u64) -> Belief {
        Belief {
            client: client.to_owned(),
            token,
            at_ns,
            step: Step::Held,
        }
    }

    #[test]
    fn holder_keys_and_weights_are_recognised() {
        assert_eq!(holder_semaphore("/shmsem/ns/s/h/00ab/1"), Some(S));
        assert_eq!(holder_semaphore("/shmsem/ns/s/w/00ab/1"), None);
        assert_eq!(holder_semaphore("/shmsem/ns/s/meta"), None);
        assert_eq!(holder_semaphore("/shmsem/members/00ab"), None);
        assert_eq!(holder_semaphore("/shmsem/ns/s/h/00ab/1/x"), None);
        assert_eq!(weight("3"), Some(3));
        assert_eq!(weight(r#"{"weight":2,"pid":7,"host":"h"}"#), Some(2));
        assert_eq!(weight(r#"{"pid":7}"#), None);
    }

    #[test]
    fn a_history_within_capacity_passes() {
        let events = [
            put(2, "/shmsem/ns/s/meta", r#"{"capacity":4}"#),
            put(3, "/shmsem/ns/s/h/a/1", r#"{"weight":3}"#),
            put(4, "/shmsem/ns/s/w/b/1", r#"{"weight":2}"#),
            put(5, "/shmsem/ns/s/h/c/1", "1"),
            del(6, "/shmsem/ns/s/h/a/1"),
            // One transaction: the waiter becomes a holder.
            put(7, "/shmsem/ns/s/h/b/1", r#"{"weight":2}"#),
            del(7, "/shmsem/ns/s/w/b/1"),
            del(8, "/shmsem/ns/s/h/c/1"),
        ];
        let v = capacity(&events);
        assert_eq!(v.violations, Vec::<String>::new());
        assert_eq!(v.peak[S], 4);
        assert_eq!((v.puts, v.deletes, v.revisions), (3, 2, 5));
    }

    #[test]
    fn a_release_and_a_grant_in_one_revision_is_judged_after_both() {
        let events = [
            put(3, "/shmsem/ns/s/h/a/1", "4"),
            del(4, "/shmsem/ns/s/h/a/1"),
            put(4, "/shmsem/ns/s/h/b/1", "4"),
        ];
        assert_eq!(capacity(&events).violations, Vec::<String>::new());
    }

    #[test]
    fn an_over_grant_is_flagged_at_its_revision() {
        let events = [
            put(3, "/shmsem/ns/s/h/a/1", "3"),
            put(4, "/shmsem/ns/s/h/b/1", r#"{"weight":2}"#),
            del(5, "/shmsem/ns/s/h/a/1"),
        ];
        let v = capacity(&events);
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(
            v.violations[0].starts_with("revision 4:"),
            "{:?}",
            v.violations
        );
        assert!(v.violations[0].contains("holds 5 > capacity 4"));
        assert_eq!(v.peak[S], 5);
    }

    #[test]
    fn an_incomplete_or_unreadable_history_is_flagged() {
        let v = capacity(&[del(3, "/shmsem/ns/s/h/a/1")]);
        assert!(v.violations[0].contains("never put"), "{:?}", v.violations);
        let v = capacity(&[put(3, "/shmsem/ns/s/h/a/1", "many")]);
        assert!(v.violations[0].contains("no weight"), "{:?}", v.violations);
        let v = capacity(&[put(3, "/shmsem/ns/other/h/a/1", "1")]);
        assert!(
            v.violations[0].contains("not under test"),
            "{:?}",
            v.violations
        );
    }

    #[test]
    fn a_belief_past_a_lapsed_lease_is_flagged() {
        let k = "/shmsem/ns/s/h/a/1";
        let events = [put(3, k, "1"), del(9, k)];
        let seen = HashMap::from([(
            k.to_owned(),
            vec![Seen {
                token: 3,
                at_ns: 10 * SEC,
            }],
        )]);
        let beliefs = [
            held("c1", 3, 5 * SEC),
            held("c1", 3, 10 * SEC + SEC / 10), // within the slack
            held("c1", 3, 12 * SEC),            // past it
        ];
        let mut v = Verdict::default();
        check_beliefs(&events, &seen, &beliefs, SEC / 4, &mut v);
        assert_eq!(v.beliefs, 3);
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].contains("client c1 at 12000000000 ns, token 3"));
        assert!(v.violations[0].contains("2000 ms after its deletion"));
    }

    #[test]
    fn a_belief_in_a_superseded_token_is_excused() {
        let k = "/shmsem/ns/s/h/a/1";
        // The key lapsed at revision 5 and was created again at revision 7 (token 7).
        let events = [put(3, k, "1"), del(5, k), put(7, k, "1")];
        let seen = HashMap::from([(
            k.to_owned(),
            vec![Seen {
                token: 3,
                at_ns: 10 * SEC,
            }],
        )]);
        let mut v = Verdict::default();
        check_beliefs(&events, &seen, &[held("c1", 3, 12 * SEC)], SEC / 4, &mut v);
        assert_eq!(v.violations, Vec::<String>::new());
        assert_eq!(v.superseded, 1);
        // Once the later incarnation is gone too, the old token excuses nothing.
        let events = [put(3, k, "1"), del(5, k), put(7, k, "1"), del(8, k)];
        let seen = HashMap::from([(
            k.to_owned(),
            vec![
                Seen {
                    token: 3,
                    at_ns: 10 * SEC,
                },
                Seen {
                    token: 7,
                    at_ns: 11 * SEC,
                },
            ],
        )]);
        let mut v = Verdict::default();
        check_beliefs(&events, &seen, &[held("c1", 3, 12 * SEC)], SEC / 4, &mut v);
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert_eq!(v.superseded, 0);
    }

    #[test]
    fn a_belief_after_lost_or_in_an_unknown_token_is_flagged() {
        let k = "/shmsem/ns/s/h/a/1";
        let events = [put(3, k, "1")];
        let log = "90 start 0 1\n100 held 3 1\n200 lost 3 1\n300 held 3\n400 held 42\nnoise\n";
        let beliefs = parse_log("c2", log);
        assert_eq!(beliefs.len(), 4);
        assert_eq!(beliefs[1].step, Step::Lost);
        let mut v = Verdict::default();
        check_beliefs(&events, &HashMap::new(), &beliefs, 0, &mut v);
        assert_eq!(v.violations.len(), 2, "{:?}", v.violations);
        assert!(v.violations[0].contains("after it logged Lost"));
        assert!(v.violations[1].contains("no holder key was ever created"));
    }
}
