//! Text and JSON rendering of semaphores, reclaimed holders and `ps` activity, and writing to
//! stdout.

use std::{
    io::{self, Write},
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};
use shmsem::{Activity, Info, Kind, Owner, Party, Reclaimed};

/// Write `text` to stdout. A closed pipe (`shmsem ls | head -1`) is not an error.
pub fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing to standard output"))
        }
        _ => Ok(()),
    }
}

/// One JSON document, pretty-printed, with a final newline.
pub fn emit_json(value: &Value) -> anyhow::Result<()> {
    emit(&format!("{value:#}\n"))
}

/// The `ls` object of one semaphore: `holders` and `waiters` are counts.
pub fn summary_json(info: &Info) -> Value {
    let mut v = base_json(info);
    v["holders"] = json!(info.holders.len());
    v["waiters"] = json!(info.waiters.len());
    v
}

/// The `show` object of one semaphore: `holders` and `waiters` are arrays of parties.
pub fn detail_json(info: &Info) -> Value {
    let mut v = base_json(info);
    v["holders"] = parties_json(&info.holders);
    v["waiters"] = parties_json(&info.waiters);
    v
}

fn base_json(info: &Info) -> Value {
    json!({
        "name": info.name,
        "scope": info.scope.as_str(),
        "namespace": info.namespace,
        "kind": info.kind.as_str(),
        "idle_ms": match info.kind {
            Kind::Auto => json!(info.idle_ms),
            Kind::Persistent => Value::Null,
        },
        "capacity": info.capacity,
        "value": info.value,
        "owner": user_of(&info.owner),
        "group": group_of(&info.owner),
        "uid": info.owner.uid,
        "gid": info.owner.gid,
        "mode": mode_of(&info.owner),
    })
}

/// The owning user's name, or its uid when it has none.
fn user_of(owner: &Owner) -> String {
    owner.user.clone().unwrap_or_else(|| owner.uid.to_string())
}

/// The owning group's name, or its gid when it has none.
fn group_of(owner: &Owner) -> String {
    owner.group.clone().unwrap_or_else(|| owner.gid.to_string())
}

/// The mode in octal, as `chmod` takes it: `0660`.
fn mode_of(owner: &Owner) -> String {
    format!("{:04o}", owner.mode)
}

/// The `ls` owner cell: `user:group mode`, as in `root:shm 0660`.
pub fn owner_cell(owner: &Owner) -> String {
    format!("{}:{} {}", user_of(owner), group_of(owner), mode_of(owner))
}

fn parties_json(parties: &[Party]) -> Value {
    parties
        .iter()
        .map(|p| {
            let mut v = json!({ "pid": p.pid, "weight": p.weight, "since_ms": p.since_ms });
            // The cluster scope's holders also say where they run and their fencing token.
            if let Some(host) = &p.host {
                v["host"] = json!(host);
            }
            if let Some(token) = p.token {
                v["token"] = json!(token);
            }
            v
        })
        .collect()
}

/// The `reap` array.
pub fn reclaimed_json(scope: shmsem::Scope, namespace: &str, reclaimed: &[Reclaimed]) -> Value {
    reclaimed
        .iter()
        .map(|r| {
            json!({
                "scope": scope.as_str(),
                "namespace": namespace,
                "semaphore": r.semaphore,
                "pid": r.pid,
                "weight": r.weight,
            })
        })
        .collect()
}

/// A table: each column padded to its widest cell, header included, the last column unpadded.
/// The header line itself is printed only if `show_header` (`create` prints the row alone, laid
/// out as in `ls`).
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]], show_header: bool) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push('\n');
    };
    if show_header {
        line(&header.map(str::to_owned));
    }
    for row in rows {
        line(row);
    }
    out
}

/// The `ls` header.
pub const LS_HEADER: [&str; 7] = [
    "NAME", "KIND", "CAPACITY", "VALUE", "HOLDERS", "WAITERS", "OWNER",
];

/// One `ls` row.
pub fn ls_row(info: &Info) -> [String; 7] {
    [
        info.name.clone(),
        info.kind.as_str().to_owned(),
        info.capacity.to_string(),
        info.value.to_string(),
        info.holders.len().to_string(),
        info.waiters.len().to_string(),
        owner_cell(&info.owner),
    ]
}

