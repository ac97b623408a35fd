//! The HTML pages: the list, one semaphore, one process, and the error page. Every value that
//! comes from a semaphore, a request or the system goes through [`esc`]. The pages carry no
//! inline script or style (the Content-Security-Policy forbids them): `/assets/app.js` reads the
//! data attributes and keeps the page live.

use std::fmt::Write as _;

use axum::{
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use shmsem::{Info, Kind, Party};
use shmsem_cli::output;

use super::{
    Shared,
    api::info_of,
    place::{Failure, Place, Query as Params, blocking, checked_pid},
};

/// The policy of every page: scripts, styles and connections from this server only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `s` safe in HTML text and in double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Adds the Content-Security-Policy to the pages.
pub async fn security_headers(mut res: Response) -> Response {
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    res
}

/// A whole page: `main` is the `<main>` element with its contents.
fn page(state: &Shared, place: &Place, title: &str, main: &str) -> String {
    let edit = state.token.is_some();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · shmsem</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/app.js\" defer></script></head>\n\
         <body data-edit=\"{edit}\" data-scope=\"{scope}\" data-namespace=\"{ns}\">\n\
         <nav id=\"nav\"><a href=\"/{query}\">Semaphores</a> <span class=\"place\">{scope} / {ns}</span> \
         <span id=\"live\" data-state=\"connecting\">connecting</span></nav>\n{main}\n</body></html>\n",
        title = esc(title),
        scope = esc(place.scope.as_str()),
        ns = esc(&place.namespace),
        query = esc(&place.query_string(state)),
    )
}

/// The page for a failure, with its status.
fn error_page(state: &Shared, place: Option<&Place>, f: &Failure) -> Response {
    let fallback = Place {
        scope: state.scope,
        namespace: state.namespace.clone(),
    };
    let main = format!(
        "<main id=\"error\" data-status=\"{code}\"><h1>{code} {reason}</h1><p class=\"message\">{msg}</p></main>",
        code = f.status.as_u16(),
        reason = esc(f.status.canonical_reason().unwrap_or("")),
        msg = esc(&f.message),
    );
    let html = page(state, place.unwrap_or(&fallback), "error", &main);
    (f.status, Html(html)).into_response()
}

/// The token field, message and form of edit mode, or nothing.
fn edit_controls(state: &Shared, form: &str) -> String {
    if state.token.is_none() {
        return String::new();
    }
    format!(
        "<section id=\"edit\"><label>Token <input id=\"token\" type=\"password\" \
         autocomplete=\"off\"></label>{form}<p id=\"message\" data-state=\"ok\" role=\"status\"></p></section>"
    )
}

/// `GET /`: every semaphore of the place.
pub async fn list(State(state): State<Shared>, Query(q): Query<Params>) -> Response {
    let place = match Place::of(&state, &q) {
        Ok(p) => p,
        Err(f) => return error_page(&state, None, &f),
    };
    let ns = match place.namespace() {
        Ok(ns) => ns,
        Err(f) => return error_page(&state, Some(&place), &f),
    };
    let infos = match blocking(move || ns.list()).await {
        Ok(infos) => infos,
        Err(f) => return error_page(&state, Some(&place), &f),
    };
    let query = place.query_string(&state);
    let mut rows = String::new();
    for info in &infos {
        rows.push_str(&list_row(info, &query));
    }
    let empty = if infos.is_empty() {
        "<p id=\"empty\">No semaphores.</p>"
    } else {
        ""
    };
    let form = "<form id=\"create-form\"><input name=\"name\" placeholder=\"name\" required> \
                <input name=\"capacity\" type=\"number\" min=\"1\" value=\"1\"> \
                <label><input name=\"persistent\" type=\"checkbox\"> persistent</label> \
                <button type=\"submit\">Create</button></form>";
    let main = format!(
        "<main id=\"list\"><h1>Semaphores</h1><table id=\"semaphores\"><thead><tr><th>name</th>\
         <th>kind</th><th>value</th><th>capacity</th><th>holders</th><th>waiters</th><th>use</th>\
         </tr></thead><tbody>{rows}</tbody></table>{empty}{edit}</main>",
        edit = edit_controls(&state, form),
    );
    Html(page(&state, &place, "Semaphores", &main)).into_response()
}

/// One row of the list.
fn list_row(info: &Info, query: &str) -> String {
    format!(
        "<tr class=\"semaphore\" data-name=\"{name}\" data-kind=\"{kind}\" data-capacity=\"{cap}\" \
         data-value=\"{value}\" data-holders=\"{h}\" data-waiters=\"{w}\">\
         <td class=\"name\"><a href=\"/semaphores/{name}{query}\">{name}</a></td>\
         <td class=\"kind\">{kind}</td><td class=\"value\">{value}</td><td class=\"capacity\">{cap}</td>\
         <td class=\"holders\">{h}</td><td class=\"waiters\">{w}</td><td class=\"bar\">\
         <meter class=\"usage\" min=\"0\" max=\"{cap}\" value=\"{value}\"></meter></td></tr>",
        name = esc(&info.name),
        kind = esc(info.kind.as_str()),
        cap = info.capacity,
        value = info.value,
        h = info.holders.len(),
        w = info.waiters.len(),
        query = esc(query),
    )
}

