//! Writes the checked-in seed corpus: `cargo run --release --example make_seeds` from `fuzz/`
//! (or `cargo fuzz run` picks up what is there).
//!
//! `corpus/segment/` gets file-mode inputs (see the `segment` target) made from a segment the
//! library creates here: semaphores `a` (capacity 3, weight 2 held), `b` (capacity 1,
//! persistent, held), an external holder (this process) on `a`; its nonzero 64-byte blocks
//! are written as chunks, so the seed stays small although the segment is 7 MB:
//!
//! * `valid`: the segment as made, with a lock file (the holders are dead by the time it is
//!   fuzzed, so opening it reclaims);
//! * `truncated`: the same chunks in a 4096-byte file;
//! * `zeroed`: a full-size file of zeros;
//! * `header-only`: only the header, in a full-size file;
//!
//! and a few overlay-mode inputs. `corpus/ops/` gets a few byte strings.

use std::{fs, path::Path, time::Duration};

use shmsem::{Semaphore, internals::layout::SEGMENT_SIZE};

fn encode_file(flags: u8, len: u32, chunks: &[(u32, &[u8])]) -> Vec<u8> {
    let mut out = vec![0u8, flags];
    out.extend_from_slice(&len.to_le_bytes());
    for (off, bytes) in chunks {
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

fn main() {
    let dir = std::env::temp_dir().join(format!("shmsem-seeds-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    // SAFETY: single-threaded, before the library's first use.
    unsafe { std::env::set_var(shmsem::DIR_ENV, &dir) };
    let opts = Semaphore::options().namespace("seed");
    let a = opts.clone().capacity(3).open("a").unwrap();
    let b = opts.clone().capacity(1).persistent().open("b").unwrap();
    let held_a = a.acquire_weight(2).unwrap();
    let held_b = b.try_acquire(1).unwrap();
    a.acquire_for(std::process::id(), 1, Some(Duration::from_secs(1)))
        .unwrap();
    let image = fs::read(dir.join("local.seed")).unwrap();
    assert_eq!(image.len(), SEGMENT_SIZE);
    drop((held_a, held_b));

    let blocks: Vec<(u32, &[u8])> = image
        .chunks(64)
        .enumerate()
        .filter(|(_, c)| c.iter().any(|&x| x != 0))
        .map(|(i, c)| ((i * 64) as u32, c))
        .collect();
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let seg = out.join("segment");
    let ops = out.join("ops");
    fs::create_dir_all(&seg).unwrap();
    fs::create_dir_all(&ops).unwrap();
    let size = SEGMENT_SIZE as u32;
    fs::write(seg.join("valid"), encode_file(1, size, &blocks)).unwrap();
    fs::write(seg.join("valid-no-lock"), encode_file(0, size, &blocks)).unwrap();
    fs::write(seg.join("truncated"), encode_file(1, 4096, &blocks)).unwrap();
    fs::write(seg.join("zeroed"), encode_file(1, size, &[])).unwrap();
    fs::write(seg.join("header-only"), encode_file(1, size, &blocks[..2])).unwrap();
    // Overlay mode: a few deterministic byte strings.
    let mut x: u64 = 0x5EED;
    for n in 0..4 {
        let mut v = vec![1u8];
        for _ in 0..64 + 32 * n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            v.push((x >> 56) as u8);
        }
        fs::write(seg.join(format!("overlay-{n}")), &v).unwrap();
        fs::write(ops.join(format!("ops-{n}")), &v[1..]).unwrap();
    }
    fs::remove_dir_all(&dir).unwrap();
    println!(
        "wrote seeds to {} ({} nonzero blocks in the valid image)",
        out.display(),
        blocks.len()
    );
}
