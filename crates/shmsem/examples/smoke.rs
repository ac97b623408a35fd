//! A quick look at the uncontended pair and a failing try, beside POSIX in the same run:
//! `cargo run --release --example smoke` (the pair) or `... --example smoke try` (a failing try).
//! `shmsem bench` measures the same properly (pinned, paired, with an A/A control).
use std::time::Instant;

fn main() -> shmsem::Result<()> {
    let dir = std::env::temp_dir().join(format!("shmsem-smoke-{}", std::process::id()));
    // SAFETY: set before this program starts any thread.
    unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    let sem = shmsem::Semaphore::options().capacity(1).open("smoke")?;
    let name = std::ffi::CString::new(format!("/smoke{}", std::process::id())).unwrap();
    // SAFETY: `name` is a NUL-terminated string that outlives the call; the mode and initial
    // value are the two variadic arguments `O_CREAT` requires.
    let ps = unsafe { libc::sem_open(name.as_ptr(), libc::O_CREAT, 0o600, 1) };
    assert!(ps != libc::SEM_FAILED, "sem_open failed");
    let n = 5_000_000;
    let arg = std::env::args().nth(1).unwrap_or_default();
    for _round in 0..3 {
        let (ours, posix);
        if arg == "try" {
            let _held = sem.acquire()?;
            // SAFETY: `ps` is the semaphore opened above, not closed before the end.
            unsafe { libc::sem_wait(ps) };
            let t = Instant::now();
            for _ in 0..n {
                assert!(std::hint::black_box(sem.try_acquire(1)).is_err());
            }
            ours = t.elapsed().as_nanos() as f64 / n as f64;
            let t = Instant::now();
            for _ in 0..n {
                // SAFETY: as above.
                assert!(unsafe { libc::sem_trywait(ps) } != 0);
            }
            posix = t.elapsed().as_nanos() as f64 / n as f64;
            // SAFETY: as above.
            unsafe { libc::sem_post(ps) };
        } else {
            let t = Instant::now();
            for _ in 0..n {
                let _p = sem.acquire()?;
            }
            ours = t.elapsed().as_nanos() as f64 / n as f64;
            let t = Instant::now();
            for _ in 0..n {
                // SAFETY: as above.
                unsafe {
                    libc::sem_wait(ps);
                    libc::sem_post(ps);
                }
            }
            posix = t.elapsed().as_nanos() as f64 / n as f64;
        }
        println!(
            "{arg:>4}: shmsem {ours:.1} ns, posix {posix:.1} ns, ratio {:.2}",
            ours / posix
        );
    }
    // SAFETY: `name` is the NUL-terminated name created above.
    unsafe { libc::sem_unlink(name.as_ptr()) };
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