/// `show`'s text: one field a line, then the holders and waiters as tables.
pub fn detail_text(info: &Info) -> String {
    let kind = match info.kind {
        Kind::Auto => format!("auto (deleted after {} ms idle)", info.idle_ms),
        Kind::Persistent => "persistent".to_owned(),
    };
    let mut out = format!(
        "name:       {}\nscope:      {}\nnamespace:  {}\nkind:       {kind}\n\
         capacity:   {}\nvalue:      {} ({} available)\nowner:      {}\n",
        info.name,
        info.scope,
        info.namespace,
        info.capacity,
        info.value,
        info.capacity.saturating_sub(info.value),
        owner_cell(&info.owner),
    );
    for (title, parties) in [("holders", &info.holders), ("waiters", &info.waiters)] {
        if parties.is_empty() {
            out.push_str(&format!("{title}:    none\n"));
            continue;
        }
        out.push_str(&format!("{title}:\n"));
        let now = now_ms();
        let lines = if parties.iter().any(|p| p.host.is_some()) {
            // The cluster scope: where each holder runs, and its fencing token.
            let rows: Vec<[String; 5]> = parties
                .iter()
                .map(|p| {
                    [
                        p.host.clone().unwrap_or_default(),
                        p.pid.to_string(),
                        p.weight.to_string(),
                        age(now, p.since_ms),
                        p.token.map_or_else(|| "-".to_owned(), |t| t.to_string()),
                    ]
                })
                .collect();
            table(["HOST", "PID", "WEIGHT", "SINCE", "TOKEN"], &rows, true)
        } else {
            let rows: Vec<[String; 3]> = parties
                .iter()
                .map(|p| {
                    [
                        p.pid.to_string(),
                        p.weight.to_string(),
                        age(now, p.since_ms),
                    ]
                })
                .collect();
            table(["PID", "WEIGHT", "SINCE"], &rows, true)
        };
        for line in lines.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// How long ago `since_ms` (wall-clock ms since the epoch) was, for people.
pub fn age(now_ms: u64, since_ms: u64) -> String {
    if since_ms == 0 {
        return "-".to_owned();
    }
    let ms = now_ms.saturating_sub(since_ms);
    match ms {
        0..1_000 => format!("{ms} ms ago"),
        1_000..120_000 => format!("{:.1} s ago", ms as f64 / 1e3),
        120_000..7_200_000 => format!("{} min ago", ms / 60_000),
        _ => format!("{} h ago", ms / 3_600_000),
    }
}

/// Wall-clock milliseconds since the epoch, as `since_ms` counts them.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `reap`'s text.
pub fn reclaimed_text(reclaimed: &[Reclaimed]) -> String {
    if reclaimed.is_empty() {
        return String::new();
    }
    let rows: Vec<[String; 3]> = reclaimed
        .iter()
        .map(|r| [r.semaphore.clone(), r.pid.to_string(), r.weight.to_string()])
        .collect();
    table(["SEMAPHORE", "PID", "WEIGHT"], &rows, true)
}

/// The `ps` array.
pub fn activity_json(activity: &[Activity]) -> Value {
    activity
        .iter()
        .map(|a| {
            json!({
                "scope": a.scope.as_str(),
                "namespace": a.namespace,
                "name": a.name,
                "weight": a.weight,
                "state": a.state.as_str(),
            })
        })
        .collect()
}

/// `ps`'s text: a table, or nothing when the process holds and waits for nothing.
pub fn activity_text(activity: &[Activity]) -> String {
    if activity.is_empty() {
        return String::new();
    }
    let rows: Vec<[String; 5]> = activity
        .iter()
        .map(|a| {
            [
                a.scope.as_str().to_owned(),
                a.namespace.clone(),
                a.name.clone(),
                a.weight.to_string(),
                a.state.as_str().to_owned(),
            ]
        })
        .collect();
    table(
        ["SCOPE", "NAMESPACE", "NAME", "WEIGHT", "STATE"],
        &rows,
        true,
    )
}

/// `s` with every character that `replace` names replaced by its text, for the escapings of
/// the formats the command writes (OpenMetrics label values, HTML).
pub fn escape_with(s: &str, replace: impl Fn(char) -> Option<&'static str>) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match replace(c) {
            Some(r) => out.push_str(r),
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_do_not_pad_the_last_column() {
        let rows = [
            ["long-name".to_owned(), "1".to_owned()],
            ["x".to_owned(), "22".to_owned()],
        ];
        assert_eq!(
            table(["A", "B"], &rows, true),
            "A          B\nlong-name  1\nx          22\n"
        );
        let one = [["x".to_owned(), "1".to_owned()]];
        assert_eq!(table(["NAME", "B"], &one, false), "x     1\n");
    }

    #[test]
    fn owners_read_as_user_group_and_octal_mode() {
        let mut owner = Owner {
            uid: 0,
            gid: 4242,
            user: Some("root".to_owned()),
            group: None,
            mode: 0o660,
        };
        assert_eq!(owner_cell(&owner), "root:4242 0660");
        owner.group = Some("shm".to_owned());
        owner.mode = 0o6;
        assert_eq!(owner_cell(&owner), "root:shm 0006");
    }

    #[test]
    fn ps_rows_and_objects() {
        let activity = [
            Activity {
                scope: shmsem::Scope::Global,
                namespace: "ci".to_owned(),
                name: "builds".to_owned(),
                weight: 2,
                state: shmsem::State::Held,
            },
            Activity {
                scope: shmsem::Scope::Local,
                namespace: "default".to_owned(),
                name: "gpu".to_owned(),
                weight: 4,
                state: shmsem::State::Waiting,
            },
        ];
        assert_eq!(
            activity_text(&activity),
            "SCOPE   NAMESPACE  NAME    WEIGHT  STATE\n\
             global  ci         builds  2       held\n\
             local   default    gpu     4       waiting\n"
        );
        assert_eq!(activity_text(&[]), "");
        assert_eq!(
            activity_json(&activity)[1],
            json!({"scope": "local", "namespace": "default", "name": "gpu", "weight": 4,
                   "state": "waiting"})
        );
    }

    #[test]
    fn ages_read_well() {
        assert_eq!(age(10_000, 0), "-");
        assert_eq!(age(10_000, 9_500), "500 ms ago");
        assert_eq!(age(10_000, 7_500), "2.5 s ago");
        assert_eq!(age(1_000_000, 100_000), "15 min ago");
    }
}
