//! chromedriver on a free port and the Chromium profile its sessions use, ended with the test.

use super::*;

/// A `chromedriver --port=PORT` child on a free port, with the Chromium profile directory its
/// sessions use; when dropped, it kills the browsers it started (if a failed test left one
/// open) and then itself.
pub(crate) struct Driver {
    pub(crate) child: Child,
    pub(crate) port: u16,
    pub(crate) profile: PathBuf,
    pub(crate) log: PathBuf,
}

impl Driver {
    pub(crate) fn start(dir: &TestDir) -> Driver {
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
    pub(crate) async fn session(&self, (width, height): (u32, u32)) -> Client {
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
