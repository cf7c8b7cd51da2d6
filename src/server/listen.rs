//! The listening socket: the accept loop with its connection cap, HTTP/1.1 with a header-read
//! timeout, optional TLS (with certificate reload), the open-file limit, and the forced exit
//! that follows SIGTERM/SIGINT when a clean stop does not finish in time.

use std::{
    convert::Infallible,
    io::Read,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock, RwLock},
    time::{Duration, Instant},
};

use axum::{extract::ConnectInfo, Router};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::{
    crypto::CryptoProvider,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::{metrics, Shutdown};

/// How long a client gets to send a request's head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The connection cap when the open-file limit allows it.
pub const MAX_CONNECTIONS: usize = 8192;
/// File descriptors kept free for everything that is not a client connection (project files,
/// the watcher, the data directory).
const RESERVED_FDS: u64 = 256;
/// The smallest cap, whatever the open-file limit says.
const MIN_CONNECTIONS: usize = 16;
/// Certificate and key files larger than this are refused (a PEM chain is a few KiB).
const MAX_PEM_BYTES: u64 = 1 << 20;
/// How long the process may take to stop after SIGTERM/SIGINT before it exits anyway.
pub const FORCED_EXIT_AFTER: Duration = Duration::from_secs(5);
/// The exit status when the stop did not finish in time (a clean stop exits with 0).
pub const FORCED_EXIT_CODE: i32 = 1;

/// How the listening socket treats its clients.
#[derive(Clone, Debug)]
pub struct ListenConfig {
    /// Time a client gets to send a request's head, counted from the moment the connection
    /// opens or the previous response ends: it is also the idle timeout of a kept-alive
    /// connection, and the limit on a TLS handshake.
    pub header_read_timeout: Duration,
    /// Connections served at once; the ones past it are closed at once. `None` picks
    /// [`MAX_CONNECTIONS`], lowered to fit the open-file limit.
    pub max_connections: Option<usize>,
    /// Serve HTTPS (and WSS) with this certificate and key; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: None,
            tls: None,
        }
    }
}

/// The PEM files of the server certificate (chain) and its private key.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}: {1}")]
    File(PathBuf, String),
    #[error("{cert} and {key}: {why}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        why: String,
    },
}

