//! The HTML pages: the list of every semaphore, one semaphore, one process, and the error page.
//! Every value that comes from a semaphore, a request or the system goes through [`esc`]. The
//! pages carry no inline script or style (the Content-Security-Policy forbids them):
//! `/assets/app.js` reads the data attributes and keeps the page live.

use std::fmt::Write as _;

use axum::{
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use shmsem::{Info, Kind, Party};
use shmsem_cli::output;

use super::{
    Shared,
    api::{all_infos, cmdline, info_of},
    place::{Failure, blocking, checked_pid},
};

/// The policy of every page: scripts, styles and connections from this server only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `s` safe in HTML text and in double-quoted attributes.
pub fn esc(s: &str) -> String {
    output::escape_with(s, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '"' => Some("&quot;"),
        '\'' => Some("&#39;"),
        _ => None,
    })
}

/// Adds the Content-Security-Policy to the pages.
pub async fn security_headers(mut res: Response) -> Response {
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    res
}

/// A whole page: `main` is the contents of `<main>`.
fn page(state: &Shared, title: &str, main: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{title} · shmsem</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/app.js\" defer></script></head>\n\
         <body data-edit=\"{edit}\"><nav><a href=\"/\">Semaphores</a></nav>\n<main>{main}</main>\n\
         </body></html>\n",
        title = esc(title),
        edit = state.token.is_some(),
    )
}

/// The page for a failure, with its status.
fn error_page(state: &Shared, f: &Failure) -> Response {
    let main = format!(
        "<h1 id=\"title\">{code} {reason}</h1><p id=\"error\">{msg}</p>",
        code = f.status.as_u16(),
        reason = esc(f.status.canonical_reason().unwrap_or("")),
        msg = esc(&f.message),
    );
    (f.status, Html(page(state, "error", &main))).into_response()
}

/// The token field and message of edit mode.
const TOKEN_FIELD: &str =
    "<label>Token <input id=\"token\" type=\"password\" autocomplete=\"off\"></label>";
const MESSAGE: &str = "<div id=\"message\" role=\"status\"></div>";

/// The kind cell's text: auto with its idle period, or persistent.
fn kind_text(info: &Info) -> String {
    match info.kind {
        Kind::Auto => format!("auto ({} ms idle)", info.idle_ms),
        Kind::Persistent => "persistent".to_owned(),
    }
}

/// `GET /`: every semaphore of every namespace.
pub async fn list(State(state): State<Shared>) -> Response {
    let infos = match blocking(all_infos).await {
        Ok(infos) => infos,
        Err(f) => return error_page(&state, &f),
    };
    let mut rows = String::new();
    for info in &infos {
        rows.push_str(&list_row(info));
    }
    let mut head = String::new();
    for col in [
        "scope",
        "namespace",
        "name",
        "kind",
        "owner",
        "capacity",
        "value",
        "holders",
        "waiters",
    ] {
        let _ = write!(head, "<th data-sort=\"{col}\">{col}</th>");
    }
    let edit = if state.token.is_some() {
        format!(
            "<section id=\"changes\">{TOKEN_FIELD}<form id=\"create\">\
             <input name=\"name\" placeholder=\"name\" required>\
             <select name=\"scope\"><option>local</option><option>global</option>{tree}</select>\
             <input name=\"namespace\" value=\"default\">\
             <input name=\"capacity\" type=\"number\" min=\"1\" value=\"1\">\
             <select name=\"kind\"><option>auto</option><option>persistent</option></select>\
             <input name=\"group\" placeholder=\"group\"><input name=\"mode\" placeholder=\"0660\">\
             <button type=\"submit\">Create</button></form>\
             <button id=\"reap\" type=\"button\">Reap dead holders</button>{MESSAGE}</section>",
            tree = if shmsem::Tree::current().is_ok()
                && std::env::var_os(shmsem::SELF_ENV).is_some()
            {
                "<option>self</option>"
            } else {
                ""
            },
        )
    } else {
        String::new()
    };
    let main = format!(
        "<h1 id=\"title\">Semaphores</h1><input id=\"filter\" type=\"search\" placeholder=\"filter by name\">\
         <div class=\"scroll\"><table id=\"semaphores\"><thead><tr>{head}</tr></thead>\
         <tbody>{rows}</tbody></table></div>{edit}"
    );
    Html(page(&state, "Semaphores", &main)).into_response()
}

