//! A test's world (directory, server, chromedriver, browser session) and what a test does with
//! a page: open it, find, wait for, type, click, read.

use super::*;

/// A test's world: its directory, server, chromedriver and browser session.
pub(crate) struct World {
    pub(crate) dir: TestDir,
    pub(crate) server: Server,
    // Dropped after the client is closed (see `close`), and after the server.
    pub(crate) driver: Driver,
    pub(crate) c: Client,
}

impl World {
    pub(crate) async fn new(test: &str, size: (u32, u32), setup: impl FnOnce(&TestDir)) -> World {
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
    pub(crate) async fn close(self) {
        let World { c, driver, .. } = self;
        c.close().await.expect("closing the browser session");
        drop(driver);
    }

    pub(crate) async fn goto(&self, path: &str) {
        let url = self.server.url(path);
        self.c
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    pub(crate) async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.c
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("running {script:?}: {e}"))
    }

    /// Run `script` until it returns something other than `null`, `false` or `""`, up to
    /// [`WAIT`]; returns that. On time out, fails with `what`, the last result, the page's text
    /// and the server's stderr.
    pub(crate) async fn until(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
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
    pub(crate) async fn until_text(&self, selector: &str, text: &str) {
        self.until(
            &format!("the text of {selector} is {text:?}"),
            "const e = document.querySelector(arguments[0]); \
             return e !== null && e.textContent.trim() === arguments[1]",
            vec![json!(selector), json!(text)],
        )
        .await;
    }

    /// Wait until the text of the element `selector` contains `text`.
    pub(crate) async fn until_contains(&self, selector: &str, text: &str) {
        self.until(
            &format!("the text of {selector} contains {text:?}"),
            "const e = document.querySelector(arguments[0]); \
             return e !== null && e.textContent.includes(arguments[1])",
            vec![json!(selector), json!(text)],
        )
        .await;
    }

    /// Wait until the element `selector` is shown (`shown`) or hidden (`!shown`) by the page.
    pub(crate) async fn until_shown(&self, selector: &str, shown: bool) {
        self.until(
            &format!("{selector} is on the page and shown={shown}"),
            "const e = document.querySelector(arguments[0]); \
             return e !== null && (e.getClientRects().length > 0) === arguments[1]",
            vec![json!(selector), json!(shown)],
        )
        .await;
    }

    /// Wait until the element `selector` has the attribute `attr` equal to `value`.
    pub(crate) async fn until_attr(&self, selector: &str, attr: &str, value: &str) {
        self.until(
            &format!("{selector} has {attr}={value:?}"),
            "const e = document.querySelector(arguments[0]); \
             return e !== null && e.getAttribute(arguments[1]) === arguments[2]",
            vec![json!(selector), json!(attr), json!(value)],
        )
        .await;
    }

    /// Wait until `selector` matches an element, and return it.
    pub(crate) async fn element(&self, selector: &str) -> Element {
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
    pub(crate) async fn fill(&self, selector: &str, value: &str) {
        let e = self.element(selector).await;
        e.clear()
            .await
            .unwrap_or_else(|e| panic!("clearing {selector}: {e}"));
        e.send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("typing into {selector}: {e}"));
    }

    /// Choose `value` in the select `selector`, as a user's choice does (with a `change` event).
    pub(crate) async fn select(&self, selector: &str, value: &str) {
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
    pub(crate) async fn submit(&self, form: &str) {
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
    pub(crate) async fn message(&self, class: &str) -> String {
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
    pub(crate) async fn type_token(&self, token: &str) {
        self.ready().await;
        self.fill("#token", token).await;
    }

    /// Wait until the page's script has run (`<body data-ready="true">`).
    pub(crate) async fn ready(&self) {
        self.until_attr("body", "data-ready", "true").await;
    }

    /// Forget the token this tab kept, so that the next page opened without `?token=` has none.
    pub(crate) async fn forget_token(&self) {
        self.js("sessionStorage.clear()", vec![]).await;
    }

    /// A PNG screenshot of the window, checked to be one.
    pub(crate) async fn screenshot(&self) -> Vec<u8> {
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
pub(crate) fn row(name: &str) -> String {
    format!(
        r#"#semaphores tr.sem[data-scope="local"][data-namespace="default"][data-name="{name}"]"#
    )
}

/// The path of `name`'s page (`local`, `default`, as [`row`]).
pub(crate) fn page(name: &str) -> String {
    format!("/sem/local/default/{name}")
}

/// `show NAME` through the CLI: its capacity, or `None` if there is no such semaphore.
pub(crate) fn cli_capacity(dir: &TestDir, name: &str) -> Option<u64> {
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
