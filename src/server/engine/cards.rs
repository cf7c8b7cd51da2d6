//! The cards of projects watched by agents, as a node shows them: the engine's card, with a
//! warning while the agent that watches the project is offline (its heartbeat expired).

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use super::Engine;
use crate::model::ProjectSummary;
use crate::server::{index::Index, Shutdown};

/// How often a node looks at the agents' heartbeats.
pub const AGENT_CHECK: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct Cards {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    cards: HashMap<String, ProjectSummary>,
    /// Project id -> why it is offline.
    offline: HashMap<String, String>,
}

impl Cards {
    /// The engine's card of project `id` (`None`: the project is gone).
    pub fn set(&self, index: &Index, id: &str, card: Option<ProjectSummary>) {
        let mut state = self.lock();
        match card {
            Some(card) => state.cards.insert(id.to_owned(), card),
            None => state.cards.remove(id),
        };
        show(&state, index, id);
    }

    /// Which projects are offline now, and why.
    pub fn set_offline(&self, index: &Index, offline: HashMap<String, String>) {
        let mut state = self.lock();
        let changed: HashSet<String> = offline
            .iter()
            .filter(|(id, note)| state.offline.get(*id) != Some(note))
            .map(|(id, _)| id.clone())
            .chain(
                state
                    .offline
                    .keys()
                    .filter(|id| !offline.contains_key(*id))
                    .cloned(),
            )
            .collect();
        state.offline = offline;
        for id in changed {
            show(&state, index, &id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn show(state: &State, index: &Index, id: &str) {
    let card = state.cards.get(id).map(|card| {
        let mut card = card.clone();
        if let Some(note) = state.offline.get(id) {
            card.warnings.push(note.clone());
        }
        card
    });
    index.set_remote(id, card);
}

/// Marks the projects of agents whose heartbeat expired, every [`AGENT_CHECK`], until
/// `shutdown`. A project another live agent watches is not offline.
pub async fn watch_agents(
    engine: Engine,
    cards: Arc<Cards>,
    index: Arc<Index>,
    shutdown: Shutdown,
) {
    loop {
        match engine.agents().await {
            Ok(agents) => {
                let alive: HashSet<&String> = agents
                    .iter()
                    .filter(|agent| agent.alive)
                    .flat_map(|agent| &agent.last.projects)
                    .collect();
                let offline = agents
                    .iter()
                    .filter(|agent| !agent.alive)
                    .flat_map(|agent| {
                        let note = format!(
                            "agent offline: {} last seen {}",
                            agent.name, agent.last.seen
                        );
                        agent
                            .last
                            .projects
                            .iter()
                            .map(move |id| (id.clone(), note.clone()))
                    })
                    .filter(|(id, _)| !alive.contains(id))
                    .collect();
                cards.set_offline(&index, offline);
            }
            Err(error) => tracing::warn!(%error, "cannot read the agents' heartbeats"),
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(AGENT_CHECK) => {}
        }
    }
}
