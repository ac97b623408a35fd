//! `ps`: what one process holds or waits for, in every scope this process can see.

use crate::{
    error::Result,
    holders,
    namespace::Namespace,
    scope::{Location, Scope},
    table,
};

/// Holding or waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The process holds the weight.
    Held,
    /// The process is blocked waiting for the weight.
    Waiting,
}

impl State {
    /// `held` or `waiting`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Held => "held",
            State::Waiting => "waiting",
        }
    }
}

/// One semaphore a process holds or waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// Scope of the semaphore.
    pub scope: Scope,
    /// Namespace of the semaphore.
    pub namespace: String,
    /// Name of the semaphore.
    pub name: String,
    /// Weight held, or waited for.
    pub weight: u64,
    /// Held or waiting.
    pub state: State,
}

/// Everything process `pid` holds or waits for, in every namespace of every scope this process
/// can open, sorted by scope, namespace and name. What cannot be read as a namespace is
/// skipped: files it may not open, files that are not segments of this version (for example
/// the `.lock` files an older layout left beside its segments, or a directory another user made
/// under a namespace's name), and namespaces that cannot take this process in (a full process
/// table, a lock held past its patience), so that nobody can break everyone's `ps` from a
/// namespace of their own.
///
/// # Examples
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("shmsem-doc-ps-{}", std::process::id()));
/// # // SAFETY: set before this example starts any thread.
/// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
/// let sem = shmsem::Semaphore::options().capacity(3).open("jobs")?;
/// let _two = sem.acquire_weight(2)?;
/// let mine = shmsem::ps(std::process::id())?;
/// assert_eq!(mine.len(), 1);
/// assert_eq!((mine[0].name.as_str(), mine[0].weight), ("jobs", 2));
/// # Ok::<(), shmsem::Error>(())
/// ```
pub fn ps(pid: u32) -> Result<Vec<Activity>> {
    let mut out = Vec::new();
    for loc in Location::all()? {
        let (scope, namespace) = (loc.scope, loc.namespace.clone());
        let ns = match Namespace::open(loc, None) {
            Ok(Some(ns)) => ns,
            // Whatever one namespace does (refused, not a segment, full, locked by its users),
            // it says nothing about the others.
            Ok(None) | Err(_) => continue,
        };
        for (found, (held, waiting)) in holders::activity_of(&ns.seg, pid) {
            let Some(name) = ns.seg.sem(found.index).and_then(table::name_of) else {
                continue;
            };
            if !ns
                .seg
                .sem(found.index)
                .is_some_and(|r| table::is_current(r, found.generation))
            {
                continue;
            }
            let entry = |weight: u64, state| Activity {
                scope,
                namespace: namespace.clone(),
                name: name.clone(),
                weight,
                state,
            };
            if held > 0 {
                out.push(entry(held as u64, State::Held));
            }
            out.extend(waiting.into_iter().map(|w| entry(w.into(), State::Waiting)));
        }
    }
    out.sort_by(|a, b| {
        (a.scope.as_str(), &a.namespace, &a.name).cmp(&(b.scope.as_str(), &b.namespace, &b.name))
    });
    Ok(out)
}
