//! Linux (and Android): one file per service, re-exported under the names the rest of the crate
//! uses.

mod acl;
mod clock;
mod exit;
mod fds;
mod fork;
mod lock;
mod proc;
#[cfg(feature = "failpoints")]
mod signal;
mod users;

pub use self::{
    acl::grant_group,
    clock::wall_ms,
    exit::{ExitHandle, at_exit, doorbell, exit_handle, poll_readable, ring, silence},
    fds::{find_unlinked, keep_across_exec, reopen},
    fork::*,
    lock::{byte_locked, lock_byte_wait, lock_holder, range_locked, try_lock_byte, unlock_byte},
    proc::{current, euid, identity, liveness, pid_namespace, process_uid, uid},
    users::{group_name, user_name},
};

#[cfg(feature = "failpoints")]
pub use self::signal::{kill_self, stop_self};
