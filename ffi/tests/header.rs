//! The committed header `include/shmsem.h` is what cbindgen makes of `src/` now.
//!
//! `SHMSEM_BLESS=1 cargo test --release -p shmsem-ffi --test header` writes it anew.

use std::path::Path;

#[test]
fn header_is_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let fresh = tempfile::NamedTempFile::new().expect("temporary file");
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen reads src/")
        .write_to_file(fresh.path());
    let fresh = std::fs::read_to_string(fresh.path()).expect("the generated header");
    let committed_path = dir.join("include/shmsem.h");
    if std::env::var_os("SHMSEM_BLESS").is_some() {
        std::fs::write(&committed_path, &fresh).expect("writing include/shmsem.h");
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == fresh,
        "ffi/include/shmsem.h is not what cbindgen makes of ffi/src/ now; run \
         `SHMSEM_BLESS=1 cargo test --release -p shmsem-ffi --test header` to regenerate it \
         and commit the result"
    );
}
