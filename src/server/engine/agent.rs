//! The publishing side: every event the local pipeline (discovery, watcher, parsers) puts on
//! its hub goes to the engine, in order, with the project's card; the agent's heartbeat says
//! it is alive. The first event of each topic after a start (or after falling behind) starts
//! a new epoch: what happened meanwhile was not published, so old cursors must not resume.

use std::{collections::HashSet, sync::Arc, time::Duration};

use tokio::sync::broadcast::{self, error::RecvError};

use super::{Engine, Epoch};
use crate::model::{protocol::ServerMessage, Topic};
use crate::server::{archive::Archival, hub::Frame, index::Index, Shutdown};

/// How long a failed publish waits before trying again (the event is kept meanwhile).
const RETRY: Duration = Duration::from_millis(500);

/// Publishes the events read from `events` (a receiver of the index's hub, taken before the
/// projects were added) until `shutdown`.
pub async fn run(
    engine: Engine,
    name: String,
    heartbeat_ttl: Duration,
    index: Arc<Index>,
    mut events: broadcast::Receiver<Arc<Frame>>,
    shutdown: Shutdown,
) {
    let mut published: HashSet<Topic> = HashSet::new();
    // Every project's card first: nodes learn of projects that were added before they started.
    for summary in index.summaries() {
        let added = ServerMessage::ProjectAdded {
            project: summary.id.clone(),
            timestamp: crate::server::clock::now(),
            data: summary.clone(),
        };
        let archival = if summary.is_archived() {
            Archival::Archived
        } else {
            Archival::Active
        };
        let event = (Topic::Projects, Arc::new(added), archival);
        send(&engine, &index, &mut published, event, &shutdown).await;
    }
    let heartbeat = tokio::spawn(beat(
        engine.clone(),
        name,
        heartbeat_ttl,
        index.clone(),
        shutdown.clone(),
    ));
    loop {
        let frame = tokio::select! {
            _ = shutdown.wait() => break,
            frame = events.recv() => frame,
        };
        match frame {
            Ok(frame) => {
                let event = (frame.topic.clone(), frame.event.clone(), frame.archival);
                send(&engine, &index, &mut published, event, &shutdown).await;
            }
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "the agent fell behind its watcher: every topic starts a new epoch"
                );
                published.clear();
            }
            Err(RecvError::Closed) => break,
        }
    }
    heartbeat.abort();
}

/// Publishes one event, retrying until it is stored or the agent stops.
async fn send(
    engine: &Engine,
    index: &Index,
    published: &mut HashSet<Topic>,
    (topic, event, archival): (Topic, Arc<ServerMessage>, Archival),
    shutdown: &Shutdown,
) {
    let epoch = if published.contains(&topic) && !matches!(*event, ServerMessage::LogRotated { .. })
    {
        Epoch::Continue
    } else {
        Epoch::New
    };
    let card = match (&topic, event.project()) {
        (Topic::Projects | Topic::Project(_), Some(id)) => {
            index.with_project(id, |state| state.summary().clone())
        }
        _ => None,
    };
    loop {
        match engine
            .publish(&topic, &event, archival, epoch, card.as_ref())
            .await
        {
            Ok(_) => {
                published.insert(topic);
                return;
            }
            Err(error) => {
                tracing::warn!(%error, %topic, "cannot publish to the engine; retrying");
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
}

/// Renews the heartbeat every third of its lifetime.
async fn beat(engine: Engine, name: String, ttl: Duration, index: Arc<Index>, shutdown: Shutdown) {
    let every = ttl / 3;
    loop {
        let projects: Vec<String> = index.summaries().into_iter().map(|s| s.id).collect();
        if let Err(error) = engine.heartbeat(&name, &projects, ttl).await {
            tracing::warn!(%error, "cannot renew the agent's heartbeat");
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
