//! A child process seen from the parent: its reports (`@@mp KEY VALUE` lines on its stdout),
//! its output for failure messages, and waiting for it, with timeouts, or killing it.

use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Child, ExitStatus},
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver, RecvTimeoutError},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use super::MARK;

#[derive(Debug, Clone, Default)]
pub struct Reports(pub Vec<(String, String)>);

impl Reports {
    /// The last value reported under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn req(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| panic!("no report {key:?} in {:?}", self.0))
    }

    pub fn u64(&self, key: &str) -> u64 {
        let v = self.req(key);
        v.parse()
            .unwrap_or_else(|_| panic!("report {key:?} = {v:?} is not a number"))
    }

    pub fn as_map(&self) -> std::collections::HashMap<String, String> {
        self.0.iter().cloned().collect()
    }

    /// Every value reported under `key`, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// A child process running this test binary in a role.
#[derive(Debug)]
pub struct Kid {
    pub label: String,
    child: Child,
    lines: Receiver<(String, String)>,
    seen: Vec<(String, String)>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

/// How to start a child.
impl Kid {
    /// Read the reports and the output of `child`, started with its stdout piped (and its
    /// stderr piped or inherited).
    pub fn start(label: String, mut child: Child) -> Kid {
        let (tx, lines) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out_pipe = child.stdout.take().expect("piped stdout");
        let err_pipe = child.stderr.take();
        let out_buf = stdout.clone();
        let out_reader = thread::spawn(move || {
            for line in BufReader::new(out_pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find(MARK) {
                    let rest = &line[at + MARK.len()..];
                    let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                    let _ = tx.send((k.to_owned(), v.trim().to_owned()));
                }
                let mut b = out_buf.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
        });
        let err_buf = stderr.clone();
        let err_reader = thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut pipe) = err_pipe {
                let _ = pipe.read_to_string(&mut s);
            }
            err_buf.lock().unwrap().push_str(&s);
        });
        Kid {
            label,
            child,
            lines,
            seen: Vec::new(),
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the child printed so far, for failure messages.
    pub fn transcript(&self) -> String {
        format!(
            "--- {} (pid {}) status {:?}\n--- stdout:\n{}--- stderr:\n{}",
            self.label,
            self.child.id(),
            self.status,
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    /// Wait until the child reports `key`; its value. Panics after `timeout` or if the child's
    /// output ends first.
    pub fn expect(&mut self, key: &str, timeout: Duration) -> String {
        match self.next_report(key, timeout) {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "{} did not report {key:?} within {timeout:?}\n{}",
                    self.label,
                    self.transcript()
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                // Let the readers finish so the transcript is complete.
                thread::sleep(Duration::from_millis(50));
                panic!(
                    "{} ended without reporting {key:?}\n{}",
                    self.label,
                    self.transcript()
                )
            }
        }
    }

    /// Wait at most `timeout` for the child to report `key`: its value, or `None` if it has not
    /// by then or its output ended first.
    pub fn wait_for(&mut self, key: &str, timeout: Duration) -> Option<String> {
        self.next_report(key, timeout).ok()
    }

    fn next_report(&mut self, key: &str, timeout: Duration) -> Result<String, RecvTimeoutError> {
        if let Some((_, v)) = self.seen.iter().find(|(k, _)| k == key) {
            return Ok(v.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (k, v) = self.lines.recv_timeout(left)?;
            let hit = k == key;
            self.seen.push((k, v.clone()));
            if hit {
                return Ok(v);
            }
        }
    }

    /// Write `line` to the child's stdin (see [`Spawn::stdin_piped`]).
    pub fn send(&mut self, line: &str) {
        let stdin = self
            .child
            .stdin
            .as_mut()
            .unwrap_or_else(|| panic!("{}: stdin is not piped", self.label));
        writeln!(stdin, "{line}").expect("writing to a child");
        stdin.flush().expect("flushing a child's stdin");
    }

    /// Wait for the child to exit (killing it after `timeout`), then for its output to end.
    pub fn finish(&mut self, timeout: Duration) -> (ExitStatus, Reports) {
        let status = self.wait_exit(timeout);
        self.join_readers(Instant::now() + Duration::from_secs(5));
        (status, self.reports())
    }

    /// Wait for the child to exit, then for its output to end; `None` for the status if it did
    /// not exit within `timeout` and was killed.
    pub fn try_finish(&mut self, timeout: Duration) -> (Option<ExitStatus>, Reports) {
        let status = self.exit_within(timeout);
        self.join_readers(Instant::now() + Duration::from_secs(5));
        (status, self.reports())
    }

    /// Wait for the child itself to exit (killing it after `timeout`); its output may stay open
    /// in descendants that inherited it.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.exit_within(timeout) {
            Some(s) => s,
            None => panic!(
                "{} did not exit within {timeout:?}; killed\n{}",
                self.label,
                self.transcript()
            ),
        }
    }

    /// Wait for the child itself to exit: its status, or `None` if it did not within `timeout`
    /// and was killed.
    fn exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let s = self.child.wait().expect("wait");
                self.status = Some(s);
                return None;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// The child's exit status if it has exited, without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Whether the child is still running.
    pub fn alive(&mut self) -> bool {
        self.try_wait().is_none()
    }

    /// Everything reported so far (after [`finish`](Self::finish): everything).
    pub fn reports(&mut self) -> Reports {
        while let Ok(kv) = self.lines.try_recv() {
            self.seen.push(kv);
        }
        Reports(self.seen.clone())
    }

    /// Wait for the child to exit; it must exit 0. Its reports.
    pub fn success(&mut self, timeout: Duration) -> Reports {
        let (status, reports) = self.finish(timeout);
        assert!(
            status.success(),
            "{} failed: {status:?}\n{}",
            self.label,
            self.transcript()
        );
        reports
    }

    /// SIGKILL the child (`Child::kill` sends SIGKILL on Unix) and reap it.
    pub fn sigkill(&mut self) -> ExitStatus {
        self.child.kill().expect("kill");
        let status = self.child.wait().expect("wait");
        self.status = Some(status);
        status
    }

    /// Wait until the child's stdout is closed by every process holding it (the child and any
    /// descendants that inherited it), at most until `deadline`.
    pub fn wait_output_closed(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        self.join_readers(deadline);
        assert!(
            self.readers.is_empty(),
            "{}: output still open after {timeout:?}\n{}",
            self.label,
            self.transcript()
        );
    }

    fn join_readers(&mut self, deadline: Instant) {
        while !self.readers.is_empty() && Instant::now() < deadline {
            if self.readers.iter().all(JoinHandle::is_finished) {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                break;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
