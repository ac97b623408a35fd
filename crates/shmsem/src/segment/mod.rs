//! A namespace's segment: creating, publishing, checking and mapping its file, and safe access to
//! the records inside.
//!
//! # Creation without a half-initialised file
//!
//! The creator writes the whole segment into an unnamed file (`O_TMPFILE`) in the target
//! directory, publishes `init = READY` last, and only then gives it its name with `linkat`, which
//! never replaces an existing file. Two processes creating the same namespace at once both build
//! a segment; one `linkat` wins, the other gets `EEXIST`, drops its copy and opens the winner's.
//! No process can ever open a segment that is not complete. (Where `O_TMPFILE` is not supported,
//! a uniquely named temporary file is linked and then unlinked instead.)
//!
//! Opening tries without `O_CREAT` first, so that `fs.protected_regular` does not refuse a file
//! that another user created in a sticky directory. Every open uses `O_NOFOLLOW | O_CLOEXEC`.

pub mod layout;

use std::{
    fs::File,
    io,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    sync::atomic::Ordering::{Acquire, Relaxed, Release},
};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{Mode, OFlags};

use self::layout::*;
use crate::{
    error::{Error, Result},
    sys,
};

/// A mapped, validated segment.
#[derive(Debug)]
pub struct Segment {
    map: MmapRaw,
    path: PathBuf,
    file: File,
}

// `Send` and `Sync` come from the fields (`MmapRaw` is both): the mapping is only ever accessed
// through atomics (see `layout`).
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<Segment>();
};

/// Who must own a namespace's file: this user for `local` and `self`, anyone for `global` (but
/// root only uses root's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// The uid the file must belong to, if any.
    pub owner: Option<u32>,
    /// Nobody but the owner may write it (the per-user scopes).
    pub private: bool,
}

/// How to create a namespace that does not exist yet.
#[derive(Debug, Clone, Copy)]
pub struct Creation {
    /// File mode of the segment; applied with `fchmod`, so umask has no say.
    pub mode: u32,
    /// Group to give the files, if any.
    pub group: Option<u32>,
}

impl Segment {
    /// Open the segment at `path`, creating it if it does not exist.
    ///
    /// A segment that was unlinked while some process still has it open (logind's `RemoveIPC`
    /// at logout, an administrator's `rm`) is not replaced by a fresh one with fresh capacity:
    /// if this process may open that process's descriptor (same user, or root), it maps that
    /// same segment, nameless, and so shares its semaphores with everyone still using it. (Linux
    /// cannot give an unlinked file its name back.)
    pub fn open_or_create(path: &Path, creation: Creation, expect: Expect) -> Result<Segment> {
        // Bounded: each round either opens, creates, or saw the file vanish in between.
        for _ in 0..8 {
            if let Some(file) = open_checked(path, expect)? {
                return Segment::map(file, path);
            }
            if let Some(file) = adopt_unlinked(path, expect)?
                && let Ok(seg) = Segment::map(file, path)
            {
                return Ok(seg);
            }
            match create(path, creation)? {
                Some(segment) => return Ok(segment),
                None => continue, // lost the race: open the winner's
            }
        }
        Err(Error::io(
            format!("opening {}", path.display()),
            io::Error::other("the file kept appearing and disappearing"),
        ))
    }

    /// Open the segment at `path` if it exists.
    pub fn open(path: &Path, expect: Expect) -> Result<Option<Segment>> {
        match open_checked(path, expect)? {
            Some(file) => Segment::map(file, path).map(Some),
            None => match adopt_unlinked(path, expect)? {
                Some(file) => Segment::map(file, path).map(Some),
                None => Ok(None),
            },
        }
    }

    /// Whether `path` names a file other than this segment's: the segment was unlinked while
    /// mapped and another was created in its place, so the namespace is split.
    pub fn is_replaced(&self) -> bool {
        let Ok(mine) = rustix::fs::fstat(&self.file) else {
            return false;
        };
        // Whatever our link count (another link may keep it above 0), the path naming another
        // file is the split.
        std::fs::symlink_metadata(&self.path).is_ok_and(|named| {
            use std::os::unix::fs::MetadataExt;
            (named.dev(), named.ino()) != (mine.st_dev, mine.st_ino)
        })
    }

