use leptos::prelude::*;

use std::collections::BTreeMap;

use crate::model::{api::ProjectList, protocol::ServerMessage, Cursor, ProjectSummary, Topic};

/// State of the live connection, shown by the connection indicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Live,
    Reconnecting { attempt: u32, next_in_ms: u32 },
}

impl Connection {
    pub fn name(self) -> &'static str {
        match self {
            Connection::Connecting => "connecting",
            Connection::Live => "live",
            Connection::Reconnecting { .. } => "reconnecting",
        }
    }
}

/// One dashboard card: its own signal, so an event re-renders only that card.
#[derive(Clone, Debug)]
pub struct ProjectCard {
    pub id: String,
    pub summary: RwSignal<ProjectSummary>,
}

/// The client's live state. Events and refetched snapshots both land here.
#[derive(Clone, Copy, Debug)]
pub struct LiveStore {
    pub projects: RwSignal<Vec<ProjectCard>>,
    pub connection: RwSignal<Connection>,
    /// Per topic, the cursor of the last event the state reflects: what to resume from.
    cursors: StoredValue<BTreeMap<Topic, Cursor>>,
}

impl LiveStore {
    pub fn new(list: ProjectList) -> Self {
        let cards = list.projects.into_iter().map(card).collect();
        Self {
            projects: RwSignal::new(cards),
            connection: RwSignal::new(Connection::Connecting),
            cursors: StoredValue::new(list.cursors),
        }
    }

    /// The topics the dashboard follows: the project list and each project's state.
    pub fn topics(&self) -> Vec<Topic> {
        let mut topics = vec![Topic::Projects];
        self.projects.with_untracked(|cards| {
            topics.extend(cards.iter().map(|c| Topic::Project(c.id.clone())));
        });
        topics
    }

    pub fn cursors(&self) -> BTreeMap<Topic, Cursor> {
        self.cursors.get_value()
    }

    /// Records where a topic stands, unless the state is already further along.
    pub fn advance(&self, topic: Topic, cursor: Cursor) {
        self.cursors.update_value(|cursors| {
            let known = cursors.entry(topic).or_insert(cursor);
            if cursor > *known {
                *known = cursor;
            }
        });
    }

    /// Whether an event at `cursor` of `topic` is new to this state (so it is applied once).
    pub fn is_new(&self, topic: &Topic, cursor: Cursor) -> bool {
        self.cursors
            .with_value(|cursors| cursors.get(topic).is_none_or(|known| cursor > *known))
    }

    fn find(&self, id: &str) -> Option<RwSignal<ProjectSummary>> {
        self.projects.with_untracked(|cards| {
            cards
                .iter()
                .find(|card| card.id == id)
                .map(|card| card.summary)
        })
    }

    /// Applies one server event. Returns the id of a project the client should now subscribe to.
    pub fn apply(&self, message: ServerMessage) -> Option<String> {
        match message {
            ServerMessage::StatusChanged { project, data, .. } => {
                if let Some(summary) = self.find(&project) {
                    summary.update(|s| s.status = data.status);
                }
                None
            }
            ServerMessage::PlanUpdated { project, data, .. } => {
                if let Some(summary) = self.find(&project) {
                    summary.update(|s| s.plan = Some(data));
                }
                None
            }
            ServerMessage::ProjectAdded { project, data, .. } => {
                if let Some(summary) = self.find(&project) {
                    summary.set(data);
                    None
                } else {
                    self.projects.update(|cards| cards.push(card(data)));
                    Some(project)
                }
            }
            ServerMessage::IterationStarted { project, data, .. } => {
                if let Some(summary) = self.find(&project) {
                    summary.update(|s| {
                        s.iteration = Some(data.iteration);
                        s.max_iterations = data.max;
                    });
                }
                None
            }
            ServerMessage::ProjectUpdated { project, data, .. } => {
                if let Some(summary) = self.find(&project) {
                    summary.set(data);
                }
                None
            }
            ServerMessage::ProjectRemoved { project, .. } => {
                self.projects
                    .update(|cards| cards.retain(|card| card.id != project));
                None
            }
            _ => None,
        }
    }

    /// Replaces the state with a fresh snapshot (after a resync), keeping the signals of cards
    /// that still exist so their views update in place.
    pub fn replace_all(&self, list: ProjectList) {
        self.cursors.set_value(list.cursors);
        let projects = list.projects;
        let mut next = Vec::with_capacity(projects.len());
        for summary in projects {
            match self.find(&summary.id) {
                Some(signal) => {
                    let id = summary.id.clone();
                    if signal.with_untracked(|current| *current != summary) {
                        signal.set(summary);
                    }
                    next.push(ProjectCard {
                        id,
                        summary: signal,
                    });
                }
                None => next.push(card(summary)),
            }
        }
        self.projects.set(next);
    }
}

fn card(summary: ProjectSummary) -> ProjectCard {
    ProjectCard {
        id: summary.id.clone(),
        summary: RwSignal::new(summary),
    }
}
