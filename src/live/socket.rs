//! The browser's WebSocket task: connect, subscribe from the cursors the page holds, apply each
//! event once, and reconnect with backoff. A reconnect resumes where the page left off; only what
//! the server cannot replay (`resync`, a rotated log) is refetched through the server functions.
//! After three failed attempts the page polls those functions until the socket is back.

use std::cell::RefCell;
use std::collections::BTreeSet;

use futures::{
    channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender},
    future::{select, Either},
    SinkExt, StreamExt,
};
use gloo_net::websocket::{futures::WebSocket, Message, WebSocketError};
use leptos::prelude::*;
use serde::Deserialize;
use wasm_bindgen::{closure::Closure, JsCast, JsValue};

use super::machine::{poll_interval_ms, Machine, StreamState, Watching};
use super::store::{LiveStore, Overwrite, Refetch};
use crate::api::{list_projects, load_log, load_project, load_recent};
use crate::model::{
    protocol::{ServerMessage, CODE_AUTH_EXPIRED},
    Cursor, Topic,
};

/// Where an event sits in its topic: the `topic`, `epoch` and `seq` fields beside the envelope.
#[derive(Deserialize)]
struct Position {
    topic: Option<Topic>,
    epoch: Option<u64>,
    seq: Option<u64>,
}

/// How long a freshly opened socket may stay silent before the attempt counts as failed.
const HELLO_TIMEOUT_MS: u32 = 10_000;
/// How often the page pings a quiet socket, and how long a socket may stay silent: a dead
/// connection the browser still calls open is dropped within their sum.
const PING_EVERY_MS: u32 = 10_000;
const SILENCE_LIMIT_MS: u32 = 25_000;
/// How often the page looks at the browser's network flag while offline, should the `online`
/// event not come.
const OFFLINE_CHECK_MS: u32 = 5_000;
/// How long the session check may take before it counts as "still signed in".
const SESSION_CHECK_TIMEOUT_MS: u32 = 5_000;

thread_local! {
    /// Wakes the task out of its backoff wait (Retry button, `online`, tab visible again).
    static WAKE: RefCell<Option<UnboundedSender<()>>> = const { RefCell::new(None) };
    /// Told when the browser goes offline, so a live socket is dropped at once instead of
    /// looking live until the silence limit.
    static OFFLINE: RefCell<Option<UnboundedSender<()>>> = const { RefCell::new(None) };
}

/// Starts the connection task for this tab (call once, from the app root). It connects when a
/// page first asks for live data, and subscribes again whenever pages want more topics.
pub fn start(store: LiveStore) {
    let (wake_tx, wake_rx) = unbounded();
    WAKE.with(|wake| *wake.borrow_mut() = Some(wake_tx));
    let (offline_tx, offline_rx) = unbounded();
    OFFLINE.with(|offline| *offline.borrow_mut() = Some(offline_tx));
    listen_for_wake_ups();
    let (want_tx, want_rx) = unbounded();
    Effect::new(move |_| {
        store.wanted_version.track();
        let _ = want_tx.unbounded_send(());
    });
    leptos::task::spawn_local(run(store, wake_rx, want_rx, offline_rx));
}

/// Cuts the backoff wait short: try the socket now.
pub fn retry_now() {
    WAKE.with(|wake| {
        if let Some(wake) = wake.borrow().as_ref() {
            let _ = wake.unbounded_send(());
        }
    });
}

fn listen_for_wake_ups() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let online = Closure::<dyn Fn()>::new(retry_now);
    let _ = window.add_event_listener_with_callback("online", online.as_ref().unchecked_ref());
    online.forget();
    let offline = Closure::<dyn Fn()>::new(|| {
        OFFLINE.with(|offline| {
            if let Some(offline) = offline.borrow().as_ref() {
                let _ = offline.unbounded_send(());
            }
        });
    });
    let _ = window.add_event_listener_with_callback("offline", offline.as_ref().unchecked_ref());
    offline.forget();
    if let Some(document) = window.document() {
        let visible = Closure::<dyn Fn()>::new(|| {
            if page_visible() {
                retry_now();
            }
        });
        let _ = document
            .add_event_listener_with_callback("visibilitychange", visible.as_ref().unchecked_ref());
        visible.forget();
    }
}

pub fn page_visible() -> bool {
    web_sys::window()
        .and_then(|w| w.document())
        .is_none_or(|d| d.visibility_state() == web_sys::VisibilityState::Visible)
}

pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// The browser's own idea of whether it has a network (`navigator.onLine`); true when unknown.
fn online() -> bool {
    let Some(window) = web_sys::window() else {
        return true;
    };
    js_sys::Reflect::get(&window, &JsValue::from_str("navigator"))
        .and_then(|navigator| js_sys::Reflect::get(&navigator, &JsValue::from_str("onLine")))
        .ok()
        .and_then(|flag| flag.as_bool())
        .unwrap_or(true)
}

/// Shows the page as offline until the browser has a network again.
async fn wait_until_online(store: LiveStore, wake: &mut UnboundedReceiver<()>) {
    while !online() {
        store.stream.set(StreamState::Offline);
        let _ = select(Box::pin(sleep_ms(OFFLINE_CHECK_MS)), wake.next()).await;
    }
}

async fn run(
    store: LiveStore,
    mut wake: UnboundedReceiver<()>,
    mut want: UnboundedReceiver<()>,
    mut offline: UnboundedReceiver<()>,
) {
    // Nothing to show live yet (the login page): stay disconnected.
    while store.topics().is_empty() {
        if want.next().await.is_none() {
            return;
        }
    }
    // Every page watches every project for alerts: the list comes with the first sync.
    if !store.watching() {
        store.request(Refetch::Projects);
    }
    let mut machine = Machine::default();
    loop {
        wait_until_online(store, &mut wake).await;
        while offline.try_recv().is_ok() {}
        let mut ended = Ended::NeverLive;
        let opened_at = now_ms();
        if let Some(url) = socket_url() {
            if let Ok(socket) = WebSocket::open(&url) {
                ended = session(store, socket, &mut machine, &mut want, &mut offline).await;
            }
        }
        if matches!(ended, Ended::Lost | Ended::Offline) {
            machine.ended_after(now_ms() - opened_at);
        }
        match ended {
            Ended::SignedOut => return,
            Ended::NeverLive if !signed_in().await => {
                sign_out(store);
                return;
            }
            _ => {}
        }
        // Without a network every attempt would fail: say so, and try again once it is back.
        if ended == Ended::Offline || !online() {
            continue;
        }
        let (state, delay) = machine.lost(now_ms(), js_sys::Math::random());
        store.stream.set(state);
        wait(store, state, delay, &mut wake).await;
    }
}

/// Waits out the backoff delay (polling meanwhile when the state says so); a wake-up ends it.
async fn wait(
    store: LiveStore,
    state: StreamState,
    delay_ms: u32,
    wake: &mut UnboundedReceiver<()>,
) {
    // Drop wake-ups that came in while connected.
    while wake.try_recv().is_ok() {}
    let due = now_ms() + f64::from(delay_ms);
    loop {
        if state.polls() {
            let mut parts = store.everything();
            parts.extend(store.take_pending());
            if refetch_all(store, parts, Overwrite::IfNewer).await == Fetched::SignedOut {
                return;
            }
        }
        let left = (due - now_ms()).max(0.0) as u32;
        if left == 0 {
            return;
        }
        let step = if state.polls() {
            let watching = if store.project().is_some() {
                Watching::Project
            } else {
                Watching::Cards
            };
            left.min(poll_interval_ms(watching))
        } else {
            left
        };
        match select(Box::pin(sleep_ms(step)), wake.next()).await {
            Either::Left(_) => {}
            Either::Right(_) => return,
        }
        if !state.polls() {
            return;
        }
    }
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    /// It never said hello (refused, unreachable, or silent).
    NeverLive,
    /// It was live and dropped (or a refetch failed, so resuming is the safe way on).
    Lost,
    /// The session is gone; the page is on its way to the login page.
    SignedOut,
    /// The browser went offline while it was live.
    Offline,
}

/// Runs one connection until it ends.
async fn session(
    store: LiveStore,
    socket: WebSocket,
    machine: &mut Machine,
    want: &mut UnboundedReceiver<()>,
    offline: &mut UnboundedReceiver<()>,
) -> Ended {
    let (mut sink, mut stream) = socket.split();
    // The server speaks first (`hello`); a socket that stays silent (a proxy or filter holding
    // it open, or one that never finishes opening) counts as a failed attempt.
    match select(stream.next(), Box::pin(sleep_ms(HELLO_TIMEOUT_MS))).await {
        Either::Left((Some(Ok(Message::Text(text))), _)) => {
            let Ok(ServerMessage::Hello { epoch, .. }) = serde_json::from_str(&text) else {
                return Ended::NeverLive;
            };
            store.set_server_epoch(epoch);
            store.stream.set(machine.connected());
        }
        _ => return Ended::NeverLive,
    }
    // The pages filter archived projects themselves (the dashboard's toggle), so they want every
    // project's events.
    let all = serde_json::json!({"action": "set_include_archived", "value": true}).to_string();
    if sink.send(Message::Text(all)).await.is_err() {
        return Ended::Lost;
    }
    // Browsers answer the server's pings without telling the page, so a half-open socket
    // (after a laptop sleeps, say) would look live for ever: the page pings too, and a socket
    // silent for too long is dropped and reconnected.
    let (tick_tx, mut ticks) = unbounded::<()>();
    let ticker = leptos::leptos_dom::helpers::set_interval_with_handle(
        move || {
            let _ = tick_tx.unbounded_send(());
        },
        std::time::Duration::from_millis(u64::from(PING_EVERY_MS)),
    )
    .ok();
    let ended = stream_events(store, &mut sink, &mut stream, want, &mut ticks, offline).await;
    if let Some(ticker) = ticker {
        ticker.clear();
    }
    ended
}

