//! The per-process registry of mapped namespaces: each namespace is mapped once per process, by
//! segment path and, for the fast way in, by (scope, name).

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{Namespace, lock, tree};
use crate::{
    error::Result,
    scope::{Location, Scope},
    segment::Creation,
    sys,
};

/// Every namespace this process has mapped, by segment path.
static REGISTRY: Mutex<Option<HashMap<PathBuf, Arc<Namespace>>>> = Mutex::new(None);

/// This process's own namespaces by (scope, name): opening a semaphore in a namespace that is
/// already mapped touches no file.
static BY_NAME: Mutex<Option<HashMap<Scope, ByNamespace>>> = Mutex::new(None);

/// One scope's namespaces by name.
type ByNamespace = HashMap<String, Arc<Namespace>>;

/// How often an open of an already-mapped namespace checks that its segment still has a name.
const LINK_CHECK: Duration = Duration::from_millis(100);

impl Namespace {
    /// The namespace `namespace` of `scope` as this process resolves it, mapped once per process;
    /// created if `creation` is given.
    pub fn open_named(
        scope: Scope,
        namespace: &str,
        creation: Option<Creation>,
    ) -> Result<Option<Arc<Namespace>>> {
        if let Some(ns) = lock(&BY_NAME)
            .get_or_insert_with(HashMap::new)
            .get(&scope)
            .and_then(|names| names.get(namespace))
        {
            ns.check_linked_every(LINK_CHECK)?;
            return Ok(Some(ns.clone()));
        }
        let opened = Namespace::open(Location::resolve(scope, namespace)?, creation)?;
        if let Some(ns) = &opened {
            lock(&BY_NAME)
                .get_or_insert_with(HashMap::new)
                .entry(scope)
                .or_default()
                .insert(namespace.to_owned(), ns.clone());
        }
        Ok(opened)
    }

    /// The namespace at `loc`, mapped once per process, created if `creation` is given.
    pub fn open(loc: Location, creation: Option<Creation>) -> Result<Option<Arc<Namespace>>> {
        sys::install_fork_hook();
        // A forked child starts with no fast-path entry: it holds nothing of its parent's.
        sys::on_fork_child(super::fast::clear);
        let mut registry = lock(&REGISTRY);
        let map = registry.get_or_insert_with(HashMap::new);
        if let Some(ns) = map.get(&loc.segment) {
            ns.check_linked_every(LINK_CHECK)?;
            return Ok(Some(ns.clone()));
        }
        if loc.scope == Scope::Tree {
            tree::sweep_trees(loc.dir());
            tree::install_exit_hook();
        }
        let Some(ns) = Namespace::map(loc, creation)? else {
            return Ok(None);
        };
        map.insert(ns.loc.segment.clone(), ns.clone());
        Ok(Some(ns))
    }
}

/// Run `f` on every mapped namespace, unless another thread holds the registry (then on none):
/// for the exit hook, which must not wait.
pub(super) fn try_for_each(mut f: impl FnMut(&Namespace)) {
    let Ok(registry) = REGISTRY.try_lock() else {
        return;
    };
    for ns in registry.iter().flat_map(HashMap::values) {
        f(ns);
    }
}
