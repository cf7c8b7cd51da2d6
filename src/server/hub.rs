//! Fan-out of events to connections, with resumable topics.
//!
//! Each topic numbers its events (epoch + sequence number) and keeps a bounded ring of the recent
//! ones, so a client that reconnects with its cursor gets exactly what it missed, or `resync`
//! when that is no longer in the ring. Each event is serialized once; every connection shares the
//! same bytes, and the event itself travels beside them for endpoints that reshape it.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, PoisonError},
    time::{SystemTime, UNIX_EPOCH},
};

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use tokio::sync::broadcast;

mod external;

pub use external::{History, Placed};

use super::archive::Archival;
use super::metrics;
use crate::model::{protocol::ServerMessage, Cursor, Topic};

/// Frames a connection may fall behind by before it is told to resync.
pub const DEFAULT_CAPACITY: usize = 1024;
/// Recent events kept per topic for resuming clients...
const RING_EVENTS: usize = 512;
/// ...and at most this many bytes of their wire form (log topics carry whole blocks of lines;
/// the decoded event beside each costs about as much again).
const RING_BYTES: usize = 4 * 1024 * 1024;

/// One published event, in both of its forms.
#[derive(Debug)]
pub struct Frame {
    pub topic: Topic,
    pub cursor: Cursor,
    /// The event as published: endpoints with their own frame shapes read it instead of parsing
    /// `text` back.
    pub event: Arc<ServerMessage>,
    /// Its wire form (the event with its topic and cursor), encoded once for every receiver.
    pub text: Utf8Bytes,
    /// Whether the project the event is about was archived when the event was published.
    /// Connections that hide archived projects skip the archived ones on `projects`;
    /// `project_archived` itself is always [`Archival::Active`], so the transition always gets
    /// through.
    pub archival: Archival,
}

/// Whether a connection gets the events of archived projects on `projects`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ArchivedProjects {
    /// The dashboard's default: archived projects stay out of the list.
    #[default]
    Hidden,
    Shown,
}

impl ArchivedProjects {
    /// From the wire's `include_archived` flag.
    pub fn included(include: bool) -> Self {
        if include {
            Self::Shown
        } else {
            Self::Hidden
        }
    }

    /// The wire's `include_archived` flag.
    pub fn is_shown(self) -> bool {
        self == Self::Shown
    }
}

impl Frame {
    /// Whether a connection that shows (or hides) archived projects gets this frame.
    pub fn visible(&self, archived: ArchivedProjects) -> bool {
        archived == ArchivedProjects::Shown
            || self.archival == Archival::Active
            || self.topic != Topic::Projects
    }
}

/// What a resuming subscriber gets.
#[derive(Debug)]
pub enum Replay {
    /// The events after the client's cursor (possibly none), oldest first.
    Frames(Vec<Arc<Frame>>),
    /// The cursor is from another epoch or older than the ring: the client must refetch.
    Resync,
}

#[derive(Debug)]
struct TopicLog {
    cursor: Cursor,
    ring: VecDeque<Arc<Frame>>,
    ring_bytes: usize,
}

#[derive(Debug)]
struct Inner {
    epoch: u64,
    topics: Mutex<HashMap<Topic, TopicLog>>,
    sender: broadcast::Sender<Arc<Frame>>,
    /// Set when the numbering comes from an engine: where events older than the ring are.
    history: std::sync::OnceLock<Arc<dyn History>>,
}

