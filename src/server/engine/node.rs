//! The reading side, in a dashboard node: the hub learns every topic's cursor and every
//! project's card from the engine, then follows the feed (`XREAD BLOCK`) and publishes each
//! event at the engine's cursor. Resumes older than the hub's ring are read from the topic's
//! stream ([`StreamHistory`]).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use redis::{
    streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply},
    AsyncCommands, Client, Commands,
};

use super::{archival_of, cards::Cards, topic_stream, Engine, EngineError, FEED, META, PROJECTS};
use crate::model::{protocol::ServerMessage, Cursor, ProjectSummary, Topic};
use crate::server::{archive::Archival, hub::History, hub::Hub, index::Index, Shutdown};

/// How long one `XREAD` waits for events.
const BLOCK: Duration = Duration::from_secs(5);
/// Events read per `XREAD`.
const BATCH: usize = 512;
/// How long a failed read waits before trying again.
const RETRY: Duration = Duration::from_millis(500);

/// Seeds `hub` and `index` (through `cards`) from the engine and gives the hub the topic
/// streams as history. Returns the feed position to follow from (events after it may already
/// be in the seed: the hub drops them as duplicates).
pub async fn join(
    engine: &Engine,
    hub: &Hub,
    index: &Index,
    cards: &Cards,
) -> Result<String, EngineError> {
    hub.set_history(Arc::new(StreamHistory::new(engine.client().clone())));
    let mut connection = engine.connection.clone();
    // The feed position first: whatever is published after it is read again by `follow`.
    let last: StreamRangeReply = connection.xrevrange_count(FEED, "+", "-", 1).await?;
    let from = last
        .ids
        .first()
        .map_or_else(|| "0".to_owned(), |id| id.id.clone());
    let meta: HashMap<String, String> = connection.hgetall(META).await?;
    for (topic, cursor) in cursors(&meta) {
        hub.seed(topic, cursor);
    }
    let projects: Vec<String> = connection.smembers(PROJECTS).await?;
    for id in projects {
        let card: Option<String> = connection.hget(super::snapshot_key(&id), "card").await?;
        match card.map(|card| serde_json::from_str::<ProjectSummary>(&card)) {
            Some(Ok(summary)) => cards.set(index, &id, Some(summary)),
            Some(Err(error)) => {
                tracing::warn!(%error, project = id, "unreadable card in the engine")
            }
            None => {}
        }
    }
    Ok(from)
}

/// The topics' cursors in the meta hash.
fn cursors(meta: &HashMap<String, String>) -> Vec<(Topic, Cursor)> {
    meta.iter()
        .filter_map(|(field, epoch)| {
            let name = field.strip_prefix("e:")?;
            let topic = Topic::parse(name)?;
            let epoch = epoch.parse().ok()?;
            let seq = meta.get(&format!("s:{name}"))?.parse().ok()?;
            Some((topic, Cursor { epoch, seq }))
        })
        .collect()
}

/// Follows the feed from `from` into `hub` and `index` (through `cards`) until `shutdown`,
/// reconnecting when the engine goes away.
pub async fn follow(
    engine: Engine,
    hub: Hub,
    index: Arc<Index>,
    cards: Arc<Cards>,
    mut from: String,
    shutdown: Shutdown,
) {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(BLOCK + Duration::from_secs(5)));
    let options = StreamReadOptions::default()
        .block(BLOCK.as_millis() as usize)
        .count(BATCH);
    let mut connection = None;
    loop {
        if connection.is_none() {
            let connecting = engine
                .client
                .get_multiplexed_async_connection_with_config(&config);
            connection = tokio::select! {
                _ = shutdown.wait() => return,
                result = connecting => match result {
                    Ok(connection) => Some(connection),
                    Err(error) => {
                        tracing::warn!(%error, "cannot reach the engine; retrying");
                        None
                    }
                },
            };
        }
        let Some(open) = connection.as_mut() else {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(RETRY) => continue,
            }
        };
        let ids = [from.clone()];
        let read = open.xread_options::<_, _, Option<StreamReadReply>>(&[FEED], &ids, &options);
        let reply = tokio::select! {
            _ = shutdown.wait() => return,
            reply = read => reply,
        };
        match reply {
            Ok(Some(reply)) => {
                for entry in reply.keys.into_iter().flat_map(|key| key.ids) {
                    apply(&hub, &index, &cards, &entry);
                    from = entry.id;
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "lost the engine's feed; reconnecting");
                connection = None;
                // The engine may have restarted empty: a feed position it never reached would
                // hide everything published from now on.
                from = "0".to_owned();
            }
        }
    }
}

