//! A build page's state kept live: each build event changes the [`BuildDetail`] the page shows
//! the way a fresh fetch would.

use crate::contract::buildrunner::status::CheckpointStatus;
use crate::model::build::{
    BuildDetail, BuildEvent, CheckpointChange, CheckpointView, MAX_OUTPUT_ENTRIES,
};

/// How far an event brought the page's detail up to date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The detail is what a fresh fetch would give.
    Whole,
    /// The event changed what the server derives (feature counts: from the current
    /// checkpoint's features or the registry's, a rule the server applies): fetch the detail.
    NeedsFetch,
}

/// Applies one build event to the page's detail.
pub fn apply(detail: &mut BuildDetail, event: &BuildEvent) -> Applied {
    let applied = match event {
        BuildEvent::Feature { .. } | BuildEvent::Features { .. } => Applied::NeedsFetch,
        _ => Applied::Whole,
    };
    match event {
        BuildEvent::Checkpoint { change, checkpoint } => {
            apply_checkpoint(detail, *change, checkpoint)
        }
        BuildEvent::Component { component, .. } => {
            match detail.components.iter_mut().find(|c| c.id == component.id) {
                Some(known) => *known = component.clone(),
                None => detail.components.push(component.clone()),
            }
        }
        BuildEvent::Feature {
            feature_id,
            status,
            progress,
            ..
        } => {
            let registry = detail.features.iter_mut().flat_map(|f| &mut f.features);
            for feature in registry.filter(|f| f.id == *feature_id) {
                feature.status = *status;
                feature.progress = *progress;
            }
        }
        BuildEvent::Features { features } => detail.features.clone_from(features),
        BuildEvent::Progress(progress) => detail.card.progress = *progress,
        BuildEvent::Output(entry) => {
            detail.output.push(entry.clone());
            let excess = detail.output.len().saturating_sub(MAX_OUTPUT_ENTRIES);
            detail.output.drain(..excess);
        }
        BuildEvent::Context { view, from } => {
            match (
                detail.context.iter_mut().find(|c| c.name == view.name),
                from,
            ) {
                (Some(known), Some(from)) => {
                    known.blocks.retain(|block| block.offset < *from);
                    known.blocks.extend(view.blocks.iter().cloned());
                    known.omitted_blocks = view.omitted_blocks;
                }
                (Some(known), None) => *known = view.clone(),
                // An append to a file the page never had: it is refetched with the next
                // resync; meanwhile its new blocks are what is known of it.
                (None, _) => {
                    detail.context.push(view.clone());
                    detail.context.sort_by(|a, b| a.name.cmp(&b.name));
                }
            }
        }
        // Shown through the output they come with (and the card's warnings).
        BuildEvent::FileChange { .. } | BuildEvent::Error { .. } => {}
    }
    applied
}

fn apply_checkpoint(
    detail: &mut BuildDetail,
    change: CheckpointChange,
    checkpoint: &CheckpointView,
) {
    let list = &mut detail.checkpoints;
    let at = list
        .iter()
        .position(|c| c.file_name == checkpoint.file_name);
    match (change, at) {
        (CheckpointChange::Deleted, Some(at)) => {
            list.remove(at);
        }
        (CheckpointChange::Deleted, None) => {}
        (_, Some(at)) => list[at] = checkpoint.clone(),
        (_, None) => {
            // File names start with the time the checkpoint was taken.
            let at = list.partition_point(|c| c.file_name < checkpoint.file_name);
            list.insert(at, checkpoint.clone());
        }
    }
    detail.current = list
        .iter()
        .rposition(|c| c.status != CheckpointStatus::RolledBack);
    detail.card.last_checkpoint = list.last().cloned();
    detail.card.phase = detail
        .current
        .and_then(|at| list.get(at))
        .map(|c| c.phase.clone())
        .filter(|phase| !phase.trim().is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::buildrunner::status::WorkStatus;
    use crate::model::build::{OutputEntry, OutputType};

    fn checkpoint(name: &str, status: CheckpointStatus) -> CheckpointView {
        CheckpointView {
            id: name.into(),
            file_name: format!("{name}.json"),
            phase: format!("phase of {name}"),
            status,
            ..CheckpointView::default()
        }
    }

    #[test]
    fn a_feature_change_asks_for_the_counts_the_server_derives() {
        let mut detail = BuildDetail::default();
        let feature = BuildEvent::Feature {
            feature_id: "feat-002".into(),
            name: "Cart".into(),
            status: WorkStatus::Completed,
            progress: Some(100.0),
            priority: None,
        };
        assert_eq!(apply(&mut detail, &feature), Applied::NeedsFetch);
        let checkpoint = BuildEvent::Checkpoint {
            change: CheckpointChange::New,
            checkpoint: checkpoint("checkpoint_1", CheckpointStatus::Created),
        };
        assert_eq!(apply(&mut detail, &checkpoint), Applied::Whole);
    }

    #[test]
    fn checkpoints_arrive_in_order_roll_back_and_go() {
        let mut detail = BuildDetail::default();
        let new = |name| BuildEvent::Checkpoint {
            change: CheckpointChange::New,
            checkpoint: checkpoint(name, CheckpointStatus::Created),
        };
        apply(&mut detail, &new("checkpoint_2"));
        apply(&mut detail, &new("checkpoint_1"));
        let ids: Vec<&str> = detail.checkpoints.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["checkpoint_1", "checkpoint_2"]);
        assert_eq!(detail.current, Some(1));
        apply(
            &mut detail,
            &BuildEvent::Checkpoint {
                change: CheckpointChange::RolledBack,
                checkpoint: checkpoint("checkpoint_2", CheckpointStatus::RolledBack),
            },
        );
        assert_eq!(detail.current, Some(0));
        assert_eq!(detail.card.phase.as_deref(), Some("phase of checkpoint_1"));
        assert!(detail
            .card
            .last_checkpoint
            .as_ref()
            .is_some_and(CheckpointView::is_rolled_back));
        apply(
            &mut detail,
            &BuildEvent::Checkpoint {
                change: CheckpointChange::Deleted,
                checkpoint: checkpoint("checkpoint_2", CheckpointStatus::RolledBack),
            },
        );
        assert_eq!(detail.checkpoints.len(), 1);
    }

    #[test]
    fn output_keeps_the_newest_entries() {
        let mut detail = BuildDetail::default();
        for n in 0..MAX_OUTPUT_ENTRIES + 5 {
            apply(
                &mut detail,
                &BuildEvent::Output(OutputEntry {
                    output: format!("{n}\n"),
                    output_type: OutputType::Stdout,
                    source: "build.log".into(),
                }),
            );
        }
        assert_eq!(detail.output.len(), MAX_OUTPUT_ENTRIES);
        assert_eq!(detail.output[0].output, "5\n");
    }
}
