use std::time::{Duration, Instant};
fn main() -> shmsem::Result<()> {
    let dir = std::env::temp_dir().join(format!("shmsem-smoke-{}", std::process::id()));
    unsafe { std::env::set_var("SHMSEM_DIR", &dir) };
    let sem = shmsem::Semaphore::options().capacity(2).open("smoke")?;
    let p = sem.acquire_weight(2)?;
    let t = Instant::now();
    let r = sem.acquire_timeout(1, Duration::from_millis(100));
    println!(
        "timeout: {:?} after {:?}",
        r.err().map(|e| e.to_string()),
        t.elapsed()
    );
    drop(p);
    let name = std::ffi::CString::new(format!("/smoke{}", std::process::id())).unwrap();
    let ps = unsafe { libc::sem_open(name.as_ptr(), libc::O_CREAT, 0o600, 1) };
    let n = 5_000_000;
    for _round in 0..3 {
        let t = Instant::now();
        for _ in 0..n {
            let _p = sem.acquire()?;
        }
        let ours = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            unsafe {
                libc::sem_wait(ps);
                libc::sem_post(ps);
            }
        }
        let posix = t.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "pair: shmsem {ours:.1} ns, posix {posix:.1} ns, ratio {:.2}",
            ours / posix
        );
    }
    unsafe { libc::sem_unlink(name.as_ptr()) };
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
