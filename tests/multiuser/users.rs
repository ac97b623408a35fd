//! Users, the world guard: one test's users and group (accounts made with `useradd`, or numeric
//! ids standing in), the binaries where they can run them, and the [`World`] guard that, when the
//! test ends, removes every process, file and account it made.

use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
        atomic::{AtomicU32, Ordering::SeqCst},
    },
    thread,
    time::Duration,
};

use crate::{SHM, SHMSEM};

/// Set (to anything), this makes the tests use numeric ids instead of `useradd`, as they do where
/// it is missing: a way to test that path.
const NUMERIC_IDS_ENV: &str = "SHX_NUMERIC_IDS";

/// A user the commands run as.
#[derive(Debug, Clone)]
pub struct User {
    /// For messages ("alice", "root", ...).
    pub role: &'static str,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, the primary one included.
    pub groups: Vec<u32>,
}

impl User {
    pub fn root() -> User {
        User {
            role: "root",
            uid: 0,
            gid: 0,
            groups: vec![0],
        }
    }
}

/// A group: its name when it has an account entry, and its gid.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: Option<String>,
    pub gid: u32,
}

impl Group {
    /// How `--group` names it.
    pub fn arg(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.gid.to_string())
    }
}

/// `useradd` and friends, serialised: they lock `/etc/passwd` and fail when another holds it.
static ACCOUNTS: Mutex<()> = Mutex::new(());
/// Tests that plant what could break another test's `ps` take it exclusively; the others share.
pub static HOSTILE: RwLock<()> = RwLock::new(());
/// Numbers tests within this run.
static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether a test may run beside others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Company {
    /// Plants nothing that could break another test's `ps`.
    Shared,
    /// Plants a namespace or file that could (if the engine is wrong): runs alone.
    Alone,
}

#[derive(Debug)]
#[allow(dead_code)] // held for their Drop only
enum Exclusion {
    Shared(RwLockReadGuard<'static, ()>),
    Alone(RwLockWriteGuard<'static, ()>),
}

/// Fail, never skip, when not root.
fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "tests/multiuser must run as root (it creates users and runs shmsem as them); it ran \
         as uid {euid}. Run it as root, e.g. `sudo -E cargo test --release --test multiuser`"
    );
}

/// Whether `/dev/shm` is smaller than 256 MiB.
fn shm_is_small() -> bool {
    // SAFETY: all-zero bytes are a valid `statvfs`.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid, exclusively borrowed `statvfs`.
    let r = unsafe { libc::statvfs(c"/dev/shm".as_ptr(), &mut st) };
    r != 0 || (st.f_blocks as u64).saturating_mul(st.f_frsize as u64) < 256 << 20
}

/// An administration tool (`useradd`, ...): in `PATH` or the usual sbin directories.
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Run an administration tool; its failure is a test failure.
fn admin(program: &Path, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}): {}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Field `n` (0-based) of the `name` line of a colon-separated account file.
fn account_field(file: &str, name: &str, n: usize) -> Option<u32> {
    let text = fs::read_to_string(file).ok()?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(n)?.parse().ok())
}

/// Whether an id is used by an account or group entry (field 2 of `/etc/passwd` or `/etc/group`).
fn id_in_use(file: &str, id: u32) -> bool {
    fs::read_to_string(file).is_ok_and(|text| {
        text.lines()
            .any(|l| l.split(':').nth(2) == Some(id.to_string().as_str()))
    })
}

/// Whether a path is executable by anyone: the file and every directory above it.
fn reachable_by_all(path: &Path) -> bool {
    let x = |p: &Path| fs::metadata(p).is_ok_and(|m| m.mode() & 0o001 != 0);
    x(path)
        && path
            .ancestors()
            .skip(1)
            .filter(|a| !a.as_os_str().is_empty())
            .all(x)
}

/// One test's users, group, processes and files. Dropping it removes them all.
#[derive(Debug)]
pub struct World {
    /// Carried by the name of every file the test makes in `/dev/shm` (followed by `-`).
    pub tag: String,
    pub alice: User,
    pub bob: User,
    pub carol: User,
    pub root: User,
    pub ops: Group,
    /// The `shmsem` binary and this test binary, where every user can run them.
    pub shmsem: PathBuf,
    pub test_exe: PathBuf,
    /// Account names to delete, users first.
    accounts: Vec<String>,
    groups: Vec<String>,
    /// Where the binaries were copied, if they had to be.
    bin_copy: Option<PathBuf>,
    pub children: Mutex<Vec<Child>>,
    _exclusion: Exclusion,
}

