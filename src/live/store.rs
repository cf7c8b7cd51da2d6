//! The client's live state: one store per tab (in context), fed by the socket task and by
//! server-function fetches. Pages register what they show (the project cards, one project);
//! the store subscribes to the matching topics and applies each event once, by cursor.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use leptos::prelude::*;

mod alerts;
mod insight;

use super::log::LogBuffer;
use super::machine::StreamState;
use crate::contract::ralph::notification::Notification;
use crate::model::{
    api_types::{IterationRow, LogText, ProjectDetail, ProjectList},
    protocol::ServerMessage,
    Cursor, ProjectSummary, Topic,
};

/// One dashboard card: its own signal, so an event re-renders only that card.
#[derive(Clone, Debug)]
pub struct ProjectCard {
    pub id: String,
    pub summary: RwSignal<ProjectSummary>,
}

/// The open project page's state.
#[derive(Clone, Copy, Debug)]
pub struct ProjectView {
    pub id: StoredValue<String>,
    pub detail: RwSignal<ProjectDetail>,
    /// The newest iterations (newest first), for the charts and the activity feed.
    pub recent: RwSignal<Vec<IterationRow>>,
    pub log: LogBuffer,
    /// Bumped whenever the iterations changed, so the iterations table refetches its page.
    pub iterations_changed: RwSignal<u64>,
    /// Bumped whenever a context file (AGENTS.md, PROMPT.md, a spec) changed on disk.
    pub files_changed: RwSignal<u64>,
    /// The project left the server's list (its directory was deleted or moved).
    pub gone: RwSignal<bool>,
    /// The last `control` event (an operator's action, a start's phase, an injection's state).
    pub control: RwSignal<Option<crate::model::control::ControlChange>>,
    /// Notifications that arrived while the page is open, newest first: a refetched detail
    /// (which holds only the files' notifications) does not drop loopwatch's alerts from it.
    pub arrived: RwSignal<Vec<Notification>>,
    /// Notifications acknowledged while the page is open (from any tab), by id.
    pub acked: RwSignal<BTreeMap<String, crate::model::insight::NotificationAck>>,
}

/// A notification worth a toast.
#[derive(Clone, Debug, PartialEq)]
pub struct Toast {
    pub project: String,
    /// The project's name as the operator knows it (its id when the name is unknown).
    pub name: String,
    pub notification: Notification,
}

/// What needs refetching because the stream cannot tell it (a `resync`, a rotated log, or a
/// change only the server can recompute: stats, charts, the full plan).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refetch {
    Projects,
    Project(String),
    Log(String),
}

/// Whether a fetched state may replace what the page shows when it looks older.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    /// Only a fetch at least as new as the applied events counts.
    IfNewer,
    /// After a `resync`: the server cannot serve the page's cursor, so what it gives now wins
    /// even if its cursor looks older (a restarted server).
    Always,
}

/// The store. `Copy`: every field is an arena handle.
#[derive(Clone, Copy, Debug)]
pub struct LiveStore {
    pub stream: RwSignal<StreamState>,
    /// Per topic, the cursor of the last event the state reflects: what to resume from.
    cursors: StoredValue<BTreeMap<Topic, Cursor>>,
    cards: StoredValue<Option<RwSignal<Vec<ProjectCard>>>>,
    project: StoredValue<Option<ProjectView>>,
    pub toasts: RwSignal<Vec<Toast>>,
    /// Notification ids already toasted (a replay or a second subscription shows nothing new).
    toasted: StoredValue<VecDeque<String>>,
    /// Bumped when the wanted topics change or a fetch is requested, so the socket task acts.
    pub wanted_version: RwSignal<u64>,
    /// Fetches the pages asked for; the socket task runs them between two messages.
    pending: StoredValue<Vec<Refetch>>,
    /// The epoch new topics start in on the connected server (from `hello`).
    server_epoch: StoredValue<Option<u64>>,
    /// Every known project (id to name), watched on every page so that alerts from any project
    /// toast wherever the operator is. Lives as long as the tab, unlike the dashboard's cards.
    watched: StoredValue<Option<BTreeMap<String, String>>>,
    /// Each project's budget, as fetched and as operators change it.
    pub budgets: RwSignal<BTreeMap<String, crate::contract::ralph::budget::Budget>>,
}

const TOAST_MEMORY: usize = 256;
/// Toasts kept (the page shows the newest few and counts the rest).
const MAX_TOASTS: usize = 50;

