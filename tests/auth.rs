//! Authentication over real sockets: the guard, the login link and form, the Origin check, and
//! sockets closed with 4401 when their session ends.
#![cfg(feature = "ssr")]

use std::time::Duration;

use futures::StreamExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    time::timeout,
};
use tokio_tungstenite::{
    connect_async,
    tungstenite::{client::IntoClientRequest, http::HeaderValue, Error, Message},
};

use loopwatch::server::auth::{Auth, SESSION};

mod common;
use common::{get, get_signed_in, post_json, start_server, token, write_project, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_served_without_a_session() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    write_project(&root.join("alpha"), "- [ ] 1: a\n");
    let server = start_server(root.clone()).await;
    let addr = server.addr;

    // Pages send the browser to the login page, remembering where it wanted to go.
    let page = get(addr, "/?tab=log").await;
    assert_eq!(page.status, 303);
    assert!(
        page.headers.contains("location: /login?next=/%3Ftab%3Dlog"),
        "{}",
        page.headers
    );
    assert!(!page.body.contains("alpha"));
    // The login page and the site's files are public.
    assert_eq!(get(addr, "/login").await.status, 200);
    // APIs answer 401.
    assert_eq!(
        post_json(addr, "/api/projects", "{}", "forged.token.value")
            .await
            .status,
        401
    );
    assert_eq!(get(addr, "/metrics").await.status, 401);

    // The upgrade is refused before switching protocols: no token, a token signed with another
    // key, an unsigned (`alg: none`) token, an expired one.
    let other_key = tempfile::tempdir().expect("tempdir");
    let foreign = Auth::load_or_create(other_key.path())
        .expect("other secrets")
        .auth
        .issue(SESSION);
    let unsigned = {
        use base64::Engine;
        let b64 = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let far = 4_000_000_000u64;
        format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&format!(r#"{{"sub":"admin","iat":1,"exp":{far}}}"#))
        )
    };
    for bad in [
        "".to_owned(),
        format!("?token={foreign}"),
        format!("?token={unsigned}"),
    ] {
        match connect_async(format!("ws://{addr}/api/ws{bad}")).await {
            Err(Error::Http(response)) => assert_eq!(response.status(), 401, "{bad}"),
            other => panic!("expected 401 for {bad:?}, got {other:?}"),
        }
    }
    // A foreign Origin is refused even with a valid token.
    let mut request = format!("ws://{addr}/api/ws?token={}", token(&server))
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("origin", HeaderValue::from_static("http://evil.example"));
    match connect_async(request).await {
        Err(Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_link_and_form_start_a_session() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let server = start_server(root.clone()).await;
    let addr = server.addr;
    let credential = Auth::load_or_create(&root.join(".data"))
        .expect("same data dir")
        .auth
        .credential()
        .to_owned();

    let wrong = get(addr, "/api/login?token=nope&next=/x").await;
    assert_eq!(wrong.status, 303);
    assert!(
        wrong.headers.contains("location: /login?error=1&next=/x"),
        "{}",
        wrong.headers
    );
    assert!(!wrong.headers.to_ascii_lowercase().contains("set-cookie"));

    let link = get(
        addr,
        &format!("/api/login?token={credential}&next=//evil.example"),
    )
    .await;
    assert_eq!(link.status, 303);
    assert!(
        link.headers.contains("location: /\r\n"),
        "no open redirect: {}",
        link.headers
    );
    let cookie = link
        .headers
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie
        .split(';')
        .next()
        .and_then(|pair| pair.strip_prefix(&format!("{}=", common::cookie_name(addr))))
        .expect("cookie value");
    assert_eq!(get_signed_in(addr, "/", session).await.status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_is_closed_with_4401_when_its_session_ends() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let server = start_server(root.clone()).await;
    let short = server
        .auth
        .as_ref()
        .expect("auth on")
        .issue(Duration::from_secs(1));
    let (mut socket, _) = timeout(
        WAIT,
        connect_async(format!("ws://{}/api/ws?token={short}", server.addr)),
    )
    .await
    .expect("connect in time")
    .expect("connect");
    let code = timeout(WAIT, async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(Some(frame)) = message {
                return Some(u16::from(frame.code));
            }
        }
        None
    })
    .await
    .expect("closed in time");
    assert_eq!(code, Some(4401));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_pings_and_closes_silent_sockets_with_1001() {
    use loopwatch::server::Keepalive;
    use loopwatch::site::{start, ServerConfig};
    use std::sync::Arc;
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let loaded = Auth::load_or_create(&root.join(".data")).expect("secrets");
    let session = loaded.auth.issue(SESSION);
    let server = start(ServerConfig {
        // Short, so the test does not wait 90 s; the rule is the same.
        keepalive: Keepalive {
            heartbeat: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(400),
            ..Keepalive::default()
        },
        ..common::server_config(vec![root], Some(Arc::new(loaded.auth)), None)
    })
    .await
    .expect("server starts");
    let url = format!("ws://{}/api/ws?token={session}", server.addr);

    // A client that answers pings (tungstenite does while it reads) stays connected and sees
    // the pings; one that never reads goes silent and is closed with 1001.
    let (mut live, _) = connect_async(url).await.expect("connect");
    let pinged = timeout(WAIT, async {
        while let Some(Ok(message)) = live.next().await {
            if matches!(message, Message::Ping(_)) {
                return true;
            }
        }
        false
    })
    .await
    .expect("a ping in time");
    assert!(pinged);

    // A client that never answers: a bare upgrade on a raw socket, then only listening.
    let mut raw = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let handshake = format!(
        "GET /api/ws?token={session} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        server.addr
    );
    raw.write_all(handshake.as_bytes())
        .await
        .expect("handshake");
    let mut received = Vec::new();
    timeout(WAIT, raw.read_to_end(&mut received))
        .await
        .expect("the server closes a silent socket in time")
        .expect("read");
    assert!(received.starts_with(b"HTTP/1.1 101"), "upgraded");
    // An unmasked close frame (0x88) whose payload starts with 1001 (0x03e9).
    let closed_1001 = received
        .windows(4)
        .any(|w| w[0] == 0x88 && w[2] == 0x03 && w[3] == 0xe9);
    assert!(closed_1001, "a close frame with 1001");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_may_hold_64_sockets_and_no_more() {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let server = start_server(root).await;
    let url = format!("ws://{}/api/ws?token={}", server.addr, token(&server));
    let mut open = Vec::new();
    for _ in 0..64 {
        let (socket, _) = timeout(WAIT, connect_async(url.clone()))
            .await
            .expect("connect in time")
            .expect("within the cap");
        open.push(socket);
    }
    match connect_async(url.clone()).await {
        Err(Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("expected 429, got {other:?}"),
    }
    // Closing one frees a place (the server notices the close asynchronously).
    let mut first = open.remove(0);
    first.close(None).await.expect("close");
    let reopened = timeout(WAIT, async {
        loop {
            if let Ok((socket, _)) = connect_async(url.clone()).await {
                return socket;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(reopened.is_ok(), "a place frees up after a close");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_flooding_clients_are_closed_with_1009_and_1008() {
    use futures::SinkExt;
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    let server = start_server(root).await;
    let url = format!("ws://{}/api/ws?token={}", server.addr, token(&server));
    let close_code = |mut socket: tokio_tungstenite::WebSocketStream<_>| async move {
        timeout(WAIT, async {
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Close(Some(frame)) = message {
                    return Some(u16::from(frame.code));
                }
            }
            None
        })
        .await
        .expect("closed in time")
    };

    let (mut big, _) = connect_async(url.clone()).await.expect("connect");
    big.send(Message::Text("x".repeat(64 * 1024 + 1).into()))
        .await
        .expect("send");
    assert_eq!(close_code(big).await, Some(1009));

    let (mut flood, _) = connect_async(url).await.expect("connect");
    for _ in 0..60 {
        if flood
            .send(Message::Text(r#"{"action":"ping"}"#.into()))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(close_code(flood).await, Some(1008));
    server.stop().await;
}
