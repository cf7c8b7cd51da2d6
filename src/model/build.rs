//! What the server and the browser exchange about a BuildRunner build: the card's build line,
//! the build page's detail, and the live build events.

use serde::{Deserialize, Serialize};

use crate::contract::buildrunner::{
    checkpoint::{Checkpoint, CheckpointMetadata, Component},
    context::ContextBlock,
    features::FeaturesFile,
    stats::{summarize, BuildProgress, OverallProgress, WorkStats},
    status::{CheckpointStatus, WorkStatus},
    timeline::TimelineEntry,
};

use super::Cursor;

/// Lines of terminal output a build keeps (and a page starts with).
pub const MAX_OUTPUT_ENTRIES: usize = 200;

/// A build as the dashboard card shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildCard {
    /// The phase of the checkpoint the build stands on.
    pub phase: Option<String>,
    pub features_done: u32,
    pub features_total: u32,
    /// Build completion (see `contract::buildrunner::stats`).
    pub progress: BuildProgress,
    /// The newest checkpoint, rolled back or not.
    pub last_checkpoint: Option<CheckpointView>,
}

/// One checkpoint as the pages and events show it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointView {
    /// The checkpoint's id, else its file name without `.json`.
    pub id: String,
    pub file_name: String,
    /// `metadata.name`, else the phase, else the id.
    pub name: String,
    pub phase: String,
    pub timestamp: Option<String>,
    pub status: CheckpointStatus,
    pub tasks_completed: Vec<String>,
    pub files_created: Vec<String>,
    pub metadata: CheckpointMetadata,
    pub overall_progress: OverallProgress,
}

impl CheckpointView {
    pub fn of(entry: &TimelineEntry) -> Self {
        let checkpoint: &Checkpoint = &entry.checkpoint;
        CheckpointView {
            id: entry.id().to_owned(),
            file_name: entry.file_name.clone(),
            name: checkpoint.display_name().to_owned(),
            phase: checkpoint.phase.clone(),
            timestamp: checkpoint.timestamp.clone(),
            status: checkpoint.status,
            tasks_completed: checkpoint.tasks_completed.clone(),
            files_created: checkpoint.files_created.clone(),
            metadata: checkpoint.metadata.clone(),
            overall_progress: summarize(checkpoint).overall_progress,
        }
    }

    pub fn is_rolled_back(&self) -> bool {
        self.status == CheckpointStatus::RolledBack
    }
}

/// One context file, split into its free text and appended blocks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextView {
    /// The file name inside `.buildrunner/context/`.
    pub name: String,
    pub text: String,
    pub blocks: Vec<ContextBlock>,
    pub omitted_blocks: u32,
}

/// Whether output came from a command (`stdout`) or reports an error (`stderr`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputType {
    #[default]
    Stdout,
    Stderr,
}

/// A piece of terminal output: a context block or lines appended to a `.buildrunner/*.log`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputEntry {
    pub output: String,
    pub output_type: OutputType,
    /// The file it came from, relative to `.buildrunner/`.
    pub source: String,
}

/// Everything the build page shows, with the `project:ID` cursor live events continue from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildDetail {
    pub project: String,
    pub name: String,
    pub card: BuildCard,
    pub component_stats: WorkStats,
    pub feature_stats: WorkStats,
    /// Oldest first.
    pub checkpoints: Vec<CheckpointView>,
    /// Index in `checkpoints` of the one the build stands on.
    pub current: Option<usize>,
    pub features: Option<FeaturesFile>,
    /// The current checkpoint's components.
    pub components: Vec<Component>,
    pub context: Vec<ContextView>,
    /// The newest terminal output, oldest first.
    pub output: Vec<OutputEntry>,
    pub warnings: Vec<String>,
    pub cursor: Cursor,
}

/// What happened to a checkpoint file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointChange {
    New,
    Changed,
    /// A rollback marked it `rolled_back`.
    RolledBack,
    Deleted,
}

/// What happened to a build file (`file_change`'s `change_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChangeType {
    Created,
    Modified,
    Deleted,
}

/// One live event of a build, on the project's topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BuildEvent {
    Checkpoint {
        change: CheckpointChange,
        checkpoint: CheckpointView,
    },
    /// A component of the current checkpoint appeared or changed.
    Component {
        component_id: String,
        status: WorkStatus,
        progress: Option<f64>,
        component: Component,
    },
    /// A feature (of `features.json`, or of the current checkpoint) appeared or changed.
    Feature {
        feature_id: String,
        name: String,
        status: WorkStatus,
        progress: Option<f64>,
        priority: Option<String>,
    },
    /// `features.json` was read again: the whole registry.
    Features {
        features: Option<FeaturesFile>,
    },
    Progress(BuildProgress),
    Output(OutputEntry),
    /// A context file changed. With `from`, an append: `view.blocks` are the blocks from that
    /// byte offset on, which replace the ones held from there (the text before is unchanged, so
    /// an event stays as small as the append); without, the whole file as it now reads.
    Context {
        view: ContextView,
        from: Option<usize>,
    },
    FileChange {
        /// Relative to the project.
        file_path: String,
        change_type: FileChangeType,
        /// The appended text, for appends to context files and logs.
        content: Option<String>,
    },
    Error {
        error_message: String,
        error_type: String,
        traceback: Option<String>,
    },
}
