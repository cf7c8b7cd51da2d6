//! The listening socket: the accept loop with its connection cap, HTTP/1.1 with a header-read
//! timeout (which is also the idle timeout), and optional TLS. Its neighbours: `limits` (the
//! open-file limit and the cap), `tls` (certificates) and `stop` (the forced exit).

mod limits;
mod stop;
mod tls;

pub use limits::{connection_cap, raise_open_file_limit, MAX_CONNECTIONS};
pub use stop::{arm_forced_exit, stop_on_signal, FORCED_EXIT_AFTER, FORCED_EXIT_CODE};
pub use tls::{reload_on_sighup, TlsCert, TlsError, TlsFiles};

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use axum::{extract::ConnectInfo, Router};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::server::{metrics, Shutdown};

/// How long a client gets to send a request's head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

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
    let max_connections = max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max_connections));
    // Logged when the cap is reached and when it is left, not for every refusal.
    let mut at_cap = false;
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
            if !at_cap {
                at_cap = true;
                tracing::warn!(
                    max_connections,
                    "connection cap reached; refusing new connections"
                );
            }
            refuse(stream, tls.as_ref());
            continue;
        };
        if at_cap {
            at_cap = false;
            tracing::info!(max_connections, "below the connection cap again");
        }
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
fn refuse(stream: TcpStream, tls: Option<&TlsAcceptor>) {
    metrics::count(&metrics::METRICS.http_connections_refused);
    tracing::debug!("connection cap reached; closing a new connection");
    if tls.is_none() {
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
