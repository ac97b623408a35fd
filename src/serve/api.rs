//! The JSON read routes, the event stream, `/metrics` and `/healthz`. The JSON is the
//! command's own (`shmsem_cli::output`), so the field names are those of `--json`.

use std::convert::Infallible;

use axum::{
    Json,
    extract::{Path, State},
    http::header,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::stream::{self, Stream};
use serde_json::{Value, json};
use shmsem::{Info, Namespace};
use shmsem_cli::{openmetrics, output};

use super::{
    Shared,
    place::{Failure, Place, blocking, checked_name, checked_pid},
};

/// Every semaphore of every namespace this process may open (as `Namespace::all` finds them),
/// sorted by scope, namespace and name. A namespace that cannot be read (refused, removed or
/// damaged under the server) is left out, as `shmsem metrics --all` leaves it: one bad file
/// does not hide the others. Blocking.
pub fn all_infos() -> Result<Vec<Info>, shmsem::Error> {
    Ok(Namespace::all()?
        .iter()
        .filter_map(|ns| ns.list().ok())
        .flatten()
        .collect())
}

/// `GET /api/semaphores`: the `ls --json` objects of every namespace.
pub async fn list() -> Result<Json<Value>, Failure> {
    let infos = blocking(all_infos).await?;
    Ok(Json(infos.iter().map(output::summary_json).collect()))
}

/// One existing semaphore's place and [`Info`]: 400 for a malformed scope, namespace or name,
/// 404 for a missing one.
pub async fn info_of(scope: &str, namespace: &str, name: String) -> Result<(Place, Info), Failure> {
    let place = Place::parse(scope, namespace)?;
    checked_name(&name)?;
    let opts = place.options();
    let info = blocking(move || opts.open_existing(&name)?.info()).await?;
    Ok((place, info))
}

/// The command line of `pid` from `/proc`, its arguments joined by spaces; `None` once gone.
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(args.join(" "))
}

/// The `show --json` object with each holder's and waiter's `cmdline`. Blocking (reads /proc).
pub fn detail_with_cmdlines(info: &Info) -> Value {
    let mut v = output::detail_json(info);
    for list in ["holders", "waiters"] {
        if let Some(parties) = v[list].as_array_mut() {
            for p in parties {
                let pid = p["pid"].as_u64().and_then(|n| u32::try_from(n).ok());
                p["cmdline"] = json!(pid.and_then(cmdline));
            }
        }
    }
    v
}

/// `GET /api/sem/{scope}/{namespace}/{name}`.
pub async fn show(
    Path((scope, ns, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, Failure> {
    let (_, info) = info_of(&scope, &ns, name).await?;
    blocking(move || Ok(detail_with_cmdlines(&info)))
        .await
        .map(Json)
}

/// `GET /api/sem/{scope}/{namespace}/{name}/history`: the samples behind the plot.
pub async fn history(
    State(state): State<Shared>,
    Path((scope, ns, name)): Path<(String, String, String)>,
) -> Result<Json<Value>, Failure> {
    let (place, info) = info_of(&scope, &ns, name).await?;
    let samples = state
        .history
        .samples(place.scope.as_str(), &place.namespace, &info.name);
    Ok(Json(json!({
        "scope": place.scope.as_str(),
        "namespace": place.namespace,
        "name": info.name,
        "samples": samples,
    })))
}

/// `GET /api/pid/{pid}`.
pub async fn pid(Path(pid): Path<String>) -> Result<Json<Value>, Failure> {
    let pid = checked_pid(&pid)?;
    let activity = blocking(move || shmsem::ps(pid)).await?;
    Ok(Json(output::activity_json(&activity)))
}

/// `GET /api/info`: the version, and whether changes are allowed.
pub async fn info(State(state): State<Shared>) -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "edit": state.token.is_some(),
    }))
}

/// `GET /metrics`: the text of `shmsem metrics --all`.
pub async fn metrics() -> Result<Response, Failure> {
    let all = blocking(|| {
        Ok(Namespace::all()?
            .iter()
            .filter_map(|ns| ns.list_with_counters().ok())
            .flatten()
            .collect::<Vec<_>>())
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        openmetrics::text(&all),
    )
        .into_response())
}

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /api/events`: a `semaphores` event with the `/api/semaphores` array at once, and again
/// whenever it changes (the server looks twice a second); ends when the server stops.
pub async fn events(
    State(state): State<Shared>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let list = state.list.subscribe();
    let stopping = state.stopping.clone();
    let events = stream::unfold(
        (list, stopping, true),
        |(mut list, mut stopping, first)| async move {
            // At once, if the server has looked already; else at its first look.
            if !first || list.borrow().is_empty() {
                tokio::select! {
                    r = list.changed() => r.ok()?,
                    _ = stopping.changed() => return None,
                }
            }
            if *stopping.borrow() {
                return None;
            }
            let data = list.borrow_and_update().clone();
            let event = Event::default().event("semaphores").data(data);
            Some((Ok(event), (list, stopping, false)))
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}
