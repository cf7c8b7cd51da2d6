//! The browser's WebSocket task: connect, subscribe, apply events, and reconnect with backoff.
//! After every reconnect it refetches the project list so changes made while it was away appear.

use futures::{SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message};
use leptos::prelude::*;
use wasm_bindgen::JsValue;

use super::{backoff::reconnect_delay_ms, Connection, LiveStore};
use crate::model::protocol::ServerMessage;

/// Starts the connection task for this page. It lives as long as the page.
pub fn start(store: LiveStore) {
    leptos::task::spawn_local(run(store));
}

async fn run(store: LiveStore) {
    let mut failures: u32 = 0;
    let mut connected_before = false;
    loop {
        if let Some(url) = socket_url() {
            if let Ok(socket) = WebSocket::open(&url) {
                let live = session(store, socket, connected_before).await;
                if live {
                    connected_before = true;
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

/// Runs one connection until it ends. Returns whether it ever became live.
async fn session(store: LiveStore, socket: WebSocket, refetch: bool) -> bool {
    let (mut sink, mut stream) = socket.split();
    let subscribe = serde_json::json!({"action": "subscribe", "projects": store.project_ids()});
    if sink
        .send(Message::Text(subscribe.to_string()))
        .await
        .is_err()
    {
        return false;
    }
    let mut live = false;
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(message) = serde_json::from_str::<ServerMessage>(&text) else {
            // Unknown event types from a newer server are skipped, not fatal.
            continue;
        };
        match message {
            ServerMessage::Hello { .. } => {
                live = true;
                store.connection.set(Connection::Live);
                if refetch {
                    refresh(store).await;
                }
            }
            ServerMessage::Resync { .. } => refresh(store).await,
            event => {
                if let Some(new_project) = store.apply(event) {
                    let subscribe =
                        serde_json::json!({"action": "subscribe", "projects": [new_project]});
                    if sink
                        .send(Message::Text(subscribe.to_string()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    }
    live
}

async fn refresh(store: LiveStore) {
    if let Ok(projects) = crate::app::api::list_projects().await {
        store.replace_all(projects);
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
