//! `GET /api/events?topics=...`: the same topics as the WebSocket, as Server-Sent Events, for
//! clients that only speak HTTP (`curl -N`). Each event's `id:` is the cursor of every topic of
//! the stream, so a reconnecting `EventSource` (which sends it back as `Last-Event-ID`) resumes
//! exactly where it stopped, or gets a `resync` event when that is no longer possible.
//!
//! A stream counts against the same per-address limit as the sockets, and ends (after an
//! `error` event with code 4401) when the session it was opened with expires or ends (a
//! sign-out, a revoked share link). A viewer's stream carries only its link's projects; a
//! topic of another project is refused (403, error code 4403).

use std::{collections::BTreeMap, convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    extract::{ConnectInfo, Query, State},
    http::{HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Extension, Json,
};
use futures::{stream, Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::{error::RecvError, Receiver};

use crate::model::{
    protocol::{ServerMessage, CODE_AUTH_EXPIRED, CODE_FORBIDDEN},
    Cursor, Topic,
};
use crate::server::{
    auth::{Access, Auth, Claims},
    hub::{ArchivedProjects, Frame, Replay},
    metrics::{self, METRICS},
    stream::{connection, limits::Slot},
    AppState,
};

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Comma-separated topics: `projects`, `project:ID`, `log:ID`.
    topics: Option<String>,
    /// The same as the `Last-Event-ID` header, for clients that cannot set headers.
    last_event_id: Option<String>,
    /// Events of archived projects on `projects` too (as `set_include_archived` on the socket).
    #[serde(default)]
    include_archived: bool,
}

fn bad_request(status: StatusCode, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({"type": "error", "code": status.as_u16(), "message": message})),
    )
        .into_response()
}

pub async fn events(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    claims: Option<Extension<Claims>>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(slot) = state.connections.acquire(peer.ip()) else {
        metrics::count(&METRICS.connections_refused);
        return bad_request(
            StatusCode::TOO_MANY_REQUESTS,
            "too many open WebSocket connections and event streams from this address".into(),
        );
    };
    let claims = claims.map(|Extension(claims)| claims);
    // `None` without a session (authentication off), or when the end is too far to represent.
    let expiry = claims
        .as_ref()
        .and_then(|claims| connection::deadline_at(claims.exp));
    let access = claims
        .as_ref()
        .map_or_else(Access::operator, |claims| claims.access.clone());
    let Some(names) = query.topics.filter(|t| !t.trim().is_empty()) else {
        return bad_request(
            StatusCode::BAD_REQUEST,
            "?topics= is required (projects, project:ID, log:ID)".into(),
        );
    };
    let mut topics = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(topic) = Topic::parse(name) else {
            return bad_request(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown topic {:?}",
                    name.chars().take(64).collect::<String>()
                ),
            );
        };
        if let Some(id) = topic.project() {
            // Before the existence check: a viewer learns nothing of other projects.
            if !access.may_see(id) {
                let body = serde_json::json!({"type": "error", "code": CODE_FORBIDDEN, "message": format!("not allowed for this session: {topic}")});
                return (StatusCode::FORBIDDEN, Json(body)).into_response();
            }
            if !state.index.contains(id) {
                return bad_request(StatusCode::NOT_FOUND, format!("no project with id {id:?}"));
            }
        }
        topics.push(topic);
    }
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.last_event_id);
    let since = last_id.as_deref().map(decode_cursors).unwrap_or_default();
    let archived = ArchivedProjects::included(query.include_archived);

    // Subscribe before reading the rings, so nothing published in between is lost.
    let receiver = state.hub.subscribe();
    let mut delivered = BTreeMap::new();
    let mut initial = Vec::new();
    for topic in topics {
        let now = match since.get(&topic) {
            Some(cursor) => match state.hub.replay(&topic, *cursor) {
                (Replay::Frames(frames), now) => {
                    for frame in frames {
                        delivered.insert(topic.clone(), frame.cursor);
                        if frame.visible(archived) && shows(&access, &frame) {
                            initial.push(frame_event(&frame, &delivered));
                        }
                    }
                    now
                }
                (Replay::Resync, now) => {
                    let resync = ServerMessage::Resync {
                        topic: Some(topic.clone()),
                        reason: "the cursor is unknown or too old".into(),
                    };
                    initial.push(json_event(&resync));
                    now
                }
            },
            None => state.hub.cursor(&topic),
        };
        delivered.insert(topic, now);
    }
    let session = state.auth.clone().zip(claims);
    let live = live_events(
        receiver,
        delivered,
        (archived, access),
        state.shutdown.wait(),
        ended(session, expiry),
        slot,
    );
    let stream = stream::iter(initial)
        .chain(live)
        .map(Ok::<Event, Infallible>);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(20)))
        .into_response()
}

