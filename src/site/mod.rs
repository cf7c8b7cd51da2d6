//! The HTTP app (server build only): the router with pages, server functions, streams and
//! embedded assets behind the gate and the session guard; starting and stopping a server.

pub mod assets;
pub mod gate;
pub mod listen;
pub mod options;
pub mod session;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::{
    routing::{get, post},
    Router,
};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::app::{shell, App};
use crate::server::{
    archive, auth, discovery,
    hub::Hub,
    index::Index,
    metrics, store,
    stream::{build, compat, limits, live, sse},
    watchdog, watcher, AppState, Keepalive, Shutdown,
};

/// The HTTP app: pages, server functions, the WebSocket endpoint and the embedded site files,
/// behind the gate (which wraps the whole router so that it runs before routing).
pub fn app(state: AppState) -> Router {
    use tower::Layer;
    let routes = generate_route_list(App);
    let context_state = state.clone();
    let shell_options = state.leptos_options.clone();
    let routed = Router::new()
        .route("/api/ws", get(live::upgrade))
        .route("/metrics", get(metrics::handler))
        .route("/api/events", get(sse::events))
        .route(
            "/api/login",
            get(session::login_link).post(session::login_form),
        )
        .route("/api/share", get(session::share_link))
        .route("/api/logout", post(session::logout))
        .route("/api/session", get(session::check))
        .route("/ws/instances", get(compat::instances))
        .route("/ws/instances/{id}/logs", get(compat::logs))
        .route("/ws/messages", get(compat::messages))
        .route(
            "/api/build/stream/{id}",
            get(build::stream).layer(axum::middleware::from_fn(gate::same_origin_stream)),
        )
        .leptos_routes_with_context(
            &state,
            routes,
            move || {
                provide_context(context_state.clone());
                gate::provide_page_policy(&context_state.leptos_options);
            },
            move || shell(shell_options.clone()),
        )
        .fallback(assets::static_or_not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::guard,
        ))
        .with_state(state.clone());
    let gated = axum::middleware::from_fn_with_state(state, gate::gate).layer(routed);
    Router::new().fallback_service(gated)
}

/// What `serve` needs to run.
pub struct ServerConfig {
    pub roots: Vec<PathBuf>,
    pub addr: SocketAddr,
    pub leptos_options: LeptosOptions,
    /// `None` turns authentication off.
    pub auth: Option<Arc<auth::Auth>>,
    pub keepalive: Keepalive,
    /// Events a connection may fall behind by before it gets `resync`.
    pub hub_capacity: usize,
    /// The server's own files (the archive list); `None` keeps them in memory only.
    pub data_dir: Option<PathBuf>,
    /// Host names accepted besides the bound address, `localhost` and loopback addresses.
    pub allowed_hosts: Vec<crate::contract::request_host::AllowedHost>,
    /// Timeouts, the connection cap and TLS.
    pub listen: listen::ListenConfig,
    /// The loop command and the stop grace period.
    pub control: crate::server::control::ControlOptions,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("--projects {0}: {1}")]
    BadRoot(PathBuf, String),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("cannot start the file watcher: {0}")]
    Watch(#[from] notify::Error),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("TLS: {0}")]
    Tls(#[from] listen::TlsError),
    #[error("cannot watch for SIGHUP: {0}")]
    Signal(std::io::Error),
}

/// How long a stop waits for HTTP connections to finish (a request under way, a client still
/// sending its request's head). Well under [`listen::FORCED_EXIT_AFTER`], so that a clean stop
/// ends the process first.
pub const HTTP_DRAIN: Duration = Duration::from_secs(3);

/// A started server. Dropping it does not stop it: call [`RunningServer::stop`].
pub struct RunningServer {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    pub auth: Option<Arc<auth::Auth>>,
    /// The certificate served when TLS is on ([`listen::TlsCert::reload`] swaps it).
    pub tls: Option<Arc<listen::TlsCert>>,
    /// The projects it serves (local ones and, on a cluster node, the engine's).
    pub index: Arc<Index>,
    http: JoinHandle<std::io::Result<()>>,
    watcher: watcher::ProjectWatcher,
    /// The open sockets and event streams, so `stop` can wait for their close handshakes.
    connections: Arc<limits::ConnectionLimits>,
}

/// Discovers projects, starts the watcher and binds the listener.
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    let hub = Hub::new(config.hub_capacity);
    start_with_hub(config, hub).await
}

