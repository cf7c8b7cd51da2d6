//! A small HTTP/1.1 client over a tokio `TcpStream`: one request per connection
//! (`Connection: close`), time to first byte measured from the moment the request is written.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

use crate::Error;

/// Responses larger than this are refused (nothing the benchmark asks for comes close).
const MAX_RESPONSE: usize = 256 * 1024 * 1024;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// From the request written to the first response byte.
    pub ttfb: Duration,
    /// From the request written to the last response byte.
    pub total: Duration,
}

impl Response {
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    pub fn get(path: &'a str) -> Self {
        Self {
            method: "GET",
            path,
            headers: Vec::new(),
            body: &[],
        }
    }

    /// A server function call: JSON arguments (the server refuses form-encoded calls).
    pub fn post_json(path: &'a str, body: &'a [u8]) -> Self {
        Self {
            method: "POST",
            path,
            headers: vec![("Content-Type", "application/json".to_owned())],
            body,
        }
    }

    pub fn header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Signed in as a script is: the cookie's name is per server instance, a bearer header
    /// is not.
    pub fn session(self, jwt: &str) -> Self {
        self.header("Authorization", format!("Bearer {jwt}"))
    }

    /// The token as a script sends it: no Origin needed for state-changing calls.
    pub fn bearer(self, jwt: &str) -> Self {
        self.header("Authorization", format!("Bearer {jwt}"))
    }
}

/// Sends one request and reads the whole response, all within `limit`.
pub async fn send(
    addr: SocketAddr,
    request: Request<'_>,
    limit: Duration,
) -> Result<Response, Error> {
    let what = format!("{} http://{addr}{}", request.method, request.path);
    timeout(limit, exchange(addr, request))
        .await
        .map_err(|_| Error::msg(format!("{what}: no complete answer within {limit:?}")))?
        .map_err(|e| Error::msg(format!("{what}: {e}")))
}

async fn exchange(addr: SocketAddr, request: Request<'_>) -> Result<Response, Error> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: loopwatch-bench\r\n",
        request.method, request.path
    );
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !request.body.is_empty() || request.method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    head.push_str("\r\n");
    let mut message = head.into_bytes();
    message.extend_from_slice(request.body);
    stream.write_all(&message).await?;
    let started = Instant::now();
    let mut raw = Vec::with_capacity(16 * 1024);
    let mut ttfb = None;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        ttfb.get_or_insert_with(|| started.elapsed());
        raw.extend_from_slice(&buffer[..n]);
        if raw.len() > MAX_RESPONSE {
            return Err(Error::msg("response too large"));
        }
    }
    let total = started.elapsed();
    let ttfb = ttfb.ok_or_else(|| Error::msg("connection closed without an answer"))?;
    let (status, headers, body) = parse(&raw)?;
    Ok(Response {
        status,
        headers,
        body,
        ttfb,
        total,
    })
}

type Parsed = (u16, Vec<(String, String)>, Vec<u8>);

fn parse(raw: &[u8]) -> Result<Parsed, Error> {
    let end =
        memchr::memmem::find(raw, b"\r\n\r\n").ok_or_else(|| Error::msg("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| Error::msg("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| Error::msg(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok((status, headers, body))
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, Error> {
    let bad = || Error::msg("bad chunked encoding");
    let mut body = Vec::with_capacity(rest.len());
    loop {
        let line_end = memchr::memmem::find(rest, b"\r\n").ok_or_else(bad)?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| bad())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad())?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err(bad());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_answers() {
        let (status, headers, body) =
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: a=b\r\n\r\nhi")
                .expect("plain");
        assert_eq!(status, 200);
        assert_eq!(headers[1], ("Set-Cookie".to_owned(), "a=b".to_owned()));
        assert_eq!(body, b"hi");
        let (status, _, body) = parse(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .expect("chunked");
        assert_eq!(status, 404);
        assert_eq!(body, b"abcde");
        assert!(parse(b"garbage").is_err());
    }
}