    fn map(file: File, path: &Path) -> Result<Segment> {
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("checking {}", path.display()), e))?;
        if !meta.is_file() {
            return Err(Error::corrupt(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        if meta.len() < size_of::<Header>() as u64 {
            return Err(Error::corrupt(format!(
                "{} is {} bytes, too short for a header",
                path.display(),
                meta.len()
            )));
        }
        if meta.len() != SEGMENT_SIZE as u64 {
            return Err(Error::Incompatible {
                path: path.display().to_string(),
                reason: format!("size {} bytes, expected {SEGMENT_SIZE}", meta.len()),
            });
        }
        let map = MmapOptions::new()
            .len(SEGMENT_SIZE)
            .map_raw(&file)
            .map_err(|e| Error::io(format!("mapping {}", path.display()), e))?;
        let segment = Segment {
            map,
            path: path.to_owned(),
            file,
        };
        segment.validate()?;
        Ok(segment)
    }

    fn validate(&self) -> Result<()> {
        let h = self.header();
        let incompatible = |reason: String| Error::Incompatible {
            path: self.path.display().to_string(),
            reason,
        };
        let magic = h.magic.load(Relaxed);
        if magic != MAGIC {
            return Err(incompatible(format!(
                "magic {magic:#x} is not a shmsem segment's"
            )));
        }
        // Acquire: pairs with the creator's Release store of READY, although link-publishing
        // already makes the contents visible before the name exists.
        if h.init.load(Acquire) != INIT_READY {
            return Err(Error::corrupt(format!(
                "{} was published before it was initialised",
                self.path.display()
            )));
        }
        let version = h.layout_version.load(Relaxed);
        if version != LAYOUT_VERSION {
            return Err(incompatible(format!(
                "layout version {version}, this build reads {LAYOUT_VERSION}"
            )));
        }
        let fingerprint = h.fingerprint.load(Relaxed);
        let sizes = (
            h.sem_capacity.load(Relaxed),
            h.proc_capacity.load(Relaxed),
            h.holder_capacity.load(Relaxed),
            h.total_size.load(Relaxed),
        );
        if fingerprint != FINGERPRINT
            || sizes
                != (
                    MAX_SEMAPHORES,
                    MAX_PROCESSES,
                    MAX_HOLDERS,
                    SEGMENT_SIZE as u64,
                )
        {
            return Err(incompatible(format!(
                "layout fingerprint {fingerprint:#010x} with tables {sizes:?}, this build \
                 expects {FINGERPRINT:#010x}"
            )));
        }
        Ok(())
    }

    /// The segment's file, as opened.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The header.
    #[inline]
    pub fn header(&self) -> &Header {
        // SAFETY: the mapping is SEGMENT_SIZE bytes, page-aligned, and lives as long as `self`;
        // the header is at offset 0 and made only of atomics, valid for any bytes.
        unsafe { &*self.map.as_ptr().cast::<Header>() }
    }

    /// Semaphore record `index`, or `None` out of bounds.
    #[inline]
    pub fn sem(&self, index: u32) -> Option<&SemRecord> {
        (index < MAX_SEMAPHORES).then(|| {
            let offset = SEMS_OFFSET + index as usize * size_of::<SemRecord>();
            // SAFETY: `index` is in bounds, so the record lies inside the mapping (checked by the
            // layout asserts) at an offset aligned to 128; records are all atomics.
            unsafe { &*self.map.as_ptr().add(offset).cast::<SemRecord>() }
        })
    }

    /// Process slot `index`, or `None` out of bounds.
    #[inline]
    pub fn proc_slot(&self, index: u32) -> Option<&ProcSlot> {
        (index < MAX_PROCESSES).then(|| {
            let offset = PROCS_OFFSET + index as usize * size_of::<ProcSlot>();
            // SAFETY: as in `sem`: in bounds, 64-aligned, all atomics.
            unsafe { &*self.map.as_ptr().add(offset).cast::<ProcSlot>() }
        })
    }

    /// Holder record `index`, or `None` out of bounds.
    #[inline]
    pub fn holder(&self, index: u32) -> Option<&HolderRecord> {
        (index < MAX_HOLDERS).then(|| {
            let offset = HOLDERS_OFFSET + index as usize * size_of::<HolderRecord>();
            // SAFETY: as in `sem`: in bounds, 64-aligned, all atomics.
            unsafe { &*self.map.as_ptr().add(offset).cast::<HolderRecord>() }
        })
    }
}

const OPEN_FLAGS: OFlags = OFlags::RDWR.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);

