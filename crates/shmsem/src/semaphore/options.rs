//! Opening semaphores: scope, namespace, and what to create them with.

use std::{sync::Arc, time::Duration};

use super::Semaphore;
use crate::{
    error::{Error, Result},
    namespace::Namespace as Mapped,
    scope::{DEFAULT_NAMESPACE, Scope, validate_name},
    segment::Creation,
    table::{self, DEFAULT_IDLE_MS, NewRecord},
    wait::Monotonic,
};

/// How to open a semaphore: scope, namespace, and what to create it with if it does not exist.
///
/// # Examples
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("shmsem-doc-opt-{}", std::process::id()));
/// # // SAFETY: set before this example starts any thread.
/// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
/// use shmsem::{Scope, Semaphore};
///
/// let sem = Semaphore::options()
///     .scope(Scope::Local)
///     .namespace("ci")
///     .capacity(2)
///     .persistent()
///     .open("slow-backend")?;
/// assert_eq!(sem.capacity(), 2);
/// # Ok::<(), shmsem::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    scope: Scope,
    namespace: String,
    capacity: u32,
    persistent: bool,
    idle_ms: u32,
    mode: Option<u32>,
    group: Option<u32>,
    lock_wait: Option<Duration>,
    /// The etcd endpoints of [`Scope::Cluster`], when given here rather than by `SHMSEM_CLUSTER`.
    cluster: Option<Vec<String>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scope: Scope::Local,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            capacity: 1,
            persistent: false,
            idle_ms: DEFAULT_IDLE_MS,
            mode: None,
            group: None,
            lock_wait: None,
            cluster: None,
        }
    }
}

