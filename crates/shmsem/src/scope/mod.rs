//! Scopes, names, and where a namespace's files live.
//!
//! (A "scope" here is who can see a semaphore; it has nothing to do with the private or shared
//! flavour of a futex, which is always shared in shmsem.)
//!
//! | scope | files | mode |
//! |---|---|---|
//! | `global` | `/dev/shm/shmsem.global.NS`: a flat file, no directory another user could plant | 0666 unless created with another mode |
//! | `local` | `/dev/shm/shmsem.user.UID/local.NS`, where UID is the real user id | 0600, in a 0700 directory owned by UID |
//! | `self` | the `local` directory, `self.PID-START.NS`, where PID and START identify the root of the process tree | 0600 |
//!
//! The per-user directory is chosen from the uid alone. Which scope a process sees depends on
//! its uid, `SHMSEM_DIR` and `SHMSEM_SELF`, never on any other environment variable: in
//! particular not on `XDG_RUNTIME_DIR`, which a login shell has and cron jobs, `sudo -u` and
//! services usually do not, so that choosing from it would give one user two `local` scopes
//! whose processes hold "the same" semaphore at once. The price: files in `/dev/shm` outlive
//! the login session (an unused namespace keeps its 7.1 MiB of tmpfs), and logind's
//! `RemoveIPC` may still delete them when the user's last session ends, which the engine detects
//! (see `segment`).
//!
//! `SHMSEM_DIR`, when set, replaces every directory above: all scopes keep their files flat in
//! it, under the same file names (`global.NS`, `local.NS`, `self.PID-START.NS`). It is read once
//! per process, at the first use.

use std::{
    fmt,
    os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    str::FromStr,
    sync::OnceLock,
};

use crate::{
    error::{Error, Result},
    segment::layout::NAME_MAX,
    sys,
};

mod tree;

pub use self::tree::Tree;
pub(crate) use self::tree::parse_tree_id;

/// The environment variable that overrides where every scope keeps its files.
pub const DIR_ENV: &str = "SHMSEM_DIR";
/// The environment variable that carries a `self` tree's identity to child processes (see
/// [`Tree`]).
pub const SELF_ENV: &str = "SHMSEM_SELF";
/// The namespace used when none is given.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Who can see a semaphore.
///
/// # Examples
///
/// ```
/// use shmsem::Scope;
/// assert_eq!("self".parse::<Scope>().unwrap(), Scope::Tree);
/// assert_eq!(Scope::Global.to_string(), "global");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// This process and the descendants it brings into its tree (`self` on the command line).
    ///
    /// A process started without `SHMSEM_SELF` is the root of a tree of its own; one started
    /// with `SHMSEM_SELF=PID-START` belongs to that tree (see [`Tree`]). The library never sets
    /// the variable: a child joins its parent's tree when the parent starts it with the variable
    /// set, through [`Tree::command`] (or [`Tree::env`]), or when the program sets the variable
    /// itself before it starts any thread, so that every child inherits it. `shmsem run --scope
    /// self` does this for its command. The files are removed once the root has exited and no
    /// process of the tree has them open.
    Tree,
    /// Every process of the current user (real uid), wherever it started: a login shell, cron,
    /// `sudo -u`, a service. Decided by the uid alone, never by `XDG_RUNTIME_DIR`: the files
    /// live in `/dev/shm/shmsem.user.UID/` unless `SHMSEM_DIR` says otherwise.
    #[default]
    Local,
    /// Every process on the machine that the namespace's file permissions admit.
    Global,
    /// Every process, on any machine, that reaches the same etcd v3 cluster (`cluster` on the
    /// command line). The endpoints come from [`Options::cluster`](crate::Options::cluster) or
    /// the `SHMSEM_CLUSTER` variable (comma-separated URLs). Needs the library's feature
    /// `cluster`; without it, opening is [`Error::Unsupported`].
    Cluster,
}

impl Scope {
    /// The name used on the command line and in file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Tree => "self",
            Scope::Local => "local",
            Scope::Global => "global",
            Scope::Cluster => "cluster",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "self" | "tree" => Ok(Scope::Tree),
            "local" => Ok(Scope::Local),
            "global" => Ok(Scope::Global),
            "cluster" => Ok(Scope::Cluster),
            _ => Err(Error::invalid(format!(
                "unknown scope {s:?}; use self, local, global or cluster"
            ))),
        }
    }
}