/// The certificate the TLS listener presents. [`TlsCert::reload`] swaps it for the one now in
/// the files, so a renewed certificate is used without a restart; handshakes already under way
/// keep the one they started with.
#[derive(Debug)]
pub struct TlsCert {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl TlsCert {
    /// Reads and checks the certificate and key (the key must belong to the certificate).
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = read_pair(&files, &provider)?;
        Ok(Arc::new(Self {
            files,
            provider,
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again. On any error the certificate in use stays, and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = read_pair(&self.files, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.pair_error(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        // HTTP/1.1 only: the server speaks nothing else.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    fn pair_error(&self, why: String) -> TlsError {
        TlsError::Pair {
            cert: self.files.cert.clone(),
            key: self.files.key.clone(),
            why,
        }
    }
}

impl ResolvesServerCert for TlsCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn read_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read_pem(&files.cert)?;
    let key_pem = read_pem(&files.key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::File(files.cert.clone(), format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(TlsError::File(
            files.cert.clone(),
            "no certificate in the file".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| TlsError::File(files.key.clone(), format!("not a PEM private key: {e}")))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Pair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        why: e.to_string(),
    })
}

/// Reads a small regular file (a FIFO or a device named by mistake is refused, not waited on).
fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let fail = |why: String| TlsError::File(path.to_path_buf(), why);
    let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    if meta.len() > MAX_PEM_BYTES {
        return Err(fail(format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_PEM_BYTES).read_to_end(&mut bytes))
        .map_err(|e| fail(e.to_string()))?;
    Ok(bytes)
}

/// Reloads the certificate on every SIGHUP until shutdown. The handler is installed before
/// this returns, so a SIGHUP sent afterwards never takes the default action (ending the
/// process).
pub fn reload_on_sighup(cert: Arc<TlsCert>, shutdown: Shutdown) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            let stop = shutdown.wait();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    received = hangups.recv() => {
                        if received.is_none() {
                            break;
                        }
                        let cert = cert.clone();
                        match tokio::task::spawn_blocking(move || cert.reload()).await {
                            Ok(Ok(())) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                            Ok(Err(error)) => tracing::error!(
                                %error,
                                "SIGHUP: cannot reload the TLS certificate; keeping the one in use"
                            ),
                            Err(error) => tracing::error!(%error, "SIGHUP: reload task failed"),
                        }
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (cert, shutdown);
    Ok(())
}

/// Raises the open-file soft limit to the hard limit (once per process) and returns the soft
/// limit in force. Each client connection holds a descriptor: the common default of 1,024 is
/// used up by a thousand idle sockets.
pub fn raise_open_file_limit() -> Option<u64> {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    *LIMIT.get_or_init(raise_open_file_limit_now)
}

#[cfg(unix)]
fn raise_open_file_limit_now() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        let error = std::io::Error::last_os_error();
        tracing::warn!(%error, "cannot read the open-file limit");
        return None;
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(
                from = before,
                to = raised.rlim_cur,
                "raised the open-file limit"
            );
            return Some(as_u64(raised.rlim_cur));
        }
        let error = std::io::Error::last_os_error();
        tracing::warn!(%error, limit = before, "cannot raise the open-file limit");
    } else {
        tracing::info!(limit = before, "open-file limit already at its maximum");
    }
    Some(as_u64(before))
}

#[cfg(unix)]
#[allow(clippy::useless_conversion)] // rlim_t is not u64 on every platform
fn as_u64(value: libc::rlim_t) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

#[cfg(not(unix))]
fn raise_open_file_limit_now() -> Option<u64> {
    None
}

/// The connection cap: the configured one, or the default lowered to fit the open-file limit.
pub fn connection_cap(configured: Option<usize>, open_file_limit: Option<u64>) -> usize {
    if let Some(cap) = configured {
        return cap.max(1);
    }
    let fitting = open_file_limit
        .map(|limit| limit.saturating_sub(RESERVED_FDS))
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(MAX_CONNECTIONS);
    fitting.clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
}

/// What the accept loop needs besides the socket.
pub(super) struct Serve {
    pub router: Router,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub tls: Option<TlsAcceptor>,
    pub shutdown: Shutdown,
}

/// Builds the TLS acceptor for `cert`.
pub(super) fn tls_acceptor(cert: &Arc<TlsCert>) -> Result<TlsAcceptor, TlsError> {
    cert.acceptor()
}

/// Accepts connections until shutdown, then waits for the open ones to finish (in-flight
/// requests complete; idle connections are closed; upgraded sockets are on their own).
pub(super) fn spawn(listener: TcpListener, serve: Serve) -> JoinHandle<std::io::Result<()>> {
    tokio::spawn(accept_loop(listener, serve))
}

async fn accept_loop(listener: TcpListener, serve: Serve) -> std::io::Result<()> {
    let Serve {
        router,
        header_read_timeout,
        max_connections,
        tls,
        shutdown,
    } = serve;
    let permits = Arc::new(Semaphore::new(max_connections));
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    // Out of descriptors or memory: retrying at once would spin.
                    tracing::error!(%error, "accept error");
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(stream, tls.is_some());
            continue;
        };
        // Small event frames must not wait for Nagle's algorithm.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let connection = Connection {
            router: router.clone(),
            peer,
            header_read_timeout,
            shutdown: shutdown.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            metrics::adjust(&metrics::METRICS.http_connections_open, 1);
            connection.run(stream, tls).await;
            metrics::adjust(&metrics::METRICS.http_connections_open, -1);
            drop(permit);
        });
    }
    drop(listener);
    // Every connection holds a permit until it ends.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
    Ok(())
}

