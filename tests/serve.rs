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

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

/// A test directory with `a` (capacity 3, persistent) and `b` (capacity 1), and the server.
fn setup(test: &str, extra: &[&str]) -> (TestDir, Server) {
    let dir = TestDir::new(test);
    cli::ok(&dir, &["create", "a", "--capacity", "3", "--persistent"]);
    cli::ok(&dir, &["create", "b", "--persistent"]);
    let server = Server::start(&dir, extra);
    (dir, server)
}

#[test]
fn read_routes_answer_with_the_commands_json_and_the_contracts_pages() {
    let (dir, server) = setup("serve-read", &[]);
    let holder = Sleeper::spawn();
    cli::ok(
        &dir,
        &["acquire", "a", "--weight", "2", "--holder", &holder.pid()],
    );

    let list = server.get("/api/semaphores");
    let list = list.expect(200, JSON).json();
    assert_eq!(
        list,
        cli::ok(&dir, &["ls", "--json"]).json(),
        "the same objects as ls --json"
    );
    assert_eq!(list[0]["name"], "a");
    assert_eq!(
        (list[0]["value"].as_u64(), list[0]["holders"].as_u64()),
        (Some(2), Some(1))
    );

    let show = server.get("/api/semaphores/a");
    let show = show.expect(200, JSON).json();
    assert_eq!(
        show["holders"][0]["pid"].as_u64(),
        Some(holder.0.id().into())
    );
    assert_eq!(show["holders"][0]["weight"], 2);
    assert!(show["holders"][0]["since_ms"].is_u64());

    let ps = server.get(&format!("/api/pids/{}", holder.pid()));
    let ps = ps.expect(200, JSON).json();
    assert_eq!(ps[0]["name"], "a");
    assert_eq!(ps[0]["state"], "held");

    let info = server.get("/api/info");
    let info = info.expect(200, JSON).json();
    assert_eq!(
        (info["scope"].as_str(), info["edit"].as_bool()),
        (Some("local"), Some(false))
    );

    eventually("a history sample", || {
        let h = server.get("/api/semaphores/a/history");
        let h = h.expect(200, JSON).json();
        h["samples"].as_array().is_some_and(|s| !s.is_empty())
    });
    // The first sample may predate the acquire: wait for one that shows it.
    eventually("a sample of the held weight", || {
        let h = server.get("/api/semaphores/a/history").json();
        let last = h["samples"].as_array().and_then(|s| s.last().cloned());
        last.is_some_and(|s| s["value"] == 2 && s["capacity"] == 3 && s["holders"] == 1)
    });

    let metrics = server.get("/metrics");
    metrics.expect(200, "application/openmetrics-text; version=1.0.0");
    assert!(
        metrics.text().contains("shmsem_capacity{"),
        "{}",
        metrics.text()
    );
    assert!(metrics.text().ends_with("# EOF\n"));

    server.get("/healthz").expect(200, "text/plain");
    assert_eq!(server.get("/healthz").text(), "ok\n");
    server.get("/assets/style.css").expect(200, "text/css");
    server.get("/assets/app.js").expect(200, "text/javascript");

    let page = server.get("/");
    page.expect(200, HTML);
    assert!(
        page.header("content-security-policy")
            .is_some_and(|c| c.contains("script-src 'self'"))
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let html = page.text();
    for needle in [
        "data-edit=\"false\"",
        "id=\"nav\"",
        "id=\"live\"",
        "<main id=\"list\"",
        "<table id=\"semaphores\"",
        "<tr class=\"semaphore\" data-name=\"a\" data-kind=\"persistent\" data-capacity=\"3\" data-value=\"2\" data-holders=\"1\" data-waiters=\"0\"",
        "<a href=\"/semaphores/a\">a</a>",
        "<meter class=\"usage\" min=\"0\" max=\"3\" value=\"2\">",
    ] {
        assert!(html.contains(needle), "{needle} not in {html}");
    }
    for absent in ["id=\"token\"", "id=\"create-form\"", "id=\"empty\""] {
        assert!(!html.contains(absent), "{absent} in {html}");
    }

    let html = server.get("/semaphores/a");
    let html = html.expect(200, HTML).text();
    let party = format!(
        "<tr class=\"party\" data-pid=\"{0}\" data-weight=\"2\"",
        holder.pid()
    );
    for needle in [
        "<main id=\"semaphore\" data-name=\"a\"",
        "id=\"facts\"",
        "<table id=\"holders\"",
        "<table id=\"waiters\"",
        "<svg id=\"plot\"",
        "polyline class=\"value\"",
        party.as_str(),
        &format!("href=\"/pids/{}\"", holder.pid()),
    ] {
        assert!(html.contains(needle), "{needle} not in {html}");
    }

    let html = server.get(&format!("/pids/{}", holder.pid()));
    let html = html.expect(200, HTML).text();
    assert!(
        html.contains(&format!("<main id=\"pid\" data-pid=\"{}\"", holder.pid())),
        "{html}"
    );
    assert!(html.contains("<tr class=\"activity\" data-scope=\"local\" data-namespace=\"default\" data-name=\"a\" data-weight=\"2\" data-state=\"held\""), "{html}");

    // Another namespace, named in the query: empty, and the page says so.
    let other = server.get("/api/semaphores?namespace=other");
    assert_eq!(other.expect(200, JSON).json(), serde_json::json!([]));
    let html = server.get("/?scope=local&namespace=other").text();
    assert!(
        html.contains("<p id=\"empty\">") && html.contains("data-namespace=\"other\""),
        "{html}"
    );
}

#[test]
fn the_event_stream_sends_the_list_at_once_and_then_every_second() {
    let (_dir, server) = setup("serve-events", &[]);
    // The server closes nothing: read what two seconds bring, then drop the connection.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server.addr).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .expect("timeout");
    write!(
        s,
        "GET /api/events HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    )
    .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_millis(2300) {
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
    let events = text.matches("event: semaphores").count();
    assert!(events >= 2, "{events} events in {text}");
    assert!(text.contains("data: [{\"capacity\":3,"), "{text}");
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

    let status = |path: &str| server.get(path).status;
    assert_eq!(status("/api/semaphores/nope"), 404);
    assert_eq!(status("/semaphores/nope"), 404);
    assert!(
        server
            .get("/semaphores/nope")
            .text()
            .contains("<main id=\"error\" data-status=\"404\">")
    );
    assert_eq!(status("/api/semaphores/nope/history"), 404);
    assert_eq!(status("/api/semaphores/bad%20name"), 400);
    assert_eq!(status("/semaphores/bad%3Cb%3E"), 400);
    assert_eq!(status("/api/pids/abc"), 400);
    assert_eq!(status("/api/pids/0"), 400);
    assert_eq!(status("/pids/99999999999"), 400);
    assert_eq!(status("/api/semaphores?scope=nowhere"), 400);
    assert_eq!(status("/?scope=nowhere"), 400);
    assert_eq!(status("/api/semaphores?namespace=..%2Fetc"), 400);
    assert_eq!(status("/no/such/route"), 404);
    assert_eq!(
        server.request("PUT", "/api/semaphores", &[], b"").status,
        405
    );
    let e = server.get("/api/semaphores/nope").json();
    assert_eq!(e["status"], 404);
    assert!(
        e["error"].as_str().is_some_and(|m| m.contains("nope")),
        "{e}"
    );

    // The token rule, in the contract's order.
    let post = |headers: &[&str], body: &str| {
        server
            .request("POST", "/api/semaphores", headers, body.as_bytes())
            .status
    };
    let json = "Content-Type: application/json";
    let good = format!("Authorization: Bearer {token}");
    let wrong = format!("Authorization: Bearer {}", "0".repeat(64));
    assert_eq!(post(&[json], r#"{"name":"c"}"#), 401);
    assert_eq!(post(&[json, &wrong], r#"{"name":"c"}"#), 403);
    assert_eq!(
        post(
            &[json, &format!("Authorization: {token}")],
            r#"{"name":"c"}"#
        ),
        403
    );
    assert_eq!(
        post(
            &[json, &good, "Origin: http://evil.example"],
            r#"{"name":"c"}"#
        ),
        403
    );
    let own_origin = format!("Origin: http://{}", server.addr);
    assert_eq!(post(&[json, &good, &own_origin], r#"{"name":"c"}"#), 201);
    let big = format!(r#"{{"name":"d","pad":"{}"}}"#, "x".repeat(17 * 1024));
    assert_eq!(post(&[json, &good], &big), 413);
    assert_eq!(post(&[json, &good], "not json"), 400);
    assert_eq!(
        post(&["Content-Type: text/plain", &good], r#"{"name":"d"}"#),
        415
    );
    assert_eq!(
        post(&[json, &good], r#"{"name":"d","capacity":"many"}"#),
        400
    );
    assert_eq!(post(&[json, &good], r#"{"name":"d","capacity":0}"#), 400);
    assert_eq!(post(&[json, &good], r#"{"name":"bad name"}"#), 400);
    assert_eq!(post(&[json, &good], r#"{"name":"a"}"#), 409);
    assert_eq!(
        server
            .change("POST", "/api/semaphores?scope=x", r#"{"name":"d"}"#)
            .status,
        400
    );
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
        "/api/semaphores",
        r#"{"name":"c","capacity":4,"persistent":true}"#,
    );
    let created = created.expect(201, JSON).json();
    assert_eq!(
        (created["name"].as_str(), created["capacity"].as_u64()),
        (Some("c"), Some(4))
    );
    assert_eq!(created["kind"], "persistent");

    let changed = server.change(
        "PATCH",
        "/api/semaphores/c",
        r#"{"capacity":2,"persistent":false}"#,
    );
    let changed = changed.expect(200, JSON).json();
    assert_eq!(
        (changed["capacity"].as_u64(), changed["kind"].as_str()),
        (Some(2), Some("auto"))
    );
    assert_eq!(
        server
            .change("PATCH", "/api/semaphores/nope", r#"{"capacity":2}"#)
            .status,
        404
    );
    assert_eq!(
        server
            .change("PATCH", "/api/semaphores/c", r#"{"capacity":-1}"#)
            .status,
        400
    );

    let holder = Sleeper::spawn();
    cli::ok(&dir, &["acquire", "a", "--holder", &holder.pid()]);
    assert_eq!(server.change("DELETE", "/api/semaphores/a", "").status, 409);
    assert_eq!(
        server
            .change("DELETE", "/api/semaphores/a?force=maybe", "")
            .status,
        400
    );
    assert_eq!(
        server
            .change("DELETE", "/api/semaphores/a?force=true", "")
            .status,
        204
    );
    assert_eq!(server.get("/api/semaphores/a").status, 404);
    assert_eq!(server.change("DELETE", "/api/semaphores/b", "").status, 204);

    let reaped = server.change("POST", "/api/reap", "");
    assert!(reaped.expect(200, JSON).json().is_array());

    let html = server.get("/").text();
    for needle in [
        "data-edit=\"true\"",
        "<form id=\"create-form\"",
        "id=\"token\"",
        "id=\"message\"",
    ] {
        assert!(html.contains(needle), "{needle} not in {html}");
    }
    let html = server.get("/semaphores/c").text();
    for needle in [
        "<form id=\"set-form\"",
        "<button id=\"remove\"",
        "id=\"force\"",
    ] {
        assert!(html.contains(needle), "{needle} not in {html}");
    }

    // Read-only: every change is 403, token or not.
    let ro = Server::start(&dir, &[]);
    let auth = format!(
        "Authorization: Bearer {}",
        server.token.as_deref().unwrap_or("")
    );
    let refused = ro.request(
        "POST",
        "/api/semaphores",
        &[&auth, "Content-Type: application/json"],
        br#"{"name":"e"}"#,
    );
    assert_eq!(refused.status, 403);
    assert_eq!(
        ro.request("DELETE", "/api/semaphores/c", &[], b"").status,
        403
    );
    assert_eq!(
        ro.request("PATCH", "/api/semaphores/c", &[], b"").status,
        403
    );
    assert_eq!(ro.request("POST", "/api/reap", &[], b"").status, 403);
    assert_eq!(cli::ls(&dir, &[]).len(), 1);
}

#[test]
fn html_escapes_every_value() {
    let (dir, server) = setup("serve-escape", &[]);
    // Names cannot carry markup; the query can, and it must come back inert.
    let page = server.get("/?namespace=%3Cscript%3E");
    assert_eq!(page.status, 400);
    assert!(!page.text().contains("<script>"), "{}", page.text());
    let page = server.get("/semaphores/%22%3E%3Cimg");
    assert_eq!(page.status, 400);
    assert!(!page.text().contains("\"><img"), "{}", page.text());
    drop(dir);
}

#[test]
fn the_server_survives_its_namespace_file_removed_or_overwritten() {
    let (dir, mut server) = setup("serve-corrupt", &["--edit"]);
    let file = dir.shm.join("local.default");
    assert!(file.exists(), "{file:?}");

    fs::remove_file(&file).expect("removing the namespace file");
    let list = server.get("/api/semaphores");
    assert_eq!(list.expect(200, JSON).json(), serde_json::json!([]));
    assert_eq!(server.get("/api/semaphores/a").status, 404);
    assert_eq!(server.get("/").status, 200);

    fs::write(&file, vec![0xA5u8; 8192]).expect("overwriting the namespace file");
    for path in [
        "/api/semaphores",
        "/api/semaphores/a",
        "/",
        "/semaphores/a",
        "/metrics",
    ] {
        let r = server.get(path);
        assert!(
            (400..500).contains(&r.status),
            "{path}: {} {}",
            r.status,
            r.text()
        );
    }
    assert_eq!(
        server
            .change("POST", "/api/semaphores", r#"{"name":"x"}"#)
            .status
            / 100,
        4
    );
    fs::write(&file, b"short").expect("overwriting the namespace file");
    assert_eq!(server.get("/api/semaphores").status / 100, 4);
    assert!(server.alive(), "the server died");

    fs::remove_file(&file).expect("removing the garbage");
    cli::ok(&dir, &["create", "z", "--persistent"]);
    let list = server.get("/api/semaphores");
    assert_eq!(list.expect(200, JSON).json()[0]["name"], "z");
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
