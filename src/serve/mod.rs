//! `shmsem serve`: the Semaphores web page, a JSON API and `/metrics` over HTTP (axum on
//! tokio), for every scope and namespace this user may open. The routes, status codes and page
//! structure are those of `docs/serve-contract.md`.
//!
//! | module | job |
//! |---|---|
//! | this one | startup, the shared state, the router, graceful shutdown |
//! | [`place`] | the scope and namespace of a path, library errors as HTTP statuses, the blocking pool |
//! | [`api`] | the JSON read routes, the event stream, `/metrics` |
//! | [`pages`] | the HTML pages (every value escaped) |
//! | [`edit`] | the token and the change routes |
//! | [`history`] | the watch over every namespace: the event streams' list, the plot's samples |
//! | [`assets`] | the page's CSS and JS |
//!
//! Library calls take OFD locks and may wait: every one runs on tokio's blocking pool
//! ([`place::blocking`]), never on the async workers.

mod api;
mod assets;
mod edit;
mod history;
mod pages;
mod place;

use std::{
    io::{self, Write},
    net::SocketAddr,
    sync::Arc,
};

use anyhow::Context as _;
use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderName, HeaderValue, header},
    middleware,
    routing::{get, post},
};
use tokio::sync::watch;

/// The largest request body a change route reads (a larger one is refused with 413).
pub const BODY_LIMIT: usize = 16 * 1024;

/// What every handler shares.
#[derive(Debug)]
pub struct State {
    /// The token that change routes require; `None` when started without `--edit`.
    pub token: Option<String>,
    /// Samples of every semaphore, for the plot.
    pub history: history::History,
    /// The latest `/api/semaphores` array as JSON text (empty before the first look).
    pub list: watch::Sender<String>,
    /// Becomes `true` when the server is stopping, so that event streams end.
    pub stopping: watch::Receiver<bool>,
}

/// The handlers' view of [`State`].
pub type Shared = Arc<State>;

/// Run the server until SIGINT or SIGTERM: bind `listen`, print the address (and the token with
/// `edit`) on stdout, answer requests, then finish those in flight and return.
pub fn serve(listen: SocketAddr, edit: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(listen, edit))
}

async fn run(listen: SocketAddr, edit: bool) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    let token = if edit { Some(edit::new_token()?) } else { None };
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = Arc::new(State {
        token,
        history: history::History::default(),
        list: watch::Sender::new(String::new()),
        stopping: stop_rx,
    });
    announce(addr, state.token.as_deref()).context("writing to standard output")?;
    let sampler = tokio::spawn(history::watch_forever(state.clone()));
    let app = router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop_signal().await;
            let _ = stop_tx.send(true);
        })
        .await
        .context("serving")?;
    sampler.abort();
    Ok(())
}

/// The address line, and with `--edit` the token and the page's address with it, flushed at
/// once: tests and scripts read them from a pipe.
fn announce(addr: SocketAddr, token: Option<&str>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "listening on http://{addr}")?;
    if let Some(token) = token {
        writeln!(out, "token: {token}")?;
        writeln!(out, "open http://{addr}/?token={token}")?;
    }
    out.flush()
}

/// Resolves at the first SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without handlers the default dispositions still end the process.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// Every route of the contract, the body limit, and the headers every response carries.
fn router(state: Shared) -> Router {
    let pages = Router::new()
        .route("/", get(pages::list))
        .route("/sem/{scope}/{namespace}/{name}", get(pages::semaphore))
        .route("/pid/{pid}", get(pages::pid))
        .route_layer(middleware::map_response(pages::security_headers));
    let one = "/api/sem/{scope}/{namespace}/{name}";
    let api = Router::new()
        .route("/api/semaphores", get(api::list))
        .route(one, get(api::show).post(edit::create).delete(edit::remove))
        .route(&format!("{one}/{{what}}"), post(edit::set_route))
        .route(&format!("{one}/history"), get(api::history))
        .route("/api/pid/{pid}", get(api::pid))
        .route("/api/events", get(api::events))
        .route("/api/info", get(api::info))
        .route("/api/reap/{scope}/{namespace}", post(edit::reap))
        .route("/metrics", get(api::metrics))
        .route("/healthz", get(api::healthz))
        .route("/assets/style.css", get(assets::style))
        .route("/assets/app.js", get(assets::script));
    pages
        .merge(api)
        .fallback(pages::not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::map_response(common_headers))
        .with_state(state)
}

/// `nosniff`, no referrer, no framing: on every response.
async fn common_headers(mut res: axum::response::Response) -> axum::response::Response {
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    res
}