async fn stream_events(
    store: LiveStore,
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    stream: &mut futures::stream::SplitStream<WebSocket>,
    want: &mut UnboundedReceiver<()>,
    ticks: &mut UnboundedReceiver<()>,
    offline: &mut UnboundedReceiver<()>,
) -> Ended {
    let mut subscribed: BTreeSet<Topic> = BTreeSet::new();
    // Refetches and topic changes are handled here, between two messages, so no event is
    // applied while a fetch is in flight: a fetched state is never older than what the page
    // already shows, and events queued meanwhile are checked against its cursor.
    let mut sync = true;
    let mut last_heard = now_ms();
    loop {
        if sync {
            while want.try_recv().is_ok() {}
            match refetch_all(store, store.take_pending(), Overwrite::IfNewer).await {
                Fetched::Ok => {}
                Fetched::Failed => return Ended::Lost,
                Fetched::SignedOut => return Ended::SignedOut,
            }
            if sync_topics(store, sink, &mut subscribed).await.is_err() {
                return Ended::Lost;
            }
            sync = false;
        }
        let heard = select(select(stream.next(), want.next()), ticks.next());
        let next = match select(heard, offline.next()).await {
            Either::Right(_) => return Ended::Offline,
            Either::Left((heard, _)) => heard,
        };
        let next = match next {
            Either::Left((Either::Left((next, _)), _)) => next,
            Either::Left((Either::Right((None, _)), _)) => return Ended::Lost,
            Either::Left((Either::Right((Some(()), _)), _)) => {
                sync = true;
                continue;
            }
            Either::Right(_) => {
                if now_ms() - last_heard > f64::from(SILENCE_LIMIT_MS) {
                    return Ended::Lost;
                }
                let ping = serde_json::json!({"action": "ping"}).to_string();
                if sink.send(Message::Text(ping)).await.is_err() {
                    return Ended::Lost;
                }
                continue;
            }
        };
        let Some(next) = next else {
            return Ended::Lost;
        };
        last_heard = now_ms();
        let message = match next {
            Ok(message) => message,
            Err(WebSocketError::ConnectionClose(event)) if event.code == CODE_AUTH_EXPIRED => {
                sign_out(store);
                return Ended::SignedOut;
            }
            Err(_) => return Ended::Lost,
        };
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(message) = serde_json::from_str::<ServerMessage>(&text) else {
            // Unknown event types from a newer server are skipped, not fatal.
            continue;
        };
        let (refetch, overwrite) = match message {
            ServerMessage::Subscribed { cursors, .. } => {
                // Topics the page had no cursor for start here; the others are advanced by the
                // replayed events themselves.
                for (topic, cursor) in cursors {
                    if store.cursor(&topic).is_none() {
                        store.advance(topic, cursor);
                    }
                }
                if store.watching() {
                    mark_watching();
                }
                (Vec::new(), Overwrite::IfNewer)
            }
            // The server cannot serve our cursor: what it gives now replaces our state, even if
            // its cursor looks older (a restarted server), and the stream restarts from there.
            ServerMessage::Resync { topic, .. } => (store.resync(topic), Overwrite::Always),
            event => (apply_event(store, &text, event), Overwrite::IfNewer),
        };
        if refetch.is_empty() {
            continue;
        }
        match refetch_all(store, refetch, overwrite).await {
            Fetched::Ok => {}
            Fetched::Failed => return Ended::Lost,
            Fetched::SignedOut => return Ended::SignedOut,
        }
        if overwrite == Overwrite::Always {
            let Some(frame) = store.subscribe_frame() else {
                continue;
            };
            if sink.send(Message::Text(frame)).await.is_err() {
                return Ended::Lost;
            }
        }
    }
}