/// Open `path` without creating it. `Ok(None)` if it does not exist.
pub(crate) fn open_existing(path: &Path) -> Result<Option<File>> {
    match rustix::fs::open(path, OPEN_FLAGS, Mode::empty()) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(rustix::io::Errno::LOOP) => Err(Error::PermissionDenied {
            path: format!(
                "{} (a symbolic link; refusing to follow it)",
                path.display()
            ),
        }),
        Err(e) => Err(Error::io(format!("opening {}", path.display()), e)),
    }
}

/// Open `path` if it exists, and check it: a regular file, one link, owned as expected.
pub(crate) fn open_checked(path: &Path, expect: Expect) -> Result<Option<File>> {
    let Some(file) = open_existing(path)? else {
        return Ok(None);
    };
    check_file(&file, path, expect)?;
    Ok(Some(file))
}

/// The checks every file of a namespace passes before it is used: a regular file, and in the
/// per-user scopes owned by this user and writable by nobody else.
///
/// Extra hard links are accepted. A link does not give anyone access the file's owner and mode
/// do not already give (and `fs.protected_hardlinks` lets only those who can write a file link
/// it), so a link that a group member plants in a directory of her own is harmless: the
/// namespace keeps working for everyone, and the only effect of the link is that the removed
/// segment's bytes outlive the namespace until she deletes it.
fn check_file(file: &File, path: &Path, expect: Expect) -> Result<()> {
    let refuse = |why: String| Error::PermissionDenied {
        path: format!("{} ({why}; refusing to use it)", path.display()),
    };
    let st = rustix::fs::fstat(file)
        .map_err(|e| Error::io(format!("checking {}", path.display()), e))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(refuse("not a regular file".into()));
    }
    if let Some(uid) = expect.owner
        && st.st_uid != uid
    {
        return Err(refuse(format!("owned by uid {}, not {uid}", st.st_uid)));
    }
    // A per-user namespace that others may write is not per-user any more.
    if expect.private && st.st_mode & 0o022 != 0 {
        return Err(refuse(format!(
            "mode {:04o} lets others write it",
            st.st_mode & 0o777
        )));
    }
    Ok(())
}

/// The unlinked file that was at `path`, still open in some process, opened again.
fn adopt_unlinked(path: &Path, expect: Expect) -> Result<Option<File>> {
    let Some(proc_path) = sys::find_unlinked(path) else {
        return Ok(None);
    };
    // Follows the /proc magic link on purpose: it names the open file, not a path.
    let Ok(fd) = rustix::fs::open(&proc_path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()) else {
        return Ok(None);
    };
    let file = File::from(fd);
    let st = rustix::fs::fstat(&file)
        .map_err(|e| Error::io(format!("checking {}", path.display()), e))?;
    let owner_ok = expect.owner.is_none_or(|uid| st.st_uid == uid);
    let regular =
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
    // `find_unlinked` matched the descriptor's "(deleted)" path: the name is gone, whether or
    // not another link keeps the file.
    Ok((owner_ok && regular).then_some(file))
}

fn set_owner_and_mode(fd: &OwnedFd, creation: Creation, path: &Path) -> Result<()> {
    if let Some(gid) = creation.group {
        let gid = rustix::fs::Gid::from_raw(gid);
        rustix::fs::fchown(fd, None, Some(gid))
            .map_err(|e| Error::io(format!("setting the group of {}", path.display()), e))?;
    }
    rustix::fs::fchmod(fd, Mode::from_raw_mode(creation.mode))
        .map_err(|e| Error::io(format!("setting the mode of {}", path.display()), e))
}

