//! The listening socket under attack, over real sockets: idle and slow connections, the
//! connection cap, HTTPS/WSS with a certificate reloaded on SIGHUP, and the process ending after
//! SIGTERM whatever is stuck (the real binary, and a server whose runtime threads are all
//! blocked).

mod common;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use common::{get, token, write_project, WAIT};
use loopwatch::server::{auth::Auth, metrics::METRICS};
use loopwatch::site::{
    listen::{ListenConfig, TlsFiles, FORCED_EXIT_CODE},
    start, RunningServer, ServerConfig,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::timeout,
};
use tokio_rustls::{
    rustls::{
        self,
        pki_types::{pem::PemObject, CertificateDer, ServerName},
    },
    TlsConnector,
};

const TLS_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

/// A server over one project in `root`, with these listening rules.
async fn start_with(root: &Path, listen: ListenConfig) -> RunningServer {
    write_project(&root.join("p"), "- [ ] one\n");
    let data_dir = root.join(".data");
    let loaded = Auth::load_or_create(&data_dir).expect("auth secrets");
    start(ServerConfig {
        listen,
        ..common::server_config(
            vec![root.to_path_buf()],
            Some(Arc::new(loaded.auth)),
            Some(data_dir),
        )
    })
    .await
    .expect("server starts")
}

fn temp_root() -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("tempdir");
    let root = temp.path().canonicalize().expect("canonical");
    (temp, root)
}

/// Raises this process's open-file soft limit to at least `wanted` (the hard limit allowing).
fn raise_own_file_limit(wanted: libc::rlim_t) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read or write only the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < wanted {
            assert!(
                limit.rlim_max >= wanted,
                "the hard open-file limit ({}) is below {wanted}",
                limit.rlim_max
            );
            limit.rlim_cur = wanted;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
}

/// Reads until the peer closes the connection (EOF, reset, or a final response) or `deadline`
/// passes; returns what was read and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, deadline: Duration) -> (Vec<u8>, bool) {
    let mut bytes = Vec::new();
    let closed = timeout(deadline, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (bytes, closed)
}

/// A GET that tolerates refusal: the response as text, or `None` when the connection is
/// refused, reset, or not answered within 5 s.
async fn try_get(addr: SocketAddr, path: &str) -> Option<String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    };
    timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
}

// ------------------------------------------------------------------------ the real binary