impl Options {
    /// The scope (default [`Scope::Local`]).
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// The namespace (default `default`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The capacity a new semaphore gets (default 1). An existing one keeps its own.
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }

    /// A new semaphore stays until removed.
    pub fn persistent(mut self) -> Self {
        self.persistent = true;
        self
    }

    /// A new semaphore is removed after `idle` without holders or waiters (the default, 60 s).
    pub fn auto(mut self, idle: Duration) -> Self {
        self.persistent = false;
        self.idle_ms = u32::try_from(idle.as_millis()).unwrap_or(u32::MAX);
        self
    }

    /// File mode of a new namespace's files (default 0600, or 0666 for [`Scope::Global`]). In the
    /// per-user scopes, write bits for group and others are dropped.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode & 0o777);
        self
    }

    /// How long [`open`](Self::open) may wait for the namespace's table lock while it creates
    /// the semaphore (default 5 s). Another process holds it only for an instant unless it is
    /// stopped or hostile; past this, `open` fails with [`Error::Busy`]. A caller with a deadline
    /// of its own (as `shmsem run --timeout`) passes it here.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-lw-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// use std::time::Duration;
    /// let sem = shmsem::Semaphore::options()
    ///     .lock_timeout(Duration::from_millis(500))
    ///     .open("quick")?;
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn lock_timeout(mut self, wait: Duration) -> Self {
        self.lock_wait = Some(wait);
        self
    }

    /// Group of a new namespace's files.
    ///
    /// A group or mode given explicitly is also a check: opening a namespace that exists with
    /// another group or mode fails with [`Error::Mismatch`] rather than silently using files that
    /// others may read or write differently from what was asked.
    pub fn group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }

    /// Refuse a mode that lets a class read the file without writing it: an OFD read lock
    /// taken through a read-only descriptor stalls every writer of that byte, so a reader could
    /// hold the namespace's locks without being able to use it. Read and write go together.
    fn check_mode(&self) -> Result<()> {
        // In the per-user scopes nobody else reaches the file at all (0700 directory).
        let (Some(mode), Scope::Global) = (self.mode, self.scope) else {
            return Ok(());
        };
        for (class, shift) in [("group", 3), ("others", 0)] {
            let bits = (mode >> shift) & 0o6;
            if bits == 0o4 || bits == 0o2 {
                return Err(Error::invalid(format!(
                    "mode {mode:04o} gives {class} {} without {}; give read and write together \
                     (for example 0660) or neither (0600): a reader could hold the namespace's \
                     locks",
                    if bits == 0o4 { "read" } else { "write" },
                    if bits == 0o4 { "write" } else { "read" },
                )));
            }
        }
        Ok(())
    }

    /// Refuse an existing namespace whose file does not have the group and mode that were asked
    /// for explicitly.
    fn check_owner(&self, ns: &Mapped) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        if self.mode.is_none() && self.group.is_none() {
            return Ok(());
        }
        let path = ns.loc.segment.display().to_string();
        let meta = ns
            .seg
            .file()
            .metadata()
            .map_err(|e| Error::io(format!("checking {path}"), e))?;
        let want_mode = self.creation().mode;
        let mut wrong = Vec::new();
        if let Some(gid) = self.group
            && meta.gid() != gid
        {
            wrong.push(format!("group {} (asked for {gid})", meta.gid()));
        }
        if self.mode.is_some() && meta.mode() & 0o777 != want_mode {
            wrong.push(format!(
                "mode {:04o} (asked for {want_mode:04o})",
                meta.mode() & 0o777
            ));
        }
        if wrong.is_empty() {
            return Ok(());
        }
        Err(Error::Mismatch {
            path,
            reason: format!(
                "the namespace exists with {}; open it without asking for a group or mode \
                 (`Options::group`, `Options::mode`), or have its owner change it",
                wrong.join(" and ")
            ),
        })
    }

    fn creation(&self) -> Creation {
        // Per-user scopes are never writable by anyone else (their files are refused
        // otherwise, see `segment::check_file`); `--mode` can only take write bits away there.
        let (default, mask) = match self.scope {
            Scope::Global => (0o666, 0o777),
            Scope::Local | Scope::Tree | Scope::Cluster => (0o600, 0o755),
        };
        Creation {
            mode: self.mode.unwrap_or(default) & mask,
            group: self.group,
        }
    }

    /// What a new semaphore is created with.
    fn new_record(&self) -> NewRecord {
        NewRecord {
            capacity: self.capacity,
            persistent: self.persistent,
            idle_ms: self.idle_ms,
        }
    }

    /// The namespace mapped (created if need be) for creating `name` in it, once the name, the
    /// capacity, the mode and the namespace's owner are checked.
    fn map_to_create(&self, name: &str) -> Result<Arc<Mapped>> {
        validate_name(name)?;
        super::check_capacity(self.capacity)?;
        self.check_mode()?;
        let ns = Mapped::open_named(self.scope, &self.namespace, Some(self.creation()))?
            .ok_or_else(|| Error::corrupt("namespace vanished while being created"))?;
        self.check_owner(&ns)?;
        Ok(ns)
    }

    /// Open `name`, creating it if it does not exist.
    pub fn open(&self, name: &str) -> Result<Semaphore> {
        if self.scope == Scope::Cluster {
            return crate::cluster::open(self, name, crate::cluster::Open::GetOrCreate);
        }
        let ns = self.map_to_create(name)?;
        let new = self.new_record();
        let (found, life) = match table::lookup_life(&ns.seg, name) {
            Some(f) => f,
            None => {
                let deadline = self.lock_wait.map(|d| Monotonic::now().after(d));
                let (found, life, _) = ns.with_table_lock_until(deadline, |ctx| {
                    table::insert_life(ctx.seg, name, new)
                })?;
                (found, life)
            }
        };
        Ok(Semaphore::new(ns, name, found, life, Some(new)))
    }

    /// Create `name`, failing with [`Error::AlreadyExists`] if a semaphore of that name exists.
    ///
    /// Race-free: the check and the creation happen under the namespace's table lock, through
    /// the same insert that [`open`](Self::open) uses, so of several processes creating the same
    /// name at once exactly one succeeds. An auto semaphore whose idle period has passed is swept
    /// first and does not count as existing.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("shmsem-doc-new-{}", std::process::id()));
    /// # // SAFETY: set before this example starts any thread.
    /// # unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    /// use shmsem::{Error, Semaphore};
    ///
    /// let opts = Semaphore::options().namespace("doc-create-new").capacity(3);
    /// let sem = opts.create_new("fresh")?;
    /// assert_eq!(sem.capacity(), 3);
    /// match opts.create_new("fresh") {
    ///     Err(Error::AlreadyExists { name }) => assert_eq!(name, "fresh"),
    ///     other => panic!("expected AlreadyExists, got {other:?}"),
    /// }
    /// # Ok::<(), shmsem::Error>(())
    /// ```
    pub fn create_new(&self, name: &str) -> Result<Semaphore> {
        if self.scope == Scope::Cluster {
            return crate::cluster::open(self, name, crate::cluster::Open::CreateNew);
        }
        let ns = self.map_to_create(name)?;
        ns.sweep_idle()?;
        let exists = || Error::AlreadyExists {
            name: name.to_owned(),
        };
        if table::lookup_life(&ns.seg, name).is_some() {
            return Err(exists());
        }
        let new = self.new_record();
        let deadline = self.lock_wait.map(|d| Monotonic::now().after(d));
        let (found, life, created) =
            ns.with_table_lock_until(deadline, |ctx| table::insert_life(ctx.seg, name, new))?;
        if !created {
            return Err(exists());
        }
        Ok(Semaphore::new(ns, name, found, life, Some(new)))
    }

    /// Open `name` only if it exists.
    pub fn open_existing(&self, name: &str) -> Result<Semaphore> {
        if self.scope == Scope::Cluster {
            return crate::cluster::open(self, name, crate::cluster::Open::Existing);
        }
        validate_name(name)?;
        let not_found = || Error::NotFound {
            name: name.to_owned(),
        };
        let ns = Mapped::open_named(self.scope, &self.namespace, None)?.ok_or_else(not_found)?;
        ns.sweep_idle()?;
        let (found, life) = table::lookup_life(&ns.seg, name).ok_or_else(not_found)?;
        Ok(Semaphore::new(ns, name, found, life, None))
    }

    /// The etcd v3 endpoints (URLs such as `http://10.0.0.5:2379`) of the cluster that
    /// [`Scope::Cluster`] semaphores live on; without this, they come from the `SHMSEM_CLUSTER`
    /// variable (comma-separated). Ignored by the other scopes.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmsem::{Scope, Semaphore};
    ///
    /// let opts = Semaphore::options()
    ///     .scope(Scope::Cluster)
    ///     .cluster(["http://127.0.0.1:2379", "http://127.0.0.1:22379"])
    ///     .capacity(4);
    /// assert_eq!(opts.cluster_endpoints(), Some(&["http://127.0.0.1:2379".to_owned(),
    ///     "http://127.0.0.1:22379".to_owned()][..]));
    /// // opts.open("deploys") would connect; without a reachable cluster it is
    /// // `Error::Unavailable` (or `Error::Unsupported` without the feature `cluster`).
    /// ```
    pub fn cluster(mut self, endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.cluster = Some(endpoints.into_iter().map(Into::into).collect());
        self
    }

    /// The endpoints given with [`Options::cluster`], if any.
    pub fn cluster_endpoints(&self) -> Option<&[String]> {
        self.cluster.as_deref()
    }

    /// What a cluster-scope semaphore is created with: capacity, persistent, idle period (ms).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn creation_of(&self) -> (u32, bool, u32) {
        (self.capacity, self.persistent, self.idle_ms)
    }

    /// How long an open may wait for its locks (or, in the cluster scope, for the cluster).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn lock_wait_of(&self) -> Option<Duration> {
        self.lock_wait
    }

    /// The scope these options open in.
    pub fn scope_of(&self) -> Scope {
        self.scope
    }

    /// The namespace these options open in.
    pub fn namespace_of(&self) -> &str {
        &self.namespace
    }
}