/// Publishes one feed entry on the hub; project cards keep the index's remote projects.
fn apply(hub: &Hub, index: &Index, cards: &Cards, entry: &StreamId) {
    let Some((topic, cursor, message, archival)) = decode(entry) else {
        tracing::warn!(id = entry.id, "unreadable feed entry skipped");
        return;
    };
    match &message {
        ServerMessage::ProjectAdded { project, data, .. }
        | ServerMessage::ProjectUpdated { project, data, .. } => {
            cards.set(index, project, Some(data.clone()))
        }
        ServerMessage::ProjectRemoved { project, .. } => cards.set(index, project, None),
        _ => {}
    }
    hub.publish_at(topic, cursor, Arc::new(message), archival);
}

fn decode(entry: &StreamId) -> Option<(Topic, Cursor, ServerMessage, Archival)> {
    let topic = Topic::parse(&entry.get::<String>("t")?)?;
    let epoch = entry.get::<String>("e")?.parse().ok()?;
    let seq = entry.get::<u64>("s")?;
    let message = serde_json::from_str(&entry.get::<String>("m")?).ok()?;
    let archival = archival_of(&entry.get::<String>("a").unwrap_or_default());
    Some((topic, Cursor { epoch, seq }, message, archival))
}

/// The topic streams, read with a blocking connection of its own: the hub asks from inside a
/// subscribe, which is not async. Reads are short (one `XRANGE`) and bounded by a timeout.
pub struct StreamHistory {
    client: Client,
    connection: Mutex<Option<redis::Connection>>,
}

impl std::fmt::Debug for StreamHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamHistory").finish_non_exhaustive()
    }
}

/// The longest a history read may take.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(2);

impl StreamHistory {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            connection: Mutex::new(None),
        }
    }

    fn read(
        &self,
        topic: &Topic,
        after: u64,
        before: u64,
    ) -> Result<StreamRangeReply, EngineError> {
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            let connection = self.client.get_connection_with_timeout(HISTORY_TIMEOUT)?;
            connection.set_read_timeout(Some(HISTORY_TIMEOUT))?;
            connection.set_write_timeout(Some(HISTORY_TIMEOUT))?;
            *slot = Some(connection);
        }
        let Some(connection) = slot.as_mut() else {
            return Err(EngineError::Answer("no connection".into()));
        };
        let result = connection.xrange(
            topic_stream(topic),
            format!("{}-0", after + 1),
            format!("{}-0", before.saturating_sub(1)),
        );
        if result.is_err() {
            // Reconnect next time: the engine may have restarted.
            *slot = None;
        }
        Ok(result?)
    }
}

impl History for StreamHistory {
    fn between(
        &self,
        topic: &Topic,
        epoch: u64,
        after: u64,
        before: u64,
    ) -> Option<Vec<(u64, ServerMessage, Archival)>> {
        if before <= after + 1 {
            return Some(Vec::new());
        }
        let read = || self.read(topic, after, before);
        // Blocking in the async runtime: on a multi-threaded one the worker hands its other
        // tasks over first.
        let reply = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(read),
            _ => read(),
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                tracing::warn!(%error, %topic, "cannot read the topic's history");
                return None;
            }
        };
        reply
            .ids
            .iter()
            .map(|entry| {
                let seq = entry.id.strip_suffix("-0")?.parse().ok()?;
                let held: u64 = entry.get::<String>("e")?.parse().ok()?;
                let message = serde_json::from_str(&entry.get::<String>("m")?).ok()?;
                let archival = archival_of(&entry.get::<String>("a").unwrap_or_default());
                (held == epoch).then_some((seq, message, archival))
            })
            .collect()
    }
}
