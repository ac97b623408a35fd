//! The change routes (`--edit` only) and the token they require.
//!
//! Each change is checked in the contract's order before its body is read: the server started
//! with `--edit` (else 403); an `Origin`, when sent, the server's own (else 403, so that another
//! site's page cannot drive a browser that has the token); `Authorization: Bearer TOKEN` present
//! (else 401) and equal to the printed token (else 403). Only then is the body read, at most
//! [`BODY_LIMIT`](super::BODY_LIMIT) bytes (else 413).

use std::{fs::File, io::Read, time::Duration};

use anyhow::Context as _;
use axum::{
    Json,
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value};
use shmsem::Semaphore;
use shmsem_cli::output;

use super::{
    BODY_LIMIT, Shared,
    place::{Failure, Place, Query as Params, blocking, checked_name},
};

/// A new token: 32 bytes from the kernel's random source, as 64 lowercase hex digits.
pub fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equal, in a time that depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The checks every change passes before anything is read or done.
fn authorize(state: &super::State, headers: &HeaderMap) -> Result<(), Failure> {
    let forbidden = |m: &str| Failure::new(StatusCode::FORBIDDEN, m);
    let Some(token) = &state.token else {
        return Err(forbidden(
            "read-only: the server was started without --edit",
        ));
    };
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let own = host.map(|h| format!("http://{h}"));
        if own.as_deref().map(str::as_bytes) != Some(origin.as_bytes()) {
            return Err(forbidden("the request comes from another origin"));
        }
    }
    let Some(auth) = headers.get(header::AUTHORIZATION) else {
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "no token: send `Authorization: Bearer TOKEN`, the token `shmsem serve --edit` printed",
        ));
    };
    let given = auth.as_bytes().strip_prefix(b"Bearer ").unwrap_or(b"");
    if !same(given, token.as_bytes()) {
        return Err(forbidden("wrong token"));
    }
    Ok(())
}

/// The body as a JSON object (an empty body is an empty object): 413 past the limit, 415 for
/// another content type, 400 for anything but a JSON object.
async fn json_body(headers: &HeaderMap, body: Body) -> Result<Map<String, Value>, Failure> {
    let bytes = axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is over {BODY_LIMIT} bytes (or was cut off)"),
        )
    })?;
    if bytes.is_empty() {
        return Ok(Map::new());
    }
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return Err(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/json",
        ));
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Failure::bad_request("the body must be a JSON object")),
        Err(e) => Err(Failure::bad_request(format!("the body is not JSON: {e}"))),
    }
}

/// An optional whole number field from `min` to `max`: 400 otherwise.
fn number(
    body: &Map<String, Value>,
    key: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, Failure> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(Failure::bad_request(format!(
                "{key} must be a whole number from {min} to {max}, not {v}"
            ))),
        },
    }
}

/// An optional boolean field: 400 for another type.
fn flag(body: &Map<String, Value>, key: &str) -> Result<Option<bool>, Failure> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(Failure::bad_request(format!(
            "{key} must be true or false, not {v}"
        ))),
    }
}

/// A capacity field: 1 to the library's largest capacity.
fn capacity(body: &Map<String, Value>) -> Result<Option<u32>, Failure> {
    Ok(number(body, "capacity", 1, Semaphore::MAX_CAPACITY.into())?.map(|n| n as u32))
}

/// `POST /api/semaphores`: create a semaphore that does not exist (409 if it does).
pub async fn create(
    State(state): State<Shared>,
    Query(q): Query<Params>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    authorize(&state, &headers)?;
    let place = Place::of(&state, &q)?;
    let body = json_body(&headers, body).await?;
    let name = match body.get("name") {
        Some(Value::String(n)) => n.clone(),
        _ => return Err(Failure::bad_request("name must be a string")),
    };
    checked_name(&name)?;
    let mut opts = place.options().capacity(capacity(&body)?.unwrap_or(1));
    if flag(&body, "persistent")? == Some(true) {
        opts = opts.persistent();
    }
    if let Some(ms) = number(&body, "idle_ms", 0, u32::MAX.into())? {
        opts = opts.auto(Duration::from_millis(ms));
    }
    let info = blocking(move || opts.create_new(&name)?.info()).await?;
    Ok((StatusCode::CREATED, Json(output::summary_json(&info))).into_response())
}

/// `PATCH /api/semaphores/{name}`: change the capacity, then the kind.
pub async fn change(
    State(state): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<Params>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, Failure> {
    authorize(&state, &headers)?;
    let place = Place::of(&state, &q)?;
    checked_name(&name)?;
    let body = json_body(&headers, body).await?;
    let capacity = capacity(&body)?;
    let persistent = flag(&body, "persistent")?;
    let opts = place.options();
    let info = blocking(move || {
        let sem = opts.open_existing(&name)?;
        if let Some(c) = capacity {
            sem.set_capacity(c)?;
        }
        if let Some(p) = persistent {
            sem.set_persistent(p)?;
        }
        sem.info()
    })
    .await?;
    Ok(Json(output::detail_json(&info)))
}

/// `DELETE /api/semaphores/{name}`: remove it; 409 while held unless `?force=true`.
pub async fn remove(
    State(state): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<Params>,
    headers: HeaderMap,
) -> Result<StatusCode, Failure> {
    authorize(&state, &headers)?;
    let place = Place::of(&state, &q)?;
    checked_name(&name)?;
    let force = match q.get("force").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Failure::bad_request(format!(
                "force must be true or false, not {other:?}"
            )));
        }
    };
    let opts = place.options();
    blocking(move || opts.open_existing(&name)?.remove(force)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/reap`: reclaim what dead holders hold; the `reap --json` array.
pub async fn reap(
    State(state): State<Shared>,
    Query(q): Query<Params>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, Failure> {
    authorize(&state, &headers)?;
    let place = Place::of(&state, &q)?;
    json_body(&headers, body).await?;
    let ns = place.namespace()?;
    let reclaimed = blocking(move || ns.reap()).await?;
    Ok(Json(output::reclaimed_json(
        place.scope,
        &place.namespace,
        &reclaimed,
    )))
}
