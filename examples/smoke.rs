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
    println!("{:?}", sem.info()?);
    drop(p);
    let n = 5_000_000;
    let t = Instant::now();
    for _ in 0..n {
        let _p = sem.acquire()?;
    }
    println!("pair: {:.1} ns", t.elapsed().as_nanos() as f64 / n as f64);
    sem.enter(1)?;
    assert!(sem.exit(2).is_err());
    sem.exit(1)?;
    println!("{:?}", sem.info()?);
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
