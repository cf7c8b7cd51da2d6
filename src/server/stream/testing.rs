//! What the stream tests share: a socket served over channels, and readers of what it sends.

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::extract::ws::Message;
use futures::{channel::mpsc, StreamExt};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::connection::{self, Endpoint, SocketContext};
use crate::server::{hub::Hub, index::Index, Keepalive, Shutdown};

/// What the client reads...
pub type ClientRx = mpsc::Receiver<Message>;
/// ...and where it writes.
pub type ClientTx = mpsc::Sender<Result<Message, Infallible>>;

/// A socket's context with the default timings, no session and id 7.
pub fn context(index: Arc<Index>, hub: &Hub, shutdown: &Shutdown) -> SocketContext {
    let keepalive = Keepalive::default();
    SocketContext {
        id: 7,
        index,
        events: hub.subscribe(),
        hub: hub.clone(),
        shutdown: shutdown.clone(),
        heartbeat: keepalive.heartbeat,
        idle_timeout: keepalive.idle_timeout,
        write_stall: keepalive.write_stall,
        auth: None,
        expires: None,
        claims: None,
        access: crate::server::auth::Access::operator(),
        endings: None,
    }
}

/// Serves `endpoint` on a socket made of channels.
pub fn serve<P>(socket: SocketContext, endpoint: P) -> (ClientTx, ClientRx, JoinHandle<()>)
where
    P: Endpoint + Send + 'static,
{
    let (server_tx, client_rx) = mpsc::channel::<Message>(64);
    let (client_tx, server_rx) = mpsc::channel::<Result<Message, Infallible>>(16);
    let task = tokio::spawn(connection::run(socket, endpoint, server_tx, server_rx));
    (client_tx, client_rx, task)
}

/// The next frame the client gets (within 5 s), `None` when the socket ended.
pub async fn next(rx: &mut ClientRx) -> Option<Message> {
    tokio::time::timeout(Duration::from_secs(5), rx.next())
        .await
        .expect("a frame within 5 s")
}

/// The next frame, which must be JSON text.
pub async fn next_json(rx: &mut ClientRx) -> Value {
    match next(rx).await {
        Some(Message::Text(text)) => serde_json::from_str(text.as_str()).expect("valid JSON"),
        other => panic!("expected text, got {other:?}"),
    }
}

/// The code of the next frame, which must be a close frame.
pub async fn close_code(rx: &mut ClientRx) -> Option<u16> {
    match next(rx).await {
        Some(Message::Close(frame)) => frame.map(|f| f.code),
        other => panic!("expected close, got {other:?}"),
    }
}

/// The code of the close frame that ends what the client gets, whatever comes before it.
pub async fn next_close(rx: &mut ClientRx) -> u16 {
    loop {
        match next(rx).await {
            Some(Message::Close(Some(frame))) => return frame.code,
            Some(_) => continue,
            None => panic!("socket ended without a close frame"),
        }
    }
}

/// Waits for a spawned socket's task to end, and checks it did not panic.
pub async fn ended(task: JoinHandle<()>) {
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("task ends")
        .expect("task did not panic");
}
