//! Snapshots of a semaphore, for `info`, `ls` and `show`.

use crate::{holders, scope::Scope};

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
}