/// [`start`] on a given hub (a cluster node's, which carries the engine's numbering).
pub async fn start_with_hub(config: ServerConfig, hub: Hub) -> Result<RunningServer, StartError> {
    // First: a bad certificate stops the start before any project is read.
    let tls_cert = match &config.listen.tls {
        Some(files) => Some(listen::TlsCert::load(files.clone())?),
        None => None,
    };
    let tls = tls_cert.as_ref().map(listen::tls_acceptor).transpose()?;
    let max_connections = listen::connection_cap(
        config.listen.max_connections,
        listen::raise_open_file_limit(),
    );

    let roots = discovery::validate_roots(&config.roots)
        .map_err(|(root, why)| StartError::BadRoot(root, why))?;
    let archive = match &config.data_dir {
        Some(dir) => archive::ArchiveStore::load(dir)?,
        None => archive::ArchiveStore::in_memory(),
    };
    let store = match &config.data_dir {
        Some(dir) => store::Store::open(dir)?,
        None => store::Store::in_memory()?,
    };
    if let Some(auth) = &config.auth {
        // Links revoked or expired while the server was down end their sessions now.
        auth.end_shares_where(|share| crate::server::share::is_gone(&store, share));
    }
    let index = Arc::new(Index::with_archive(hub.clone(), archive));
    let shutdown = Shutdown::default();
    let store = Arc::new(store);
    let control = Arc::new(crate::server::control::Control::new(
        config.data_dir.clone(),
        config.control.clone(),
        hub.clone(),
    ));
    let watcher = watch_projects(&index, roots, &shutdown, &store, &control)?;

    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|e| StartError::Bind(config.addr, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Bind(config.addr, e))?;
    if let Some(cert) = &tls_cert {
        listen::reload_on_sighup(cert.clone(), shutdown.clone()).map_err(StartError::Signal)?;
    }
    let mut leptos_options = config.leptos_options;
    leptos_options.site_addr = addr;
    let connections: Arc<limits::ConnectionLimits> = Arc::default();
    let state_index = index.clone();
    let state = AppState {
        leptos_options,
        index,
        hub: hub.clone(),
        shutdown: shutdown.clone(),
        connections: connections.clone(),
        auth: config.auth.clone(),
        keepalive: config.keepalive,
        allowed_hosts: config.allowed_hosts.into(),
        tls: tls.is_some(),
        store,
        control,
    };
    tracing::debug!(max_connections, "listening");
    let http = listen::spawn(
        listener,
        listen::Serve {
            router: app(state),
            header_read_timeout: config.listen.header_read_timeout,
            max_connections,
            tls,
            shutdown: shutdown.clone(),
        },
    );
    Ok(RunningServer {
        index: state_index,
        addr,
        shutdown,
        auth: config.auth,
        tls: tls_cert,
        http,
        watcher,
        connections,
    })
}

/// The pipeline from files to events: discovers the projects under `roots` into `index`, then
/// watches them (and the roots, for new ones) until `shutdown`, with the watchdog's rules and
/// budgets on top. `serve` and `agent` share it.
pub fn watch_projects(
    index: &Arc<Index>,
    roots: Vec<PathBuf>,
    shutdown: &Shutdown,
    store: &Arc<store::Store>,
    control: &Arc<crate::server::control::Control>,
) -> Result<watcher::ProjectWatcher, StartError> {
    index.add_all(discovery::discover(&roots));
    tracing::info!(projects = index.len(), "discovered projects");
    let watcher = watcher::spawn(index.clone(), roots, shutdown.clone())?;
    let watch = watchdog::Watch {
        index: index.clone(),
        store: store.clone(),
        control: control.clone(),
    };
    watchdog::spawn(watch, watchdog::TICK, shutdown.clone());
    Ok(watcher)
}

impl RunningServer {
    /// Whether the server speaks HTTPS/WSS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Runs until the process is asked to stop (SIGINT/SIGTERM), then stops. From the moment
    /// this is called, the process ends at most [`listen::FORCED_EXIT_AFTER`] after the signal
    /// whatever is stuck (see [`listen::arm_forced_exit`]).
    pub fn run_until_signal(self) -> impl std::future::Future<Output = ()> + Send {
        listen::arm_forced_exit();
        listen::stop_on_signal(self.shutdown.clone());
        async move {
            let shutdown = self.shutdown.clone();
            tokio::select! {
                _ = signal() => tracing::info!("stop requested"),
                _ = shutdown.wait() => {}
            }
            self.stop().await;
        }
    }

    /// Closes every socket with 1001, stops the watcher and waits (at most [`HTTP_DRAIN`]) for
    /// in-flight HTTP requests and the sockets' close handshakes.
    pub async fn stop(self) {
        self.shutdown.trigger();
        let RunningServer {
            http,
            watcher,
            connections,
            ..
        } = self;
        let deadline = tokio::time::Instant::now() + HTTP_DRAIN;
        match tokio::time::timeout_at(deadline, http).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "http server ended with an error"),
            Ok(Err(error)) => tracing::warn!(%error, "http server task failed"),
            Err(_) => tracing::warn!(
                "connections still open after {} s; stopping anyway",
                HTTP_DRAIN.as_secs()
            ),
        }
        // Upgraded sockets are no longer the HTTP server's: wait for them separately.
        if tokio::time::timeout_at(deadline, connections.drained())
            .await
            .is_err()
        {
            tracing::warn!(
                open = connections.open(),
                "sockets still closing after {} s; exiting anyway",
                HTTP_DRAIN.as_secs()
            );
        }
        watcher.stop().await;
    }
}

async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
