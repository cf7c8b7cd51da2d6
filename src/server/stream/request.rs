//! [`SocketRequest`]: what every WebSocket handler extracts from its request, and the upgrade
//! into the shared connection loop ([`super::connection`]) with the limits every socket has.

use std::net::SocketAddr;

use axum::{
    extract::{
        ws::{WebSocket, WebSocketUpgrade},
        ConnectInfo, FromRequestParts,
    },
    http::{request::Parts, StatusCode},
    response::{IntoResponse, Response},
};
use futures::StreamExt;

use super::connection::{run, Endpoint, SocketContext, HARD_FRAME_LIMIT};
use crate::server::{
    auth::Claims,
    metrics::{self, METRICS},
    AppState,
};

/// What every WebSocket handler takes from its request: the upgrade, the peer's address and the
/// session (present when authentication is on), with the shared state.
pub struct SocketRequest {
    ws: WebSocketUpgrade,
    peer: SocketAddr,
    claims: Option<Claims>,
    state: AppState,
}

impl FromRequestParts<AppState> for SocketRequest {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let ws = WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            ws,
            peer,
            claims: parts.extensions.get::<Claims>().cloned(),
            state: state.clone(),
        })
    }
}

impl SocketRequest {
    /// Upgrades the request to a WebSocket served by `endpoint` through the shared loop, with
    /// the limits every socket has (sockets per address, frame sizes, small buffers).
    pub fn serve<P>(self, endpoint: P) -> Response
    where
        P: Endpoint + Send + 'static,
    {
        let Self {
            ws,
            peer,
            claims,
            state,
        } = self;
        let Some(slot) = state.connections.acquire(peer.ip()) else {
            metrics::count(&METRICS.connections_refused);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                "too many WebSocket connections from this address",
            )
                .into_response();
        };
        let socket = SocketContext::new(&state, claims.as_ref());
        // Small buffers: an idle socket should cost a few kilobytes, not tungstenite's 128 KiB
        // defaults; a client that stops reading cannot make the server buffer without bound.
        ws.max_message_size(HARD_FRAME_LIMIT)
            .max_frame_size(HARD_FRAME_LIMIT)
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_write_buffer_size(1024 * 1024)
            .on_upgrade(move |websocket: WebSocket| async move {
                let (sink, stream) = websocket.split();
                metrics::count(&METRICS.connections_total);
                metrics::adjust(&METRICS.connections_open, 1);
                run(socket, endpoint, sink, stream).await;
                metrics::adjust(&METRICS.connections_open, -1);
                drop(slot);
            })
    }
}
