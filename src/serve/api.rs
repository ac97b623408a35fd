//! The JSON read routes, the event stream, `/metrics` and `/healthz`. The JSON is the
//! command's own (`shmsem_cli::output`), so the field names are those of `--json`.

use std::{convert::Infallible, time::Duration};

use axum::{
    Json,
    extract::{Path, Query, State},
    http::header,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::stream::{self, Stream};
use serde_json::{Value, json};
use shmsem_cli::{openmetrics, output};

use super::{
    Shared,
    place::{Failure, Place, Query as Params, blocking, checked_name, checked_pid},
};

/// How often the event stream sends the list.
const EVENT_PERIOD: Duration = Duration::from_secs(1);

/// The `ls --json` array of a place.
pub async fn list_json(place: &Place) -> Result<Value, Failure> {
    let ns = place.namespace()?;
    let infos = blocking(move || ns.list()).await?;
    Ok(infos.iter().map(output::summary_json).collect())
}

/// `GET /api/semaphores`.
pub async fn list(
    State(state): State<Shared>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, Failure> {
    let place = Place::of(&state, &q)?;
    Ok(Json(list_json(&place).await?))
}

/// One existing semaphore's [`shmsem::Info`]: 400 for a malformed name, 404 for a missing one.
pub async fn info_of(place: &Place, name: String) -> Result<shmsem::Info, Failure> {
    checked_name(&name)?;
    let opts = place.options();
    blocking(move || opts.open_existing(&name)?.info()).await
}

/// `GET /api/semaphores/{name}`.
pub async fn show(
    State(state): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, Failure> {
    let place = Place::of(&state, &q)?;
    let info = info_of(&place, name).await?;
    Ok(Json(output::detail_json(&info)))
}

/// `GET /api/semaphores/{name}/history`.
pub async fn history(
    State(state): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<Params>,
) -> Result<Json<Value>, Failure> {
    let place = Place::of(&state, &q)?;
    let info = info_of(&place, name).await?;
    let samples = state.history.samples(place.is_default(&state), &info.name);
    Ok(Json(json!({
        "name": info.name,
        "scope": place.scope.as_str(),
        "namespace": place.namespace,
        "samples": samples,
    })))
}

/// `GET /api/pids/{pid}`.
pub async fn pid(Path(pid): Path<String>) -> Result<Json<Value>, Failure> {
    let pid = checked_pid(&pid)?;
    let activity = blocking(move || shmsem::ps(pid)).await?;
    Ok(Json(output::activity_json(&activity)))
}

/// `GET /api/info`.
pub async fn info(State(state): State<Shared>) -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "scope": state.scope.as_str(),
        "namespace": state.namespace,
        "edit": state.token.is_some(),
    }))
}

/// `GET /metrics`: the text of `shmsem metrics` for the request's place.
pub async fn metrics(
    State(state): State<Shared>,
    Query(q): Query<Params>,
) -> Result<Response, Failure> {
    let ns = Place::of(&state, &q)?.namespace()?;
    let all = blocking(move || ns.list_with_counters()).await?;
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

/// `GET /api/events`: the list at once and then every second, as `semaphores` events (an
/// `error` event when the list fails); ends when the server stops.
pub async fn events(
    State(state): State<Shared>,
    Query(q): Query<Params>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Failure> {
    let place = Place::of(&state, &q)?;
    let stopping = state.stopping.clone();
    let start = (place, stopping, true);
    let events = stream::unfold(start, |(place, mut stopping, first)| async move {
        if !first {
            tokio::select! {
                () = tokio::time::sleep(EVENT_PERIOD) => {}
                _ = stopping.changed() => return None,
            }
        }
        if *stopping.borrow() {
            return None;
        }
        let event = match list_json(&place).await {
            Ok(list) => Event::default().event("semaphores").data(list.to_string()),
            Err(f) => Event::default()
                .event("error")
                .data(f.to_json().to_string()),
        };
        Some((Ok(event), (place, stopping, false)))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
