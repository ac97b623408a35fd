//! `shmsem serve` in a real browser: headless Chromium driven through chromedriver (WebDriver),
//! against a `shmsem serve --listen 127.0.0.1:0 --edit` child with the test's own `SHMSEM_DIR`.
//!
//! Each test starts its own server and its own chromedriver (on a free port, with a new empty
//! Chromium profile) and ends both. Debian's `chromium` and `chromium-driver` packages must be
//! installed (`.ci/run` installs them): without them every test here fails, naming them.
//!
//! Every check polls (up to [`WAIT`]) for what the page shows; nothing sleeps a fixed time.
//! With `SHMSEM_SCREENSHOTS` set, [`screenshots`] writes `docs/serve-list.png` and
//! `docs/serve-sem.png` (the README shows them); otherwise it writes them to its temporary
//! directory, so that a test run never changes the tree.

mod common;

use std::{
    fs,
    io::{BufRead, BufReader},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::{Value, json};

use common::{
    TestDir,
    cli::{self, Sleeper},
    die_with_parent,
};

/// How long any one thing may take to show: generous, one-sided.
const WAIT: Duration = Duration::from_secs(10);
/// How often a condition is checked again.
const POLL: Duration = Duration::from_millis(100);

/// The flags Chromium needs here: headless without a sandbox (tests run as root), and none of
/// its background connections, which a machine without a network refuses many at a time.
const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

const DESKTOP: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (390, 844);

/// Where a program is: the first of `names` found on `PATH`, or a failure that names the Debian
/// package to install.
fn program(names: &[&str], package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "{} not found on PATH: the browser tests need Debian's `chromium` and `chromium-driver` \
         packages (apt-get install chromium chromium-driver); missing: {package}",
        names.join(" or ")
    );
}

/// Run `fut` to completion on a current-thread runtime: the processes a test starts are children
/// of the test's own thread (see [`die_with_parent`]).
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(fut)
}

// ===== the server =====

/// A `shmsem serve --listen 127.0.0.1:0 --edit` child, killed when dropped.
struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    base: String,
    token: String,
    /// The printed `open http://127.0.0.1:PORT/?token=TOKEN`.
    open: String,
    /// Its stderr, shown when a check fails.
    log: PathBuf,
}