/// Check a semaphore or namespace name: 1 to 200 bytes of `[A-Za-z0-9._-]`, not `.` or `..`.
///
/// # Examples
///
/// ```
/// assert!(shmsem::validate_name("ci-build_1.2").is_ok());
/// assert!(shmsem::validate_name("../etc").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > NAME_MAX {
        Some("it is longer than 200 bytes")
    } else if name == "." || name == ".." {
        Some("it is \".\" or \"..\"")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("it has a character outside [A-Za-z0-9._-]")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            name: name.chars().take(64).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Where one namespace of one scope keeps its files.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Location {
    pub scope: Scope,
    pub namespace: String,
    /// The one file of the namespace: the segment, whose bytes also carry its OFD locks.
    pub segment: PathBuf,
    /// For `self`: the root of the tree.
    pub tree_root: Option<sys::Identity>,
}

impl Location {
    /// Resolve (scope, namespace), creating the per-user directory if needed.
    pub fn resolve(scope: Scope, namespace: &str) -> Result<Location> {
        validate_name(namespace)?;
        if scope == Scope::Cluster {
            return Err(Error::unsupported(
                "the cluster scope keeps no files on this machine; open its semaphores through \
                 `Options` with `Scope::Cluster`",
            ));
        }
        let (dir, global_prefix) = match custom_dir() {
            Some(d) => {
                let dir = PathBuf::from(d);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
                (dir, "global.")
            }
            _ => match scope {
                Scope::Global => (PathBuf::from("/dev/shm"), "shmsem.global."),
                Scope::Local | Scope::Tree | Scope::Cluster => (user_dir()?, "global."),
            },
        };
        let (file, tree_root) = match scope {
            Scope::Global => (format!("{global_prefix}{namespace}"), None),
            Scope::Local | Scope::Cluster => (format!("local.{namespace}"), None),
            Scope::Tree => {
                let root = Tree::current()?.root();
                (
                    format!("self.{}-{}.{namespace}", root.pid, root.start_time),
                    Some(root),
                )
            }
        };
        let segment = dir.join(&file);
        Ok(Location {
            scope,
            namespace: namespace.to_owned(),
            segment,
            tree_root,
        })
    }

    /// Who must own the files: this user, except in the `global` scope.
    ///
    /// Root uses only files root owns, in every scope: a file another user owns is that user's
    /// to rewrite, lock and replace, and root can open it only by privilege, so a root service
    /// would trust whoever made it. (To look at another user's namespace, run as that user.)
    pub fn expect(&self) -> crate::segment::Expect {
        let root = sys::euid() == 0;
        crate::segment::Expect {
            owner: (self.scope != Scope::Global || root).then(|| if root { 0 } else { sys::uid() }),
            private: self.scope != Scope::Global,
        }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.segment.parent().unwrap_or(Path::new("/"))
    }

    /// Every namespace that exists now, in every scope: `global`, `local`, and the `self` trees
    /// of this user (each tree's segment is its own namespace table).
    pub fn all() -> Result<Vec<Location>> {
        let mut out = Vec::new();
        let custom = custom_dir();
        let (global_dir, global_prefix) = match &custom {
            Some(d) => (PathBuf::from(d), "global."),
            None => (PathBuf::from("/dev/shm"), "shmsem.global."),
        };
        let user = match &custom {
            Some(d) => PathBuf::from(d),
            None => user_dir()?,
        };
        let mut scan = |dir: &Path, keep: &mut dyn FnMut(&str) -> Option<Parsed>| {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let Some((scope, namespace, tree_root)) = keep(name) else {
                    continue;
                };
                if validate_name(&namespace).is_err() {
                    continue;
                }
                out.push(Location {
                    scope,
                    namespace,
                    segment: dir.join(name),
                    tree_root,
                });
            }
        };
        scan(&global_dir, &mut |n| {
            n.strip_prefix(global_prefix)
                .map(|ns| (Scope::Global, ns.to_owned(), None))
        });
        scan(&user, &mut |n| {
            if let Some(ns) = n.strip_prefix("local.") {
                return Some((Scope::Local, ns.to_owned(), None));
            }
            let (root, ns) = n.strip_prefix("self.")?.split_once('.')?;
            Some((Scope::Tree, ns.to_owned(), Some(parse_tree_id(root)?)))
        });
        Ok(out)
    }
}

/// A namespace file name, parsed: its scope, namespace and (for `self`) tree root.
type Parsed = (Scope, String, Option<sys::Identity>);

/// `SHMSEM_DIR`, read once, at the first use of any scope.
pub(crate) fn custom_dir() -> Option<std::ffi::OsString> {
    static DIR: OnceLock<Option<std::ffi::OsString>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os(DIR_ENV).filter(|d| !d.is_empty()))
        .clone()
}

/// Where the per-user directory of `uid` is: a function of the uid alone, never of the
/// environment (see the module docs for why).
fn user_dir_path(uid: u32) -> PathBuf {
    PathBuf::from(format!("/dev/shm/shmsem.user.{uid}"))
}

/// How many fallback directories follow the first choice (see [`user_dir`]).
const USER_DIR_FALLBACKS: u32 = 16;

