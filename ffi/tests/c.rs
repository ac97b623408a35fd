//! The C tests: every program in `tests/c/` compiled with `cc -Wall -Wextra -Werror` against the
//! installed header and library (`install.sh` into a fresh prefix, flags from `pkg-config`), once
//! linked with `libshmsem.so` and once statically with `libshmsem.a`, and run with its own
//! `SHMSEM_DIR`. A program passes when it exits 0; its output is shown when it does not.
//!
//! The library is built first with `cargo build --release -p shmsem-ffi` (the test binary is
//! already built by then, so the nested build only links the C library).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// How a program is linked.
#[derive(Clone, Copy, Debug)]
enum Link {
    Shared,
    Static,
}

/// The installed library: its prefix, and where the compiled programs go.
struct Installed {
    prefix: PathBuf,
    bin: PathBuf,
}

/// The folder of this test binary's profile (`target/release`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/release/deps/c-HASH
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/PROFILE/deps")
        .to_owned()
}

/// `program`'s output, or a failure that says what to install when it is missing.
fn run(command: &mut Command, what: &str, install_hint: &str) -> Output {
    let output = command.output().unwrap_or_else(|e| {
        panic!("{what}: could not start {command:?}: {e}; {install_hint}");
    });
    assert!(
        output.status.success(),
        "{what} failed ({}): {command:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Build the library, once per run, and install it into `target/PROFILE/ffi-c-tests/prefix`.
fn installed() -> &'static Installed {
    static INSTALLED: OnceLock<Installed> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let profile = profile_dir();
        let target = profile.parent().expect("target dir").to_owned();
        run(
            Command::new(env!("CARGO"))
                .args(["build", "--release", "-p", "shmsem-ffi"])
                .current_dir(manifest)
                .env("CARGO_TARGET_DIR", &target),
            "building libshmsem",
            "cargo runs this test",
        );
        let root = profile.join("ffi-c-tests");
        let _ = std::fs::remove_dir_all(&root);
        let prefix = root.join("prefix");
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).expect("creating the programs' folder");
        run(
            Command::new("bash")
                .arg(manifest.join("install.sh"))
                .arg(&prefix)
                .env("SHMSEM_NO_BUILD", "1")
                .env("CARGO_TARGET_DIR", &target),
            "ffi/install.sh",
            "install bash",
        );
        Installed { prefix, bin }
    })
}

/// `pkg-config ARGS shmsem` against the installed prefix, split into arguments.
fn pkg_config(installed: &Installed, args: &[&str]) -> Vec<String> {
    let out = run(
        Command::new("pkg-config")
            .args(args)
            .arg("shmsem")
            .env("PKG_CONFIG_PATH", installed.prefix.join("lib/pkgconfig")),
        "pkg-config",
        "install pkg-config (apt-get install pkg-config)",
    );
    String::from_utf8(out.stdout)
        .expect("pkg-config prints UTF-8")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Compile `tests/c/NAME.c` linked as `link`; the program's path.
fn compile(name: &str, link: Link) -> PathBuf {
    compile_source(&format!("tests/c/{name}.c"), link)
}

/// Compile `source` (relative to `ffi/`) linked as `link`; the program's path.
fn compile_source(source: &str, link: Link) -> PathBuf {
    let installed = installed();
    let name = Path::new(source)
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("a C file's name");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
    let program = installed
        .bin
        .join(format!("{name}-{link:?}").to_lowercase());
    let mut cc = Command::new("cc");
    cc.args([
        "-std=c11",
        "-D_GNU_SOURCE",
        "-O1",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pthread",
    ])
    .arg(&source)
    .arg("-o")
    .arg(&program)
    .args(pkg_config(installed, &["--cflags"]));
    match link {
        Link::Shared => {
            cc.args(pkg_config(installed, &["--libs"]));
        }
        Link::Static => {
            // The archive by its file name, so that the linker cannot pick the .so beside it;
            // the rest is what `pkg-config --static` says it needs.
            let libs = pkg_config(installed, &["--static", "--libs"]);
            assert!(libs.iter().any(|a| a == "-lshmsem"), "{libs:?}");
            cc.args(libs.iter().map(|a| match a.as_str() {
                "-lshmsem" => "-l:libshmsem.a",
                other => other,
            }));
        }
    }
    run(
        &mut cc,
        &format!("compiling {name}.c ({link:?})"),
        "install a C compiler (apt-get install gcc)",
    );
    program
}

/// Compile and run `tests/c/NAME.c` linked as `link`, with its own `SHMSEM_DIR`; at most 120 s.
fn c_test(name: &str, link: Link) {
    run_program(name, compile(name, link), link);
}

/// Run the compiled `program` (of the test `name`), linked as `link`, with its own
/// `SHMSEM_DIR`, for at most 120 s; it must exit 0. Its stdout.
fn run_program(name: &str, program: PathBuf, link: Link) -> String {
    let dir = tempfile::tempdir().expect("a temporary SHMSEM_DIR");
    let mut command = Command::new(&program);
    command
        .env("SHMSEM_DIR", dir.path())
        .env_remove("SHMSEM_SELF")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match link {
        // The shared library from the prefix, which is not on the loader's path.
        Link::Shared => {
            command.env("LD_LIBRARY_PATH", installed().prefix.join("lib"));
        }
        // Without it: a program that still needed libshmsem.so would not start.
        Link::Static => {
            command.env_remove("LD_LIBRARY_PATH");
        }
    }
    let mut child = command.spawn().expect("starting the C test");
    let started = Instant::now();
    while child.try_wait().expect("waiting for the C test").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} ({link:?}) still ran after 120 s: killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("the C test's output");
    assert!(
        output.status.success(),
        "{name} ({link:?}) failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the program prints UTF-8")
}

/// One test per program and way of linking; `every_program_is_run` checks the list.
macro_rules! c_tests {
    ($($name:ident),* $(,)?) => {
        const PROGRAMS: &[&str] = &[$(stringify!($name)),*];
        $(
            mod $name {
                #[test]
                fn shared() {
                    super::c_test(stringify!($name), super::Link::Shared);
                }
                #[test]
                fn static_() {
                    super::c_test(stringify!($name), super::Link::Static);
                }
            }
        )*
    };
}

c_tests!(
    admits_two_of_three,
    try_full,
    timeout,
    sigkill,
    over_release,
    close,
    fork_release,
    threads,
    bad_args,
    strerror,
);

#[test]
fn every_program_is_run() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/c")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_suffix(".c")?.to_owned())
        })
        .collect();
    found.sort();
    let mut listed: Vec<String> = PROGRAMS.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(found, listed, "every tests/c/*.c is listed in c_tests!");
}

/// The README's example, `examples/limit.c`, builds with the line it shows and works.
#[test]
fn example_limit() {
    for link in [Link::Shared, Link::Static] {
        let out = run_program("limit", compile_source("examples/limit.c", link), link);
        assert_eq!(out, "working: 1 of 2 slots held\n", "{link:?}");
    }
}
