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

#[path = "../common/mod.rs"]
mod common;
mod driver;
mod page;
mod server;

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

use self::{
    driver::Driver,
    page::{World, cli_capacity, page, row},
    server::Server,
};

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