impl World {
    pub fn new(company: Company) -> World {
        require_root();
        // A small /dev/shm (a container's 64 MiB) holds the namespaces of one test at a time
        // (up to four of 7.1 MiB), not of several.
        let company = if shm_is_small() {
            Company::Alone
        } else {
            company
        };
        let exclusion = match company {
            Company::Shared => {
                Exclusion::Shared(HOSTILE.read().unwrap_or_else(PoisonError::into_inner))
            }
            Company::Alone => {
                Exclusion::Alone(HOSTILE.write().unwrap_or_else(PoisonError::into_inner))
            }
        };
        let pid = std::process::id();
        let n = SEQ.fetch_add(1, SeqCst);
        let placeholder = |role| User {
            role,
            uid: u32::MAX,
            gid: u32::MAX,
            groups: Vec::new(),
        };
        let mut w = World {
            tag: format!("shx{pid}x{n}"),
            alice: placeholder("alice"),
            bob: placeholder("bob"),
            carol: placeholder("carol"),
            root: User::root(),
            ops: Group {
                name: None,
                gid: u32::MAX,
            },
            shmsem: PathBuf::from(SHMSEM),
            test_exe: std::env::current_exe().expect("current_exe"),
            accounts: Vec::new(),
            groups: Vec::new(),
            bin_copy: None,
            children: Mutex::new(Vec::new()),
            _exclusion: exclusion,
        };
        w.make_accounts(pid, n);
        for u in [&w.alice, &w.bob, &w.carol] {
            remove_user_dirs(u.uid); // left by an earlier user of a reused uid
        }
        w.make_binaries_reachable();
        w
    }

    /// Create alice, bob, carol and ops (recording each at once, so that a failure half-way
    /// still removes what was made).
    fn make_accounts(&mut self, pid: u32, n: u32) {
        let _one = lock(&ACCOUNTS);
        let tools = (tool("groupadd"), tool("useradd"));
        let (Some(groupadd), Some(useradd)) = tools else {
            return self.make_numeric_ids(pid, n);
        };
        if std::env::var_os(NUMERIC_IDS_ENV).is_some() {
            return self.make_numeric_ids(pid, n);
        }
        let ops = format!("shx_o_{pid}_{n}");
        admin(&groupadd, &[&ops]);
        self.groups.push(ops.clone());
        let ops_gid = account_field("/etc/group", &ops, 2)
            .unwrap_or_else(|| panic!("no /etc/group entry for {ops} after groupadd"));
        self.ops = Group {
            name: Some(ops.clone()),
            gid: ops_gid,
        };
        for (letter, in_ops) in [("a", true), ("b", false), ("c", true)] {
            let name = format!("shx_{letter}_{pid}_{n}");
            let mut args = vec!["-M", "-U", "-d", "/nonexistent", "-s", "/usr/sbin/nologin"];
            if in_ops {
                args.extend(["-G", ops.as_str()]);
            }
            args.push(&name);
            admin(&useradd, &args);
            self.accounts.push(name.clone());
            self.groups.push(name.clone()); // the user's own group (-U)
            let uid = account_field("/etc/passwd", &name, 2);
            let gid = account_field("/etc/passwd", &name, 3);
            let (Some(uid), Some(gid)) = (uid, gid) else {
                panic!("no /etc/passwd entry for {name} after useradd");
            };
            assert!(uid != 0 && gid != 0, "{name} got uid {uid} gid {gid}");
            let mut groups = vec![gid];
            if in_ops {
                groups.push(ops_gid);
            }
            let user = User {
                role: "",
                uid,
                gid,
                groups,
            };
            match letter {
                "a" => {
                    self.alice = User {
                        role: "alice",
                        ..user
                    }
                }
                "b" => {
                    self.bob = User {
                        role: "bob",
                        ..user
                    }
                }
                _ => {
                    self.carol = User {
                        role: "carol",
                        ..user
                    }
                }
            }
        }
    }

    /// Without `useradd`: numeric ids no account or group uses.
    fn make_numeric_ids(&mut self, pid: u32, n: u32) {
        let base = 0x6000_0000 + (pid % 0x1_0000) * 0x100 + (n % 0x40) * 4;
        for id in base..base + 4 {
            assert!(
                !id_in_use("/etc/passwd", id) && !id_in_use("/etc/group", id),
                "id {id} is in use; cannot stand in for a test user"
            );
        }
        let ops = base + 3;
        self.ops = Group {
            name: None,
            gid: ops,
        };
        let user = |role, id, in_ops: bool| User {
            role,
            uid: id,
            gid: id,
            groups: if in_ops { vec![id, ops] } else { vec![id] },
        };
        self.alice = user("alice", base, true);
        self.bob = user("bob", base + 1, false);
        self.carol = user("carol", base + 2, true);
    }

