//! POSIX access control lists: granting a further group access to a file through the
//! `system.posix_acl_access` extended attribute.

use std::{io, os::fd::BorrowedFd};

/// The attribute's layout (`include/uapi/linux/posix_acl_xattr.h`): a 4-byte version, then
/// 8-byte entries `{tag: u16, perm: u16, id: u32}`, little-endian, sorted by tag then id.
const NAME: &str = "system.posix_acl_access";
const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const NO_ID: u32 = u32::MAX;

/// One entry: tag, permission bits, id.
type Entry = (u16, u16, u32);

/// Give group `gid` read and write access to `fd`'s file through a POSIX ACL entry, keeping the
/// entries already there (or the ones the mode implies). The mask is widened to cover it.
pub fn grant_group(fd: BorrowedFd<'_>, gid: u32) -> io::Result<()> {
    let mut buf = vec![0u8; 4096];
    let entries = match rustix::fs::fgetxattr(fd, NAME, &mut buf[..]) {
        Ok(n) => decode(&buf[..n]),
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => return Err(e.into()),
    };
    let entries = match entries {
        Some(entries) => entries,
        None => {
            let mode = rustix::fs::fstat(fd)?.st_mode;
            let bits = |shift: u32| ((mode >> shift) & 7) as u16;
            vec![
                (USER_OBJ, bits(6), NO_ID),
                (GROUP_OBJ, bits(3), NO_ID),
                (OTHER, bits(0), NO_ID),
            ]
        }
    };
    let out = encode(with_group(entries, gid));
    rustix::fs::fsetxattr(fd, NAME, &out, rustix::fs::XattrFlags::empty())?;
    Ok(())
}

/// The entries of an attribute value; `None` when it is too short or of another version.
fn decode(value: &[u8]) -> Option<Vec<Entry>> {
    let (version, rest) = value.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != VERSION {
        return None;
    }
    Some(
        rest.chunks_exact(8)
            .map(|e| {
                let tag = u16::from_le_bytes([e[0], e[1]]);
                let perm = u16::from_le_bytes([e[2], e[3]]);
                let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
                (tag, perm, id)
            })
            .collect(),
    )
}

/// `entries` with read and write for group `gid` (replacing any entry it had), the mask made the
/// union of the group class, and the whole sorted as the kernel wants it.
fn with_group(mut entries: Vec<Entry>, gid: u32) -> Vec<Entry> {
    entries.retain(|&(tag, _, id)| !(tag == GROUP && id == gid) && tag != MASK);
    entries.push((GROUP, 6, gid));
    // The mask bounds every group-class entry: make it their union.
    let mask = entries
        .iter()
        .filter(|&&(tag, _, _)| tag == GROUP_OBJ || tag == GROUP || tag == USER)
        .fold(0, |m, &(_, perm, _)| m | perm);
    entries.push((MASK, mask, NO_ID));
    entries.sort_by_key(|&(tag, _, id)| (tag, id));
    entries
}

/// The attribute value of `entries`.
fn encode(entries: Vec<Entry>) -> Vec<u8> {
    let mut out = VERSION.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_granted_group_gets_read_write_and_a_mask_that_covers_it() {
        let from_mode = vec![
            (USER_OBJ, 6, NO_ID),
            (GROUP_OBJ, 0, NO_ID),
            (OTHER, 0, NO_ID),
        ];
        let out = with_group(from_mode, 1234);
        assert_eq!(
            out,
            vec![
                (USER_OBJ, 6, NO_ID),
                (GROUP_OBJ, 0, NO_ID),
                (GROUP, 6, 1234),
                (MASK, 6, NO_ID),
                (OTHER, 0, NO_ID),
            ]
        );
        assert_eq!(decode(&encode(out.clone())), Some(out));
    }

    #[test]
    fn granting_again_replaces_the_entry_and_keeps_the_others() {
        let before = vec![
            (USER_OBJ, 6, NO_ID),
            (GROUP_OBJ, 4, NO_ID),
            (GROUP, 2, 7),
            (GROUP, 4, 9),
            (MASK, 4, NO_ID),
            (OTHER, 0, NO_ID),
        ];
        let out = with_group(before, 7);
        assert_eq!(out.iter().filter(|e| e.0 == GROUP).count(), 2);
        assert!(out.contains(&(GROUP, 6, 7)));
        assert!(out.contains(&(GROUP, 4, 9)));
        assert!(out.contains(&(MASK, 6, NO_ID)));
    }

    #[test]
    fn a_value_of_another_version_or_too_short_is_not_decoded() {
        assert_eq!(decode(&[2, 0]), None);
        assert_eq!(decode(&3u32.to_le_bytes()), None);
        assert_eq!(decode(&2u32.to_le_bytes()), Some(Vec::new()));
    }
}
