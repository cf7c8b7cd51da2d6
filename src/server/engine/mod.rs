//! The cluster engine on Redis Streams: agents publish every event through one atomic script
//! that numbers it (per-topic epoch and gap-free sequence), keeps it in the topic's stream and
//! in the feed that dashboard nodes read, and updates the project's snapshot at the same
//! cursor. [`agent`] is the publishing side, [`node`] the reading side.
//!
//! Keys: `lw:meta` (hash: `e:TOPIC` epoch, `s:TOPIC` last sequence), `lw:s:TOPIC` (the topic's
//! stream, entry ids `SEQ-0`), `lw:feed` (every event, in publish order), `lw:snap:PROJECT`
//! (hash: the card and its cursor), `lw:projects` (set of project ids), `lw:agent:NAME`
//! (heartbeat, expires), `lw:agents` (hash: every agent's last heartbeat, kept).

pub mod agent;
pub mod cards;
pub mod node;

use std::time::Duration;

use redis::{aio::ConnectionManager, AsyncCommands, Client, Script};

use super::archive::Archival;
use crate::model::{protocol::ServerMessage, Cursor, ProjectSummary, Topic};

pub const META: &str = "lw:meta";
pub const FEED: &str = "lw:feed";
pub const PROJECTS: &str = "lw:projects";
pub const AGENTS: &str = "lw:agents";
/// Events kept per topic stream (about: trimming is by whole blocks).
pub const TOPIC_MAXLEN: usize = 10_000;
/// Events kept in the feed nodes read.
pub const FEED_MAXLEN: usize = 100_000;
/// How long an agent's heartbeat lives by default; it is renewed every third of that.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(15);

/// The stream of one topic.
pub fn topic_stream(topic: &Topic) -> String {
    format!("lw:s:{topic}")
}

fn snapshot_key(project: &str) -> String {
    format!("lw:snap:{project}")
}

fn agent_key(name: &str) -> String {
    format!("lw:agent:{name}")
}

/// One event per call, atomically: a new, later epoch when the topic is new, its stream was
/// lost, or the caller says so (a rotated log, an agent that may have missed writes); the next
/// sequence number; the topic's stream; the feed; the project's snapshot.
const PUBLISH: &str = r#"
local ef = 'e:' .. ARGV[1]
local sf = 's:' .. ARGV[1]
local epoch = tonumber(redis.call('HGET', KEYS[1], ef) or '0')
local seq = tonumber(redis.call('HGET', KEYS[1], sf) or '0')
local lost = epoch > 0 and seq > 0 and redis.call('EXISTS', KEYS[2]) == 0
if epoch == 0 or ARGV[4] == '1' or lost then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if now <= epoch then now = epoch + 1 end
  epoch = now
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], ef, string.format('%d', epoch), sf, '0')
end
seq = redis.call('HINCRBY', KEYS[1], sf, 1)
local e = string.format('%d', epoch)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], seq .. '-0', 'e', e, 'm', ARGV[2], 'a', ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 't', ARGV[1], 'e', e, 's', seq,
  'm', ARGV[2], 'a', ARGV[3])
if ARGV[8] ~= '' then
  if ARGV[9] == '1' then
    redis.call('DEL', KEYS[4])
    redis.call('SREM', KEYS[5], ARGV[8])
  elseif ARGV[7] ~= '' then
    redis.call('HSET', KEYS[4], 'card', ARGV[7], 'topic', ARGV[1], 'epoch', e, 'seq', seq)
    redis.call('SADD', KEYS[5], ARGV[8])
  end
end
return {e, seq}
"#;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot encode an event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the engine answered {0}")]
    Answer(String),
}

/// Whether an event starts a new epoch of its topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epoch {
    Continue,
    New,
}

/// A connection to the engine (reconnects by itself). Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    client: Client,
    connection: ConnectionManager,
    script: Script,
    lengths: Lengths,
}

/// How many events the engine keeps (about: trimming is by whole blocks).
#[derive(Clone, Copy, Debug)]
pub struct Lengths {
    /// Per topic stream: how far back any node can resume a client.
    pub topic: usize,
    /// In the feed: how long a node may stop before it misses events (and says resync).
    pub feed: usize,
}

