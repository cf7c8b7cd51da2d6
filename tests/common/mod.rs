//! Helpers shared by the integration tests: a server on port 0 over a temporary project tree,
//! and a minimal HTTP/1.1 client (so tests do not pull in a whole HTTP client crate).
#![allow(dead_code)] // each test file uses a different subset

use std::{fs, net::SocketAddr, path::Path, path::PathBuf, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};

use std::sync::Arc;

use loopwatch::server::auth::{Auth, SESSION};
use loopwatch::site::{options, start, RunningServer, ServerConfig};

pub const WAIT: Duration = Duration::from_secs(10);

/// A project whose loop is "running": its pid file names this test process, which started
/// before the file was written.
pub fn write_project(dir: &Path, plan: &str) {
    fs::create_dir_all(dir.join(".ralph")).expect("mkdir .ralph");
    fs::write(dir.join(".ralph/ralph.pid"), std::process::id().to_string()).expect("pid");
    fs::write(dir.join("IMPLEMENTATION_PLAN.md"), plan).expect("plan");
}

/// Appends to a file the way a loop script does (creating it if needed).
pub fn append(path: &Path, text: &str) {
    append_bytes(path, text.as_bytes());
}

pub fn append_bytes(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    file.write_all(bytes).expect("append");
}

/// A server with authentication on, its secrets and archive list in `root/.data` (not a
/// project: no `.ralph/`). Starting another server over the same `root` reuses them.
pub async fn start_server(root: PathBuf) -> RunningServer {
    start_server_with_capacity(root, 1024).await
}

/// What every test server starts from (port 0, the built-in Leptos options, default keepalive and
/// listening rules, 1024 events of slack); tests override single fields with `..`.
pub fn server_config(
    roots: Vec<PathBuf>,
    auth: Option<Arc<Auth>>,
    data_dir: Option<PathBuf>,
) -> ServerConfig {
    ServerConfig {
        roots,
        addr: "127.0.0.1:0".parse().expect("addr"),
        leptos_options: options::leptos_options(None).expect("options"),
        auth,
        keepalive: Default::default(),
        hub_capacity: 1024,
        data_dir,
        allowed_hosts: Vec::new(),
        listen: Default::default(),
        control: Default::default(),
    }
}

/// The same, with a hub that lets connections fall behind by at most `capacity` events.
pub async fn start_server_with_capacity(root: PathBuf, capacity: usize) -> RunningServer {
    let data_dir = root.join(".data");
    let loaded = Auth::load_or_create(&data_dir).expect("auth secrets");
    start(ServerConfig {
        hub_capacity: capacity,
        ..server_config(vec![root], Some(Arc::new(loaded.auth)), Some(data_dir))
    })
    .await
    .inspect(|server| {
        if let Some(auth) = &server.auth {
            cookie_names().insert(server.addr, auth.cookie_name());
        }
    })
    .expect("server starts")
}

/// Each server's session cookie name (it is per instance), by address.
fn cookie_names() -> std::sync::MutexGuard<'static, std::collections::HashMap<SocketAddr, String>> {
    static NAMES: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<SocketAddr, String>>,
    > = std::sync::OnceLock::new();
    NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Remembers the cookie name of a server started some other way (a child process).
pub fn set_cookie_name(addr: SocketAddr, name: &str) {
    cookie_names().insert(addr, name.to_owned());
}

/// The session cookie's name on the server at `addr` (started by [`start_server`]).
pub fn cookie_name(addr: SocketAddr) -> String {
    cookie_names()
        .get(&addr)
        .cloned()
        .unwrap_or_else(|| "loopwatch_session".into())
}

/// A valid session token for `server`.
pub fn token(server: &RunningServer) -> String {
    server.auth.as_ref().expect("auth on").issue(SESSION)
}

pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// A GET without a session.
pub async fn get(addr: SocketAddr, path: &str) -> Response {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// A GET with the session cookie a signed-in browser sends.
pub async fn get_signed_in(addr: SocketAddr, path: &str, token: &str) -> Response {
    request(
        addr,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Cookie: {}={token}\r\n\r\n",
            cookie_name(addr)
        ),
    )
    .await
}

/// A JSON POST with the session cookie, the way the browser calls a server function from one
/// of this server's pages (so with this server's `Origin`).
pub async fn post_json(addr: SocketAddr, path: &str, json: &str, token: &str) -> Response {
    request(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Origin: http://{addr}\r\n\
             Content-Type: application/json\r\nAccept: application/json\r\n\
             Cookie: {}={token}\r\nContent-Length: {}\r\n\r\n{json}",
            cookie_name(addr),
            json.len()
        ),
    )
    .await
}

/// Sends `raw` (a whole request, written as given: any path, any headers) and reads the answer.
pub async fn raw_request(addr: SocketAddr, raw: &str) -> Response {
    request(addr, raw).await
}

async fn request(addr: SocketAddr, raw: &str) -> Response {
    let mut stream = timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    stream.write_all(raw.as_bytes()).await.expect("write");
    let mut bytes = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Response {
        status,
        headers: head.to_owned(),
        body: if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

pub type WsClient =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket to `path` on `addr`, signed in with `?token=`.
pub async fn open_ws(addr: SocketAddr, path: &str, session: &str) -> WsClient {
    let separator = if path.contains('?') { '&' } else { '?' };
    let url = format!("ws://{addr}{path}{separator}token={session}");
    timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect")
        .0
}

/// Sends one text frame.
pub async fn ws_send(client: &mut WsClient, text: &str) {
    use futures::SinkExt;
    client
        .send(tokio_tungstenite::tungstenite::Message::Text(text.into()))
        .await
        .expect("send frame");
}

/// The next JSON text frame (protocol pings skipped), or the close code when the socket closes.
pub async fn ws_next(client: &mut WsClient) -> Result<serde_json::Value, Option<u16>> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = timeout(WAIT, client.next()).await.expect("a frame in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                return Ok(serde_json::from_str(text.as_str()).expect("JSON frame"))
            }
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            _ => return Err(None),
        }
    }
}

/// Skips frames until one satisfies `wanted` (bounded by [`WAIT`]).
pub async fn ws_wait_for(
    client: &mut WsClient,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let found = timeout(WAIT, async {
        loop {
            match ws_next(client).await {
                Ok(frame) if wanted(&frame) => return frame,
                Ok(_) => continue,
                Err(code) => panic!("socket closed ({code:?}) while waiting for {what}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
}