/// Build a complete segment and link it at `path`. `Ok(None)` when another process linked one
/// first.
fn create(path: &Path, creation: Creation) -> Result<Option<Segment>> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let ctx = |what: &str| format!("{what} {}", path.display());
    let (fd, temp_name) = match rustix::fs::open(
        dir,
        OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    ) {
        Ok(fd) => (fd, None),
        Err(_) => {
            let temp = dir.join(format!(
                ".{}.tmp.{}.{:x}",
                path.file_name()
                    .map_or_else(Default::default, |n| n.to_string_lossy()),
                std::process::id(),
                random_u64()
            ));
            let fd = rustix::fs::open(
                &temp,
                OPEN_FLAGS | OFlags::CREATE | OFlags::EXCL,
                Mode::RUSR | Mode::WUSR,
            )
            .map_err(|e| Error::io(ctx("creating"), e))?;
            (fd, Some(temp))
        }
    };
    let cleanup = |temp: &Option<PathBuf>| {
        if let Some(t) = temp {
            let _ = std::fs::remove_file(t);
        }
    };
    let built = (|| {
        set_owner_and_mode(&fd, creation, path)?;
        // Reserve every page now: a full tmpfs then fails here, with an error, instead of raising
        // SIGBUS at some later first touch of a page.
        match rustix::fs::fallocate(
            &fd,
            rustix::fs::FallocateFlags::empty(),
            0,
            SEGMENT_SIZE as u64,
        ) {
            Ok(()) => {}
            Err(rustix::io::Errno::OPNOTSUPP) => rustix::fs::ftruncate(&fd, SEGMENT_SIZE as u64)
                .map_err(|e| Error::io(ctx("sizing"), e))?,
            Err(e) => return Err(Error::io(ctx("reserving space for"), e)),
        }
        let file = File::from(
            fd.try_clone()
                .map_err(|e| Error::io(ctx("duplicating"), e))?,
        );
        let map = MmapOptions::new()
            .len(SEGMENT_SIZE)
            .map_raw(&file)
            .map_err(|e| Error::io(ctx("mapping"), e))?;
        let segment = Segment {
            map,
            path: path.to_owned(),
            file,
        };
        segment.initialise();
        Ok(segment)
    })();
    let segment = match built {
        Ok(s) => s,
        Err(e) => {
            cleanup(&temp_name);
            return Err(e);
        }
    };
    let linked = match &temp_name {
        None => {
            let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
            rustix::fs::linkat(
                rustix::fs::CWD,
                proc_path.as_str(),
                rustix::fs::CWD,
                path,
                rustix::fs::AtFlags::SYMLINK_FOLLOW,
            )
        }
        Some(temp) => rustix::fs::linkat(
            rustix::fs::CWD,
            temp,
            rustix::fs::CWD,
            path,
            rustix::fs::AtFlags::empty(),
        ),
    };
    cleanup(&temp_name);
    match linked {
        Ok(()) => {
            // Keep a descriptor opened by name: an `O_TMPFILE` descriptor goes on calling itself
            // `#inode` in /proc, and other processes find this segment there by its name if it
            // is ever unlinked while in use (see `adopt_unlinked`).
            let mut segment = segment;
            if let Ok(Some(named)) = open_existing(path)
                && same_file(&named, &segment.file)
            {
                segment.file = named;
            }
            Ok(Some(segment))
        }
        Err(rustix::io::Errno::EXIST) => Ok(None),
        Err(e) => Err(Error::io(ctx("publishing"), e)),
    }
}

/// Whether two descriptors are of the same file.
fn same_file(a: &File, b: &File) -> bool {
    match (rustix::fs::fstat(a), rustix::fs::fstat(b)) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => false,
    }
}

impl Segment {
    /// Write a fresh header; the tables are already zero (a new file reads as zeros), and zero
    /// is the free state of every record.
    fn initialise(&self) {
        let h = self.header();
        h.layout_version.store(LAYOUT_VERSION, Relaxed);
        h.fingerprint.store(FINGERPRINT, Relaxed);
        h.sem_capacity.store(MAX_SEMAPHORES, Relaxed);
        h.proc_capacity.store(MAX_PROCESSES, Relaxed);
        h.holder_capacity.store(MAX_HOLDERS, Relaxed);
        h.total_size.store(SEGMENT_SIZE as u64, Relaxed);
        h.segment_id.store(random_u64(), Relaxed);
        h.created_ms.store(sys::wall_ms(), Relaxed);
        h.creator_uid.store(sys::uid(), Relaxed);
        h.magic.store(MAGIC, Relaxed);
        // Release: everything above is visible to whoever sees READY.
        h.init.store(INIT_READY, Release);
    }
}

/// A random number from the kernel, falling back to time and pid.
fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    match rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::NONBLOCK) {
        Ok(8) => u64::from_ne_bytes(buf),
        _ => sys::wall_ms() ^ (u64::from(std::process::id()) << 40),
    }
}

/// Remove a namespace's segment (used for `self` trees that are gone).
pub(crate) fn remove_files(segment: &Path) {
    let _ = std::fs::remove_file(segment);
}
