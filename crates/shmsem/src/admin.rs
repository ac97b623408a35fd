//! The public handle for the operations that concern a whole namespace rather than one
//! semaphore: listing its semaphores, reaping what dead holders left, and granting a group access.

use std::sync::{Arc, atomic::Ordering::Acquire};

use crate::{
    error::{Error, Result},
    holders::Reclaimed,
    namespace::Namespace as Mapped,
    scope::{DEFAULT_NAMESPACE, Location, Scope, Tree, validate_name},
    semaphore::{Counters, Info, Options, Semaphore},
    table,
};

/// A namespace of a scope: the set of semaphores that share one segment, for the operations that
/// concern all of them.
///
/// Making a handle opens and creates nothing: each operation looks the namespace up (mapping it
/// once per process), and one that does not exist yet lists no semaphores and has nothing to
/// reap. A semaphore is opened with [`Semaphore::options`]; [`Options::to_namespace`] gives the
/// handle of the namespace those options open in.
///
/// None of these operations waits for the namespace's table lock: the idle sweep they run skips
/// a round when another process holds it, and reaping waits for a stopped process only as long
/// as each reclaim's own bound allows, so a stopped or hostile lock holder cannot hang them.
///
/// [`Options::to_namespace`]: crate::Options::to_namespace
///
/// # Examples
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("shmsem-doc-ns-{}", std::process::id()));
/// # // SAFETY: set before this example starts any thread.
/// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
/// use shmsem::{Namespace, Scope, Semaphore};
///
/// let ci = Namespace::new(Scope::Local, "ci")?;
/// assert!(ci.list()?.is_empty());
///
/// let _sem = Semaphore::options().namespace("ci").persistent().open("deploy")?;
/// let names: Vec<String> = ci.list()?.into_iter().map(|info| info.name).collect();
/// assert_eq!(names, ["deploy"]);
/// # Ok::<(), shmsem::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    scope: Scope,
    name: String,
    /// The etcd endpoints of a [`Scope::Cluster`] namespace, when not from `SHMSEM_CLUSTER`.
    cluster: Option<Vec<String>>,
}

impl Default for Namespace {
    /// The namespace `default` of [`Scope::Local`], where semaphore options open by default.
    fn default() -> Self {
        Namespace {
            scope: Scope::Local,
            name: DEFAULT_NAMESPACE.to_owned(),
            cluster: None,
        }
    }
}

impl Namespace {
    /// The namespace `name` of `scope`. Fails with [`Error::InvalidName`] when `name` breaks
    /// the naming rule of [`validate_name`]; touches no file.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmsem::{Error, Namespace, Scope};
    ///
    /// let ns = Namespace::new(Scope::Global, "builds")?;
    /// assert_eq!((ns.scope(), ns.name()), (Scope::Global, "builds"));
    /// assert!(matches!(
    ///     Namespace::new(Scope::Local, "../etc"),
    ///     Err(Error::InvalidName { .. })
    /// ));
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn new(scope: Scope, name: impl Into<String>) -> Result<Namespace> {
        let name = name.into();
        validate_name(&name)?;
        Ok(Namespace {
            scope,
            name,
            cluster: None,
        })
    }

    /// The same namespace on the etcd cluster at `endpoints` (for [`Scope::Cluster`]; see
    /// [`Options::cluster`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmsem::{Namespace, Scope};
    ///
    /// let ns = Namespace::new(Scope::Cluster, "ci")?.with_cluster(["http://127.0.0.1:2379"]);
    /// assert_eq!(ns.scope(), Scope::Cluster);
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn with_cluster(mut self, endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.cluster = Some(endpoints.into_iter().map(Into::into).collect());
        self
    }

