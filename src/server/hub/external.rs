//! Events numbered outside the hub (by the cluster engine): the hub carries their cursors
//! instead of numbering them, tells subscribers to resync when the numbering jumps, and serves
//! cursors older than its ring from the engine's history.

use std::sync::Arc;

use super::{Archival, Frame, Hub, Replay, TopicLog};
use crate::model::{protocol::ServerMessage, Cursor, Topic};

/// Where a topic's events older than the ring can be read back.
pub trait History: Send + Sync + std::fmt::Debug {
    /// The events of `topic` in `epoch` numbered `after < seq < before`, oldest first, with
    /// their sequence numbers; `None` when they are not all held any more (or cannot be read).
    fn between(
        &self,
        topic: &Topic,
        epoch: u64,
        after: u64,
        before: u64,
    ) -> Option<Vec<(u64, ServerMessage, Archival)>>;
}

/// What [`Hub::publish_at`] did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    /// It was the next one of its topic.
    Next,
    /// It was already published (or is older than what was): dropped.
    Duplicate,
    /// It came after a gap or in a new epoch: subscribers were told to resync first.
    AfterResync,
}

impl Hub {
    /// Makes cursors older than the ring resumable from `history` (once; later calls are
    /// ignored).
    pub fn set_history(&self, history: Arc<dyn History>) {
        let _ = self.inner.history.set(history);
    }

    /// Records that `topic` is at `cursor` without any event to replay (a node joining the
    /// engine): resumes from before it are served by the history.
    pub fn seed(&self, topic: Topic, cursor: Cursor) {
        let mut topics = self.lock();
        let log = topics.entry(topic).or_insert_with(|| empty_log(cursor));
        if cursor > log.cursor {
            if cursor.epoch != log.cursor.epoch {
                log.ring.clear();
                log.ring_bytes = 0;
            }
            log.cursor = cursor;
        }
    }

    /// Publishes an event the engine numbered `cursor`. A duplicate is dropped; a gap or a new
    /// epoch first sends a `resync` for the topic (carrying the cursor just before the event)
    /// and empties the ring, so nobody skips over what this hub never saw.
    pub fn publish_at(
        &self,
        topic: Topic,
        cursor: Cursor,
        message: Arc<ServerMessage>,
        archival: Archival,
    ) -> Placed {
        let mut topics = self.lock();
        let fresh = !topics.contains_key(&topic);
        let log = topics
            .entry(topic.clone())
            .or_insert_with(|| empty_log(Cursor { epoch: 0, seq: 0 }));
        if cursor <= log.cursor {
            return Placed::Duplicate;
        }
        let continues = cursor.epoch == log.cursor.epoch && cursor.seq == log.cursor.seq + 1;
        // A topic this hub never saw starts wherever the engine is; so does a rotated log (its
        // event says so itself).
        let announced =
            fresh || (cursor.seq == 1 && matches!(*message, ServerMessage::LogRotated { .. }));
        let placed = if continues || announced {
            Placed::Next
        } else {
            let reason = if cursor.epoch == log.cursor.epoch {
                format!(
                    "events {}..{} were not received",
                    log.cursor.seq + 1,
                    cursor.seq
                )
            } else {
                "the engine started a new epoch".to_owned()
            };
            self.send_resync(
                &topic,
                Cursor {
                    epoch: cursor.epoch,
                    seq: cursor.seq - 1,
                },
                reason,
            );
            Placed::AfterResync
        };
        if cursor.epoch != log.cursor.epoch || !continues {
            log.ring.clear();
            log.ring_bytes = 0;
        }
        self.append(log, topic, cursor, message, archival);
        placed
    }

    /// A `resync` for the subscribers of `topic`, sent as a frame (not kept in the ring).
    fn send_resync(&self, topic: &Topic, cursor: Cursor, reason: String) {
        let event = ServerMessage::Resync {
            topic: Some(topic.clone()),
            reason,
        };
        let Ok(text) = serde_json::to_string(&event) else {
            return;
        };
        let _ = self.inner.sender.send(Arc::new(Frame {
            topic: topic.clone(),
            cursor,
            event: Arc::new(event),
            text: text.into(),
            archival: Archival::Active,
        }));
    }
}

fn empty_log(cursor: Cursor) -> TopicLog {
    TopicLog {
        cursor,
        ring: Default::default(),
        ring_bytes: 0,
    }
}

/// Serves a cursor older than the ring from `history`: the events between it and the ring,
/// then the ring's. Anything short of a gap-free run is `resync`.
pub(super) fn backfill(
    hub: &Hub,
    history: &dyn History,
    topic: &Topic,
    since: Cursor,
    now: Cursor,
) -> (Replay, Cursor) {
    if since.epoch != now.epoch || since.seq >= now.seq {
        return (Replay::Resync, now);
    }
    let oldest_kept = {
        let topics = hub.lock();
        topics
            .get(topic)
            .and_then(|log| log.ring.front().map(|f| f.cursor.seq))
            .unwrap_or(now.seq + 1)
    };
    // Read without the lock: the history may be across the network.
    let Some(older) = history.between(topic, since.epoch, since.seq, oldest_kept) else {
        return (Replay::Resync, now);
    };
    let gap_free = older
        .iter()
        .map(|(seq, _, _)| *seq)
        .eq(since.seq + 1..oldest_kept);
    if !gap_free {
        return (Replay::Resync, now);
    }
    let mut frames = Vec::with_capacity(older.len());
    for (seq, message, archival) in older {
        let cursor = Cursor {
            epoch: since.epoch,
            seq,
        };
        match frame(topic, cursor, message, archival) {
            Some(frame) => frames.push(Arc::new(frame)),
            None => return (Replay::Resync, now),
        }
    }
    let topics = hub.lock();
    let Some(log) = topics.get(topic) else {
        return (Replay::Resync, now);
    };
    let current = log.cursor;
    let ring_start = log.ring.front().map_or(current.seq + 1, |f| f.cursor.seq);
    // The ring moved on meanwhile (trimmed past what was read, or a new epoch).
    if current.epoch != since.epoch || ring_start > oldest_kept {
        return (Replay::Resync, current);
    }
    frames.extend(
        log.ring
            .iter()
            .filter(|f| f.cursor.seq >= oldest_kept)
            .cloned(),
    );
    (Replay::Frames(frames), current)
}

