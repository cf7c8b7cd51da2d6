//! What a build shows: the card's build line, the build page's detail, and the component and
//! feature events that a change of the current checkpoint or of `features.json` makes.

use crate::contract::buildrunner::{
    checkpoint::Checkpoint,
    features::FeaturesFile,
    stats::{component_stats, feature_stats, registry_feature_stats, WorkStats},
};
use crate::model::{
    build::{BuildCard, BuildDetail, BuildEvent, CheckpointView},
    Cursor,
};

use super::BuildState;

/// The component and feature events for the build moving from the checkpoint `before` to
/// `after` (the same checkpoint changed, a new one, or a rollback): every item that is new or
/// whose status or progress differs.
pub fn current_changes(before: Option<&Checkpoint>, after: Option<&Checkpoint>) -> Vec<BuildEvent> {
    let Some(after) = after else {
        return Vec::new();
    };
    let mut events = Vec::new();
    for component in &after.components {
        let old = before.and_then(|b| b.components.iter().find(|c| c.id == component.id));
        if old
            .is_none_or(|old| old.status != component.status || old.progress != component.progress)
        {
            events.push(BuildEvent::Component {
                component_id: component.id.clone(),
                status: component.status,
                progress: component.progress,
                component: component.clone(),
            });
        }
    }
    for feature in &after.features {
        let old = before.and_then(|b| b.features.iter().find(|f| f.id == feature.id));
        if old.is_none_or(|old| old.status != feature.status || old.progress != feature.progress) {
            events.push(BuildEvent::Feature {
                feature_id: feature.id.clone(),
                name: feature.name.clone(),
                status: feature.status,
                progress: feature.progress,
                priority: None,
            });
        }
    }
    events
}

/// The feature events for `features.json` going from `before` to `after`.
pub fn feature_changes(before: Option<&FeaturesFile>, after: &FeaturesFile) -> Vec<BuildEvent> {
    after
        .features
        .iter()
        .filter(|feature| {
            let old = before.and_then(|b| b.features.iter().find(|f| f.id == feature.id));
            old.is_none_or(|old| old.status != feature.status || old.progress != feature.progress)
        })
        .map(|feature| BuildEvent::Feature {
            feature_id: feature.id.clone(),
            name: feature.name.clone(),
            status: feature.status,
            progress: feature.progress,
            priority: feature.priority.clone(),
        })
        .collect()
}

impl BuildState {
    /// The features that count: the current checkpoint's when it has any, else the registry's
    /// (the same rule build completion follows).
    fn feature_stats(&self) -> WorkStats {
        let current = self.checkpoints.current().map(feature_stats);
        match current {
            Some(stats) if stats.total > 0 => stats,
            _ => self
                .features
                .as_ref()
                .map(|(_, file)| registry_feature_stats(file))
                .unwrap_or_default(),
        }
    }

    pub fn card(&self) -> BuildCard {
        let timeline = self.checkpoints.timeline();
        let features = self.feature_stats();
        BuildCard {
            phase: timeline
                .current_entry()
                .map(|entry| entry.checkpoint.phase.clone())
                .filter(|phase| !phase.trim().is_empty()),
            features_done: features.completed,
            features_total: features.total,
            progress: self.progress(),
            last_checkpoint: timeline.latest().map(CheckpointView::of),
        }
    }

    /// Problems with the build's files, for the card.
    pub fn warnings(&self) -> impl Iterator<Item = &String> {
        self.warnings.values()
    }

    pub fn detail(&self, project: &str, name: &str, cursor: Cursor) -> BuildDetail {
        let timeline = self.checkpoints.timeline();
        let current = self.checkpoints.current();
        BuildDetail {
            project: project.to_owned(),
            name: name.to_owned(),
            card: self.card(),
            component_stats: current.map(component_stats).unwrap_or_default(),
            feature_stats: self.feature_stats(),
            checkpoints: timeline.entries.iter().map(CheckpointView::of).collect(),
            current: timeline.current,
            features: self.features.as_ref().map(|(_, file)| file.clone()),
            components: current.map(|c| c.components.clone()).unwrap_or_default(),
            context: self.context.views(),
            output: self.output.iter().cloned().collect(),
            warnings: self.warnings.values().cloned().collect(),
            cursor,
        }
    }
}