impl LiveStore {
    pub fn new() -> Self {
        Self {
            stream: RwSignal::new(StreamState::Connecting),
            cursors: StoredValue::new(BTreeMap::new()),
            cards: StoredValue::new(None),
            project: StoredValue::new(None),
            toasts: RwSignal::new(Vec::new()),
            toasted: StoredValue::new(VecDeque::new()),
            wanted_version: RwSignal::new(0),
            pending: StoredValue::new(Vec::new()),
            server_epoch: StoredValue::new(None),
            watched: StoredValue::new(None),
            budgets: RwSignal::new(BTreeMap::new()),
        }
    }

    /// Records the epoch the server's topics start in (its `hello`).
    pub fn set_server_epoch(&self, epoch: u64) {
        self.server_epoch.set_value(Some(epoch));
    }

    /// Asks the socket task to fetch `part` (it runs fetches in order with the stream, so the
    /// result is never older than what the page already shows).
    pub fn request(&self, part: Refetch) {
        self.pending.update_value(|pending| {
            if !pending.contains(&part) {
                pending.push(part);
            }
        });
        self.wanted_version.update(|v| *v += 1);
    }

    pub fn take_pending(&self) -> Vec<Refetch> {
        self.pending
            .try_update_value(std::mem::take)
            .unwrap_or_default()
    }

    /// Drops the cursors of topics no page shows any more (they are unsubscribed; a page that
    /// shows them again starts from its own fetch).
    pub fn forget(&self, topics: impl IntoIterator<Item = Topic>) {
        self.cursors.update_value(|cursors| {
            for topic in topics {
                cursors.remove(&topic);
            }
        });
    }

    /// Shows `list` as the dashboard's cards, live from the list's cursors.
    pub fn open_cards(&self, list: ProjectList) -> RwSignal<Vec<ProjectCard>> {
        if !self.watching() {
            self.watch(&list);
        }
        let cards = RwSignal::new(list.projects.into_iter().map(card).collect());
        self.set_cursors(list.cursors);
        self.cards.set_value(Some(cards));
        self.wanted_version.update(|v| *v += 1);
        cards
    }

    pub fn close_cards(&self) {
        self.cards.set_value(None);
        self.wanted_version.try_update(|v| *v += 1);
    }

    /// Shows one project, live from the cursors of its detail and log.
    pub fn open_project(
        &self,
        detail: ProjectDetail,
        recent: Vec<IterationRow>,
        log: LogText,
    ) -> ProjectView {
        let id = detail.summary.id.clone();
        self.set_cursor(Topic::Project(id.clone()), detail.cursor);
        self.set_cursor(Topic::Log(id.clone()), log.cursor);
        let view = ProjectView {
            id: StoredValue::new(id),
            detail: RwSignal::new(detail),
            recent: RwSignal::new(recent),
            log: LogBuffer::new(&log),
            iterations_changed: RwSignal::new(0),
            files_changed: RwSignal::new(0),
            gone: RwSignal::new(false),
            control: RwSignal::new(None),
            acked: RwSignal::new(BTreeMap::new()),
            arrived: RwSignal::new(Vec::new()),
        };
        self.project.set_value(Some(view));
        self.wanted_version.update(|v| *v += 1);
        view
    }

    pub fn project(&self) -> Option<ProjectView> {
        self.project.get_value()
    }

    pub fn close_project(&self, id: &str) {
        self.project.update_value(|open| {
            if open
                .as_ref()
                .is_some_and(|view| view.id.try_with_value(|open| open == id) != Some(false))
            {
                *open = None;
            }
        });
        self.wanted_version.try_update(|v| *v += 1);
    }

    /// The topics the open pages need.
    pub fn topics(&self) -> Vec<Topic> {
        let mut topics = BTreeSet::new();
        if let Some(cards) = self.cards.get_value() {
            topics.insert(Topic::Projects);
            cards.with_untracked(|cards| {
                topics.extend(cards.iter().map(|c| Topic::Project(c.id.clone())));
            });
        }
        if let Some(view) = self.project() {
            let id = view.id.get_value();
            topics.insert(Topic::Project(id.clone()));
            topics.insert(Topic::Log(id));
        }
        self.watched.with_value(|watched| {
            if let Some(watched) = watched {
                topics.insert(Topic::Projects);
                topics.extend(watched.keys().map(|id| Topic::Project(id.clone())));
            }
        });
        topics.into_iter().collect()
    }

