//! What every request handler and socket shares: the index, the hub, the shutdown switch, the
//! socket limits, authentication and the keepalive timings.

use std::{sync::Arc, time::Duration};

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;

use super::{
    auth,
    hub::Hub,
    index::Index,
    shutdown::Shutdown,
    stream::{connection, limits},
};
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
}

/// How often sockets are pinged, and how long a silent one is kept.
#[derive(Clone, Copy, Debug)]
pub struct Keepalive {
    pub heartbeat: Duration,
    pub idle_timeout: Duration,
    /// A client whose socket accepts nothing for this long is dropped (see `connection::WRITE_STALL`).
    pub write_stall: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(u64::from(crate::model::protocol::HEARTBEAT_SECONDS)),
            idle_timeout: connection::IDLE_TIMEOUT,
            write_stall: connection::WRITE_STALL,
        }
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
