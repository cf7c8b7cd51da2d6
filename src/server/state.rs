//! What every request handler and socket shares: the index, the hub, the shutdown switch, the
//! socket limits, authentication and the keepalive timings.

use std::{sync::Arc, time::Duration};

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;

use super::{auth, hub::Hub, index::Index, shutdown::Shutdown, stream::limits};
use crate::contract::request_host::AllowedHost;

/// Everything a request handler may need. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub index: Arc<Index>,
    pub hub: Hub,
    pub shutdown: Shutdown,
    pub connections: Arc<limits::ConnectionLimits>,
    /// `None` when the operator turned authentication off.
    pub auth: Option<Arc<auth::Auth>>,
    pub keepalive: Keepalive,
    /// Host names accepted besides this server's own addresses (`--allowed-host`).
    pub allowed_hosts: Arc<[AllowedHost]>,
    /// Whether the server is reached over TLS (cookies can then be `Secure`).
    pub tls: bool,
    /// The embedded store (audit trail): in the data directory, or in memory without one.
    pub store: Arc<crate::server::store::Store>,
    /// Starting, stopping, pausing, injecting and editing for operators.
    pub control: Arc<crate::server::control::Control>,
}

/// A client silent this long is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A client whose socket has accepted nothing for this long is dropped. Its task would
/// otherwise sit in a full socket buffer and miss shutdown, expiry and idle checks (the hub has
/// long stopped waiting for it: it only holds the socket's own buffers).
pub const WRITE_STALL: Duration = Duration::from_secs(30);

/// How often sockets are pinged, and how long a silent one is kept.
#[derive(Clone, Copy, Debug)]
pub struct Keepalive {
    pub heartbeat: Duration,
    pub idle_timeout: Duration,
    /// A client whose socket accepts nothing for this long is dropped (see [`WRITE_STALL`]).
    pub write_stall: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(u64::from(crate::model::protocol::HEARTBEAT_SECONDS)),
            idle_timeout: IDLE_TIMEOUT,
            write_stall: WRITE_STALL,
        }
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