/// Whether a stream with `access` carries `frame`.
fn shows(access: &Access, frame: &Frame) -> bool {
    frame
        .event
        .project()
        .is_none_or(|project| access.may_see(project))
}

/// Resolves when the stream's session is over: expired, or ended (signed out, its share link
/// revoked) as soon as sessions end anywhere and this one is among them.
async fn ended(session: Option<(Arc<Auth>, Claims)>, expiry: Option<tokio::time::Instant>) {
    let expired = async move {
        match expiry {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    let revoked = async move {
        let Some((auth, claims)) = session else {
            return std::future::pending().await;
        };
        let mut endings = auth.endings();
        while auth.is_live(&claims) {
            if endings.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    };
    tokio::select! {
        _ = expired => {}
        _ = revoked => {}
    }
}

fn live_events(
    receiver: Receiver<Arc<Frame>>,
    delivered: BTreeMap<Topic, Cursor>,
    (archived, access): (ArchivedProjects, Access),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    expired: impl std::future::Future<Output = ()> + Send + 'static,
    slot: Slot,
) -> impl Stream<Item = Event> + Send {
    // Shared by every poll of the stream (cheap to clone for each).
    let access = Arc::new(access);
    // The slot travels with the stream: the address's place is freed when the stream is dropped.
    let state = (
        receiver,
        delivered,
        Box::pin(stop),
        Box::pin(expired),
        Some(slot),
    );
    stream::unfold(
        state,
        move |(mut receiver, mut delivered, mut stop, mut expired, slot)| {
            let access = access.clone();
            async move {
                // Taken when the stream has said its last word (the session expired).
                slot.as_ref()?;
                loop {
                    tokio::select! {
                        biased;
                        _ = &mut stop => return None,
                        _ = &mut expired => {
                            let error = ServerMessage::error(
                                CODE_AUTH_EXPIRED,
                                "the session has expired or ended; sign in again",
                            );
                            return Some((json_event(&error), (receiver, delivered, stop, expired, None)));
                        }
                        next = receiver.recv() => match next {
                            Ok(frame) => match delivered.get_mut(&frame.topic) {
                                Some(cursor) if frame.cursor > *cursor => {
                                    *cursor = frame.cursor;
                                    if !frame.visible(archived) || !shows(&access, &frame) {
                                        continue;
                                    }
                                    let event = frame_event(&frame, &delivered);
                                    return Some((event, (receiver, delivered, stop, expired, slot)));
                                }
                                _ => continue,
                            },
                            Err(RecvError::Lagged(missed)) => {
                                let resync = ServerMessage::Resync { topic: None, reason: format!("fell behind by {missed} events") };
                                return Some((json_event(&resync), (receiver, delivered, stop, expired, slot)));
                            }
                            Err(RecvError::Closed) => return None,
                        },
                    }
                }
            }
        },
    )
}

fn frame_event(frame: &Frame, delivered: &BTreeMap<Topic, Cursor>) -> Event {
    Event::default()
        .id(encode_cursors(delivered))
        .data(frame.text.as_str())
}

fn json_event(message: &ServerMessage) -> Event {
    Event::default().data(serde_json::to_string(message).unwrap_or_default())
}

/// `project:a=EPOCH.SEQ;log:a=EPOCH.SEQ`
pub fn encode_cursors(cursors: &BTreeMap<Topic, Cursor>) -> String {
    cursors
        .iter()
        .map(|(topic, cursor)| format!("{topic}={}.{}", cursor.epoch, cursor.seq))
        .collect::<Vec<_>>()
        .join(";")
}

/// The inverse of [`encode_cursors`]; malformed parts are ignored (those topics start fresh).
pub fn decode_cursors(text: &str) -> BTreeMap<Topic, Cursor> {
    text.split(';')
        .filter_map(|part| {
            let (topic, cursor) = part.split_once('=')?;
            let (epoch, seq) = cursor.split_once('.')?;
            Some((
                Topic::parse(topic.trim())?,
                Cursor {
                    epoch: epoch.parse().ok()?,
                    seq: seq.parse().ok()?,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip_and_garbage_is_ignored() {
        let mut cursors = BTreeMap::new();
        cursors.insert(Topic::Project("a-1".into()), Cursor { epoch: 17, seq: 3 });
        cursors.insert(Topic::Log("a-1".into()), Cursor { epoch: 18, seq: 0 });
        let id = encode_cursors(&cursors);
        assert_eq!(decode_cursors(&id), cursors);
        assert!(decode_cursors("").is_empty());
        assert!(decode_cursors("garbage;project:x=1;log:y=a.b;=;;").is_empty());
    }
}