    /// The scope the namespace belongs to.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shmsem::Namespace::default().scope(), shmsem::Scope::Local);
    /// ```
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The namespace's name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(shmsem::Namespace::default().name(), shmsem::DEFAULT_NAMESPACE);
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every semaphore in the namespace, sorted by name. A namespace that does not exist has
    /// none. Auto semaphores past their idle period are removed first.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-nsls-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// use shmsem::{Namespace, Scope, Semaphore};
    ///
    /// let opts = Semaphore::options().namespace("pools").capacity(4).persistent();
    /// let sem = opts.open("db")?;
    /// let _permit = sem.acquire()?;
    /// let infos = opts.to_namespace()?.list()?;
    /// // One of the four is held.
    /// assert_eq!((infos[0].name.as_str(), infos[0].capacity, infos[0].value), ("db", 4, 1));
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn list(&self) -> Result<Vec<Info>> {
        if self.scope == Scope::Cluster {
            return crate::cluster::list(self.cluster.as_deref(), &self.name);
        }
        self.each(Semaphore::info, |info| &info.name)
    }

    /// Every semaphore in the namespace with its statistics (see [`Counters`]), sorted by name,
    /// as [`Namespace::list`] lists them. What `shmsem metrics` prints.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-nsctr-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// use shmsem::{Counters, Namespace, Scope, Semaphore};
    ///
    /// let _sem = Semaphore::options().namespace("stats").persistent().open("db")?;
    /// let all = Namespace::new(Scope::Local, "stats")?.list_with_counters()?;
    /// assert_eq!(all.len(), 1);
    /// assert_eq!((all[0].0.name.as_str(), all[0].1), ("db", Counters::default()));
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn list_with_counters(&self) -> Result<Vec<(Info, Counters)>> {
        if self.scope == Scope::Cluster {
            let all = crate::cluster::list(self.cluster.as_deref(), &self.name)?;
            return Ok(all.into_iter().map(|i| (i, Counters::default())).collect());
        }
        self.each(
            |sem| Ok((sem.info()?, sem.counters()?)),
            |(info, _)| &info.name,
        )
    }

    /// Every namespace that exists now and that this process would open by scope and name:
    /// those of the `global` and `local` scopes, and those of this process's own `self` tree
    /// (see [`Tree`](crate::Tree)); sorted by scope, then name. Whether each can be opened is
    /// left to the operation that opens it.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-nsall-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// use shmsem::{Namespace, Scope, Semaphore};
    ///
    /// let _a = Semaphore::options().scope(Scope::Global).namespace("web").open("a")?;
    /// let _b = Semaphore::options().namespace("jobs").open("b")?;
    /// let all = Namespace::all()?;
    /// assert!(all.contains(&Namespace::new(Scope::Global, "web")?));
    /// assert!(all.contains(&Namespace::new(Scope::Local, "jobs")?));
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn all() -> Result<Vec<Namespace>> {
        let mine = Tree::current().ok().map(|t| t.root());
        let mut out: Vec<Namespace> = Location::all()?
            .into_iter()
            .filter(|loc| loc.scope != Scope::Tree || (mine.is_some() && loc.tree_root == mine))
            .map(|loc| Namespace {
                scope: loc.scope,
                name: loc.namespace,
                cluster: None,
            })
            .collect();
        out.sort_by(|a, b| (a.scope.as_str(), &a.name).cmp(&(b.scope.as_str(), &b.name)));
        out.dedup();
        Ok(out)
    }

    /// `look` at every semaphore of the namespace, sorted by `name`; those removed meanwhile
    /// are left out.
    fn each<T>(
        &self,
        look: impl Fn(&Semaphore) -> Result<T>,
        name: impl Fn(&T) -> &String,
    ) -> Result<Vec<T>> {
        let Some(ns) = self.mapped()? else {
            return Ok(Vec::new());
        };
        ns.sweep_idle()?;
        let mut out: Vec<T> = table::live(&ns.seg)
            .into_iter()
            .map(|(found, name)| {
                // Acquire: pairs with the (SeqCst) store that publishes a new incarnation, so the
                // handle made here names the semaphore the table entry describes.
                let life = ns
                    .seg
                    .sem(found.index)
                    .map_or(0, |r| r.incarnation.load(Acquire));
                look(&Semaphore::new(ns.clone(), &name, found, life, None))
            })
            .filter_map(Result::ok)
            .collect();
        out.sort_by(|a, b| name(a).cmp(name(b)));
        Ok(out)
    }