impl Default for Lengths {
    fn default() -> Self {
        Self {
            topic: TOPIC_MAXLEN,
            feed: FEED_MAXLEN,
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Connects to `url` (`redis://host:port/db` or `redis+unix:///path`).
    pub async fn connect(url: &str) -> Result<Self, EngineError> {
        let client = Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2);
        let connection = client.get_connection_manager_with_config(config).await?;
        Ok(Self {
            client,
            connection,
            script: Script::new(PUBLISH),
            lengths: Lengths::default(),
        })
    }

    /// The same engine, publishing with these stream lengths.
    pub fn with_lengths(mut self, lengths: Lengths) -> Self {
        self.lengths = lengths;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Numbers and stores one event; `card` (the project's card after it) updates the project's
    /// snapshot. Returns the cursor the engine gave it.
    pub async fn publish(
        &self,
        topic: &Topic,
        message: &ServerMessage,
        archival: Archival,
        epoch: Epoch,
        card: Option<&ProjectSummary>,
    ) -> Result<Cursor, EngineError> {
        let json = serde_json::to_string(message)?;
        let card = card
            .map(serde_json::to_string)
            .transpose()?
            .unwrap_or_default();
        let project = message.project().unwrap_or("");
        let removed = matches!(message, ServerMessage::ProjectRemoved { .. });
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(META)
            .key(topic_stream(topic))
            .key(FEED)
            .key(snapshot_key(project))
            .key(PROJECTS)
            .arg(topic.to_string())
            .arg(json)
            .arg(archived_flag(archival))
            .arg(if epoch == Epoch::New { "1" } else { "0" })
            .arg(self.lengths.topic.max(1))
            .arg(self.lengths.feed.max(1))
            .arg(card)
            .arg(project)
            .arg(if removed { "1" } else { "0" });
        let mut connection = self.connection.clone();
        let (epoch, seq): (String, u64) = invocation.invoke_async(&mut connection).await?;
        let epoch = epoch
            .parse()
            .map_err(|_| EngineError::Answer(format!("epoch {epoch:?}")))?;
        Ok(Cursor { epoch, seq })
    }

    /// Says that agent `name` is alive and watches `projects`, for `ttl`; the time is kept
    /// after that as the agent's last sign of life.
    pub async fn heartbeat(
        &self,
        name: &str,
        projects: &[String],
        ttl: Duration,
    ) -> Result<(), EngineError> {
        let beat = Heartbeat {
            projects: projects.to_vec(),
            seen: crate::server::clock::now(),
        };
        let value = serde_json::to_string(&beat)?;
        let mut connection = self.connection.clone();
        let () = redis::pipe()
            .atomic()
            .set_ex(agent_key(name), &value, ttl.as_secs().max(1))
            .ignore()
            .hset(AGENTS, name, &value)
            .ignore()
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// Every agent that ever beat: its last heartbeat, and whether that is still alive.
    pub async fn agents(&self) -> Result<Vec<AgentState>, EngineError> {
        let mut connection = self.connection.clone();
        let all: std::collections::HashMap<String, String> = connection.hgetall(AGENTS).await?;
        let mut agents = Vec::with_capacity(all.len());
        for (name, value) in all {
            let Ok(last) = serde_json::from_str::<Heartbeat>(&value) else {
                continue;
            };
            let alive: bool = connection.exists(agent_key(&name)).await?;
            agents.push(AgentState { name, last, alive });
        }
        Ok(agents)
    }
}

/// What an agent says in each heartbeat.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Heartbeat {
    pub projects: Vec<String>,
    /// When it said it (RFC 3339).
    pub seen: String,
}

#[derive(Clone, Debug)]
pub struct AgentState {
    pub name: String,
    pub last: Heartbeat,
    pub alive: bool,
}

fn archived_flag(archival: Archival) -> &'static str {
    match archival {
        Archival::Archived => "1",
        Archival::Active => "0",
    }
}

fn archival_of(flag: &str) -> Archival {
    if flag == "1" {
        Archival::Archived
    } else {
        Archival::Active
    }
}
