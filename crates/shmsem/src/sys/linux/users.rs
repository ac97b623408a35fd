//! Users and groups by id: the names the system database gives them.

use std::ffi::{CStr, c_char, c_int};

/// The name of user `uid`, if it has one.
pub fn user_name(uid: u32) -> Option<String> {
    lookup_name::<libc::passwd>(uid, libc::getpwuid_r)
}

/// The name of group `gid`, if it has one.
pub fn group_name(gid: u32) -> Option<String> {
    lookup_name::<libc::group>(gid, libc::getgrgid_r)
}

/// An entry of the user or group database.
///
/// Implemented only for plain C structs for which all-zero bytes are a valid value.
trait Entry {
    /// The entry's name field.
    fn name(&self) -> *const c_char;
}

impl Entry for libc::passwd {
    fn name(&self) -> *const c_char {
        self.pw_name
    }
}

impl Entry for libc::group {
    fn name(&self) -> *const c_char {
        self.gr_name
    }
}

/// The signature shared by `getpwuid_r` and `getgrgid_r`: id, entry to fill, string buffer and
/// its length, and where to store the entry's address (null when there is none).
type Lookup<T> = unsafe extern "C" fn(u32, *mut T, *mut c_char, usize, *mut *mut T) -> c_int;

/// Look `id` up with the reentrant database function `lookup` and read the entry's name.
fn lookup_name<T: Entry>(id: u32, lookup: Lookup<T>) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: `Entry` is only implemented for plain C structs; all-zero is a valid value to be
    // overwritten.
    let mut entry: T = unsafe { std::mem::zeroed() };
    let mut out: *mut T = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `entry` and `out` are exclusively borrowed and
    // `buf` is writable for its length; the strings written point into `buf`.
    let r = unsafe { lookup(id, &mut entry, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if r != 0 || out.is_null() {
        return None;
    }
    // SAFETY: on success the name field is a NUL-terminated string inside `buf`, alive here.
    let name = unsafe { CStr::from_ptr(entry.name()) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_named_root_as_user_and_as_group() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(group_name(0).as_deref(), Some("root"));
    }

    #[test]
    fn an_id_without_an_entry_has_no_name() {
        assert_eq!(user_name(u32::MAX - 7), None);
        assert_eq!(group_name(u32::MAX - 7), None);
    }
}
