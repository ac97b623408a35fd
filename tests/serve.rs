//! `shmsem serve`, end to end: the built binary as a child with a private `SHMSEM_DIR`, spoken
//! to over loopback HTTP. Every route of `docs/serve-contract.md` with its status, content type
//! and key fields; every refusal; the token rule; and a namespace file removed or overwritten
//! under the running server.

mod common;

use std::fs;

use common::{
    TestDir,
    cli::{self, Sleeper, eventually},
    http::Server,
};
use serde_json::json;

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

/// A test directory with `local/default/a` (capacity 3, persistent), `local/default/b`
/// (capacity 1) and `global/ops/g`, and the server.
fn setup(test: &str, extra: &[&str]) -> (TestDir, Server) {
    let dir = TestDir::new(test);
    cli::ok(&dir, &["create", "a", "--capacity", "3", "--persistent"]);
    cli::ok(&dir, &["create", "b", "--persistent"]);
    cli::ok(
        &dir,
        &[
            "--scope",
            "global",
            "--namespace",
            "ops",
            "create",
            "g",
            "--persistent",
        ],
    );
    let server = Server::start(&dir, extra);
    (dir, server)
}

fn contains_all(html: &str, needles: &[&str]) {
    for needle in needles {
        assert!(html.contains(needle), "{needle} not in {html}");
    }
}

