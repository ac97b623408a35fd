//! Snapshots of a semaphore, for `info`, `ls` and `show`.

use std::{fs::File, os::unix::fs::MetadataExt};

use crate::{holders, scope::Scope, sys};

/// Auto or persistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Removed after its idle period without holders or waiters.
    Auto,
    /// Stays until removed.
    Persistent,
}

impl Kind {
    /// `auto` or `persistent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Auto => "auto",
            Kind::Persistent => "persistent",
        }
    }
}

/// A snapshot of a semaphore.
#[derive(Debug, Clone)]
pub struct Info {
    /// Name.
    pub name: String,
    /// Scope.
    pub scope: Scope,
    /// Namespace.
    pub namespace: String,
    /// Auto or persistent.
    pub kind: Kind,
    /// Idle period of an auto semaphore, ms.
    pub idle_ms: u32,
    /// Most weight that may be held at once.
    pub capacity: u32,
    /// Weight held now.
    pub value: u32,
    /// Processes holding weight.
    pub holders: Vec<holders::Party>,
    /// Processes waiting for weight.
    pub waiters: Vec<holders::Party>,
    /// Who owns the namespace's files, and their mode.
    pub owner: Owner,
}

/// The owner, group and mode of a namespace's files: what the OS checks when a process opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Owning user id.
    pub uid: u32,
    /// Owning group id.
    pub gid: u32,
    /// Its user name, if it has one.
    pub user: Option<String>,
    /// Its group name, if it has one.
    pub group: Option<String>,
    /// Permission bits (e.g. `0o660`).
    pub mode: u32,
}

impl Owner {
    pub(super) fn of(file: &File) -> Owner {
        let (uid, gid, mode) = file.metadata().map_or((u32::MAX, u32::MAX, 0), |m| {
            (m.uid(), m.gid(), m.mode() & 0o777)
        });
        Owner {
            uid,
            gid,
            user: sys::user_name(uid),
            group: sys::group_name(gid),
            mode,
        }
    }
}