/// Subscribes to what the pages want now (resuming each topic from its cursor) and drops what
/// they no longer show, so a page opened again starts from its own fetch, not from events a
/// closed page let pass.
async fn sync_topics<S>(
    store: LiveStore,
    sink: &mut S,
    subscribed: &mut BTreeSet<Topic>,
) -> Result<(), S::Error>
where
    S: futures::Sink<Message> + Unpin,
{
    let wanted: BTreeSet<Topic> = store.topics().into_iter().collect();
    let gone: Vec<&Topic> = subscribed.difference(&wanted).collect();
    if !gone.is_empty() {
        let frame = serde_json::json!({"action": "unsubscribe", "topics": gone}).to_string();
        sink.send(Message::Text(frame)).await?;
        store.forget(gone.iter().map(|t| (*t).clone()));
    }
    if let Some(frame) = store.subscribe_frame() {
        sink.send(Message::Text(frame)).await?;
    }
    *subscribed = wanted;
    Ok(())
}

/// Sets `data-watching` on `<body>` once every project's topic is subscribed: from then on an
/// alert from any project reaches this tab (browser tests wait for it before writing one).
fn mark_watching() {
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    {
        let _ = body.set_attribute("data-watching", "true");
    }
}

fn sign_out(store: LiveStore) {
    store.stream.set(StreamState::SignedOut);
    to_login();
}

fn apply_event(store: LiveStore, text: &str, event: ServerMessage) -> Vec<Refetch> {
    let position = serde_json::from_str::<Position>(text).ok();
    let cursor = position.and_then(|p| match (p.topic, p.epoch, p.seq) {
        (Some(topic), Some(epoch), Some(seq)) => Some((topic, Cursor { epoch, seq })),
        _ => None,
    });
    match cursor {
        Some((topic, cursor)) if !store.is_new(&topic, cursor) => Vec::new(),
        Some((topic, cursor)) => {
            let refetch = store.apply(event);
            store.advance(topic, cursor);
            refetch
        }
        None => store.apply(event),
    }
}

/// What a round of refetches came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetched {
    Ok,
    /// A fetch failed (server down or busy); the state may lack what the stream skipped.
    Failed,
    SignedOut,
}

/// Fetches each stale part through the server functions; `overwrite` says whether a fetch that
/// looks older than the state may replace it (after a `resync`). A lost session sends the page
/// to the login page.
pub async fn refetch_all(store: LiveStore, refetch: Vec<Refetch>, overwrite: Overwrite) -> Fetched {
    let mut outcome = Fetched::Ok;
    for part in refetch {
        let result = match part {
            Refetch::Projects => list_projects().await.map(|list| {
                store.replace_cards(list);
            }),
            Refetch::Project(id) => match load_project(id.clone()).await {
                Ok(detail) => {
                    let recent = load_recent(id).await.ok();
                    store.replace_project(detail, recent, overwrite);
                    Ok(())
                }
                Err(error) => Err(error),
            },
            Refetch::Log(id) => {
                let bytes = store
                    .project()
                    .map_or(super::LOG_PAGE_BYTES, |v| v.log.fetch_bytes());
                load_log(id.clone(), Some(bytes))
                    .await
                    .map(|log| store.replace_log(&id, log, overwrite))
            }
        };
        if result.is_err() {
            if !signed_in().await {
                sign_out(store);
                return Fetched::SignedOut;
            }
            outcome = Fetched::Failed;
        }
    }
    outcome
}

/// Whether the session is still valid: the socket cannot tell a refused upgrade (401) from a
/// server that is down, so ask a plain endpoint. A network error counts as signed in (the
/// server is down; keep trying).
async fn signed_in() -> bool {
    let Some(window) = web_sys::window() else {
        return true;
    };
    let promise = window.fetch_with_str("/api/session");
    let answer = wasm_bindgen_futures::JsFuture::from(promise);
    // A hung request must not stop the reconnect loop: no answer counts as signed in.
    match select(
        Box::pin(answer),
        Box::pin(sleep_ms(SESSION_CHECK_TIMEOUT_MS)),
    )
    .await
    {
        Either::Left((Ok(response), _)) => response
            .dyn_into::<web_sys::Response>()
            .map(|r| r.status() != 401)
            .unwrap_or(true),
        _ => true,
    }
}

pub fn to_login() {
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

pub async fn sleep_ms(ms: u32) {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(window) = web_sys::window() {
            let _ =
                window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms as i32);
        }
    });
    let _: Result<JsValue, JsValue> = wasm_bindgen_futures::JsFuture::from(promise).await;
}