/// `GET /semaphores/{name}`: one semaphore, its holders and waiters, and its plot.
pub async fn semaphore(
    State(state): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<Params>,
) -> Response {
    let place = match Place::of(&state, &q) {
        Ok(p) => p,
        Err(f) => return error_page(&state, None, &f),
    };
    let info = match info_of(&place, name).await {
        Ok(info) => info,
        Err(f) => return error_page(&state, Some(&place), &f),
    };
    let now = output::now_ms();
    let idle = match info.kind {
        Kind::Auto => info.idle_ms.to_string(),
        Kind::Persistent => "-".to_owned(),
    };
    let mut facts = String::new();
    for (key, value) in [
        ("kind", info.kind.as_str().to_owned()),
        ("capacity", info.capacity.to_string()),
        ("value", info.value.to_string()),
        ("available", info.available().to_string()),
        ("owner", output::owner_cell(&info.owner)),
        ("idle_ms", idle),
    ] {
        let _ = write!(
            facts,
            "<dt>{key}</dt><dd class=\"{key}\">{}</dd>",
            esc(&value)
        );
    }
    let form = "<form id=\"set-form\"><input name=\"capacity\" type=\"number\" min=\"1\"> \
                <button type=\"submit\">Set capacity</button></form> \
                <label><input id=\"force\" type=\"checkbox\"> force</label> \
                <button id=\"remove\" type=\"button\">Remove</button>";
    let main = format!(
        "<main id=\"semaphore\" data-name=\"{name}\" data-kind=\"{kind}\" data-capacity=\"{cap}\" \
         data-value=\"{value}\"><h1>{name}</h1><dl id=\"facts\">{facts}</dl>\
         <svg id=\"plot\" data-samples=\"0\" viewBox=\"0 0 600 120\" preserveAspectRatio=\"none\" \
         role=\"img\" aria-label=\"value over time\"><polyline class=\"capacity\" points=\"\"></polyline>\
         <polyline class=\"value\" points=\"\"></polyline></svg>\
         <h2>Holders</h2>{holders}<h2>Waiters</h2>{waiters}{edit}</main>",
        name = esc(&info.name),
        kind = esc(info.kind.as_str()),
        cap = info.capacity,
        value = info.value,
        holders = parties("holders", &info.holders, now),
        waiters = parties("waiters", &info.waiters, now),
        edit = edit_controls(&state, form),
    );
    Html(page(&state, &place, &info.name, &main)).into_response()
}

/// The table of holders or waiters.
fn parties(id: &str, parties: &[Party], now: u64) -> String {
    let mut rows = String::new();
    for p in parties {
        let _ = write!(
            rows,
            "<tr class=\"party\" data-pid=\"{pid}\" data-weight=\"{w}\" data-since-ms=\"{since}\">\
             <td class=\"pid\"><a href=\"/pids/{pid}\">{pid}</a></td><td class=\"weight\">{w}</td>\
             <td class=\"since\">{age}</td></tr>",
            pid = p.pid,
            w = p.weight,
            since = p.since_ms,
            age = esc(&output::age(now, p.since_ms)),
        );
    }
    format!(
        "<table id=\"{id}\"><thead><tr><th>pid</th><th>weight</th><th>since</th></tr></thead>\
         <tbody>{rows}</tbody></table>"
    )
}

/// `GET /pids/{pid}`: what one process holds or waits on, in every scope.
pub async fn pid(
    State(state): State<Shared>,
    Path(pid): Path<String>,
    Query(q): Query<Params>,
) -> Response {
    let place = match Place::of(&state, &q) {
        Ok(p) => p,
        Err(f) => return error_page(&state, None, &f),
    };
    let pid = match checked_pid(&pid) {
        Ok(pid) => pid,
        Err(f) => return error_page(&state, Some(&place), &f),
    };
    let activity = match blocking(move || shmsem::ps(pid)).await {
        Ok(a) => a,
        Err(f) => return error_page(&state, Some(&place), &f),
    };
    let mut rows = String::new();
    for a in &activity {
        let _ = write!(
            rows,
            "<tr class=\"activity\" data-scope=\"{scope}\" data-namespace=\"{ns}\" data-name=\"{name}\" \
             data-weight=\"{w}\" data-state=\"{st}\"><td class=\"scope\">{scope}</td>\
             <td class=\"namespace\">{ns}</td><td class=\"name\">{name}</td><td class=\"weight\">{w}</td>\
             <td class=\"state\">{st}</td></tr>",
            scope = esc(a.scope.as_str()),
            ns = esc(&a.namespace),
            name = esc(&a.name),
            w = a.weight,
            st = esc(a.state.as_str()),
        );
    }
    let empty = if activity.is_empty() {
        "<p id=\"empty\">Holds and waits on nothing.</p>"
    } else {
        ""
    };
    let main = format!(
        "<main id=\"pid\" data-pid=\"{pid}\"><h1>Process {pid}</h1><table id=\"activity\"><thead><tr>\
         <th>scope</th><th>namespace</th><th>name</th><th>weight</th><th>state</th></tr></thead>\
         <tbody>{rows}</tbody></table>{empty}</main>"
    );
    Html(page(&state, &place, &format!("process {pid}"), &main)).into_response()
}

/// Any other route: 404, as a page.
pub async fn not_found(State(state): State<Shared>) -> Response {
    let f = Failure::new(StatusCode::NOT_FOUND, "no such page");
    security_headers(error_page(&state, None, &f)).await
}