impl Server {
    fn start(dir: &TestDir) -> Server {
        let log = dir.work_file("serve.log");
        let mut cmd = cli::command(dir, &["serve", "--listen", "127.0.0.1:0", "--edit"]);
        cmd.stdout(Stdio::piped())
            .stderr(fs::File::create(&log).expect("creating serve.log"));
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("starting shmsem serve");
        let stdout = child.stdout.take().expect("its stdout");
        let (tx, rx) = mpsc::channel();
        // Reads every line, so that the server never blocks on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + WAIT;
        let (mut base, mut token, mut open) = (None, None, None);
        let mut seen = Vec::new();
        while base.is_none() || token.is_none() || open.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        base = Some(url.trim().trim_end_matches('/').to_owned());
                    } else if let Some(t) = line.strip_prefix("token: ") {
                        token = Some(t.trim().to_owned());
                    } else if let Some(url) = line.strip_prefix("open ") {
                        open = Some(url.trim().to_owned());
                    }
                    seen.push(line);
                }
                Err(e) => {
                    let _ = child.kill();
                    panic!(
                        "shmsem serve did not print `listening on http://…`, `token: …` and \
                         `open http://…/?token=…` within {WAIT:?} ({e}); stdout: {seen:?}; \
                         stderr: {}",
                        fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        }
        let (base, token, open) = (base.unwrap(), token.unwrap(), open.unwrap());
        assert!(base.starts_with("http://127.0.0.1:"), "{seen:?}");
        assert!(
            token.len() >= 32 && token.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{seen:?}"
        );
        assert_eq!(open, format!("{base}/?token={token}"), "{seen:?}");
        Server {
            child,
            base,
            token,
            open,
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ===== chromedriver and Chromium =====

/// A `chromedriver --port=PORT` child on a free port, with the Chromium profile directory its
/// sessions use; when dropped, it kills the browsers it started (if a failed test left one
/// open) and then itself.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
    log: PathBuf,
}

impl Driver {
    fn start(dir: &TestDir) -> Driver {
        let chromedriver = program(&["chromedriver"], "chromium-driver");
        program(&["chromium", "chromium-browser"], "chromium");
        let log = dir.work_file("chromedriver.log");
        let profile = dir.work_file("chromium-profile");
        fs::create_dir_all(&profile).expect("creating the Chromium profile directory");
        // A port that was free a moment ago may be taken by the time chromedriver binds it:
        // then it exits, and another is tried.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut cmd = Command::new(&chromedriver);
            cmd.arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(fs::File::create(&log).expect("creating chromedriver.log"))
                .stderr(Stdio::null());
            die_with_parent(&mut cmd);
            let mut child = cmd.spawn().expect("starting chromedriver");
            let deadline = Instant::now() + WAIT;
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Driver {
                        child,
                        port,
                        profile,
                        log,
                    };
                }
                if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        panic!(
            "chromedriver did not start listening; its log: {}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// A new browser session with a window of `width` x `height`.
    async fn session(&self, (width, height): (u32, u32)) -> Client {
        let chromium = program(&["chromium", "chromium-browser"], "chromium");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", self.profile.display()));
        args.push(format!("--window-size={width},{height}"));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no Chromium session through chromedriver: {e}; chromedriver's log: {}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                )
            });
        client
            .set_window_size(width, height)
            .await
            .expect("setting the window's size");
        client
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The browser processes started with this test's profile: the session's, if the test
        // failed before closing it (chromedriver ends them only when the session is closed).
        let marker = format!("--user-data-dir={}", self.profile.display());
        if let Ok(procs) = fs::read_dir("/proc") {
            for p in procs.flatten() {
                let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                let cmdline = fs::read(p.path().join("cmdline")).unwrap_or_default();
                if cmdline
                    .split(|&b| b == 0)
                    .any(|arg| arg == marker.as_bytes())
                {
                    // SAFETY: kill(2) with a pid read from /proc and a valid signal number
                    // touches no memory of ours.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ===== a page =====

/// A test's world: its directory, server, chromedriver and browser session.
struct World {
    dir: TestDir,
    server: Server,
    // Dropped after the client is closed (see `close`), and after the server.
    driver: Driver,
    c: Client,
}

impl World {
    async fn new(test: &str, size: (u32, u32), setup: impl FnOnce(&TestDir)) -> World {
        let dir = TestDir::new(test);
        setup(&dir);
        let server = Server::start(&dir);
        let driver = Driver::start(&dir);
        let c = driver.session(size).await;
        World {
            dir,
            server,
            driver,
            c,
        }
    }

    /// Close the browser session (chromedriver then ends Chromium).
    async fn close(self) {
        let World { c, driver, .. } = self;
        c.close().await.expect("closing the browser session");
        drop(driver);
    }

    async fn goto(&self, path: &str) {
        let url = self.server.url(path);
        self.c
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.c
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("running {script:?}: {e}"))
    }

    /// Run `script` until it returns something other than `null`, `false` or `""`, up to
    /// [`WAIT`]; returns that. On time out, fails with `what`, the last result, the page's text
    /// and the server's stderr.
    async fn until(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.js(script, args.clone()).await;
            let done = !matches!(&v, Value::Null | Value::Bool(false))
                && v.as_str().is_none_or(|s| !s.is_empty());
            if done {
                return v;
            }
            if Instant::now() > deadline {
                let url = self.c.current_url().await.map(|u| u.to_string());
                let text = self
                    .js(
                        "return document.body ? document.body.innerText : null",
                        vec![],
                    )
                    .await;
                panic!(
                    "timed out after {WAIT:?}: {what}; last result {v}; page {url:?}:\n{}\n\
                     server's stderr:\n{}",
                    text.as_str().unwrap_or_default(),
                    self.server.stderr()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Wait until the text of the element `selector`, trimmed, is `text`.
    async fn until_text(&self, selector: &str, text: &str) {
        self.until(
            &format!("the text of {selector} is {text:?}"),
            "const e = document.querySelector(arguments[0]); \
             return e !== null && e.textContent.trim() === arguments[1]",
            vec![json!(selector), json!(text)],
        )
        .await;
    }

    /// Wait until the text of the element `selector` contains `text`.
    async fn until_contains(&self, selector: &str, text: &str) {
        self.until(
            &format!("the text of {selector} contains {text:?}"),
            "const e = document.querySelector(arguments[0]); \
             return e !== null && e.textContent.includes(arguments[1])",
            vec![json!(selector), json!(text)],
        )
        .await;
    }

    /// Wait until the element `selector` is shown (`shown`) or hidden (`!shown`) by the page.
    async fn until_shown(&self, selector: &str, shown: bool) {
        self.until(
            &format!("{selector} is on the page and shown={shown}"),
            "const e = document.querySelector(arguments[0]); \
             return e !== null && (e.getClientRects().length > 0) === arguments[1]",
            vec![json!(selector), json!(shown)],
        )
        .await;
    }

    /// Wait until the element `selector` has the attribute `attr` equal to `value`.
    async fn until_attr(&self, selector: &str, attr: &str, value: &str) {
        self.until(
            &format!("{selector} has {attr}={value:?}"),
            "const e = document.querySelector(arguments[0]); \
             return e !== null && e.getAttribute(arguments[1]) === arguments[2]",
            vec![json!(selector), json!(attr), json!(value)],
        )
        .await;
    }

    /// Wait until `selector` matches an element, and return it.
    async fn element(&self, selector: &str) -> Element {
        self.until(
            &format!("{selector} is on the page"),
            "return document.querySelector(arguments[0]) !== null",
            vec![json!(selector)],
        )
        .await;
        self.c
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("finding {selector}: {e}"))
    }

    /// Type `value` into the field `selector`, replacing what it held.
    async fn fill(&self, selector: &str, value: &str) {
        let e = self.element(selector).await;
        e.clear()
            .await
            .unwrap_or_else(|e| panic!("clearing {selector}: {e}"));
        e.send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("typing into {selector}: {e}"));
    }

    /// Choose `value` in the select `selector`, as a user's choice does (with a `change` event).
    async fn select(&self, selector: &str, value: &str) {
        self.element(selector).await;
        let chosen = self
            .js(
                "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
                 e.dispatchEvent(new Event('change', { bubbles: true })); return e.value",
                vec![json!(selector), json!(value)],
            )
            .await;
        assert_eq!(chosen, json!(value), "{selector} has no option {value:?}");
    }

    /// Click the submit button of `form`, after emptying `#message` so that [`World::message`]
    /// reads the answer to this submission and not an earlier one.
    async fn submit(&self, form: &str) {
        self.js(
            "const m = document.getElementById('message'); \
             if (m) { m.textContent = ''; m.className = ''; }",
            vec![],
        )
        .await;
        let button = format!("{form} button[type=submit], {form} input[type=submit]");
        self.element(&button)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {button}: {e}"));
    }

    /// Wait for `#message` to say something with the class `class` (`ok` or `error`), and
    /// return what it says.
    async fn message(&self, class: &str) -> String {
        self.until(
            &format!("#message says something with the class {class:?}"),
            "const e = document.getElementById('message'); \
             return e !== null && e.classList.contains(arguments[0]) ? e.textContent.trim() : null",
            vec![json!(class)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Type `token` into `#token`, once the page's script has run (it fills the field from the
    /// tab's `sessionStorage`, and keeps what is typed there).
    async fn type_token(&self, token: &str) {
        self.ready().await;
        self.fill("#token", token).await;
    }

    /// Wait until the page's script has run (`<body data-ready="true">`).
    async fn ready(&self) {
        self.until_attr("body", "data-ready", "true").await;
    }

    /// Forget the token this tab kept, so that the next page opened without `?token=` has none.
    async fn forget_token(&self) {
        self.js("sessionStorage.clear()", vec![]).await;
    }

    /// A PNG screenshot of the window, checked to be one.
    async fn screenshot(&self) -> Vec<u8> {
        let png = self.c.screenshot().await.expect("taking a screenshot");
        assert!(
            png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "not a PNG screenshot ({} bytes)",
            png.len()
        );
        png
    }
}

/// The selector of `name`'s row on the list page (in the scope and namespace the CLI uses by
/// default: `local`, `default`).
fn row(name: &str) -> String {
    format!(
        r#"#semaphores tr.sem[data-scope="local"][data-namespace="default"][data-name="{name}"]"#
    )
}

/// The path of `name`'s page (`local`, `default`, as [`row`]).
fn page(name: &str) -> String {
    format!("/sem/local/default/{name}")
}

/// `show NAME` through the CLI: its capacity, or `None` if there is no such semaphore.
fn cli_capacity(dir: &TestDir, name: &str) -> Option<u64> {
    let r = cli::run(dir, &["show", name, "--json"]);
    match r.code {
        0 => Some(r.json()["capacity"].as_u64().expect("a capacity")),
        _ => {
            r.failed(1);
            assert!(r.stderr.contains("no semaphore"), "{r:?}");
            None
        }
    }
}

// ===== the tests =====

/// The browser itself works here (so that a failure below is the server's): Chromium, through
/// chromedriver, runs a page's script at the size asked for.
#[test]
fn chromium_runs() {
    let dir = TestDir::new("browser-chromium");
    let driver = Driver::start(&dir);
    block_on(async {
        let c = driver.session(PHONE).await;
        c.goto("data:text/html,<title>t</title><p id=p>hello</p>")
            .await
            .expect("opening a data: page");
        let v = c
            .execute(
                "return [document.getElementById('p').textContent, window.innerWidth]",
                vec![],
            )
            .await
            .expect("running a script");
        assert_eq!(v[0], json!("hello"));
        let width = v[1].as_u64().expect("innerWidth");
        assert!(
            (300..=PHONE.0 as u64).contains(&width),
            "innerWidth {width}"
        );
        c.close().await.expect("closing the session");
    });
}

/// The list shows what another process holds, and follows its release without a reload.
#[test]
fn list_follows_a_holder_live() {
    let holder = Sleeper::spawn();
    let pid = holder.pid();
    block_on(async {
        let w = World::new("browser-live", DESKTOP, |dir| {
            cli::ok(
                dir,
                &["acquire", "live", "--capacity", "2", "--holder", &pid],
            );
        })
        .await;
        w.goto("/").await;
        let r = row("live");
        w.until_contains(&format!("{r} td.value"), "1/2").await;
        w.until_text(&format!("{r} td.capacity"), "2").await;
        w.until_text(&format!("{r} td.holders"), "1").await;
        w.until_attr(&format!("{r} td.value meter"), "value", "1")
            .await;
        w.until_attr(&format!("{r} td.name a"), "href", &page("live"))
            .await;
        w.ready().await;
        w.js("window.__noReload = 1", vec![]).await;

        cli::ok(&w.dir, &["release", "live", "--holder", &pid]);
        w.until_contains(&format!("{r} td.value"), "0/2").await;
        w.until_text(&format!("{r} td.holders"), "0").await;
        w.until_attr(&format!("{r} td.value meter"), "value", "0")
            .await;
        // A semaphore created elsewhere appears, and one removed elsewhere goes, still in place.
        cli::ok(
            &w.dir,
            &["create", "later", "--capacity", "3", "--persistent"],
        );
        w.until_text(&format!("{} td.capacity", row("later")), "3")
            .await;
        // The filter hides the rows whose name does not contain its text, and shows them again.
        w.fill("#filter", "ate").await;
        w.until_shown(&r, false).await;
        w.until_shown(&row("later"), true).await;
        w.fill("#filter", "liv").await;
        w.until_shown(&r, true).await;
        w.until_shown(&row("later"), false).await;
        w.fill("#filter", "l").await;
        w.until_shown(&r, true).await;
        w.until_shown(&row("later"), true).await;
        cli::ok(&w.dir, &["rm", "later"]);
        w.until(
            "the removed semaphore's row goes",
            "return document.querySelector(arguments[0]) === null",
            vec![json!(row("later"))],
        )
        .await;
        assert_eq!(
            w.js("return window.__noReload === 1", vec![]).await,
            json!(true),
            "the page was reloaded"
        );
        w.close().await;
    });
}

/// `form#create` creates a semaphore with the token from the printed `?token=` address, and is
/// refused without a token or with another typed into `#token`.
#[test]
fn create_needs_the_token() {
    block_on(async {
        let w = World::new("browser-create", DESKTOP, |_| {}).await;
        w.goto("/").await;
        w.ready().await;
        let create = |name: &'static str| {
            let w = &w;
            async move {
                w.fill("form#create [name=name]", name).await;
                w.fill("form#create [name=capacity]", "3").await;
                w.submit("form#create").await;
            }
        };

        // Without a token: refused, and nothing is created.
        assert_eq!(
            w.js("return document.getElementById('token').value", vec![])
                .await,
            json!("")
        );
        create("refused").await;
        let err = w.message("error").await;
        assert!(
            err.contains("no token"),
            "refused without a token, but: {err:?}"
        );
        assert_eq!(
            cli_capacity(&w.dir, "refused"),
            None,
            "created without a token"
        );

        // Another token: refused.
        w.type_token(&"0".repeat(64)).await;
        create("refused").await;
        let err = w.message("error").await;
        assert!(
            err.contains("wrong token"),
            "refused with a wrong token, but: {err:?}"
        );
        assert_eq!(
            cli_capacity(&w.dir, "refused"),
            None,
            "created with a wrong token"
        );

        // The printed address: the page takes the token from `?token=`, shows it in `#token`
        // and takes it out of the address bar.
        w.forget_token().await;
        w.c.goto(&w.server.open)
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e}", w.server.open));
        w.ready().await;
        assert_eq!(
            w.js("return document.getElementById('token').value", vec![])
                .await,
            json!(w.server.token)
        );
        let url = w.c.current_url().await.expect("the page's address");
        assert!(
            !url.as_str().contains("token"),
            "the token is still in the address bar: {url}"
        );

        // The token: created, and the list shows it without a reload.
        w.js("window.__noReload = 1", vec![]).await;
        w.fill("form#create [name=name]", "made").await;
        w.fill("form#create [name=capacity]", "3").await;
        w.select("form#create [name=kind]", "persistent").await;
        w.submit("form#create").await;
        assert_eq!(w.message("ok").await, "created made");
        w.until_text(&format!("{} td.capacity", row("made")), "3")
            .await;
        w.until_text(&format!("{} td.kind", row("made")), "persistent")
            .await;
        assert_eq!(
            w.js("return window.__noReload === 1", vec![]).await,
            json!(true),
            "the page was reloaded"
        );
        assert_eq!(cli_capacity(&w.dir, "made"), Some(3));
        assert_eq!(cli::show(&w.dir, "made")["kind"], json!("persistent"));

        // The tab keeps the token for its other pages...
        w.goto("/").await;
        w.ready().await;
        assert_eq!(
            w.js("return document.getElementById('token').value", vec![])
                .await,
            json!(w.server.token)
        );
        // ...and once it is forgotten, a change is refused again.
        w.forget_token().await;
        w.goto("/").await;
        w.ready().await;
        create("refused").await;
        w.message("error").await;
        assert_eq!(cli_capacity(&w.dir, "refused"), None);
        w.close().await;
    });
}

/// `form#edit` on a semaphore's page changes its capacity with the token typed into `#token`,
/// and is refused without it.
#[test]
fn edit_needs_the_token() {
    block_on(async {
        let w = World::new("browser-edit", DESKTOP, |dir| {
            cli::ok(dir, &["create", "ed", "--capacity", "2", "--persistent"]);
        })
        .await;
        let page = page("ed");

        w.goto(&page).await;
        w.until_text("h1#title", "ed").await;
        w.until_text("dl#summary dd.capacity", "2").await;
        w.type_token(&w.server.token).await;
        w.fill("form#edit [name=capacity]", "5").await;
        w.select("form#edit [name=kind]", "persistent").await;
        w.submit("form#edit").await;
        assert_eq!(w.message("ok").await, "changed");
        assert_eq!(cli_capacity(&w.dir, "ed"), Some(5));
        assert_eq!(cli::show(&w.dir, "ed")["kind"], json!("persistent"));
        w.until_text("dl#summary dd.capacity", "5").await;

        w.forget_token().await;
        w.goto(&page).await;
        w.until_text("dl#summary dd.capacity", "5").await;
        w.ready().await;
        w.fill("form#edit [name=capacity]", "7").await;
        w.submit("form#edit").await;
        let err = w.message("error").await;
        assert!(
            err.contains("no token"),
            "refused without a token, but: {err:?}"
        );
        assert_eq!(
            cli_capacity(&w.dir, "ed"),
            Some(5),
            "changed without a token"
        );
        w.close().await;
    });
}

/// Screenshots of the list and of a semaphore's page at a desktop size.
#[test]
fn screenshots() {
    let holders = [Sleeper::spawn(), Sleeper::spawn(), Sleeper::spawn()];
    let [a, b, c] = holders.each_ref().map(Sleeper::pid);
    let waiter_holder = Sleeper::spawn();
    let mut waiter = None;
    block_on(async {
        let w = World::new("browser-shots", DESKTOP, |dir| {
            let acquire = |args: &[&str]| cli::ok(dir, &[&["acquire"], args].concat());
            acquire(&["builds", "--capacity", "4", "--weight", "2", "--holder", &a]);
            acquire(&["builds", "--holder", &b]);
            acquire(&["deploy", "--capacity", "1", "--holder", &c]);
            cli::ok(dir, &["create", "gpu", "--capacity", "2", "--persistent"]);
            cli::ok(dir, &["create", "tests", "--capacity", "8"]);
        })
        .await;
        // A process waiting for `deploy`, which `c` holds.
        let mut cmd = cli::command(
            &w.dir,
            &["acquire", "deploy", "--holder", &waiter_holder.pid()],
        );
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        die_with_parent(&mut cmd);
        waiter = Some(KillOnDrop(cmd.spawn().expect("starting a waiter")));

        let out = match std::env::var_os("SHMSEM_SCREENSHOTS") {
            Some(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("docs"),
            None => w.dir.work.clone(),
        };

        w.goto("/").await;
        w.until_contains(&format!("{} td.value", row("builds")), "3/4")
            .await;
        w.until_text(&format!("{} td.waiters", row("deploy")), "1")
            .await;
        w.ready().await;
        let png = w.screenshot().await;
        fs::write(out.join("serve-list.png"), png).expect("writing serve-list.png");

        w.goto(&page("builds")).await;
        w.until_text("h1#title", "builds").await;
        w.until(
            "two holders",
            "return document.querySelectorAll('table#holders tr[data-pid]').length === 2",
            vec![],
        )
        .await;
        // Each holder's row shows its pid, linking to its page.
        for pid in [&a, &b] {
            let r = format!(r#"table#holders tr[data-pid="{pid}"]"#);
            w.until_text(&format!("{r} td.pid"), pid).await;
            w.until_attr(&format!("{r} td.pid a"), "href", &format!("/pid/{pid}"))
                .await;
        }
        w.until_text("dl#summary dd.capacity", "4").await;
        // Some history in the plot: a second or two at 3/4, then 2/4.
        let samples = |n: u32| {
            let w = &w;
            async move {
                w.until(
                    &format!("at least {n} samples in the plot"),
                    "return Number(document.getElementById('history').dataset.samples) >= arguments[0]",
                    vec![json!(n)],
                )
                .await;
            }
        };
        samples(2).await;
        cli::ok(&w.dir, &["release", "builds", "--holder", &b]);
        samples(4).await;
        let png = w.screenshot().await;
        fs::write(out.join("serve-sem.png"), png).expect("writing serve-sem.png");
        w.close().await;
    });
    drop(waiter);
}

/// At a phone's width the list fits: no horizontal scrolling.
#[test]
fn list_fits_a_phone() {
    let holder = Sleeper::spawn();
    let pid = holder.pid();
    block_on(async {
        let name = "a-rather-long-semaphore-name";
        let w = World::new("browser-phone", PHONE, |dir| {
            cli::ok(
                dir,
                &["acquire", name, "--capacity", "16", "--holder", &pid],
            );
        })
        .await;
        w.goto("/").await;
        w.until_contains(&format!("{} td.value", row(name)), "1/16")
            .await;
        w.ready().await;
        let (sw, iw) = (
            w.js("return document.documentElement.scrollWidth", vec![])
                .await,
            w.js("return window.innerWidth", vec![]).await,
        );
        assert!(
            iw.as_u64().is_some_and(|iw| iw <= 400),
            "the window is not a phone's width: innerWidth {iw}"
        );
        if sw.as_u64() > iw.as_u64() {
            // The innermost elements that reach past the right edge, to say what is too wide.
            let wide = w
                .js(
                    "return [...document.querySelectorAll('body *')]\
                       .filter(e => e.getBoundingClientRect().right > innerWidth + 1)\
                       .filter(e => ![...e.children].some(c => \
                         c.getBoundingClientRect().right > innerWidth + 1))\
                       .slice(0, 8)\
                       .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + \
                         (e.className ? '.' + e.className : '') + ' ' + \
                         Math.round(e.getBoundingClientRect().right))",
                    vec![],
                )
                .await;
            panic!(
                "the list scrolls sideways at a phone's width: scrollWidth {sw} > innerWidth \
                 {iw}; past the edge (element, right edge): {wide}"
            );
        }
        w.close().await;
    });
}

/// A child process killed (and reaped) when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
