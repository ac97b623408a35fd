//! `shmsem serve` run as a child of a test, and a small HTTP/1.1 client over `TcpStream` to
//! talk to it: one request per connection (`Connection: close`), the body read to its end
//! (de-chunked when the server chunks it).

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Stdio},
    time::Duration,
};

use serde_json::Value;

use super::{TestDir, cli};

/// A running `shmsem serve --listen 127.0.0.1:0`, killed when dropped.
#[derive(Debug)]
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    /// The token it printed (with `--edit`).
    pub token: Option<String>,
}

impl Server {
    /// Start it with this test's `SHMSEM_DIR` and `extra` arguments (`--edit`), and read the
    /// address and token lines.
    pub fn start(dir: &TestDir, extra: &[&str]) -> Server {
        let args = [&["serve", "--listen", "127.0.0.1:0"][..], extra].concat();
        let mut child = cli::command(dir, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting shmsem serve");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("reading the address line");
        let addr: SocketAddr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("not an address line: {line:?}"))
            .parse()
            .expect("an address");
        let token = extra.contains(&"--edit").then(|| {
            let mut line = String::new();
            out.read_line(&mut line).expect("reading the token line");
            let token = line
                .trim()
                .strip_prefix("token: ")
                .unwrap_or_else(|| panic!("not a token line: {line:?}"))
                .to_owned();
            let mut open = String::new();
            out.read_line(&mut open).expect("reading the open line");
            assert_eq!(open.trim(), format!("open http://{addr}/?token={token}"));
            token
        });
        Server { child, addr, token }
    }

    /// A request; `headers` are extra header lines (`Name: value`).
    pub fn request(&self, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Response {
        request(self.addr, method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"")
    }

    /// A change with the right token and a JSON body (`""` for none).
    pub fn change(&self, method: &str, path: &str, json: &str) -> Response {
        let auth = format!("X-Shmsem-Token: {}", self.token.as_deref().unwrap_or(""));
        let mut headers = vec![auth.as_str()];
        if !json.is_empty() {
            headers.push("Content-Type: application/json");
        }
        self.request(method, path, &headers, json.as_bytes())
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    /// Asserts the status and the content type's start, and returns itself.
    pub fn expect(&self, status: u16, content_type: &str) -> &Response {
        assert_eq!(self.status, status, "{}", self.text());
        let ct = self.header("content-type").unwrap_or("");
        assert!(
            ct.starts_with(content_type),
            "content type {ct:?}, not {content_type:?}"
        );
        self
    }
}

/// One request on a new connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> Response {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// One request on a new connection, or the I/O error.
pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    if !body.is_empty() || matches!(method, "POST" | "PATCH" | "PUT") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    // The server may answer (413) before it reads a large body, and close: not an error here.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let mut reader = BufReader::new(stream);
    reader.read_to_end(&mut raw).or_else(|e| {
        if raw.is_empty() {
            Err(e)
        } else {
            Ok(raw.len())
        }
    })?;
    parse(&raw).ok_or_else(|| {
        std::io::Error::other(format!("bad response: {:?}", String::from_utf8_lossy(&raw)))
    })
}

fn parse(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

/// The data of a chunked body (as much as arrived).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size.filter(|&s| s > 0) else {
            break;
        };
        let start = eol + 2;
        let stop = (start + size).min(data.len());
        out.extend_from_slice(&data[start..stop]);
        data = &data[(stop + 2).min(data.len())..];
    }
    out
}
