//! The browser's WebSocket task: connect, subscribe from the cursors the page holds, apply each
//! event once, and reconnect with backoff. A reconnect resumes where the page left off; only when
//! the server cannot replay (`resync`) is the state refetched through the server function.

use futures::{SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message, WebSocketError};
use leptos::prelude::*;
use serde::Deserialize;
use wasm_bindgen::JsValue;

use super::{backoff::reconnect_delay_ms, Connection, LiveStore};
use crate::model::{
    protocol::{ServerMessage, CODE_AUTH_EXPIRED},
    Cursor, Topic,
};

/// Where an event sits in its topic (the envelope fields next to the seed ones).
#[derive(Deserialize)]
struct Position {
    topic: Option<Topic>,
    epoch: Option<u64>,
    seq: Option<u64>,
}

/// Starts the connection task for this page. It lives as long as the page.
pub fn start(store: LiveStore) {
    leptos::task::spawn_local(run(store));
}

async fn run(store: LiveStore) {
    let mut failures: u32 = 0;
    loop {
        if let Some(url) = socket_url() {
            if let Ok(socket) = WebSocket::open(&url) {
                if session(store, socket).await {
                    failures = 0;
                }
            }
        }
        failures = failures.saturating_add(1);
        let delay = reconnect_delay_ms(failures, js_sys::Math::random());
        store.connection.set(Connection::Reconnecting {
            attempt: failures,
            next_in_ms: delay,
        });
        sleep_ms(delay).await;
    }
}

fn subscribe_frame(store: LiveStore) -> String {
    serde_json::json!({
        "action": "subscribe",
        "topics": store.topics(),
        "since": store.cursors(),
    })
    .to_string()
}

/// Runs one connection until it ends. Returns whether it ever became live.
async fn session(store: LiveStore, socket: WebSocket) -> bool {
    let (mut sink, mut stream) = socket.split();
    if sink
        .send(Message::Text(subscribe_frame(store)))
        .await
        .is_err()
    {
        return false;
    }
    let mut live = false;
    while let Some(next) = stream.next().await {
        let message = match next {
            Ok(message) => message,
            Err(WebSocketError::ConnectionClose(event)) if event.code == CODE_AUTH_EXPIRED => {
                // The session ended: sign in again, then come back here.
                to_login();
                break;
            }
            Err(_) => break,
        };
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(message) = serde_json::from_str::<ServerMessage>(&text) else {
            // Unknown event types from a newer server are skipped, not fatal.
            continue;
        };
        let reply = match message {
            ServerMessage::Hello { .. } => {
                live = true;
                store.connection.set(Connection::Live);
                None
            }
            ServerMessage::Subscribed { cursors, .. } => {
                // Topics the page had no cursor for start here; the others are advanced by the
                // replayed events themselves.
                for (topic, cursor) in cursors {
                    if !store.cursors().contains_key(&topic) {
                        store.advance(topic, cursor);
                    }
                }
                None
            }
            ServerMessage::Resync { .. } => {
                if let Ok(list) = crate::app::api::list_projects().await {
                    store.replace_all(list);
                }
                Some(subscribe_frame(store))
            }
            event => {
                let position = serde_json::from_str::<Position>(&text).ok();
                let cursor = position
                    .as_ref()
                    .and_then(|p| match (&p.topic, p.epoch, p.seq) {
                        (Some(topic), Some(epoch), Some(seq)) => {
                            Some((topic.clone(), Cursor { epoch, seq }))
                        }
                        _ => None,
                    });
                match cursor {
                    Some((topic, cursor)) if !store.is_new(&topic, cursor) => None,
                    other => {
                        let new_project = store.apply(event);
                        if let Some((topic, cursor)) = other {
                            store.advance(topic, cursor);
                        }
                        new_project.map(|id| {
                            serde_json::json!({"action": "subscribe", "topics": [Topic::Project(id)]})
                                .to_string()
                        })
                    }
                }
            }
        };
        if let Some(frame) = reply {
            if sink.send(Message::Text(frame)).await.is_err() {
                break;
            }
        }
    }
    live
}

fn to_login() {
    if let Some(window) = web_sys::window() {
        let location = window.location();
        let here = format!(
            "{}{}",
            location.pathname().unwrap_or_default(),
            location.search().unwrap_or_default()
        );
        let next = js_sys::encode_uri_component(&here);
        let _ = location.assign(&format!("/login?next={next}"));
    }
}

fn socket_url() -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!("{scheme}://{}/api/ws", location.host().ok()?))
}

async fn sleep_ms(ms: u32) {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(window) = web_sys::window() {
            let _ =
                window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms as i32);
        }
    });
    let _: Result<JsValue, JsValue> = wasm_bindgen_futures::JsFuture::from(promise).await;
}
