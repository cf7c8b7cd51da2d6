//! Fan-out of server events to connections. Each event is serialized once; every connection
//! shares the same bytes.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;

use crate::model::protocol::ServerMessage;

/// Events a connection may fall behind by before it is told to resync.
pub const DEFAULT_CAPACITY: usize = 1024;

/// One serialized event.
#[derive(Debug)]
pub struct Frame {
    /// The project the event belongs to; `None` for events every connection receives
    /// (projects appearing and leaving).
    pub project: Option<String>,
    pub text: Utf8Bytes,
}

#[derive(Clone, Debug)]
pub struct Hub {
    sender: broadcast::Sender<Arc<Frame>>,
}

impl Hub {
    pub fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::channel(capacity).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Frame>> {
        self.sender.subscribe()
    }

    pub fn publish(&self, message: &ServerMessage) {
        let project = match message {
            ServerMessage::ProjectAdded { .. } | ServerMessage::ProjectRemoved { .. } => None,
            other => other.project().map(str::to_owned),
        };
        match serde_json::to_string(message) {
            Ok(text) => {
                // No receivers is normal (nobody connected); nothing to do then.
                let _ = self.sender.send(Arc::new(Frame {
                    project,
                    text: text.into(),
                }));
            }
            Err(error) => tracing::error!(%error, "cannot serialize an event"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serializes_once_and_shares_the_bytes() {
        let hub = Hub::new(8);
        let mut a = hub.subscribe();
        let mut b = hub.subscribe();
        hub.publish(&ServerMessage::ProjectRemoved {
            project: "p".into(),
            timestamp: "t".into(),
        });
        let (fa, fb) = (a.recv().await, b.recv().await);
        let (fa, fb) = (fa.expect("a receives"), fb.expect("b receives"));
        assert!(Arc::ptr_eq(&fa, &fb));
        assert_eq!(fa.project, None);
        assert!(fa.text.as_str().contains("\"type\":\"project_removed\""));
    }
}