/// A frame for a replayed event (the same wire form [`Hub::publish_at`] gives it).
fn frame(
    topic: &Topic,
    cursor: Cursor,
    message: ServerMessage,
    archival: Archival,
) -> Option<Frame> {
    let text = serde_json::to_string(&super::Envelope {
        message: &message,
        topic,
        epoch: cursor.epoch,
        seq: cursor.seq,
    })
    .ok()?;
    Some(Frame {
        topic: topic.clone(),
        cursor,
        event: Arc::new(message),
        text: text.into(),
        archival,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::protocol::LogLines;
    use std::sync::Mutex;

    fn lines(text: &str) -> Arc<ServerMessage> {
        Arc::new(ServerMessage::LogAppend {
            project: "p".into(),
            timestamp: "t".into(),
            data: LogLines { lines: text.into() },
        })
    }

    fn at(seq: u64) -> Cursor {
        Cursor { epoch: 7, seq }
    }

    /// A history that holds events 1..=held of epoch 7 and counts its reads.
    #[derive(Debug)]
    struct Held {
        held: u64,
        reads: Mutex<u32>,
    }

    impl History for Held {
        fn between(
            &self,
            _topic: &Topic,
            epoch: u64,
            after: u64,
            before: u64,
        ) -> Option<Vec<(u64, ServerMessage, Archival)>> {
            *self.reads.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            (epoch == 7).then(|| {
                (after + 1..before.min(self.held + 1))
                    .map(|seq| (seq, (*lines(&format!("{seq}\n"))).clone(), Archival::Active))
                    .collect()
            })
        }
    }

    #[test]
    fn carries_the_engines_cursors_drops_duplicates_and_resyncs_on_gaps() {
        let hub = Hub::new(16);
        let topic = Topic::Log("p".into());
        let mut receiver = hub.subscribe();
        assert_eq!(
            hub.publish_at(topic.clone(), at(5), lines("a"), Archival::Active),
            Placed::Next
        );
        assert_eq!(
            hub.publish_at(topic.clone(), at(6), lines("b"), Archival::Active),
            Placed::Next
        );
        assert_eq!(
            hub.publish_at(topic.clone(), at(6), lines("b"), Archival::Active),
            Placed::Duplicate
        );
        assert_eq!(
            hub.publish_at(topic.clone(), at(9), lines("c"), Archival::Active),
            Placed::AfterResync
        );
        let got: Vec<(String, u64)> = std::iter::from_fn(|| receiver.try_recv().ok())
            .map(|f| {
                let json: serde_json::Value = serde_json::from_str(f.text.as_str()).expect("json");
                (json["type"].as_str().unwrap_or("").to_owned(), f.cursor.seq)
            })
            .collect();
        let expected = [
            ("log_append", 5),
            ("log_append", 6),
            ("resync", 8),
            ("log_append", 9),
        ];
        assert_eq!(got, expected.map(|(t, s)| (t.to_owned(), s)));
        assert_eq!(hub.cursor(&topic), at(9));
        // The gap voided the ring: a cursor before it cannot be served from here.
        assert!(matches!(hub.replay(&topic, at(6)).0, Replay::Resync));
    }

    #[test]
    fn a_cursor_older_than_the_ring_is_served_from_the_history() {
        let hub = Hub::new(16);
        let topic = Topic::Log("p".into());
        hub.seed(topic.clone(), at(10));
        for seq in 11..=12 {
            hub.publish_at(topic.clone(), at(seq), lines("x"), Archival::Active);
        }
        // Without a history, only the ring.
        assert!(matches!(hub.replay(&topic, at(3)).0, Replay::Resync));
        hub.set_history(Arc::new(Held {
            held: 12,
            reads: Mutex::new(0),
        }));
        match hub.replay(&topic, at(3)) {
            (Replay::Frames(frames), now) => {
                let seqs: Vec<u64> = frames.iter().map(|f| f.cursor.seq).collect();
                assert_eq!(seqs, (4..=12).collect::<Vec<_>>());
                assert_eq!(now, at(12));
                let json: serde_json::Value =
                    serde_json::from_str(frames[0].text.as_str()).expect("json");
                assert_eq!(
                    (json["seq"].as_u64(), json["epoch"].as_u64()),
                    (Some(4), Some(7))
                );
            }
            (Replay::Resync, _) => panic!("the history holds them"),
        }
        // Another epoch, or a history that lost the oldest, is resync.
        assert!(matches!(
            hub.replay(&topic, Cursor { epoch: 6, seq: 3 }).0,
            Replay::Resync
        ));
        let short = Hub::new(16);
        short.seed(topic.clone(), at(10));
        short.set_history(Arc::new(Held {
            held: 5,
            reads: Mutex::new(0),
        }));
        assert!(matches!(short.replay(&topic, at(3)).0, Replay::Resync));
    }
}
