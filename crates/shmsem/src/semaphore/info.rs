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
    /// Weight held now: the sum of the holders' weights, not what is free. What an acquire could
    /// still get is [`Info::available`] (`capacity - value`, or 0 while a lowered capacity is
    /// below the value).
    pub value: u32,
    /// Processes holding weight.
    pub holders: Vec<holders::Party>,
    /// Processes waiting for weight.
    pub waiters: Vec<holders::Party>,
    /// Who owns the namespace's files, and their mode.
    pub owner: Owner,
}

impl Info {
    /// The weight not held at the moment of the snapshot: `capacity - value`, or 0 when the
    /// value is above a capacity lowered at run time. Like tokio's `available_permits`, it is
    /// only a snapshot: an acquire may still have to wait (another process may take it first, or
    /// a waiter for more weight may have reserved it).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-avail-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// use shmsem::{Scope, Semaphore};
    ///
    /// let sem = Semaphore::options().scope(Scope::Local).capacity(3).open("pool")?;
    /// let _held = sem.acquire_weight(2)?;
    /// let info = sem.info()?;
    /// assert_eq!((info.capacity, info.value, info.available()), (3, 2, 1));
    ///
    /// sem.set_capacity(1)?; // below what is held: nothing is available
    /// assert_eq!(sem.info()?.available(), 0);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn available(&self) -> u32 {
        self.capacity.saturating_sub(self.value)
    }
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