/// The candidates for the per-user directory of `uid`, in order: the first choice, then
/// `….1`, `….2`, …
fn user_dir_candidates(uid: u32) -> impl Iterator<Item = PathBuf> {
    let first = user_dir_path(uid);
    std::iter::once(first.clone()).chain((1..=USER_DIR_FALLBACKS).map(move |n| {
        let mut p = first.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }))
}

/// What is at a candidate path.
enum Candidate {
    /// Nothing.
    Absent,
    /// This user's own 0700 directory.
    Ours,
    /// Something else: another user's directory (squatted), a file, a link, a wider mode.
    Refused(String),
}

fn candidate(dir: &Path, uid: u32) -> Result<Candidate> {
    // symlink_metadata: a planted symlink is refused, not followed.
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Candidate::Absent),
        Err(e) => Err(Error::io(format!("checking {}", dir.display()), e)),
        Ok(meta)
            if meta.is_dir() && meta.uid() == uid && meta.permissions().mode() & 0o077 == 0 =>
        {
            Ok(Candidate::Ours)
        }
        Ok(meta) => Ok(Candidate::Refused(format!(
            "{} is {} owned by uid {} with mode {:04o}, not a directory of uid {uid} with mode 0700",
            dir.display(),
            if meta.is_dir() {
                "a directory"
            } else {
                "not a directory"
            },
            meta.uid(),
            meta.permissions().mode() & 0o7777
        ))),
    }
}

/// The per-user directory for `local` and `self`, created 0700 and checked to be ours.
///
/// The first choice is `/dev/shm/shmsem.user.UID`. Another user can create that name first
/// (`/dev/shm` is writable by all) to deny this user her scopes; then the first of the
/// fallbacks `….1` to `….16` that is hers is used, or the first that is free is created. Every
/// process of the user looks in the same order and takes an existing directory of hers before
/// it creates one, so they all meet in one directory, and no directory of another user is ever
/// used. Squatting all seventeen names is refused with [`Error::PermissionDenied`] naming them;
/// `SHMSEM_DIR` is then the way out, as is asking root to remove the squatter's directories.
fn user_dir() -> Result<PathBuf> {
    let uid = sys::uid();
    // Bounded: each round either finds one of ours, creates one, or lost a creation race.
    for _ in 0..4 {
        let mut refused = Vec::new();
        let mut absent = None;
        for dir in user_dir_candidates(uid) {
            match candidate(&dir, uid)? {
                Candidate::Ours => return Ok(dir),
                Candidate::Absent => {
                    absent.get_or_insert(dir);
                }
                Candidate::Refused(why) => refused.push(why),
            }
        }
        let Some(dir) = absent else {
            return Err(Error::PermissionDenied {
                path: format!(
                    "every per-user directory name is taken by something else ({}); set \
                     SHMSEM_DIR, or have root remove them",
                    refused.join("; ")
                ),
            });
        };
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            // Look again: the new directory is now ours (unless it was replaced at once).
            Ok(()) | Err(_) if matches!(candidate(&dir, uid)?, Candidate::Ours) => {
                return Ok(dir);
            }
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("creating {}", dir.display()), e)),
        }
    }
    Err(Error::io(
        "choosing the per-user directory",
        std::io::Error::other("the candidate directories kept changing"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for ok in ["a", "A.b_c-9", &"x".repeat(200), "..."] {
            assert!(validate_name(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "a\0", &"x".repeat(201)] {
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn scopes_parse_and_print() {
        for s in [Scope::Tree, Scope::Local, Scope::Global] {
            assert_eq!(s.as_str().parse::<Scope>().unwrap(), s);
        }
        assert!("machine".parse::<Scope>().is_err());
    }

    /// The `local` (and `self`) directory is a function of the uid alone: `XDG_RUNTIME_DIR`,
    /// which a login shell has and cron, `sudo -u` and services do not, must not move it, or one
    /// user would have two `local` scopes. The path is computed from the uid only
    /// ([`user_dir_path`] takes nothing else), and what resolving finds is that path whatever
    /// this test's environment holds. (That processes with and without the variable meet is
    /// checked across processes by the `multiprocess_scopes` tests.)
    #[test]
    fn the_per_user_directory_is_a_function_of_the_uid_alone() {
        let uid = sys::uid();
        let expected = PathBuf::from(format!("/dev/shm/shmsem.user.{uid}"));
        assert_eq!(user_dir_path(uid), expected);
        assert_eq!(user_dir().expect("the per-user directory"), expected);
        // `SHMSEM_DIR`, when the test runs with it, overrides the per-user directory.
        if custom_dir().is_none() {
            let resolved =
                Location::resolve(Scope::Local, DEFAULT_NAMESPACE).expect("resolving local");
            assert_eq!(resolved.segment, expected.join("local.default"));
        }
    }
}