    /// The subscribe frame for every wanted topic, resuming each from the state's cursor.
    pub fn subscribe_frame(&self) -> Option<String> {
        let topics = self.topics();
        if topics.is_empty() {
            return None;
        }
        let since: BTreeMap<Topic, Cursor> = self.cursors.with_value(|cursors| {
            topics
                .iter()
                .filter_map(|t| cursors.get(t).map(|c| (t.clone(), *c)))
                .collect()
        });
        Some(
            serde_json::json!({"action": "subscribe", "topics": topics, "since": since})
                .to_string(),
        )
    }

    pub fn cursor(&self, topic: &Topic) -> Option<Cursor> {
        self.cursors
            .with_value(|cursors| cursors.get(topic).copied())
    }

    /// A fetched state replaces what the topic held: its cursor is where the state stands.
    fn set_cursor(&self, topic: Topic, cursor: Cursor) {
        self.cursors.update_value(|cursors| {
            cursors.insert(topic, cursor);
        });
    }

    fn set_cursors(&self, fetched: BTreeMap<Topic, Cursor>) {
        self.cursors.update_value(|cursors| cursors.extend(fetched));
    }

    /// Records where a topic stands after an event, or from a `subscribed` ack for a topic the
    /// state had no cursor for.
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

    fn find_card(&self, id: &str) -> Option<RwSignal<ProjectSummary>> {
        let cards = self.cards.get_value()?;
        cards.try_with_untracked(|cards| {
            cards
                .iter()
                .find(|card| card.id == id)
                .map(|card| card.summary)
        })?
    }

    fn open_view(&self, id: &str) -> Option<ProjectView> {
        self.project()
            .filter(|view| view.id.try_with_value(|open| open == id).unwrap_or(false))
    }

    fn update_summary(&self, id: &str, change: impl Fn(&mut ProjectSummary)) {
        if let Some(summary) = self.find_card(id) {
            summary.try_update(|s| change(s));
        }
        if let Some(view) = self.open_view(id) {
            view.detail.try_update(|d| change(&mut d.summary));
        }
    }

    /// Applies one server event; returns what must be refetched because of it.
    pub fn apply(&self, message: ServerMessage) -> Vec<Refetch> {
        let mut refetch = Vec::new();
        match message {
            ServerMessage::StatusChanged { project, data, .. } => {
                self.update_summary(&project, |s| s.status = data.status);
                self.stale_project(&project, &mut refetch);
            }
            ServerMessage::PlanUpdated { project, data, .. } => {
                self.update_summary(&project, |s| s.plan = Some(data.clone()));
                // The detail's full plan (task texts, who completed what) comes from the server.
                self.stale_project(&project, &mut refetch);
            }
            ServerMessage::IterationStarted { project, data, .. } => {
                self.update_summary(&project, |s| {
                    s.iteration = Some(data.iteration);
                    s.max_iterations = data.max;
                });
                self.stale_project(&project, &mut refetch);
            }
            ServerMessage::IterationCompleted { project, .. } => {
                if let Some(view) = self.open_view(&project) {
                    view.iterations_changed.try_update(|v| *v += 1);
                }
                self.stale_project(&project, &mut refetch);
            }
            ServerMessage::Notification { project, data, .. } => {
                if let Some(view) = self.open_view(&project) {
                    view.detail.try_update(|d| {
                        if !d.notifications.iter().any(|n| n.id == data.id) {
                            d.notifications.insert(0, data.clone());
                        }
                    });
                    view.arrived.try_update(|arrived| {
                        if !arrived.iter().any(|n| n.id == data.id) {
                            arrived.insert(0, data.clone());
                        }
                    });
                }
                self.toast(project, data);
            }
            ServerMessage::ProjectAdded { project, data, .. } => {
                self.watch_added(&project, &data.name);
                if let Some(summary) = self.find_card(&project) {
                    summary.try_set(data);
                } else if let Some(cards) = self.cards.get_value() {
                    cards.try_update(|cards| cards.push(card(data)));
                    // The new project's topic is subscribed from its first event, so what it
                    // published before the subscription lands is replayed, not lost.
                    if let Some(epoch) = self.server_epoch.get_value() {
                        self.cursors.update_value(|cursors| {
                            cursors
                                .entry(Topic::Project(project.clone()))
                                .or_insert(Cursor { epoch, seq: 0 });
                        });
                    }
                    self.wanted_version.try_update(|v| *v += 1);
                }
            }
            ServerMessage::ProjectUpdated { project, data, .. } => {
                self.watched.update_value(|w| {
                    if let Some(name) = w.as_mut().and_then(|w| w.get_mut(&project)) {
                        name.clone_from(&data.name);
                    }
                });
                self.update_summary(&project, |s| *s = data.clone());
            }
            ServerMessage::ProjectArchived { project, data, .. } => {
                self.update_summary(&project, |s| *s = data.summary.clone());
            }
            ServerMessage::ProjectRemoved { project, .. } => {
                if let Some(cards) = self.cards.get_value() {
                    cards.try_update(|cards| cards.retain(|card| card.id != project));
                }
                if let Some(view) = self.open_view(&project) {
                    view.gone.try_set(true);
                }
                self.watched.update_value(|w| {
                    if let Some(w) = w {
                        w.remove(&project);
                    }
                });
            }
            ServerMessage::FileChanged { project, .. } => {
                if let Some(view) = self.open_view(&project) {
                    view.files_changed.try_update(|v| *v += 1);
                }
            }
            ServerMessage::LogAppend { project, data, .. } => {
                if let Some(view) = self.open_view(&project) {
                    view.log.push_text(&data.lines);
                }
            }
            ServerMessage::Build { project, data, .. } => {
                if let Some(view) = self.open_view(&project) {
                    let applied = view.detail.try_update(|d| {
                        d.build
                            .as_mut()
                            .map(|build| super::build::apply(build, &data))
                    });
                    // A build the page did not know of yet, or counts the server derives: the
                    // build's whole state comes from the server.
                    if applied != Some(Some(super::build::Applied::Whole)) {
                        refetch.push(Refetch::Project(project));
                    }
                }
            }
            ServerMessage::Control { project, data, .. } => {
                if let Some(view) = self.open_view(&project) {
                    view.control.try_set(Some(data));
                }
            }
            ServerMessage::LogRotated { project, .. } if self.open_view(&project).is_some() => {
                refetch.push(Refetch::Log(project));
            }
            message @ (ServerMessage::NotificationAcked { .. }
            | ServerMessage::BudgetChanged { .. }) => self.apply_insight(message),
            _ => {}
        }
        refetch
    }

