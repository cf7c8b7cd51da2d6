//! `loopwatch agent` and `loopwatch serve --redis`: the two sides of the cluster engine.

use std::{io::Write, path::PathBuf, sync::Arc};

use clap::Args;

use super::{start_server, CliError, CommonArgs, SignInLink};
use crate::server::{
    control::{Control, ControlOptions},
    discovery, engine,
    hub::Hub,
    index::Index,
    store::Store,
    Shutdown,
};
use crate::site::{listen, watch_projects};

/// Events the agent's watcher may run ahead of its publishing before every topic starts over
/// (a new epoch, so clients resync instead of missing events).
const AGENT_BACKLOG: usize = 65_536;

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The engine, e.g. redis://127.0.0.1:6379 or redis+unix:///run/redis.sock.
    #[arg(long, value_name = "URL", env = "LOOPWATCH_REDIS")]
    redis: String,
    /// Directory to scan for projects (directories that contain `.ralph/`); repeat for more.
    #[arg(long = "projects", value_name = "DIR", required = true)]
    projects: Vec<PathBuf>,
    /// This agent's name in the engine [default: the host name].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Seconds the agent's heartbeat lives: nodes mark its projects offline this long after it
    /// stops.
    #[arg(long, value_name = "SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    heartbeat_seconds: u64,
    /// Events kept per topic in the engine: how far back a node can resume a client.
    #[arg(long, value_name = "N", default_value_t = engine::TOPIC_MAXLEN)]
    stream_length: usize,
    /// Events kept in the engine's feed: how long a node may stop before it misses events (its
    /// clients then get resync).
    #[arg(long, value_name = "N", default_value_t = engine::FEED_MAXLEN)]
    feed_length: usize,
}

/// Watches the projects exactly as `serve` does and publishes every event to the engine.
pub(super) async fn agent(args: AgentArgs) -> Result<(), CliError> {
    listen::arm_forced_exit();
    let engine = engine::Engine::connect(&args.redis)
        .await?
        .with_lengths(engine::Lengths {
            topic: args.stream_length,
            feed: args.feed_length,
        });
    let roots = discovery::validate_roots(&args.projects)
        .map_err(|(root, why)| crate::site::StartError::BadRoot(root, why))?;
    let hub = Hub::new(AGENT_BACKLOG);
    // Before the projects are added: their first events are published too.
    let events = hub.subscribe();
    // The agent keeps no data directory: its watchdog's history and audit live in memory (the
    // nodes keep theirs), and a budget pause writes the loop's pause file as on a single host.
    let store = Arc::new(Store::in_memory().map_err(crate::site::StartError::from)?);
    let control = Arc::new(Control::new(None, ControlOptions::default(), hub.clone()));
    let index = Arc::new(Index::new(hub));
    let shutdown = Shutdown::default();
    listen::stop_on_signal(shutdown.clone());
    let watcher = watch_projects(&index, roots, &shutdown, &store, &control)?;
    let name = args.name.unwrap_or_else(host_name);
    println!(
        "loopwatch agent {name}: publishing {} project(s) to the engine",
        index.len()
    );
    let _ = std::io::stdout().flush();
    let ttl = std::time::Duration::from_secs(args.heartbeat_seconds);
    engine::agent::run(engine, name, ttl, index, events, shutdown).await;
    watcher.stop().await;
    Ok(())
}

/// `serve --redis`: a dashboard node fed by the engine (plus any local `--projects`).
pub(super) async fn node(
    roots: Vec<PathBuf>,
    common: &CommonArgs,
    url: &str,
) -> Result<(), CliError> {
    listen::arm_forced_exit();
    let engine = engine::Engine::connect(url).await?;
    let hub = Hub::new(crate::server::hub::DEFAULT_CAPACITY);
    let server = start_server(roots, common, SignInLink::OnFirstRun, hub.clone()).await?;
    let cards = Arc::new(engine::cards::Cards::default());
    let from = engine::node::join(&engine, &hub, &server.index, &cards).await?;
    tokio::spawn(engine::cards::watch_agents(
        engine.clone(),
        cards.clone(),
        server.index.clone(),
        server.shutdown.clone(),
    ));
    tokio::spawn(engine::node::follow(
        engine,
        hub,
        server.index.clone(),
        cards,
        from,
        server.shutdown.clone(),
    ));
    server.run_until_signal().await;
    Ok(())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "agent".to_owned())
}
