//! The `shmsem serve --edit` child of one test: started on a free port with the test's own
//! `SHMSEM_DIR`, its address and token read from what it prints, killed when dropped.

use super::*;

/// A `shmsem serve --listen 127.0.0.1:0 --edit` child, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub(crate) base: String,
    pub(crate) token: String,
    /// The printed `open http://127.0.0.1:PORT/?token=TOKEN`.
    pub(crate) open: String,
    /// Its stderr, shown when a check fails.
    pub(crate) log: PathBuf,
}

impl Server {
    pub(crate) fn start(dir: &TestDir) -> Server {
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

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