/// Errors that concern one connection only (the next accept may well succeed).
fn is_connection_error(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Past the cap: a plain-HTTP client is told why, then the socket is closed at once.
fn refuse(stream: TcpStream, tls: bool) {
    metrics::count(&metrics::METRICS.http_connections_refused);
    tracing::debug!("connection cap reached; closing a new connection");
    if !tls {
        // A fresh socket's send buffer is empty, so this never waits; whatever does not fit is
        // not worth waiting for.
        let _ = stream.try_write(
            b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: text/plain\r\n\
              content-length: 32\r\nretry-after: 5\r\n\r\ntoo many connections; try again\n",
        );
    }
}

struct Connection {
    router: Router,
    peer: SocketAddr,
    header_read_timeout: Duration,
    shutdown: Shutdown,
}

impl Connection {
    async fn run(self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        let Some(acceptor) = tls else {
            return self.http(stream).await;
        };
        let handshake = tokio::time::timeout(self.header_read_timeout, acceptor.accept(stream));
        let stream = tokio::select! {
            _ = self.shutdown.wait() => return,
            done = handshake => match done {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(peer = %self.peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                    return;
                }
            },
        };
        self.http(stream).await
    }

    async fn http<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            router,
            peer,
            header_read_timeout,
            shutdown,
        } = self;
        let service = service_fn(move |mut request: Request<Incoming>| {
            // Handlers learn the client's address the way `axum::serve` tells them.
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            async move {
                let response = router
                    .oneshot(request.map(axum::body::Body::new))
                    .await
                    .unwrap_or_else(|never: Infallible| match never {});
                Ok::<_, Infallible>(response)
            }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::pin!(connection);
        let stop = shutdown.wait();
        tokio::pin!(stop);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            _ = &mut stop => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(error) = result {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}

/// Makes sure the process ends after SIGTERM/SIGINT, stuck or not: the first signal triggers
/// every [`stop_on_signal`] shutdown and starts a [`FORCED_EXIT_AFTER`] countdown on a thread
/// of its own (so it runs even when every runtime thread is blocked, or while start-up is still
/// reading files), after which the process exits with [`FORCED_EXIT_CODE`]; a second signal
/// exits at once. A clean stop ends the process before that. Armed once per process; later
/// calls do nothing. Only for a process that serves: once armed, these signals no longer end
/// the process on their own.
pub fn arm_forced_exit() {
    #[cfg(unix)]
    {
        static ARMED: OnceLock<()> = OnceLock::new();
        ARMED.get_or_init(|| {
            if let Err(error) = install_forced_exit() {
                tracing::warn!(%error, "cannot arm the forced exit after SIGTERM");
            }
        });
    }
}

/// Shutdowns the forced-exit thread triggers when the stop signal arrives (see
/// [`arm_forced_exit`]).
static STOP_ON_SIGNAL: std::sync::Mutex<Vec<Shutdown>> = std::sync::Mutex::new(Vec::new());

/// Has [`arm_forced_exit`]'s thread trigger `shutdown` at the stop signal, so the clean stop
/// begins even when no runtime thread is free to see the signal.
pub fn stop_on_signal(shutdown: Shutdown) {
    let mut list = STOP_ON_SIGNAL.lock().unwrap_or_else(|e| e.into_inner());
    // A signal that came during start-up stops the server as soon as it exists.
    if SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) {
        shutdown.trigger();
    }
    list.push(shutdown);
}

/// Set (under the [`STOP_ON_SIGNAL`] lock) once the stop signal has arrived.
static SIGNALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cfg(unix)]
fn install_forced_exit() -> std::io::Result<()> {
    use std::os::{fd::AsRawFd, unix::net::UnixStream};
    let (mut receiver, sender) = UnixStream::pair()?;
    // The signal handler must never block.
    sender.set_nonblocking(true)?;
    let fd = sender.as_raw_fd();
    // The write end lives as long as the process: the handler may run at any time.
    std::mem::forget(sender);
    std::thread::Builder::new()
        .name("loopwatch-exit".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            loop {
                match receiver.read(&mut byte) {
                    Ok(1) => break,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    _ => return,
                }
            }
            {
                let list = STOP_ON_SIGNAL.lock().unwrap_or_else(|e| e.into_inner());
                SIGNALLED.store(true, std::sync::atomic::Ordering::SeqCst);
                for shutdown in list.iter() {
                    shutdown.trigger();
                }
            }
            let deadline = Instant::now() + FORCED_EXIT_AFTER;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                if receiver.set_read_timeout(Some(left)).is_err() {
                    std::thread::sleep(left);
                    break;
                }
                if let Ok(1) = receiver.read(&mut byte) {
                    eprintln!("loopwatch: second stop signal; exiting now");
                    std::process::exit(FORCED_EXIT_CODE);
                }
                // Otherwise it timed out or was interrupted: check the deadline again.
            }
            eprintln!(
                "loopwatch: still stopping {} s after the stop signal; exiting anyway",
                FORCED_EXIT_AFTER.as_secs()
            );
            std::process::exit(FORCED_EXIT_CODE);
        })?;
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the action only calls write(2) on a descriptor that is never closed, which is
        // async-signal-safe, and allocates nothing.
        unsafe {
            signal_hook_registry::register(signal, move || {
                let byte = 1u8;
                libc::write(fd, std::ptr::addr_of!(byte).cast(), 1);
            })
        }?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_open_file_limit() {
        assert_eq!(connection_cap(Some(3), Some(1024)), 3);
        assert_eq!(connection_cap(Some(0), None), 1);
        assert_eq!(connection_cap(None, Some(1024)), 1024 - 256);
        assert_eq!(connection_cap(None, Some(1_048_576)), MAX_CONNECTIONS);
        assert_eq!(connection_cap(None, Some(100)), MIN_CONNECTIONS);
        assert_eq!(connection_cap(None, None), MAX_CONNECTIONS);
    }

    #[test]
    fn raising_the_open_file_limit_reports_the_limit_in_force() {
        let limit = raise_open_file_limit();
        #[cfg(unix)]
        {
            let mut now = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into the struct we pass.
            assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) }, 0);
            assert_eq!(limit, Some(as_u64(now.rlim_cur)));
            assert_eq!(
                now.rlim_cur, now.rlim_max,
                "soft limit raised to the hard one"
            );
        }
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn a_bad_pair_is_refused_and_reload_keeps_the_old_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        std::fs::copy(fixture("a.crt"), &files.cert).expect("copy");
        std::fs::copy(fixture("a.key"), &files.key).expect("copy");
        let cert = TlsCert::load(files.clone()).expect("a good pair loads");
        let first = cert.current.read().expect("lock").cert.clone();

        // A key that belongs to another certificate.
        std::fs::copy(fixture("b.key"), &files.key).expect("copy");
        let error = cert.reload().expect_err("mismatched pair");
        assert!(matches!(error, TlsError::Pair { .. }), "{error}");
        assert_eq!(cert.current.read().expect("lock").cert, first);

        std::fs::write(&files.cert, "not pem").expect("write");
        let error = cert.reload().expect_err("garbage");
        assert!(error.to_string().contains("cert.pem"), "{error}");
        assert_eq!(cert.current.read().expect("lock").cert, first);

        std::fs::copy(fixture("b.crt"), &files.cert).expect("copy");
        cert.reload().expect("the new pair loads");
        assert_ne!(cert.current.read().expect("lock").cert, first);

        assert!(TlsCert::load(TlsFiles {
            cert: dir.path().join("missing.pem"),
            key: files.key.clone(),
        })
        .is_err());
        assert!(TlsCert::load(TlsFiles {
            cert: dir.path().to_path_buf(),
            key: files.key,
        })
        .is_err());
    }
}