/// One row of the list (the script builds the same from the JSON).
fn list_row(info: &Info) -> String {
    format!(
        "<tr class=\"sem\" data-scope=\"{scope}\" data-namespace=\"{ns}\" data-name=\"{name}\">\
         <td class=\"scope\">{scope}</td><td class=\"namespace\">{ns}</td>\
         <td class=\"name\"><a href=\"/sem/{scope}/{ns}/{name}\">{name}</a></td>\
         <td class=\"kind\">{kind}</td><td class=\"owner\">{owner}</td>\
         <td class=\"capacity\">{cap}</td><td class=\"value\"><span>{value}/{cap}</span> \
         <meter min=\"0\" max=\"{cap}\" value=\"{value}\"></meter></td>\
         <td class=\"holders\">{h}</td><td class=\"waiters\">{w}</td></tr>",
        scope = esc(info.scope.as_str()),
        ns = esc(&info.namespace),
        name = esc(&info.name),
        kind = esc(&kind_text(info)),
        owner = esc(&output::owner_cell(&info.owner)),
        cap = info.capacity,
        value = info.value,
        h = info.holders.len(),
        w = info.waiters.len(),
    )
}

/// `GET /sem/{scope}/{namespace}/{name}`: one semaphore, its holders and waiters, its plot.
pub async fn semaphore(
    State(state): State<Shared>,
    Path((scope, ns, name)): Path<(String, String, String)>,
) -> Response {
    let (place, info) = match info_of(&scope, &ns, name).await {
        Ok(found) => found,
        Err(f) => return error_page(&state, &f),
    };
    let info2 = info.clone();
    let tables = blocking(move || {
        let now = output::now_ms();
        Ok((
            parties("holders", &info2.holders, now),
            parties("waiters", &info2.waiters, now),
        ))
    })
    .await;
    let Ok((holders, waiters)) = tables else {
        return error_page(
            &state,
            &Failure::new(StatusCode::CONFLICT, "reading the processes"),
        );
    };
    let mut summary = String::new();
    for (key, value) in [
        ("scope", place.scope.as_str().to_owned()),
        ("namespace", place.namespace.clone()),
        ("kind", kind_text(&info)),
        ("owner", output::owner_cell(&info.owner)),
        ("capacity", info.capacity.to_string()),
        ("value", info.value.to_string()),
        ("available", info.available().to_string()),
    ] {
        let _ = write!(
            summary,
            "<dt>{key}</dt><dd class=\"{key}\">{}</dd>",
            esc(&value)
        );
    }
    let edit = if state.token.is_some() {
        format!(
            "<section id=\"changes\">{TOKEN_FIELD}<form id=\"edit\">\
             <input name=\"capacity\" type=\"number\" min=\"1\" value=\"{cap}\">\
             <select name=\"kind\"><option{auto}>auto</option><option{pers}>persistent</option></select>\
             <button type=\"submit\">Change</button></form>\
             <label><input id=\"force\" type=\"checkbox\"> even while held</label> \
             <button id=\"remove\" type=\"button\">Remove</button>{MESSAGE}</section>",
            cap = info.capacity,
            auto = if info.kind == Kind::Auto {
                " selected"
            } else {
                ""
            },
            pers = if info.kind == Kind::Persistent {
                " selected"
            } else {
                ""
            },
        )
    } else {
        String::new()
    };
    let main = format!(
        "<h1 id=\"title\" data-scope=\"{scope}\" data-namespace=\"{ns}\" data-name=\"{name}\">{name}</h1>\
         <dl id=\"summary\">{summary}</dl>\
         <svg id=\"history\" viewBox=\"0 0 600 120\" preserveAspectRatio=\"none\" role=\"img\" \
         aria-label=\"value and waiters over time\"><polyline class=\"capacity\" points=\"\"></polyline>\
         <polyline class=\"value\" points=\"\"></polyline><polyline class=\"waiters\" points=\"\"></polyline></svg>\
         <p class=\"legend\"><span class=\"value\">value</span> <span class=\"waiters\">waiters</span> \
         <span class=\"capacity\">capacity</span></p>\
         <h2>Holders</h2>{holders}<h2>Waiters</h2>{waiters}{edit}",
        scope = esc(place.scope.as_str()),
        ns = esc(&place.namespace),
        name = esc(&info.name),
    );
    Html(page(&state, &info.name, &main)).into_response()
}