    /// Where the binaries are not reachable by other users, copy them somewhere that is.
    fn make_binaries_reachable(&mut self) {
        let shmsem = PathBuf::from(SHMSEM);
        let exe = self.test_exe.clone();
        if reachable_by_all(&shmsem) && reachable_by_all(&exe) {
            return;
        }
        let dir = std::env::temp_dir().join(format!("{}-bin", self.tag));
        fs::create_dir_all(&dir).expect("creating a directory for the binaries");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
        self.bin_copy = Some(dir.clone());
        for (from, field) in [(shmsem, 0), (exe, 1)] {
            let to = dir.join(from.file_name().expect("a file name"));
            fs::copy(&from, &to).expect("copying a binary");
            fs::set_permissions(&to, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
            match field {
                0 => self.shmsem = to,
                _ => self.test_exe = to,
            }
        }
        assert!(
            reachable_by_all(&self.shmsem),
            "{} is not executable by other users",
            self.shmsem.display()
        );
    }

    /// A namespace name of this test: `TAG-suffix`.
    pub fn ns(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.tag)
    }

    /// The segment file of global namespace `ns`.
    pub fn seg(&self, ns: &str) -> PathBuf {
        Path::new(SHM).join(format!("shmsem.global.{ns}"))
    }

    /// The files whose names carry this test's tag.
    pub fn tagged_files(&self) -> Vec<PathBuf> {
        let mark = format!("{}-", self.tag);
        fs::read_dir(SHM)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().contains(&mark))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // 1. Our children, then every other process of our users (grandchildren: the commands
        //    `shmsem run` started). The users are this test's own, so these are all ours.
        for mut c in lock(&self.children).drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        let uids: Vec<u32> = [&self.alice, &self.bob, &self.carol]
            .iter()
            .map(|u| u.uid)
            .filter(|&u| u != u32::MAX)
            .collect();
        for _ in 0..100 {
            let left = processes_of(&uids);
            if left.is_empty() {
                break;
            }
            for pid in left {
                // SAFETY: sending a signal to a pid.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            thread::sleep(Duration::from_millis(20));
        }
        // 2. Files: the test's global files and plants, the users' per-user directories.
        for path in self.tagged_files() {
            remove_any(&path);
        }
        for &uid in &uids {
            remove_user_dirs(uid);
        }
        if let Some(dir) = &self.bin_copy {
            let _ = fs::remove_dir_all(dir);
        }
        // 3. Accounts.
        let _one = lock(&ACCOUNTS);
        if let Some(userdel) = tool("userdel") {
            for name in &self.accounts {
                let plain = Command::new(&userdel).arg(name).output();
                if !plain.is_ok_and(|o| o.status.success()) {
                    let forced = Command::new(&userdel).args(["-f", name]).output();
                    if !forced.is_ok_and(|o| o.status.success()) {
                        eprintln!("multiuser: could not delete user {name}");
                    }
                }
            }
        }
        if let Some(groupdel) = tool("groupdel") {
            for name in &self.groups {
                if account_field("/etc/group", name, 2).is_some()
                    && !Command::new(&groupdel)
                        .arg(name)
                        .output()
                        .is_ok_and(|o| o.status.success())
                {
                    eprintln!("multiuser: could not delete group {name}");
                }
            }
        }
    }
}

/// Remove a file, link or directory tree (never following a link).
fn remove_any(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Remove `/dev/shm/shmsem.user.UID` and its fallbacks `shmsem.user.UID.N`.
pub fn remove_user_dirs(uid: u32) {
    let base = format!("shmsem.user.{uid}");
    let dotted = format!("{base}.");
    if let Ok(entries) = fs::read_dir(SHM) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == base || name.starts_with(&dotted) {
                remove_any(&e.path());
            }
        }
    }
}

/// Live (not zombie) processes whose real, effective or saved uid is one of `uids`.
fn processes_of(uids: &[u32]) -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me || pid == 1 {
            continue;
        }
        let Ok(status) = fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let field = |key: &str| status.lines().find_map(|l| l.strip_prefix(key));
        if field("State:").is_some_and(|s| s.trim_start().starts_with('Z')) {
            continue;
        }
        let ours = field("Uid:").is_some_and(|ids| {
            ids.split_whitespace()
                .take(3)
                .any(|id| id.parse().is_ok_and(|id: u32| uids.contains(&id)))
        });
        if ours {
            out.push(pid);
        }
    }
    out
}