#[derive(Clone, Debug)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// The wire form of an event: the event envelope plus where it sits in its topic.
#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(flatten)]
    message: &'a ServerMessage,
    topic: &'a Topic,
    epoch: u64,
    seq: u64,
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        // Milliseconds since 1970: a restarted server always starts a later epoch.
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        Self {
            inner: Arc::new(Inner {
                epoch,
                topics: Mutex::new(HashMap::new()),
                sender: broadcast::channel(capacity.max(1)).0,
                history: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The epoch every topic starts in (announced in `hello`).
    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Frame>> {
        self.inner.sender.subscribe()
    }

    /// The cursor of the last event published on `topic`.
    pub fn cursor(&self, topic: &Topic) -> Cursor {
        self.lock()
            .get(topic)
            .map(|log| log.cursor)
            .unwrap_or(Cursor {
                epoch: self.inner.epoch,
                seq: 0,
            })
    }

    /// Numbers, serializes and sends an event on its own topic ([`ServerMessage::topic`]).
    pub fn publish(&self, message: ServerMessage) {
        if let Some(topic) = message.topic() {
            self.publish_on(topic, Arc::new(message), Archival::Active);
        }
    }

    /// Numbers, serializes and sends an event on `topic` (an event may belong to more than one:
    /// `project_archived` goes to `projects` and to `project:ID`), marked as being about an
    /// archived project or not. A `log_rotated` event starts a new epoch of its log topic first:
    /// cursors into the old log are void.
    pub fn publish_on(&self, topic: Topic, message: Arc<ServerMessage>, archival: Archival) {
        let mut topics = self.lock();
        let log = topics.entry(topic.clone()).or_insert_with(|| TopicLog {
            cursor: Cursor {
                epoch: self.inner.epoch,
                seq: 0,
            },
            ring: VecDeque::new(),
            ring_bytes: 0,
        });
        if matches!(*message, ServerMessage::LogRotated { .. }) {
            log.cursor = Cursor {
                epoch: next_epoch(log.cursor.epoch),
                seq: 0,
            };
            log.ring.clear();
            log.ring_bytes = 0;
        }
        let cursor = Cursor {
            epoch: log.cursor.epoch,
            seq: log.cursor.seq + 1,
        };
        self.append(log, topic, cursor, message, archival);
    }

    /// Serializes an event numbered `cursor`, keeps it in its topic's ring and sends it.
    fn append(
        &self,
        log: &mut TopicLog,
        topic: Topic,
        cursor: Cursor,
        message: Arc<ServerMessage>,
        archival: Archival,
    ) {
        let envelope = Envelope {
            message: &message,
            topic: &topic,
            epoch: cursor.epoch,
            seq: cursor.seq,
        };
        let text = match serde_json::to_string(&envelope) {
            Ok(text) => text,
            Err(error) => {
                tracing::error!(%error, "cannot serialize an event");
                return;
            }
        };
        log.cursor = cursor;
        let frame = Arc::new(Frame {
            topic,
            cursor,
            event: message,
            text: text.into(),
            archival,
        });
        log.ring_bytes += frame.text.len();
        log.ring.push_back(frame.clone());
        while log.ring.len() > RING_EVENTS || (log.ring_bytes > RING_BYTES && log.ring.len() > 1) {
            if let Some(old) = log.ring.pop_front() {
                log.ring_bytes -= old.text.len();
            }
        }
        // Sent while the topic is locked, so a concurrent replay sees each event exactly once:
        // either in the ring snapshot or after it on the channel. No receivers is normal.
        let _ = self.inner.sender.send(frame);
        metrics::count(&metrics::METRICS.events_published);
    }

    /// The events of `topic` after `since`, and the cursor the subscriber is now at. With an
    /// engine's [`History`], a cursor older than the ring is served from it.
    pub fn replay(&self, topic: &Topic, since: Cursor) -> (Replay, Cursor) {
        match (
            self.replay_from_ring(topic, since),
            self.inner.history.get(),
        ) {
            ((Replay::Resync, now), Some(history)) => {
                external::backfill(self, history.as_ref(), topic, since, now)
            }
            (answer, _) => answer,
        }
    }

    fn replay_from_ring(&self, topic: &Topic, since: Cursor) -> (Replay, Cursor) {
        let topics = self.lock();
        let Some(log) = topics.get(topic) else {
            let current = Cursor {
                epoch: self.inner.epoch,
                seq: 0,
            };
            let replay = if since == current || (since.epoch == current.epoch && since.seq == 0) {
                Replay::Frames(Vec::new())
            } else {
                Replay::Resync
            };
            return (replay, current);
        };
        let current = log.cursor;
        if since.epoch != current.epoch || since.seq > current.seq {
            return (Replay::Resync, current);
        }
        let oldest_kept = log.ring.front().map_or(current.seq + 1, |f| f.cursor.seq);
        if since.seq + 1 < oldest_kept {
            return (Replay::Resync, current);
        }
        let frames = log
            .ring
            .iter()
            .filter(|frame| frame.cursor.seq > since.seq)
            .cloned()
            .collect();
        (Replay::Frames(frames), current)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Topic, TopicLog>> {
        self.inner
            .topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn next_epoch(previous: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    now.max(previous + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::protocol::{LogLines, StatusChange};
    use crate::model::Status;

    fn status(project: &str) -> ServerMessage {
        ServerMessage::StatusChanged {
            project: project.into(),
            timestamp: "t".into(),
            data: StatusChange {
                status: Status::Paused,
                previous: Status::Running,
            },
        }
    }

    fn lines(project: &str, text: &str) -> ServerMessage {
        ServerMessage::LogAppend {
            project: project.into(),
            timestamp: "t".into(),
            data: LogLines { lines: text.into() },
        }
    }

    #[tokio::test]
    async fn serializes_once_numbers_per_topic_and_shares_the_bytes() {
        let hub = Hub::new(8);
        let mut a = hub.subscribe();
        let mut b = hub.subscribe();
        hub.publish(status("p"));
        hub.publish(lines("p", "x\n"));
        hub.publish(status("p"));
        let (fa, fb) = (a.recv().await.expect("a"), b.recv().await.expect("b"));
        assert!(Arc::ptr_eq(&fa, &fb));
        assert_eq!(*fa.event, status("p"), "the event travels beside its text");
        let json: serde_json::Value = serde_json::from_str(fa.text.as_str()).expect("json");
        assert_eq!(json["type"], "status_changed");
        assert_eq!(json["topic"], "project:p");
        assert_eq!(json["epoch"], hub.epoch());
        assert_eq!(json["seq"], 1);
        assert_eq!(json["data"]["status"], "paused");
        assert_eq!(hub.cursor(&Topic::Project("p".into())).seq, 2);
        assert_eq!(hub.cursor(&Topic::Log("p".into())).seq, 1);
    }

    #[test]
    fn archived_frames_are_hidden_only_on_projects_and_only_when_asked() {
        let hub = Hub::new(8);
        let mut receiver = hub.subscribe();
        let removed = ServerMessage::ProjectRemoved {
            project: "p".into(),
            timestamp: "t".into(),
        };
        let removed = Arc::new(removed);
        hub.publish_on(Topic::Projects, removed.clone(), Archival::Archived);
        hub.publish_on(
            Topic::Project("p".into()),
            Arc::new(status("p")),
            Archival::Archived,
        );
        hub.publish_on(Topic::Projects, removed, Archival::Active);
        let frames: Vec<Arc<Frame>> = (0..3).filter_map(|_| receiver.try_recv().ok()).collect();
        let visible = |include| {
            frames
                .iter()
                .map(|f| f.visible(include))
                .collect::<Vec<_>>()
        };
        assert_eq!(visible(ArchivedProjects::Hidden), [false, true, true]);
        assert_eq!(visible(ArchivedProjects::Shown), [true, true, true]);
    }

    #[test]
    fn replays_what_was_missed_or_says_resync() {
        let hub = Hub::new(8);
        let topic = Topic::Project("p".into());
        let start = hub.cursor(&topic);
        for _ in 0..5 {
            hub.publish(status("p"));
        }
        let (replay, now) = hub.replay(
            &topic,
            Cursor {
                epoch: start.epoch,
                seq: 2,
            },
        );
        assert_eq!(now.seq, 5);
        match replay {
            Replay::Frames(frames) => {
                let seqs: Vec<u64> = frames.iter().map(|f| f.cursor.seq).collect();
                assert_eq!(seqs, [3, 4, 5]);
            }
            Replay::Resync => panic!("cursor is in the ring"),
        }
        assert!(matches!(hub.replay(&topic, now).0, Replay::Frames(f) if f.is_empty()));
        assert!(matches!(
            hub.replay(&topic, Cursor { epoch: 1, seq: 2 }).0,
            Replay::Resync
        ));
        assert!(matches!(
            hub.replay(
                &topic,
                Cursor {
                    epoch: start.epoch,
                    seq: 99
                }
            )
            .0,
            Replay::Resync
        ));
        // A topic nobody has published on yet resumes from zero.
        let quiet = Topic::Project("q".into());
        assert!(matches!(hub.replay(&quiet, start).0, Replay::Frames(f) if f.is_empty()));
    }

    #[test]
    fn the_ring_forgets_old_events_and_rotation_voids_cursors() {
        let hub = Hub::new(8);
        let topic = Topic::Log("p".into());
        for _ in 0..(RING_EVENTS + 10) {
            hub.publish(lines("p", "x\n"));
        }
        let epoch = hub.cursor(&topic).epoch;
        assert!(matches!(
            hub.replay(&topic, Cursor { epoch, seq: 1 }).0,
            Replay::Resync
        ));
        assert!(
            matches!(hub.replay(&topic, Cursor { epoch, seq: 11 }).0, Replay::Frames(f) if f.len() == RING_EVENTS - 1)
        );

        hub.publish(ServerMessage::LogRotated {
            project: "p".into(),
            timestamp: "t".into(),
        });
        let rotated = hub.cursor(&topic);
        assert!(rotated.epoch > epoch);
        assert_eq!(rotated.seq, 1);
        assert!(matches!(
            hub.replay(&topic, Cursor { epoch, seq: 600 }).0,
            Replay::Resync
        ));
    }
}