/// The table of holders or waiters. Blocking (reads each command line from /proc).
fn parties(id: &str, parties: &[Party], now: u64) -> String {
    let mut rows = String::new();
    for p in parties {
        let _ = write!(
            rows,
            "<tr data-pid=\"{pid}\"><td class=\"pid\"><a href=\"/pid/{pid}\">{pid}</a></td>\
             <td class=\"cmdline\">{cmd}</td><td class=\"weight\">{w}</td>\
             <td class=\"since\" data-since-ms=\"{since}\">{age}</td></tr>",
            pid = p.pid,
            cmd = esc(&cmdline(p.pid).unwrap_or_default()),
            w = p.weight,
            since = p.since_ms,
            age = esc(&output::age(now, p.since_ms)),
        );
    }
    format!(
        "<div class=\"scroll\"><table id=\"{id}\"><thead><tr><th>pid</th><th>command</th><th>weight</th>\
         <th>since</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
}

/// `GET /pid/{pid}`: what one process holds or waits on, in every scope.
pub async fn pid(State(state): State<Shared>, Path(pid): Path<String>) -> Response {
    let pid = match checked_pid(&pid) {
        Ok(pid) => pid,
        Err(f) => return error_page(&state, &f),
    };
    let activity = match blocking(move || shmsem::ps(pid)).await {
        Ok(a) => a,
        Err(f) => return error_page(&state, &f),
    };
    let mut rows = String::new();
    for a in &activity {
        let _ = write!(
            rows,
            "<tr data-scope=\"{scope}\" data-namespace=\"{ns}\" data-name=\"{name}\">\
             <td class=\"scope\">{scope}</td><td class=\"namespace\">{ns}</td>\
             <td class=\"name\"><a href=\"/sem/{scope}/{ns}/{name}\">{name}</a></td>\
             <td class=\"weight\">{w}</td><td class=\"state\">{st}</td></tr>",
            scope = esc(a.scope.as_str()),
            ns = esc(&a.namespace),
            name = esc(&a.name),
            w = a.weight,
            st = esc(a.state.as_str()),
        );
    }
    let cmd = blocking(move || Ok(cmdline(pid))).await.ok().flatten();
    let main = format!(
        "<h1 id=\"title\" data-pid=\"{pid}\">Process {pid}</h1><p class=\"cmdline\">{cmd}</p>\
         <div class=\"scroll\"><table id=\"activity\"><thead><tr><th>scope</th><th>namespace</th>\
         <th>name</th><th>weight</th><th>state</th></tr></thead><tbody>{rows}</tbody></table></div>",
        cmd = esc(&cmd.unwrap_or_default()),
    );
    Html(page(&state, &format!("process {pid}"), &main)).into_response()
}

/// Any other route: 404, as JSON under `/api/`, else as a page.
pub async fn not_found(State(state): State<Shared>, uri: axum::http::Uri) -> Response {
    let f = Failure::new(StatusCode::NOT_FOUND, format!("no route {}", uri.path()));
    if uri.path().starts_with("/api/") {
        return f.into_response();
    }
    security_headers(error_page(&state, &f)).await
}