/// The `loopwatch` binary, killed when dropped if it is still running.
struct Binary {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Binary {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `loopwatch serve` over `root` and waits for the line that names its address.
/// `file_limit` sets the child's open-file soft limit (the hard one is left as it is).
fn spawn_binary(root: &Path, file_limit: Option<libc::rlim_t>) -> Binary {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loopwatch"));
    command
        .arg("serve")
        .arg("--projects")
        .arg(root)
        .arg("--data-dir")
        .arg(root.join(".data"))
        .arg("--addr")
        .arg("127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(soft) = file_limit {
        use std::os::unix::process::CommandExt;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let mut limit = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                limit.rlim_cur = soft;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = command.spawn().expect("start loopwatch");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("loopwatch listening on http://") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let mut binary = Binary {
        child,
        addr: "127.0.0.1:0".parse().expect("addr"),
    };
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("loopwatch prints its address");
    binary.addr = addr.parse().expect("an address");
    binary
}

/// Waits (polling, at most `deadline`) for the child to end; `None` if it is still running.
fn wait_for_exit(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigterm(child: &Child) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

// ------------------------------------------------------------------------------ idle sockets

/// 1,100 connections that never send a request, against a server started with the common
/// 1,024 open-file soft limit: a normal client still gets the login page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_lock_out_a_client() {
    raise_own_file_limit(4096);
    let (_temp, root) = temp_root();
    write_project(&root.join("p"), "- [ ] one\n");
    let binary = spawn_binary(&root, Some(1024));
    let mut idle = Vec::new();
    for _ in 0..1100 {
        let stream = timeout(WAIT, TcpStream::connect(binary.addr))
            .await
            .expect("connect in time")
            .expect("connect");
        idle.push(stream);
    }
    // Generous: the fix answers at once; a server out of descriptors never does.
    let answered = timeout(Duration::from_secs(20), async {
        loop {
            if let Some(page) = try_get(binary.addr, "/login").await {
                if page.starts_with("HTTP/1.1 200") {
                    return page;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let page = answered.expect("the login page is served despite 1,100 idle sockets");
    assert!(page.contains("<html"), "{page}");
    drop(idle);
}

/// A connection that sends nothing is closed after the header-read timeout.
#[tokio::test]
async fn a_silent_connection_is_closed() {
    let (_temp, root) = temp_root();
    let server = start_with(
        &root,
        ListenConfig {
            header_read_timeout: Duration::from_secs(1),
            ..Default::default()
        },
    )
    .await;
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    let (_, closed) = read_until_closed(&mut silent, WAIT).await;
    assert!(closed, "the server closes a silent connection");
    // Kept-alive connections get the same limit between requests.
    let mut kept = TcpStream::connect(server.addr).await.expect("connect");
    let request = format!("GET /login HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    kept.write_all(request.as_bytes()).await.expect("write");
    let (bytes, closed) = read_until_closed(&mut kept, WAIT).await;
    assert!(closed, "the server closes an idle kept-alive connection");
    assert!(bytes.starts_with(b"HTTP/1.1 200"), "{:?}", &bytes[..20]);
    server.stop().await;
}

/// Slowloris: a request head sent one byte at a time never completes; the header-read timeout
/// closes the connection although bytes keep coming.
#[tokio::test]
async fn slowloris_is_cut_by_the_header_read_timeout() {
    let (_temp, root) = temp_root();
    let server = start_with(
        &root,
        ListenConfig {
            header_read_timeout: Duration::from_secs(1),
            ..Default::default()
        },
    )
    .await;
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    slow.write_all(b"GET /login HTTP/1.1\r\nX-Slow: ")
        .await
        .expect("write");
    let (mut reader, mut writer) = slow.split();
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    let mut buf = [0u8; 1024];
    let closed = timeout(WAIT, async {
        loop {
            tokio::select! {
                read = reader.read(&mut buf) => match read {
                    // EOF, a reset, or the server's error response: the connection is over.
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                },
                _ = ticks.tick() => {
                    if writer.write_all(b"a").await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "slowloris still connected after {WAIT:?}");
    // Others are served all along.
    assert_eq!(get(server.addr, "/login").await.status, 200);
    server.stop().await;
}

// ------------------------------------------------------------------------------ the cap

/// With a cap of 4, the fifth connection is refused (503 or closed) while the four are served;
/// once one of them goes, a new connection is served again.
#[tokio::test]
async fn connections_past_the_cap_are_refused() {
    let (_temp, root) = temp_root();
    let server = start_with(
        &root,
        ListenConfig {
            header_read_timeout: Duration::from_secs(30),
            max_connections: Some(4),
            ..Default::default()
        },
    )
    .await;
    let request = format!("GET /login HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut head = [0u8; 12];
        timeout(WAIT, stream.read_exact(&mut head))
            .await
            .expect("an answer in time")
            .expect("read");
        assert_eq!(&head, b"HTTP/1.1 200", "kept-alive connection served");
        held.push(stream);
    }
    let mut fifth = TcpStream::connect(server.addr).await.expect("connect");
    let _ = fifth
        .write_all(b"GET /login HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await;
    let (bytes, closed) = read_until_closed(&mut fifth, WAIT).await;
    assert!(closed, "the connection past the cap is closed at once");
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 503"),
        "refused, not served: {text}"
    );
    assert!(
        METRICS.http_connections_refused.load(Ordering::Relaxed) >= 1,
        "refusals are counted"
    );
    drop(held.pop());
    // The freed slot is taken again (the server notices the close at its own pace).
    let served = timeout(WAIT, async {
        loop {
            if try_get(server.addr, "/login")
                .await
                .is_some_and(|page| page.starts_with("HTTP/1.1 200"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(served.is_ok(), "a slot frees up when a connection ends");
    drop(held);
    server.stop().await;
}

// ------------------------------------------------------------------------------------ TLS

/// Copies the fixture pair `name` (`name.crt`, `name.key`) into `dir`; the server is given
/// these copies, so a test can replace them.
fn copy_pair(dir: &Path, name: &str) -> TlsFiles {
    let files = TlsFiles {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    };
    install_pair(&files, name);
    files
}

fn install_pair(files: &TlsFiles, name: &str) {
    let fixtures = Path::new(TLS_FIXTURES);
    std::fs::copy(fixtures.join(format!("{name}.crt")), &files.cert).expect("copy cert");
    std::fs::copy(fixtures.join(format!("{name}.key")), &files.key).expect("copy key");
}

/// A TLS client that trusts only the fixture certificate `name.crt`.
fn client_trusting(name: &str) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let path = Path::new(TLS_FIXTURES).join(format!("{name}.crt"));
    for cert in CertificateDer::pem_file_iter(path).expect("PEM file") {
        roots.add(cert.expect("certificate")).expect("trust anchor");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every handshake checks the certificate served now (a resumed session would not).
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
}

/// A GET over HTTPS; the whole response as text.
async fn https_get(
    connector: &TlsConnector,
    addr: SocketAddr,
    path: &str,
) -> std::io::Result<String> {
    let mut tls = timeout(WAIT, tls_connect(connector, addr)).await??;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut bytes = Vec::new();
    match timeout(WAIT, tls.read_to_end(&mut bytes)).await? {
        Ok(_) => {}
        // A peer that closes without close_notify: what came before is still the response.
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof && !bytes.is_empty() => {}
        Err(error) => return Err(error),
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn https_and_wss_are_served_with_the_configured_certificate() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let (_temp, root) = temp_root();
    let files = copy_pair(&root, "a");
    let server = start_with(
        &root,
        ListenConfig {
            tls: Some(files),
            ..Default::default()
        },
    )
    .await;
    assert!(server.is_tls());
    let client = client_trusting("a");

    let page = https_get(&client, server.addr, "/login")
        .await
        .expect("HTTPS request");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("<html"), "{page}");

    // Plain HTTP on the TLS port gets no page.
    let mut plain = TcpStream::connect(server.addr).await.expect("connect");
    let request = format!("GET /login HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    plain.write_all(request.as_bytes()).await.expect("write");
    let (bytes, closed) = read_until_closed(&mut plain, WAIT).await;
    assert!(closed, "plain HTTP on the TLS port is closed");
    assert!(!bytes.starts_with(b"HTTP/1.1 200"));

    // A WebSocket over TLS.
    let tls = tls_connect(&client, server.addr).await.expect("TLS");
    let url = format!("wss://{}/api/ws?token={}", server.addr, token(&server));
    let (mut socket, response) = timeout(WAIT, tokio_tungstenite::client_async(url, tls))
        .await
        .expect("upgrade in time")
        .expect("WSS upgrade");
    assert_eq!(response.status(), 101);
    let hello = loop {
        match timeout(WAIT, socket.next()).await.expect("a frame in time") {
            Some(Ok(Message::Text(text))) => break text,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    let hello: serde_json::Value = serde_json::from_str(hello.as_str()).expect("JSON frame");
    assert_eq!(hello["type"], "hello");
    server.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_a_bad_pair_keeps_the_old_one() {
    let (_temp, root) = temp_root();
    let files = copy_pair(&root, "a");
    let server = start_with(
        &root,
        ListenConfig {
            tls: Some(files.clone()),
            ..Default::default()
        },
    )
    .await;
    let trusts_a = client_trusting("a");
    let trusts_b = client_trusting("b");
    assert!(https_get(&trusts_a, server.addr, "/login").await.is_ok());
    assert!(
        https_get(&trusts_b, server.addr, "/login").await.is_err(),
        "b is not served yet"
    );

    // A key that does not belong to the certificate: refused, the old pair stays.
    let fixtures = Path::new(TLS_FIXTURES);
    std::fs::copy(fixtures.join("b.key"), &files.key).expect("copy key");
    let cert = server.tls.as_ref().expect("TLS on");
    assert!(cert.reload().is_err(), "a mismatched pair is refused");
    assert!(https_get(&trusts_a, server.addr, "/login").await.is_ok());

    // The new pair, through the signal (the server installed its SIGHUP handler at start, so
    // the signal does not end this process).
    install_pair(&files, "b");
    // SAFETY: kill(2) on this process, whose SIGHUP handler is installed.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGHUP) }, 0);
    let reloaded = timeout(WAIT, async {
        loop {
            if https_get(&trusts_b, server.addr, "/login").await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(reloaded.is_ok(), "b is served after SIGHUP");
    assert!(https_get(&trusts_a, server.addr, "/login").await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn a_bad_certificate_pair_stops_the_start_with_a_clear_error() {
    let (_temp, root) = temp_root();
    let files = copy_pair(&root, "a");
    std::fs::copy(Path::new(TLS_FIXTURES).join("b.key"), &files.key).expect("copy key");
    let result = start(ServerConfig {
        listen: ListenConfig {
            tls: Some(files),
            ..Default::default()
        },
        ..common::server_config(vec![root.clone()], None, None)
    })
    .await;
    let Err(error) = result else {
        panic!("a key that does not belong to the certificate is refused");
    };
    let message = error.to_string();
    assert!(
        message.contains("server.crt") && message.contains("server.key"),
        "{message}"
    );
}

// ------------------------------------------------------------------------------- SIGTERM

const STUCK_CHILD_ENV: &str = "LOOPWATCH_TEST_STUCK_CHILD";
const STUCK_CHILD_READY: &str = "stuck server ready";

/// A child process (see [`sigterm_ends_a_server_whose_runtime_threads_are_all_stuck`]).
#[test]
#[ignore = "run by sigterm_ends_a_server_whose_runtime_threads_are_all_stuck, in a process of its own"]
fn stuck_server_child() {
    if std::env::var_os(STUCK_CHILD_ENV).is_none() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (_temp, root) = temp_root();
        let server = start_with(&root, ListenConfig::default()).await;
        let run = server.run_until_signal();
        // Every runtime thread blocks, as on a read that never returns.
        let (started, blocked) = std::sync::mpsc::channel();
        for _ in 0..2 {
            let started = started.clone();
            tokio::spawn(async move {
                let _ = started.send(());
                std::thread::sleep(Duration::from_secs(3600));
            });
        }
        for _ in 0..2 {
            blocked
                .recv_timeout(Duration::from_secs(30))
                .expect("both runtime threads blocked");
        }
        println!("{STUCK_CHILD_READY}");
        run.await;
    });
}

/// A child process that is killed if the test fails while it still runs.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn sigterm_ends_a_server_whose_runtime_threads_are_all_stuck() {
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "stuck_server_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(STUCK_CHILD_ENV, "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the child");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(STUCK_CHILD_READY) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the child's server starts and gets stuck");
    sigterm(&child.0);
    let status = wait_for_exit(&mut child.0, Duration::from_secs(30))
        .expect("the process ends after SIGTERM although every runtime thread is stuck");
    // Neither the signal's default action nor a clean stop: the forced exit.
    assert_eq!(status.code(), Some(FORCED_EXIT_CODE), "{status:?}");
}

/// The real binary with open sockets, a request head half sent and a FIFO in place of a
/// project's log ends after SIGTERM, by itself (a clean stop, or the forced exit if a read is
/// stuck).
#[test]
fn sigterm_ends_the_binary_with_a_fifo_in_a_project() {
    use std::io::{Read, Write};
    let (_temp, root) = temp_root();
    let project = root.join("p");
    write_project(&project, "- [ ] one\n");
    common::append(&project.join(".ralph/ralph.log"), "loop 1/5\nstarted\n");
    let mut binary = spawn_binary(&root, None);
    let mut sockets: Vec<std::net::TcpStream> = (0..50)
        .map(|_| std::net::TcpStream::connect(binary.addr).expect("connect"))
        .collect();
    sockets[0]
        .write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n")
        .expect("half a request");
    let log = project.join(".ralph/ralph.log");
    std::fs::remove_file(&log).expect("remove log");
    let made = Command::new("mkfifo").arg(&log).status().expect("mkfifo");
    assert!(made.success());
    // Gives the watcher time to see the FIFO: whether this probe is answered depends on how
    // the server reads it, and is not what this test is about.
    if let Ok(mut probe) = std::net::TcpStream::connect(binary.addr) {
        let _ = probe.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = probe.write_all(b"GET /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let _ = probe.read(&mut [0u8; 64]);
    }
    sigterm(&binary.child);
    let status = wait_for_exit(&mut binary.child, Duration::from_secs(30))
        .expect("loopwatch ends after SIGTERM");
    assert!(
        matches!(status.code(), Some(0) | Some(FORCED_EXIT_CODE)),
        "ended by itself: {status:?}"
    );
    drop(sockets);
}

/// Idle sockets and a request head half sent do not turn SIGTERM into the forced exit: the
/// clean stop stops waiting for them in time.
#[test]
fn sigterm_with_idle_and_half_sent_requests_is_a_clean_stop() {
    use std::io::Write;
    let (_temp, root) = temp_root();
    write_project(&root.join("p"), "- [ ] one\n");
    let mut binary = spawn_binary(&root, None);
    let mut sockets: Vec<std::net::TcpStream> = (0..20)
        .map(|_| std::net::TcpStream::connect(binary.addr).expect("connect"))
        .collect();
    sockets[0]
        .write_all(b"GET /login HTTP/1.1\r\nHost: x\r\n")
        .expect("half a request");
    // The server is up and serving while the half request waits.
    let page = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(try_get(binary.addr, "/login"));
    assert!(page.is_some_and(|page| page.starts_with("HTTP/1.1 200")));
    sigterm(&binary.child);
    let status = wait_for_exit(&mut binary.child, Duration::from_secs(30))
        .expect("loopwatch ends after SIGTERM");
    assert_eq!(status.code(), Some(0), "a clean stop: {status:?}");
    drop(sockets);
}
