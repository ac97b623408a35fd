//! `--group`: a group name or a numeric gid.

use std::{ffi::CString, io, ptr};

use anyhow::{Context, anyhow, bail};

/// The largest buffer `getgrnam_r` gets before a group entry is taken to be absurd.
const MAX_BUFFER: usize = 1 << 20;

/// The gid of `group`, a numeric gid or a group name looked up with `getgrnam_r`.
pub fn resolve(group: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let c_name =
        CString::new(group).map_err(|_| anyhow!("group name {group:?} contains a NUL byte"))?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: all-zero bytes are a valid `libc::group` (null pointers, gid 0).
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = ptr::null_mut();
        // SAFETY: every pointer is valid for the call: a NUL-terminated name, an entry to fill,
        // a buffer of `buf.len()` bytes for its strings, and the out-pointer.
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut entry,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        match rc {
            0 if found.is_null() => {
                bail!("no group named {group:?}; give an existing group name or a numeric gid")
            }
            0 => return Ok(entry.gr_gid),
            libc::ERANGE if buf.len() < MAX_BUFFER => buf.resize(buf.len() * 2, 0),
            _ => {
                return Err(io::Error::from_raw_os_error(rc))
                    .with_context(|| format!("looking up group {group:?}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_gids_and_names_are_looked_up() {
        assert_eq!(resolve("4242").unwrap(), 4242);
        assert_eq!(resolve("root").unwrap(), 0);
        assert!(resolve("no-such-group-shmsem").is_err());
    }
}