    fn stale_project(&self, id: &str, refetch: &mut Vec<Refetch>) {
        if self.open_view(id).is_some() {
            refetch.push(Refetch::Project(id.to_owned()));
        }
    }

    /// What to refetch for a `resync` of `topic` (of everything when `None`).
    pub fn resync(&self, topic: Option<Topic>) -> Vec<Refetch> {
        let topics = match topic {
            Some(topic) => vec![topic],
            None => self.topics(),
        };
        let mut refetch: BTreeSet<Refetch> = BTreeSet::new();
        for topic in topics {
            match topic {
                Topic::Projects => {
                    refetch.insert(Refetch::Projects);
                }
                Topic::Project(id) => {
                    if self.open_view(&id).is_some() {
                        refetch.insert(Refetch::Project(id));
                    }
                    if self.cards.get_value().is_some() || self.watching() {
                        refetch.insert(Refetch::Projects);
                    }
                }
                Topic::Log(id) => {
                    refetch.insert(Refetch::Log(id));
                }
            }
        }
        refetch.into_iter().collect()
    }

    /// Every fetch that brings the open pages up to date (what polling does each round).
    pub fn everything(&self) -> Vec<Refetch> {
        self.resync(None)
    }

    /// Replaces the cards with a fresh list, keeping the signals of cards that still exist so
    /// their views update in place.
    pub fn replace_cards(&self, list: ProjectList) {
        self.watch(&list);
        let Some(cards) = self.cards.get_value() else {
            return;
        };
        self.set_cursors(list.cursors);
        let mut next = Vec::with_capacity(list.projects.len());
        for summary in list.projects {
            match self.find_card(&summary.id) {
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
        cards.try_set(next);
        self.wanted_version.try_update(|v| *v += 1);
    }

    /// Replaces the open project's detail (and its recent iterations) with a fetched one.
    /// With [`Overwrite::IfNewer`], a fetch older than the applied events is ignored.
    pub fn replace_project(
        &self,
        detail: ProjectDetail,
        recent: Option<Vec<IterationRow>>,
        overwrite: Overwrite,
    ) {
        let id = detail.summary.id.clone();
        let Some(view) = self.open_view(&id) else {
            return;
        };
        let topic = Topic::Project(id.clone());
        if overwrite == Overwrite::IfNewer
            && self
                .cursor(&topic)
                .is_some_and(|known| known > detail.cursor)
        {
            return;
        }
        self.set_cursor(topic, detail.cursor);
        if let Some(summary) = self.find_card(&id) {
            summary.try_set(detail.summary.clone());
        }
        // Notifications the stream did not deliver (polling, a resync) still toast once.
        let (known, iterations) = view
            .detail
            .try_with_untracked(|d| {
                let ids: BTreeSet<String> = d.notifications.iter().map(|n| n.id.clone()).collect();
                (ids, d.stats.iterations)
            })
            .unwrap_or_default();
        let fresh: Vec<Notification> = detail
            .notifications
            .iter()
            .filter(|n| !known.contains(&n.id))
            .cloned()
            .collect();
        let iterations_changed = detail.stats.iterations != iterations;
        view.detail.try_set(detail);
        // What the stream did not deliver also joins what arrived while the page is open (the
        // Notifications tab shows it above the stored pages).
        view.arrived.try_update(|arrived| {
            for notification in fresh.iter().rev() {
                if !arrived.iter().any(|n| n.id == notification.id) {
                    arrived.insert(0, notification.clone());
                }
            }
        });
        for notification in fresh.into_iter().rev() {
            self.toast(id.clone(), notification);
        }
        if let Some(recent) = recent {
            view.recent.try_set(recent);
        }
        // The iterations table reloads only when there is something new for it.
        if iterations_changed || overwrite == Overwrite::Always {
            view.iterations_changed.try_update(|v| *v += 1);
        }
    }

    /// Replaces the open project's log (after a rotation, a resync, a poll, or the log tab's
    /// full load). With [`Overwrite::IfNewer`], a fetch older than the applied events is ignored.
    pub fn replace_log(&self, id: &str, log: LogText, overwrite: Overwrite) {
        let Some(view) = self.open_view(id) else {
            return;
        };
        let topic = Topic::Log(id.to_owned());
        // Same state, or older than what the stream already applied: keep what we have. (A
        // rotation starts a new epoch, so the reload after it always counts as newer.)
        let same = self.cursor(&topic) == Some(log.cursor) && view.log.holds(&log.text);
        let older = self.cursor(&topic).is_some_and(|known| known > log.cursor);
        if same || (overwrite == Overwrite::IfNewer && older) {
            return;
        }
        self.set_cursor(topic, log.cursor);
        view.log.reset(&log);
    }
}

impl Default for LiveStore {
    fn default() -> Self {
        Self::new()
    }
}

fn card(summary: ProjectSummary) -> ProjectCard {
    ProjectCard {
        id: summary.id.clone(),
        summary: RwSignal::new(summary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{
        ralph::notification::parse_notification, ralph::plan::parse_plan,
        ralph::stats::compute_stats,
    };
    use crate::model::{protocol::LogLines, Status};

    fn summary(id: &str) -> ProjectSummary {
        ProjectSummary {
            id: id.into(),
            name: id.into(),
            path: format!("/p/{id}"),
            status: Status::Running,
            plan: None,
            warnings: Vec::new(),
            iteration: Some(1),
            max_iterations: 10,
            tokens: 0.0,
            cost_usd: 0.0,
            last_activity: None,
            recent_health: Vec::new(),
            pausing: false,
            archived_at: None,
            kinds: Vec::new(),
            build: None,
        }
    }

    /// Signals live in an owner's arena (the server build sandboxes arenas per request).
    fn reactive_owner() -> Owner {
        let owner = Owner::new();
        owner.set();
        owner
    }

    fn cursor(seq: u64) -> Cursor {
        Cursor { epoch: 1, seq }
    }

    fn list(ids: &[&str]) -> ProjectList {
        let mut cursors = BTreeMap::new();
        cursors.insert(Topic::Projects, cursor(1));
        for id in ids {
            cursors.insert(Topic::Project((*id).into()), cursor(1));
        }
        ProjectList {
            projects: ids.iter().map(|id| summary(id)).collect(),
            cursors,
        }
    }

    fn detail(id: &str, seq: u64) -> ProjectDetail {
        let plan = parse_plan("## P\n- [ ] 1.1: a\n");
        ProjectDetail {
            summary: summary(id),
            stats: compute_stats(&[], &plan, 0.01, 0.0),
            plan: Some(plan),
            completed_in: BTreeMap::new(),
            config: Default::default(),
            notifications: Vec::new(),
            skipped_rows: Default::default(),
            cursor: cursor(seq),
            build: None,
        }
    }

    /// The log's text as the buffer holds it, one `\n` after each line.
    fn held_text(log: &LogBuffer) -> String {
        log.with_lines(|lines| lines.iter().map(|line| format!("{}\n", line.raw)).collect())
    }

    fn log_text(text: &str, seq: u64) -> LogText {
        LogText {
            text: text.into(),
            truncated: false,
            cursor: cursor(seq),
        }
    }

    fn notification(text: &str) -> ServerMessage {
        let data = parse_notification(text.as_bytes()).expect("notification parses");
        ServerMessage::Notification {
            project: "a".into(),
            timestamp: String::new(),
            data,
        }
    }

    #[test]
    fn cards_follow_added_and_removed_projects() {
        let _owner = reactive_owner();
        let store = LiveStore::new();
        store.set_server_epoch(1);
        let cards = store.open_cards(list(&["a"]));
        let before = store.wanted_version.get_untracked();
        store.apply(ServerMessage::ProjectAdded {
            project: "b".into(),
            timestamp: String::new(),
            data: summary("b"),
        });
        assert_eq!(cards.with_untracked(Vec::len), 2);
        assert!(
            store.wanted_version.get_untracked() > before,
            "new card -> subscribe"
        );
        assert!(store.topics().contains(&Topic::Project("b".into())));
        // Subscribed from the topic's start, so nothing it published meanwhile is missed.
        assert_eq!(store.cursor(&Topic::Project("b".into())), Some(cursor(0)));
        store.apply(ServerMessage::ProjectRemoved {
            project: "a".into(),
            timestamp: String::new(),
        });
        let ids: Vec<String> = cards.with_untracked(|c| c.iter().map(|c| c.id.clone()).collect());
        assert_eq!(ids, ["b"]);
    }

    #[test]
    fn events_at_or_before_the_cursor_are_not_new() {
        let _owner = reactive_owner();
        let store = LiveStore::new();
        store.open_cards(list(&["a"]));
        let topic = Topic::Project("a".into());
        assert!(!store.is_new(&topic, cursor(1)));
        assert!(store.is_new(&topic, cursor(2)));
        store.advance(topic.clone(), cursor(5));
        assert!(!store.is_new(&topic, cursor(3)));
        // A new server epoch is always newer.
        assert!(store.is_new(&topic, Cursor { epoch: 2, seq: 0 }));
        // advance never steps back
        store.advance(topic.clone(), cursor(4));
        assert_eq!(store.cursor(&topic), Some(cursor(5)));
    }

    #[test]
    fn subscribe_frame_resumes_every_wanted_topic() {
        let _owner = reactive_owner();
        let store = LiveStore::new();
        assert_eq!(
            store.subscribe_frame(),
            None,
            "nothing wanted, nothing sent"
        );
        store.open_cards(list(&["a"]));
        store.open_project(detail("a", 7), Vec::new(), log_text("x\n", 3));
        let frame: serde_json::Value =
            serde_json::from_str(&store.subscribe_frame().expect("frame")).expect("json");
        assert_eq!(frame["action"], "subscribe");
        assert_eq!(
            frame["topics"],
            serde_json::json!(["projects", "project:a", "log:a"])
        );
        assert_eq!(frame["since"]["project:a"]["seq"], 7);
        assert_eq!(frame["since"]["log:a"]["seq"], 3);
        assert_eq!(frame["since"]["projects"]["seq"], 1);
    }

    #[test]
    fn project_events_update_card_and_page_and_ask_for_a_refetch() {
        let _owner = reactive_owner();
        let store = LiveStore::new();
        let cards = store.open_cards(list(&["a"]));
        let view = store.open_project(detail("a", 1), Vec::new(), log_text("", 1));
        let refetch = store.apply(ServerMessage::StatusChanged {
            project: "a".into(),
            timestamp: String::new(),
            data: crate::model::protocol::StatusChange {
                status: Status::Paused,
                previous: Status::Running,
            },
        });
        assert_eq!(refetch, [Refetch::Project("a".into())]);
        assert_eq!(
            view.detail.with_untracked(|d| d.summary.status),
            Status::Paused
        );
        let card_status = cards.with_untracked(|c| c[0].summary.get_untracked().status);
        assert_eq!(card_status, Status::Paused);
        // An event for a project that is not open asks for nothing.
        assert!(store
            .apply(ServerMessage::StatusChanged {
                project: "zzz".into(),
                timestamp: String::new(),
                data: crate::model::protocol::StatusChange {
                    status: Status::Paused,
                    previous: Status::Running,
                },
            })
            .is_empty());
    }

    #[test]
    fn log_lines_append_and_rotation_asks_for_the_log() {
        let _owner = reactive_owner();
        let store = LiveStore::new();
        let view = store.open_project(detail("a", 1), Vec::new(), log_text("one\n", 1));
        store.apply(ServerMessage::LogAppend {
            project: "a".into(),
            timestamp: String::new(),
            data: LogLines {
                lines: "two\n=== Iteration 2/5 ===\n".into(),
            },
        });
        assert_eq!(held_text(&view.log), "one\ntwo\n=== Iteration 2/5 ===\n");
        assert_eq!(view.log.headers(), [2]);
        let refetch = store.apply(ServerMessage::LogRotated {
            project: "a".into(),
            timestamp: String::new(),
        });
        assert_eq!(refetch, [Refetch::Log("a".into())]);
        store.replace_log("a", log_text("fresh\n", 9), Overwrite::IfNewer);
        assert_eq!(held_text(&view.log), "fresh\n");
        assert_eq!(store.cursor(&Topic::Log("a".into())), Some(cursor(9)));
        // A reload that started before the last applied event is older: ignored.
        store.replace_log("a", log_text("stale\n", 8), Overwrite::IfNewer);
        assert_eq!(held_text(&view.log), "fresh\n");
        // The same cursor with more of the log (the tab's full load) replaces the tail.
        store.replace_log("a", log_text("earlier\nfresh\n", 9), Overwrite::IfNewer);
        assert_eq!(held_text(&view.log), "earlier\nfresh\n");
        // After a resync the server's state wins even if its cursor looks older.
        store.replace_log("a", log_text("restarted\n", 2), Overwrite::Always);
        assert_eq!(held_text(&view.log), "restarted\n");
        assert_eq!(store.cursor(&Topic::Log("a".into())), Some(cursor(2)));
    }

    #[test]
    fn a_stale_fetch_never_overwrites_newer_state() {
        let _owner = reactive_owner();
        let store = LiveStore::new();
        let view = store.open_project(detail("a", 5), Vec::new(), log_text("", 1));
        let mut old = detail("a", 3);
        old.summary.name = "old".into();
        store.replace_project(old, None, Overwrite::IfNewer);
        assert_eq!(view.detail.with_untracked(|d| d.summary.name.clone()), "a");
        let mut new = detail("a", 8);
        new.summary.name = "new".into();
        store.replace_project(new, None, Overwrite::IfNewer);
        assert_eq!(
            view.detail.with_untracked(|d| d.summary.name.clone()),
            "new"
        );
    }

    #[test]
    fn resync_refetches_what_the_pages_show() {
        let _owner = reactive_owner();
        let store = LiveStore::new();
        store.open_cards(list(&["a"]));
        store.open_project(detail("a", 1), Vec::new(), log_text("", 1));
        assert_eq!(
            store.resync(None),
            [
                Refetch::Projects,
                Refetch::Project("a".into()),
                Refetch::Log("a".into())
            ]
        );
        assert_eq!(
            store.resync(Some(Topic::Log("a".into()))),
            [Refetch::Log("a".into())]
        );
        store.close_project("a");
        assert_eq!(store.resync(None), [Refetch::Projects]);
    }

    #[test]
    fn requested_fetches_queue_once_and_wake_the_socket() {
        let _owner = reactive_owner();
        let store = LiveStore::new();
        let before = store.wanted_version.get_untracked();
        store.request(Refetch::Log("a".into()));
        store.request(Refetch::Log("a".into()));
        assert!(store.wanted_version.get_untracked() > before);
        assert_eq!(store.take_pending(), [Refetch::Log("a".into())]);
        assert!(store.take_pending().is_empty());
    }

    #[test]
    fn an_alert_that_arrived_outlives_a_refetched_detail() {
        let _owner = reactive_owner();
        let store = LiveStore::new();
        let view = store.open_project(detail("a", 1), Vec::new(), log_text("", 1));
        store.apply(notification("BLOCKED: need a key"));
        // A detail that does not hold it (fetched from a server older than the event, say).
        store.replace_project(detail("a", 5), None, Overwrite::IfNewer);
        assert!(view.detail.with_untracked(|d| d.notifications.is_empty()));
        assert_eq!(view.arrived.with_untracked(Vec::len), 1);
    }

    #[test]
    fn a_refetched_detail_toasts_notifications_the_stream_missed() {
        let _owner = reactive_owner();
        let store = LiveStore::new();
        store.open_project(detail("a", 1), Vec::new(), log_text("", 1));
        let mut fetched = detail("a", 4);
        let ServerMessage::Notification { data, .. } = notification("DONE: all tasks") else {
            panic!("a notification event");
        };
        fetched.notifications.push(data);
        store.replace_project(fetched.clone(), None, Overwrite::IfNewer);
        assert_eq!(store.toasts.get_untracked().len(), 1);
        // Fetching the same state again toasts nothing new.
        store.replace_project(fetched, None, Overwrite::IfNewer);
        assert_eq!(store.toasts.get_untracked().len(), 1);
    }

    #[test]
    fn a_notification_only_a_refetched_detail_holds_joins_what_arrived() {
        let _owner = reactive_owner();
        let store = LiveStore::new();
        let view = store.open_project(detail("a", 1), Vec::new(), log_text("", 1));
        let mut fetched = detail("a", 4);
        let ServerMessage::Notification { data, .. } = notification("ERROR: tests failed") else {
            panic!("a notification event");
        };
        fetched.notifications.push(data.clone());
        store.replace_project(fetched.clone(), None, Overwrite::IfNewer);
        store.replace_project(fetched, None, Overwrite::IfNewer);
        let arrived = view.arrived.get_untracked();
        assert_eq!(arrived.len(), 1, "once: {arrived:?}");
        assert_eq!(arrived[0].id, data.id);
    }

    fn notification_from(project: &str, text: &str) -> ServerMessage {
        let data = parse_notification(text.as_bytes()).expect("notification parses");
        ServerMessage::Notification {
            project: project.into(),
            timestamp: String::new(),
            data,
        }
    }

    #[test]
    fn alerts_from_every_project_toast_on_a_project_page_with_the_project_name() {
        let _owner = reactive_owner();
        let store = LiveStore::new();
        store.set_server_epoch(1);
        store.open_project(detail("a", 1), Vec::new(), log_text("", 1));
        assert!(!store.watching());
        let mut others = list(&["a", "h"]);
        others.projects[1].name = "hotel".into();
        store.replace_cards(others);
        assert!(store.watching());
        let topics = store.topics();
        assert!(topics.contains(&Topic::Project("h".into())), "{topics:?}");
        assert!(topics.contains(&Topic::Projects));
        // The open page's cursor is kept (the list may be newer than the page's detail).
        assert_eq!(store.cursor(&Topic::Project("a".into())), Some(cursor(1)));
        store.apply(notification_from("h", "ERROR: disk full"));
        let toasts = store.toasts.get_untracked();
        assert_eq!(toasts.len(), 1);
        assert_eq!(toasts[0].name, "hotel");
        assert_eq!(toasts[0].project, "h");
        // A project found later is watched from its first event.
        let mut india = summary("i");
        india.name = "india".into();
        store.apply(ServerMessage::ProjectAdded {
            project: "i".into(),
            timestamp: String::new(),
            data: india,
        });
        assert_eq!(store.cursor(&Topic::Project("i".into())), Some(cursor(0)));
        store.apply(notification_from("i", "BLOCKED: need a key"));
        assert_eq!(store.toasts.get_untracked()[1].name, "india");
    }

    #[test]
    fn file_changes_and_removal_reach_the_open_page() {
        let _owner = reactive_owner();
        let store = LiveStore::new();
        let view = store.open_project(detail("a", 1), Vec::new(), log_text("", 1));
        store.apply(ServerMessage::FileChanged {
            project: "a".into(),
            timestamp: String::new(),
            data: crate::model::protocol::FileChange {
                file: "AGENTS.md".into(),
            },
        });
        assert_eq!(view.files_changed.get_untracked(), 1);
        assert!(!view.gone.get_untracked());
        store.apply(ServerMessage::ProjectRemoved {
            project: "a".into(),
            timestamp: String::new(),
        });
        assert!(view.gone.get_untracked());
    }

    #[test]
    fn many_toasts_are_kept_to_be_counted_and_dismissed_at_once() {
        let _owner = reactive_owner();
        let store = LiveStore::new();
        for n in 0..8 {
            store.apply(notification(&format!("ERROR: failure {n}")));
        }
        assert_eq!(
            store.toasts.get_untracked().len(),
            8,
            "none dropped silently"
        );
        store.dismiss_all_toasts();
        assert!(store.toasts.get_untracked().is_empty());
    }

    #[test]
    fn toasts_once_per_notification_and_only_for_urgent_kinds() {
        let _owner = reactive_owner();
        let store = LiveStore::new();
        store.apply(notification("DECISION: which db?"));
        store.apply(notification("DECISION: which db?"));
        store.apply(notification("PROGRESS: halfway"));
        let toasts = store.toasts.get_untracked();
        assert_eq!(toasts.len(), 1);
        assert_eq!(toasts[0].notification.message, "which db?");
        store.dismiss_toast(&toasts[0].notification.id);
        assert!(store.toasts.get_untracked().is_empty());
        // Dismissed is still seen: a replay does not bring it back.
        store.apply(notification("DECISION: which db?"));
        assert!(store.toasts.get_untracked().is_empty());
    }
}
