//! `shmsem serve` under load on loopback: 200 concurrent clients, each doing 20
//! `GET /api/semaphores`, while 50 more hold `/api/events` open for two seconds. No request may
//! fail; the latencies are printed (p50, p99, max) and bounded only generously.

mod common;

use std::{
    io::Read,
    net::TcpStream,
    sync::{Arc, Barrier},
    thread,
    time::{Duration, Instant},
};

use common::{
    TestDir, cli,
    http::{Server, try_request},
};

const CLIENTS: usize = 200;
const REQUESTS: usize = 20;
const STREAMS: usize = 50;
const STREAM_TIME: Duration = Duration::from_secs(2);

/// Hold `/api/events` open for [`STREAM_TIME`]; the number of `semaphores` events read.
fn stream(addr: std::net::SocketAddr) -> Result<usize, String> {
    use std::io::Write;
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    write!(s, "GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while start.elapsed() < STREAM_TIME {
        let left = STREAM_TIME
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1));
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => return Err("the stream ended early".into()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let text = String::from_utf8_lossy(&got);
    if !text.starts_with("HTTP/1.1 200") {
        return Err(format!("not 200: {text}"));
    }
    Ok(text.matches("event: semaphores").count())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
fn two_hundred_clients_and_fifty_event_streams() {
    let dir = TestDir::new("serve-load");
    for i in 0..20 {
        cli::ok(
            &dir,
            &[
                "create",
                &format!("s{i:02}"),
                "--capacity",
                "4",
                "--persistent",
            ],
        );
    }
    let server = Server::start(&dir, &[]);
    let addr = server.addr;
    let barrier = Arc::new(Barrier::new(CLIENTS + STREAMS));

    let streams: Vec<_> = (0..STREAMS)
        .map(|_| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                stream(addr)
            })
        })
        .collect();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                let mut times = Vec::with_capacity(REQUESTS);
                for _ in 0..REQUESTS {
                    let start = Instant::now();
                    let r = try_request(addr, "GET", "/api/semaphores", &[], b"")
                        .map_err(|e| e.to_string())?;
                    times.push(start.elapsed());
                    if r.status != 200 {
                        return Err(format!("status {}: {}", r.status, r.text()));
                    }
                    let list: serde_json::Value =
                        serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
                    if list.as_array().map(Vec::len) != Some(20) {
                        return Err(format!("not the 20 semaphores: {list}"));
                    }
                }
                Ok::<_, String>(times)
            })
        })
        .collect();

    let started = Instant::now();
    let mut times = Vec::new();
    let mut errors = Vec::new();
    for c in clients {
        match c.join() {
            Ok(Ok(t)) => times.extend(t),
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("a client panicked".into()),
        }
    }
    let wall = started.elapsed();
    let mut events = 0;
    for s in streams {
        match s.join() {
            Ok(Ok(n)) if n >= 1 => events += n,
            Ok(Ok(_)) => errors.push("a stream got no event".into()),
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("a stream panicked".into()),
        }
    }
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    times.sort();
    let (p50, p99, max) = (
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        times[times.len() - 1],
    );
    println!(
        "serve load: {} requests by {CLIENTS} clients in {wall:.2?} ({:.0} req/s); \
         p50 {p50:.2?}, p99 {p99:.2?}, max {max:.2?}; {STREAMS} event streams got {events} events",
        times.len(),
        times.len() as f64 / wall.as_secs_f64(),
    );
    assert_eq!(times.len(), CLIENTS * REQUESTS);
    assert!(p99 < Duration::from_secs(5), "p99 {p99:?}");
    assert_eq!(
        server.get("/healthz").status,
        200,
        "the server still answers"
    );
}
