//! Cleanup of `self` trees: the sweep that removes the segments of trees whose root has exited,
//! and the exit hook that lets the last process of a tree remove its segment on the way out.

use std::{os::fd::AsFd, path::Path};

use super::{lock, registry};
use crate::{
    holders,
    scope::parse_tree_id,
    segment::{self, layout::MAX_PROCESSES},
    sys,
};

/// Remove `self` segments in `dir` whose root has exited and that no process has registered in.
pub(super) fn sweep_trees(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("self.") else {
            continue;
        };
        let Some((root, _ns)) = rest.split_once('.') else {
            continue;
        };
        let Some(root) = parse_tree_id(root) else {
            continue;
        };
        if sys::liveness(root) == sys::Liveness::Alive {
            continue;
        }
        remove_if_unused(&entry.path());
    }
}

/// Remove a namespace's segment if no process holds a slot lock on it.
fn remove_if_unused(segment: &Path) {
    if let Ok(Some(f)) = segment::open_existing(segment)
        && matches!(
            sys::range_locked(f.as_fd(), 1, MAX_PROCESSES as u64),
            Ok(false)
        )
    {
        segment::remove_files(segment);
    }
}

/// Install, once per process, the hook that at exit removes the `self` segments this process
/// is the last user of.
pub(super) fn install_exit_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    extern "C" fn at_exit() {
        let me = std::process::id();
        registry::try_for_each(|ns| {
            let Some(root) = ns.loc.tree_root else {
                return;
            };
            if root.pid != me && sys::liveness(root) == sys::Liveness::Alive {
                return; // the root lives on and may use it again
            }
            // Drop our own liveness lock, then remove the files if nobody else holds one.
            let inner = lock(&ns.inner);
            if let (Some(f), Some(r)) = (&inner.lock_file, inner.registration) {
                let _ = sys::unlock_byte(f.as_fd(), holders::lock_offset(r.slot));
                if matches!(
                    sys::range_locked(f.as_fd(), 1, MAX_PROCESSES as u64),
                    Ok(false)
                ) {
                    segment::remove_files(&ns.loc.segment);
                }
            }
        });
    }
    ONCE.call_once(|| sys::at_exit(at_exit));
}