    /// Reclaim what dead holders hold in the namespace, and remove auto semaphores past their
    /// idle period. Returns what came back, including what this process's own opening of the
    /// namespace reclaimed. A namespace that does not exist has nothing to reap.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-nsreap-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// use shmsem::{Namespace, Scope};
    ///
    /// // Nobody has died holding anything here.
    /// assert!(Namespace::new(Scope::Local, "quiet")?.reap()?.is_empty());
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn reap(&self) -> Result<Vec<Reclaimed>> {
        if self.scope == Scope::Cluster {
            return crate::cluster::reap(self.cluster.as_deref(), &self.name);
        }
        match self.mapped()? {
            Some(ns) => {
                let out = ns.reap()?;
                ns.sweep_idle()?;
                Ok(out)
            }
            None => Ok(Vec::new()),
        }
    }

    /// Let group `gid` use the namespace too: a POSIX ACL entry giving the group read and write
    /// access to the namespace's files. The namespace must exist ([`Error::NoNamespace`]
    /// otherwise), and only its owner (or root) may change who has access
    /// ([`Error::PermissionDenied`] otherwise).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-nsgrant-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// use shmsem::{Error, Namespace, Scope};
    ///
    /// let absent = Namespace::new(Scope::Local, "not-yet")?;
    /// assert!(matches!(absent.grant(1234), Err(Error::NoNamespace { .. })));
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn grant(&self, gid: u32) -> Result<()> {
        if self.scope == Scope::Cluster {
            return Err(Error::unsupported(
                "granting a group access in the cluster scope; give the etcd users roles with \
                 permissions on the prefix /shmsem/NAMESPACE/ instead",
            ));
        }
        let ns = self.mapped()?.ok_or_else(|| Error::NoNamespace {
            scope: self.scope.to_string(),
            namespace: self.name.clone(),
        })?;
        ns.grant_group(gid)
    }

    /// The namespace as this process maps it; `None` if it does not exist.
    fn mapped(&self) -> Result<Option<Arc<Mapped>>> {
        Mapped::open_named(self.scope, &self.name, None)
    }
}

/// The way from a semaphore builder to its namespace, and the namespace-wide operations that
/// used to hang off the builder.
impl Options {
    /// The namespace these options open in, as a handle for the operations that concern all
    /// its semaphores ([`Namespace::list`], [`Namespace::reap`], [`Namespace::grant`]). Fails
    /// with [`Error::InvalidName`] when the namespace name is not valid.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmsem::{Scope, Semaphore};
    ///
    /// let ns = Semaphore::options().scope(Scope::Global).namespace("ci").to_namespace()?;
    /// assert_eq!((ns.scope(), ns.name()), (Scope::Global, "ci"));
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn to_namespace(&self) -> Result<Namespace> {
        let ns = Namespace::new(self.scope_of(), self.namespace_of())?;
        Ok(match self.cluster_endpoints() {
            Some(endpoints) => ns.with_cluster(endpoints.iter().cloned()),
            None => ns,
        })
    }

    /// Every semaphore in the scope and namespace, sorted by name. An absent namespace has none.
    /// Auto semaphores past their idle period are removed first.
    #[deprecated(note = "use `Namespace::list` instead (`options.to_namespace()?.list()`)")]
    pub fn list(&self) -> Result<Vec<Info>> {
        self.to_namespace()?.list()
    }

    /// Reclaim what dead holders hold in the scope and namespace, and remove auto semaphores past
    /// their idle period. Returns what came back, including what this process's own opening of
    /// the namespace reclaimed.
    #[deprecated(note = "use `Namespace::reap` instead (`options.to_namespace()?.reap()`)")]
    pub fn reap(&self) -> Result<Vec<Reclaimed>> {
        self.to_namespace()?.reap()
    }

    /// Let group `gid` use the namespace too: a POSIX ACL entry giving the group read and write
    /// access to the namespace's files. The namespace must exist.
    #[deprecated(note = "use `Namespace::grant` instead (`options.to_namespace()?.grant(gid)`)")]
    pub fn grant(&self, gid: u32) -> Result<()> {
        self.to_namespace()?.grant(gid)
    }
}
