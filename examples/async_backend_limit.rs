//! An axum server whose handlers call a slow backend at most twice at once across every worker
//! process of this user, waiting without blocking a runtime thread.
//!
//! Run a few workers, each on its own port, and send them requests:
//!
//! ```sh
//! cargo run --release --example async_backend_limit -- 127.0.0.1:3001 &
//! cargo run --release --example async_backend_limit -- 127.0.0.1:3002 &
//! for i in $(seq 8); do curl -s 127.0.0.1:300$((i % 2 + 1))/ & done; wait
//! ```
//!
//! Every response says how many calls were in the backend when it ran (never more than 2);
//! one that waited longer than 2 s for a slot is a 503. A worker killed in the middle of a
//! call (even with `kill -9`) gives its slot back.

use std::time::Duration;

use axum::{Router, extract::State, http::StatusCode, routing::get};
use shmsem::{Scope, Semaphore};

/// The handler: a slot of the backend's semaphore, then the call.
async fn call_backend(State(sem): State<Semaphore>) -> Result<String, (StatusCode, String)> {
    // Timeouts come from the runtime; a future dropped by the timeout takes nothing.
    let permit =
        match tokio::time::timeout(Duration::from_secs(2), sem.acquire_owned_async(1)).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(e)) => return Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
            Err(_) => {
                return Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the backend is busy; try again\n".into(),
                ));
            }
        };
    let in_backend = permit.semaphore().info().map_or(0, |i| i.value);
    tokio::time::sleep(Duration::from_millis(300)).await; // the slow backend
    drop(permit);
    Ok(format!(
        "done by {} ({in_backend} in the backend)\n",
        std::process::id()
    ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3001".into());
    let sem = Semaphore::options()
        .scope(Scope::Local)
        .capacity(2)
        .open("slow-backend")?;
    let app = Router::new().route("/", get(call_backend)).with_state(sem);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("listening on http://{addr}/");
    axum::serve(listener, app).await?;
    Ok(())
}
