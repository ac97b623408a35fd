//! The change routes (`--edit` only) and the token they require.
//!
//! Each change is checked in the contract's order before its body is read: the server started
//! with `--edit` (else 403); an `Origin`, when sent, the server's own (else 403); the header
//! `X-Shmsem-Token` present (else 401) and equal to the printed token (else 403, compared in
//! constant time). A cross-site form cannot send a custom header, so a page of another site
//! cannot make a browser change anything. Only then is the body read, at most
//! [`BODY_LIMIT`](super::BODY_LIMIT) bytes (else 413).

use std::{collections::HashMap, fs::File, io::Read, time::Duration};

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
    place::{Failure, Place, blocking, checked_name},
};

/// The header that carries the token.
pub const TOKEN_HEADER: &str = "x-shmsem-token";

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
    let Some(given) = headers.get(TOKEN_HEADER) else {
        return Err(Failure::new(
            StatusCode::UNAUTHORIZED,
            "no token: send the header X-Shmsem-Token with the token `shmsem serve --edit` printed",
        ));
    };
    if !same(given.as_bytes(), token.as_bytes()) {
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

/// A capacity field: 1 to the library's largest capacity.
fn capacity(body: &Map<String, Value>) -> Result<Option<u32>, Failure> {
    Ok(number(body, "capacity", 1, Semaphore::MAX_CAPACITY.into())?.map(|n| n as u32))
}

/// The `kind` field: `Some(true)` for persistent, `Some(false)` for auto; 400 otherwise.
fn kind(body: &Map<String, Value>) -> Result<Option<bool>, Failure> {
    match body.get("kind") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(k)) if k == "persistent" => Ok(Some(true)),
        Some(Value::String(k)) if k == "auto" => Ok(Some(false)),
        Some(v) => Err(Failure::bad_request(format!(
            "kind must be \"auto\" or \"persistent\", not {v}"
        ))),
    }
}

/// The string field `key`: `None` when absent, null or empty; 400 when not a string.
fn text<'a>(body: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, Failure> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => Ok(Some(t.as_str()).filter(|t| !t.is_empty())),
        Some(v) => Err(Failure::bad_request(format!(
            "{key} must be a string, not {v}"
        ))),
    }
}

/// The `mode` field: an octal string (`"0660"`, `"660"`) up to 0777; 400 otherwise.
fn mode(body: &Map<String, Value>) -> Result<Option<u32>, Failure> {
    text(body, "mode")?
        .map(
            |m| match u32::from_str_radix(m.strip_prefix("0o").unwrap_or(m), 8) {
                Ok(n) if n <= 0o777 => Ok(n),
                _ => Err(Failure::bad_request(format!(
                    "mode must be octal from 0 to 0777, such as \"0660\", not {m:?}"
                ))),
            },
        )
        .transpose()
}

/// The `group` field: a group name or gid, resolved; 400 for an unknown group.
fn group(body: &Map<String, Value>) -> Result<Option<u32>, Failure> {
    text(body, "group")?
        .map(|g| {
            crate::group::resolve(g).map_err(|e| Failure::bad_request(format!("group: {e:#}")))
        })
        .transpose()
}

/// The path of one semaphore: scope, namespace, name.
type SemPath = Path<(String, String, String)>;

/// The place and checked name of a path: 400 when malformed.
fn place_of((scope, ns, name): &(String, String, String)) -> Result<Place, Failure> {
    let place = Place::parse(scope, ns)?;
    checked_name(name)?;
    Ok(place)
}

/// A change's request, checked in the contract's order: the token (and `--edit`), the place
/// and name of its path, then its JSON body.
async fn change_request(
    state: &super::State,
    path: &(String, String, String),
    headers: &HeaderMap,
    body: Body,
) -> Result<(Place, Map<String, Value>), Failure> {
    authorize(state, headers)?;
    let place = place_of(path)?;
    Ok((place, json_body(headers, body).await?))
}

/// `POST /api/sem/{scope}/{namespace}/{name}`: create a semaphore that does not exist (201),
/// 409 if it does.
pub async fn create(
    State(state): State<Shared>,
    Path(path): SemPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let (place, body) = change_request(&state, &path, &headers, body).await?;
    let mut opts = place.options().capacity(capacity(&body)?.unwrap_or(1));
    if kind(&body)? == Some(true) {
        opts = opts.persistent();
    }
    if let Some(ms) = number(&body, "idle_ms", 0, u32::MAX.into())? {
        opts = opts.auto(Duration::from_millis(ms));
    }
    if let Some(gid) = group(&body)? {
        opts = opts.group(gid);
    }
    if let Some(m) = mode(&body)? {
        opts = opts.mode(m);
    }
    let name = path.2;
    let info = blocking(move || opts.create_new(&name)?.info()).await?;
    Ok((StatusCode::CREATED, Json(output::summary_json(&info))).into_response())
}

/// Apply `change` to an existing semaphore; its `show --json` object.
async fn change_with(
    place: Place,
    name: String,
    change: impl FnOnce(&Semaphore) -> Result<(), shmsem::Error> + Send + 'static,
) -> Result<Json<Value>, Failure> {
    let opts = place.options();
    let info = blocking(move || {
        let sem = opts.open_existing(&name)?;
        change(&sem)?;
        sem.info()
    })
    .await?;
    Ok(Json(output::detail_json(&info)))
}

/// `POST /api/sem/{scope}/{namespace}/{name}/capacity` with `{"capacity": N}`, and
/// `POST /api/sem/{scope}/{namespace}/{name}/kind` with `{"kind": "auto"|"persistent"}`.
pub async fn set_route(
    State(state): State<Shared>,
    Path((scope, namespace, name, what)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, Failure> {
    let path = (scope, namespace, name);
    let (place, body) = change_request(&state, &path, &headers, body).await?;
    match what.as_str() {
        "capacity" => {
            let c = capacity(&body)?.ok_or_else(|| Failure::bad_request("capacity is missing"))?;
            change_with(place, path.2, move |sem| sem.set_capacity(c)).await
        }
        "kind" => {
            let persistent = kind(&body)?.ok_or_else(|| Failure::bad_request("kind is missing"))?;
            change_with(place, path.2, move |sem| sem.set_persistent(persistent)).await
        }
        _ => Err(Failure::new(StatusCode::NOT_FOUND, "no such route")),
    }
}

/// `DELETE /api/sem/{scope}/{namespace}/{name}`: remove it (204); 409 while held unless
/// `?force=true`.
pub async fn remove(
    State(state): State<Shared>,
    Path(path): SemPath,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<StatusCode, Failure> {
    authorize(&state, &headers)?;
    let place = place_of(&path)?;
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
    let name = path.2;
    blocking(move || opts.open_existing(&name)?.remove(force)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/reap/{scope}/{namespace}`: reclaim what dead holders hold; the `reap --json` array.
pub async fn reap(
    State(state): State<Shared>,
    Path((scope, ns)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, Failure> {
    authorize(&state, &headers)?;
    let place = Place::parse(&scope, &ns)?;
    json_body(&headers, body).await?;
    let namespace = place.namespace()?;
    let reclaimed = blocking(move || namespace.reap()).await?;
    Ok(Json(output::reclaimed_json(
        place.scope,
        &place.namespace,
        &reclaimed,
    )))
}
