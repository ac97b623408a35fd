//! Processes as `/proc` shows them: who a process is (pid and start time), whether it still
//! runs, its uid, this process's uids and pid namespace, and the walk over every process.

use std::{fs, io};

use crate::sys::{Identity, Liveness};

/// Every process this one can see in `/proc`, as its pid and `/proc/PID` entry; `None` when
/// `/proc` cannot be read.
pub(super) fn processes() -> Option<impl Iterator<Item = (u32, fs::DirEntry)>> {
    Some(fs::read_dir("/proc").ok()?.flatten().filter_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        Some((pid, entry))
    }))
}

/// Parse field 22 (`starttime`) and field 3 (`state`) of a `/proc/PID/stat` line. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3; starttime is field 22, 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

fn read_stat(pid: u32) -> io::Result<Option<(char, u64)>> {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => Ok(parse_stat(&s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// This process.
pub fn current() -> Identity {
    let pid = std::process::id();
    let start_time = read_stat(pid).ok().flatten().map_or(0, |(_, t)| t);
    Identity { pid, start_time }
}

/// Who `pid` is now, or `None` if there is no such process.
pub fn identity(pid: u32) -> io::Result<Option<Identity>> {
    Ok(read_stat(pid)?.map(|(_, start_time)| Identity { pid, start_time }))
}

/// The real uid of process `pid`, or `None` if there is no such process.
pub fn process_uid(pid: u32) -> io::Result<Option<u32>> {
    let status = match fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no Uid line in /proc/{pid}/status")))?;
    Ok(Some(uid))
}

/// This process's effective uid: what the kernel checks its access with.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// This process's real user id.
pub fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// Whether the process recorded as `who` still runs. A zombie (exited, not yet waited for) is
/// dead; a stopped process is alive.
pub fn liveness(who: Identity) -> Liveness {
    match read_stat(who.pid) {
        Ok(Some((state, start))) if start == who.start_time && state != 'Z' && state != 'X' => {
            Liveness::Alive
        }
        Ok(_) => Liveness::Dead,
        // Unreadable (permissions, hidepid): unknown counts as alive, never as dead.
        Err(_) => Liveness::Alive,
    }
}

/// Inode of this process's pid namespace, or 0 when it cannot be read.
pub fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let line = "42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 98765)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_identity_is_alive_and_a_wrong_start_time_is_dead() {
        let me = current();
        assert!(me.start_time > 0);
        assert_eq!(liveness(me), Liveness::Alive);
        let impostor = Identity {
            start_time: me.start_time + 1,
            ..me
        };
        assert_eq!(liveness(impostor), Liveness::Dead);
    }

    #[test]
    fn the_process_walk_sees_this_process() {
        let me = std::process::id();
        let seen = processes().expect("/proc is readable");
        assert!(seen.map(|(pid, _)| pid).any(|pid| pid == me));
    }
}