#[test]
fn read_routes_answer_with_the_commands_json_and_the_contracts_pages() {
    let (dir, server) = setup("serve-read", &[]);
    let holder = Sleeper::spawn();
    let hpid = holder.pid();
    cli::ok(&dir, &["acquire", "a", "--weight", "2", "--holder", &hpid]);

    let list = server.get("/api/semaphores");
    let list = list.expect(200, JSON).json();
    let names: Vec<(&str, &str, &str)> = list
        .as_array()
        .expect("an array")
        .iter()
        .map(|s| {
            let f = |k: &str| s[k].as_str().unwrap_or_default();
            (f("scope"), f("namespace"), f("name"))
        })
        .collect();
    assert_eq!(
        names,
        [
            ("global", "ops", "g"),
            ("local", "default", "a"),
            ("local", "default", "b")
        ]
    );
    let local = cli::ok(&dir, &["ls", "--json"]).json();
    assert_eq!(list[1], local[0], "the fields of ls --json");
    assert_eq!(
        (list[1]["value"].as_u64(), list[1]["holders"].as_u64()),
        (Some(2), Some(1))
    );

    let show = server.get("/api/sem/local/default/a");
    let show = show.expect(200, JSON).json();
    assert_eq!(
        show["holders"][0]["pid"].as_u64(),
        Some(holder.0.id().into())
    );
    assert_eq!(show["holders"][0]["weight"], 2);
    assert!(show["holders"][0]["since_ms"].is_u64());
    assert_eq!(show["holders"][0]["cmdline"], "sleep 60");
    assert_eq!(
        server.get("/api/sem/global/ops/g").expect(200, JSON).json()["scope"],
        "global"
    );

    let ps = server.get(&format!("/api/pid/{hpid}"));
    let ps = ps.expect(200, JSON).json();
    assert_eq!(
        ps,
        json!([{"scope": "local", "namespace": "default", "name": "a", "weight": 2, "state": "held"}])
    );

    eventually("a sample of the held weight", || {
        let h = server.get("/api/sem/local/default/a/history").json();
        let last = h["samples"].as_array().and_then(|s| s.last().cloned());
        last.is_some_and(|s| s["value"] == 2 && s["capacity"] == 3 && s["holders"] == 1)
    });

    let metrics = server.get("/metrics");
    metrics.expect(
        200,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    );
    let text = metrics.text();
    assert!(
        text.contains("scope=\"global\",namespace=\"ops\",name=\"g\""),
        "all scopes: {text}"
    );
    assert!(text.ends_with("# EOF\n"));

    assert_eq!(
        server.get("/healthz").expect(200, "text/plain").text(),
        "ok\n"
    );
    server.get("/assets/style.css").expect(200, "text/css");
    server.get("/assets/app.js").expect(200, "text/javascript");
    assert_eq!(server.get("/api/info").json()["edit"], false);

    let page = server.get("/");
    page.expect(200, HTML);
    assert!(
        page.header("content-security-policy")
            .is_some_and(|c| c.contains("script-src 'self'"))
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let html = page.text();
    contains_all(
        &html,
        &[
            "<meta name=\"viewport\"",
            "<table id=\"semaphores\"",
            "<input id=\"filter\"",
            "<th data-sort=\"name\">",
            "<tr class=\"sem\" data-scope=\"local\" data-namespace=\"default\" data-name=\"a\">",
            "<td class=\"scope\">local</td>",
            "<td class=\"namespace\">default</td>",
            "<td class=\"name\"><a href=\"/sem/local/default/a\">a</a></td>",
            "<td class=\"kind\">persistent</td>",
            "<td class=\"capacity\">3</td>",
            "<td class=\"value\"><span>2/3</span>",
            "<td class=\"holders\">1</td>",
            "<td class=\"waiters\">0</td>",
            "<td class=\"owner\">",
            "<tr class=\"sem\" data-scope=\"global\" data-namespace=\"ops\" data-name=\"g\">",
        ],
    );
    for absent in [
        "id=\"token\"",
        "id=\"create\"",
        "id=\"reap\"",
        "id=\"message\"",
    ] {
        assert!(!html.contains(absent), "{absent} in {html}");
    }

    let html = server.get("/sem/local/default/a");
    let html = html.expect(200, HTML).text();
    contains_all(
        &html,
        &[
            "<h1 id=\"title\"",
            ">a</h1>",
            "<dl id=\"summary\">",
            "<dd class=\"capacity\">3</dd>",
            "<dd class=\"value\">2</dd>",
            "<table id=\"holders\"",
            "<table id=\"waiters\"",
            "<svg id=\"history\"",
            &format!(
                "<tr data-pid=\"{hpid}\"><td class=\"pid\"><a href=\"/pid/{hpid}\">{hpid}</a></td>"
            ),
            "<td class=\"cmdline\">sleep 60</td>",
            "<td class=\"weight\">2</td>",
        ],
    );
    assert!(!html.contains("id=\"edit\"") && !html.contains("id=\"remove\""));

    let html = server.get(&format!("/pid/{hpid}"));
    let html = html.expect(200, HTML).text();
    contains_all(
        &html,
        &[
            "<table id=\"activity\"",
            "<tr data-scope=\"local\" data-namespace=\"default\" data-name=\"a\">",
            "<td class=\"state\">held</td>",
        ],
    );
}

#[test]
fn the_event_stream_sends_the_list_and_then_its_changes() {
    let (dir, server) = setup("serve-events", &[]);
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let mut s = std::net::TcpStream::connect(server.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    write!(
        s,
        "GET /api/events HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    )
    .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    let mut created = false;
    while start.elapsed() < Duration::from_millis(2500) {
        if !created && start.elapsed() > Duration::from_millis(700) {
            cli::ok(&dir, &["create", "late", "--persistent"]);
            created = true;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => continue,
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{text}"
    );
    let events: Vec<&str> = text.split("event: semaphores").skip(1).collect();
    assert!(events.len() >= 2, "the list, then the change: {text}");
    assert!(
        events[0].contains("\"name\":\"a\"") && !events[0].contains("\"late\""),
        "{text}"
    );
    assert!(
        events
            .last()
            .is_some_and(|e| e.contains("\"name\":\"late\"")),
        "{text}"
    );
}

#[test]
fn refusals_have_the_contracts_statuses() {
    let (dir, server) = setup("serve-refusals", &["--edit"]);
    let token = server.token.clone().expect("a token");
    assert_eq!(token.len(), 64);
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );

    for (path, expected) in [
        ("/api/sem/local/default/nope", 404),
        ("/sem/local/default/nope", 404),
        ("/api/sem/local/nons/a", 404),
        ("/api/sem/local/default/bad%20name", 400),
        ("/sem/local/default/bad%3Cb%3E", 400),
        ("/api/sem/nowhere/default/a", 400),
        ("/sem/nowhere/default/a", 400),
        ("/api/sem/local/..%2Fetc/a", 400),
        ("/api/pid/abc", 400),
        ("/api/pid/0", 400),
        ("/pid/99999999999", 400),
        ("/no/such/route", 404),
        ("/api/no/such/route", 404),
    ] {
        assert_eq!(server.get(path).status, expected, "GET {path}");
    }
    assert_eq!(
        server.request("PUT", "/api/semaphores", &[], b"").status,
        405
    );
    let e = server.get("/api/sem/local/default/nope").json();
    assert!(
        e["error"].as_str().is_some_and(|m| m.contains("nope")),
        "{e}"
    );

    // The token rule, in the contract's order.
    let post = |path: &str, headers: &[&str], body: &str| {
        server
            .request("POST", path, headers, body.as_bytes())
            .status
    };
    let json = "Content-Type: application/json";
    let good = format!("X-Shmsem-Token: {token}");
    let wrong = format!("X-Shmsem-Token: {}", "0".repeat(64));
    let c = "/api/sem/local/default/c";
    assert_eq!(post(c, &[json], r#"{"capacity":2}"#), 401);
    assert_eq!(post(c, &[json, &wrong], r#"{"capacity":2}"#), 403);
    assert_eq!(
        post(c, &[json, &format!("Authorization: Bearer {token}")], "{}"),
        401
    );
    assert_eq!(
        post(c, &[json, &good, "Origin: http://evil.example"], "{}"),
        403
    );
    let own_origin = format!("Origin: http://{}", server.addr);
    assert_eq!(
        post(
            c,
            &[json, &good, &own_origin],
            r#"{"capacity":2,"kind":"persistent"}"#
        ),
        201
    );
    let d = "/api/sem/local/default/d";
    let big = format!(r#"{{"capacity":1,"pad":"{}"}}"#, "x".repeat(17 * 1024));
    assert_eq!(post(d, &[json, &good], &big), 413);
    assert_eq!(post(d, &[json, &good], "not json"), 400);
    assert_eq!(post(d, &[json, &good], r#"{"capacity":"many"}"#), 400);
    assert_eq!(post(d, &[json, &good], r#"{"capacity":0}"#), 400);
    assert_eq!(post(d, &[json, &good], r#"{"kind":"sometimes"}"#), 400);
    assert_eq!(post(d, &[json, &good], r#"{"mode":"999"}"#), 400);
    assert_eq!(
        post("/api/sem/local/default/bad%20name", &[json, &good], "{}"),
        400
    );
    assert_eq!(
        post("/api/sem/nowhere/default/d", &[json, &good], "{}"),
        400
    );
    assert_eq!(post("/api/sem/local/default/a", &[json, &good], "{}"), 409);
    assert_eq!(post("/api/reap/nowhere/default", &[&good], ""), 400);
    // Nothing refused was created.
    let names: Vec<String> = cli::ls(&dir, &[])
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(
        !server.get("/").text().contains(&token),
        "the token is never served"
    );
}

#[test]
fn changes_need_edit_and_do_what_the_commands_do() {
    let (dir, server) = setup("serve-changes", &["--edit"]);
    let created = server.change(
        "POST",
        "/api/sem/global/team/c",
        r#"{"capacity":4,"kind":"persistent","mode":"0660"}"#,
    );
    let created = created.expect(201, JSON).json();
    assert_eq!(
        (created["name"].as_str(), created["capacity"].as_u64()),
        (Some("c"), Some(4))
    );
    assert_eq!(
        (created["kind"].as_str(), created["scope"].as_str()),
        (Some("persistent"), Some("global"))
    );

    let c = "/api/sem/global/team/c";
    let changed = server.change("POST", &format!("{c}/capacity"), r#"{"capacity":2}"#);
    assert_eq!(changed.expect(200, JSON).json()["capacity"], 2);
    let changed = server.change("POST", &format!("{c}/kind"), r#"{"kind":"auto"}"#);
    assert_eq!(changed.expect(200, JSON).json()["kind"], "auto");
    assert_eq!(
        server
            .change(
                "POST",
                "/api/sem/local/default/nope/capacity",
                r#"{"capacity":2}"#
            )
            .status,
        404
    );
    assert_eq!(
        server
            .change("POST", &format!("{c}/capacity"), r#"{"capacity":-1}"#)
            .status,
        400
    );
    assert_eq!(
        server.change("POST", &format!("{c}/kind"), "{}").status,
        400
    );

    let holder = Sleeper::spawn();
    cli::ok(&dir, &["acquire", "a", "--holder", &holder.pid()]);
    let a = "/api/sem/local/default/a";
    assert_eq!(server.change("DELETE", a, "").status, 409);
    assert_eq!(
        server
            .change("DELETE", &format!("{a}?force=maybe"), "")
            .status,
        400
    );
    assert_eq!(
        server
            .change("DELETE", &format!("{a}?force=true"), "")
            .status,
        204
    );
    assert_eq!(server.get(a).status, 404);
    assert_eq!(
        server
            .change("DELETE", "/api/sem/local/default/b", "")
            .status,
        204
    );

    let reaped = server.change("POST", "/api/reap/local/default", "");
    assert!(reaped.expect(200, JSON).json().is_array());

    let html = server.get("/").text();
    contains_all(
        &html,
        &[
            "data-edit=\"true\"",
            "<form id=\"create\">",
            "name=\"name\"",
            "name=\"scope\"",
            "name=\"namespace\"",
            "name=\"capacity\"",
            "name=\"kind\"",
            "name=\"group\"",
            "name=\"mode\"",
            "<button type=\"submit\">",
            "<button id=\"reap\"",
            "<input id=\"token\"",
            "<div id=\"message\"",
        ],
    );
    let html = server.get("/sem/global/team/c").text();
    contains_all(
        &html,
        &[
            "<form id=\"edit\">",
            "name=\"capacity\"",
            "name=\"kind\"",
            "<button id=\"remove\"",
        ],
    );

    // Read-only: every change is 403, token or not.
    let ro = Server::start(&dir, &[]);
    let auth = format!("X-Shmsem-Token: {}", server.token.as_deref().unwrap_or(""));
    let json = "Content-Type: application/json";
    assert_eq!(
        ro.request("POST", "/api/sem/local/default/e", &[&auth, json], b"{}")
            .status,
        403
    );
    assert_eq!(ro.request("DELETE", c, &[], b"").status, 403);
    assert_eq!(
        ro.request(
            "POST",
            &format!("{c}/capacity"),
            &[&auth, json],
            br#"{"capacity":3}"#
        )
        .status,
        403
    );
    assert_eq!(
        ro.request("POST", "/api/reap/local/default", &[], b"")
            .status,
        403
    );
    assert_eq!(ro.get(c).json()["capacity"], 2, "nothing changed");
}

#[test]
fn html_escapes_every_value() {
    let (_dir, server) = setup("serve-escape", &[]);
    // Names cannot carry markup; a path can, and it must come back inert.
    let page = server.get("/sem/local/%3Cscript%3E/a");
    assert_eq!(page.status, 400);
    assert!(!page.text().contains("<script>"), "{}", page.text());
    let page = server.get("/sem/local/default/%22%3E%3Cimg");
    assert_eq!(page.status, 400);
    assert!(!page.text().contains("\"><img"), "{}", page.text());
}

#[test]
fn the_server_survives_its_namespace_file_removed_or_overwritten() {
    let (dir, mut server) = setup("serve-corrupt", &["--edit"]);
    let file = dir.shm.join("local.default");
    assert!(file.exists(), "{file:?}");

    fs::remove_file(&file).expect("removing the namespace file");
    let list = server.get("/api/semaphores").expect(200, JSON).json();
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "only global/ops/g: {list}"
    );
    assert_eq!(server.get("/api/sem/local/default/a").status, 404);
    assert_eq!(server.get("/sem/local/default/a").status, 404);
    assert_eq!(server.get("/").status, 200);

    fs::write(&file, vec![0xA5u8; 8192]).expect("overwriting the namespace file");
    for path in ["/api/sem/local/default/a", "/sem/local/default/a"] {
        let r = server.get(path);
        assert!(
            [400, 404, 409].contains(&r.status),
            "{path}: {} {}",
            r.status,
            r.text()
        );
    }
    for path in ["/api/semaphores", "/", "/metrics"] {
        assert_eq!(
            server.get(path).status,
            200,
            "{path}: the other namespaces still show"
        );
    }
    let r = server.change("POST", "/api/sem/local/default/x", "{}");
    assert!(
        [400, 404, 409].contains(&r.status),
        "{} {}",
        r.status,
        r.text()
    );
    assert!(r.json()["error"].is_string());
    fs::write(&file, b"short").expect("overwriting the namespace file");
    assert!([400, 404, 409].contains(&server.get("/api/sem/local/default/a").status));
    assert!(server.alive(), "the server died");

    fs::remove_file(&file).expect("removing the garbage");
    cli::ok(&dir, &["create", "z", "--persistent"]);
    assert_eq!(server.get("/api/sem/local/default/z").status, 200);
    assert!(server.alive());
}

#[test]
fn sigterm_stops_the_server_with_status_zero() {
    let (_dir, mut server) = setup("serve-sigterm", &[]);
    assert_eq!(server.get("/healthz").status, 200);
    // SAFETY: kill(2) on our own child's pid, which has not been waited for.
    let r = unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(r, 0);
    let status = server.child.wait().expect("waiting for the server");
    assert_eq!(status.code(), Some(0), "{status:?}");
}
