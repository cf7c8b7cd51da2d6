//! One `.buildrunner/checkpoints/checkpoint_YYYYMMDD_HHMMSS_ffffff.json`: what `br build
//! checkpoint` writes (`id`, `timestamp` in local time without a zone, `phase`,
//! `tasks_completed`, `files_created`, `status`, `metadata`), plus the richer shape some
//! builds write, with `components` and `features` that carry their own status and progress.
//!
//! Every field is optional: a field of the wrong type is a warning and its default, an unknown
//! status a warning and the fallback ([`WorkStatus::NotStarted`], [`CheckpointStatus::Created`]),
//! and a file that is not a JSON object an empty checkpoint with a warning. Lists keep
//! [`MAX_LIST_ITEMS`](super::MAX_LIST_ITEMS) items and count the rest.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::read::{capped, parse_object, Fields, Warnings};
use super::status::{CheckpointStatus, StatusCounts, WorkStatus};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// As written; empty when missing (the file name still names it, see [`CheckpointStamp`]).
    pub id: String,
    /// Local time without a zone, as written (`2025-11-17T21:30:05.705279`).
    pub timestamp: Option<String>,
    pub phase: String,
    pub tasks_completed: Vec<String>,
    pub files_created: Vec<String>,
    pub status: CheckpointStatus,
    pub metadata: CheckpointMetadata,
    #[serde(default)]
    pub components: Vec<Component>,
    #[serde(default)]
    pub features: Vec<CheckpointFeature>,
    /// Items past [`MAX_LIST_ITEMS`](super::MAX_LIST_ITEMS), counted but not kept.
    #[serde(default)]
    pub omitted: Omitted,
}

/// What each list held past [`MAX_LIST_ITEMS`](super::MAX_LIST_ITEMS): counted (components and features by status, so
/// statistics still count them), not kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Omitted {
    pub tasks_completed: u32,
    pub files_created: u32,
    pub components: StatusCounts,
    pub features: StatusCounts,
}

impl Checkpoint {
    /// Every completed task, the ones not kept included.
    pub fn tasks_completed_count(&self) -> u32 {
        (self.tasks_completed.len() as u32).saturating_add(self.omitted.tasks_completed)
    }

    /// Every created file, the ones not kept included.
    pub fn files_created_count(&self) -> u32 {
        (self.files_created.len() as u32).saturating_add(self.omitted.files_created)
    }

    /// The name to show: `metadata.name`, else the phase, else the id.
    pub fn display_name(&self) -> &str {
        [
            self.metadata.name.as_deref(),
            Some(self.phase.as_str()),
            Some(self.id.as_str()),
        ]
        .into_iter()
        .flatten()
        .find(|name| !name.trim().is_empty())
        .unwrap_or("")
    }
}

/// `metadata`: `br build checkpoint NAME -m MSG` writes these four; other keys are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    pub name: Option<String>,
    pub description: Option<String>,
    pub created_by: Option<String>,
    pub timestamp: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub id: String,
    pub name: String,
    /// `type` in the file.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub status: WorkStatus,
    /// 0..=100 when present.
    pub progress: Option<f64>,
    pub dependencies: Vec<String>,
    pub files: Vec<String>,
    pub tests_pass: Option<bool>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointFeature {
    pub id: String,
    pub name: String,
    pub status: WorkStatus,
    /// 0..=100 when present.
    pub progress: Option<f64>,
    pub tasks: Vec<FeatureTask>,
    /// Tasks past [`MAX_LIST_ITEMS`](super::MAX_LIST_ITEMS), counted but not kept.
    #[serde(default)]
    pub omitted_tasks: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureTask {
    pub id: String,
    pub name: String,
    pub completed: bool,
}

/// Parses one checkpoint file. Never fails: see the module doc for what becomes a warning.
pub fn parse_checkpoint(bytes: &[u8]) -> (Checkpoint, Vec<String>) {
    let mut warnings = Warnings::default();
    let checkpoint = match parse_object(bytes, "checkpoint", &mut warnings) {
        Some(object) => checkpoint_from(&object, &mut warnings),
        None => Checkpoint::default(),
    };
    (checkpoint, warnings.finish())
}

fn checkpoint_from(object: &Map<String, Value>, warnings: &mut Warnings) -> Checkpoint {
    let mut fields = Fields::new(object, "checkpoint".to_owned(), warnings);
    let id = fields.text_or_empty("id");
    let timestamp = fields.text("timestamp");
    let phase = fields.text_or_empty("phase");
    let tasks = fields.text_list("tasks_completed");
    let files = fields.text_list("files_created");
    let status = match fields.text("status") {
        None => CheckpointStatus::default(),
        Some(text) => CheckpointStatus::parse(&text).unwrap_or_else(|| {
            fields.warn(format!("unknown `status` {text:?}, read as created"));
            CheckpointStatus::default()
        }),
    };
    let metadata = fields.object("metadata");
    let component_items = fields.array("components");
    let feature_items = fields.array("features");
    let metadata = metadata.map_or_else(CheckpointMetadata::default, |object| {
        let mut fields = Fields::new(object, "checkpoint metadata".to_owned(), warnings);
        CheckpointMetadata {
            name: fields.text("name"),
            description: fields.text("description"),
            created_by: fields.text("created_by"),
            timestamp: fields.text("timestamp"),
        }
    });
    let mut omitted = Omitted {
        tasks_completed: tasks.omitted,
        files_created: files.omitted,
        ..Omitted::default()
    };
    let components = capped(
        component_items,
        |index, item| component(item, index, warnings),
        |component| omitted.components.add(component.status),
    );
    let features = capped(
        feature_items,
        |index, item| feature(item, index, warnings),
        |feature| omitted.features.add(feature.status),
    );
    Checkpoint {
        id,
        timestamp,
        phase,
        tasks_completed: tasks.kept,
        files_created: files.kept,
        status,
        metadata,
        components: components.kept,
        features: features.kept,
        omitted,
    }
}

fn item_object<'a>(
    item: &'a Value,
    what: &str,
    index: usize,
    warnings: &mut Warnings,
) -> Option<&'a Map<String, Value>> {
    let object = item.as_object();
    if object.is_none() {
        warnings.push(format!(
            "checkpoint: {what} {index} is not an object, skipped"
        ));
    }
    object
}

fn component(item: &Value, index: usize, warnings: &mut Warnings) -> Option<Component> {
    let object = item_object(item, "component", index, warnings)?;
    let mut fields = Fields::new(object, format!("checkpoint component {index}"), warnings);
    Some(Component {
        id: fields.text_or_empty("id"),
        name: fields.text_or_empty("name"),
        kind: fields.text("type"),
        status: fields.status("status"),
        progress: fields.percent("progress"),
        dependencies: fields.text_list("dependencies").kept,
        files: fields.text_list("files").kept,
        tests_pass: fields.flag("tests_pass"),
        error: fields.text("error"),
    })
}

fn feature(item: &Value, index: usize, warnings: &mut Warnings) -> Option<CheckpointFeature> {
    let object = item_object(item, "feature", index, warnings)?;
    let mut fields = Fields::new(object, format!("checkpoint feature {index}"), warnings);
    let id = fields.text_or_empty("id");
    let name = fields.text_or_empty("name");
    let status = fields.status("status");
    let progress = fields.percent("progress");
    let task_items = fields.array("tasks");
    let at = fields.at().to_owned();
    let read_task = |task_index: usize, item: &Value| {
        let Some(object) = item.as_object() else {
            warnings.push(format!("{at}: task {task_index} is not an object, skipped"));
            return None;
        };
        let mut fields = Fields::new(object, format!("{at} task {task_index}"), warnings);
        Some(FeatureTask {
            id: fields.text_or_empty("id"),
            name: fields.text_or_empty("name"),
            completed: fields.flag("completed").unwrap_or(false),
        })
    };
    let tasks = capped(task_items, read_task, |_| {});
    Some(CheckpointFeature {
        id,
        name,
        status,
        progress,
        tasks: tasks.kept,
        omitted_tasks: tasks.omitted,
    })
}

/// When a checkpoint was taken, to the microsecond, from its file name or id
/// (`checkpoint_20251117_213005_705272`) or its `timestamp` (`2025-11-17T21:30:05.705279`).
/// Local time, like the files: comparable between checkpoints of one machine, not a UTC instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CheckpointStamp {
    /// `YYYYMMDD` as a number.
    pub date: u32,
    /// `HHMMSS` as a number.
    pub time: u32,
    pub micros: u32,
}

impl CheckpointStamp {
    /// From `checkpoint_YYYYMMDD_HHMMSS_ffffff` with an optional `.json`; `None` for any other name.
    pub fn from_name(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".json").unwrap_or(name);
        let rest = stem.strip_prefix("checkpoint_")?;
        let mut parts = rest.split('_');
        let date = digits(parts.next()?, 8)?;
        let time = digits(parts.next()?, 6)?;
        let micros = digits(parts.next()?, 6)?;
        if parts.next().is_some() {
            return None;
        }
        Self::checked(date, time, micros)
    }

    /// From an ISO-8601 local time, `YYYY-MM-DDTHH:MM:SS[.ffffff]` (a space for `T` too); any
    /// zone suffix is ignored, fractions past microseconds dropped.
    pub fn from_timestamp(text: &str) -> Option<Self> {
        let text = text.trim();
        let date_part = text.get(..10)?;
        let separator = text.get(10..11)?;
        let time_part = text.get(11..19)?;
        if separator != "T" && separator != " " {
            return None;
        }
        let date = date_part.split('-').collect::<Vec<_>>();
        let time = time_part.split(':').collect::<Vec<_>>();
        let [year, month, day] = date.as_slice() else {
            return None;
        };
        let [hour, minute, second] = time.as_slice() else {
            return None;
        };
        let date = digits(year, 4)? * 10_000 + digits(month, 2)? * 100 + digits(day, 2)?;
        let time = digits(hour, 2)? * 10_000 + digits(minute, 2)? * 100 + digits(second, 2)?;
        let fraction = text
            .get(19..)
            .and_then(|rest| rest.strip_prefix('.'))
            .map(|rest| {
                rest.chars()
                    .take_while(char::is_ascii_digit)
                    .take(6)
                    .collect::<String>()
            })
            .unwrap_or_default();
        let micros = if fraction.is_empty() {
            0
        } else {
            let width = fraction.len() as u32;
            fraction.parse::<u32>().ok()? * 10u32.pow(6 - width)
        };
        Self::checked(date, time, micros)
    }

    fn checked(date: u32, time: u32, micros: u32) -> Option<Self> {
        let (month, day) = (date / 100 % 100, date % 100);
        let (hour, minute, second) = (time / 10_000, time / 100 % 100, time % 100);
        let valid = (1..=12).contains(&month)
            && (1..=31).contains(&day)
            && hour < 24
            && minute < 60
            && second < 61
            && micros < 1_000_000;
        valid.then_some(CheckpointStamp { date, time, micros })
    }
}

/// `text` as a number if it is exactly `width` ASCII digits.
fn digits(text: &str, width: usize) -> Option<u32> {
    (text.len() == width && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REAL: &str = include_str!(
        "../../../tests/fixtures/buildrunner/real/checkpoint_20251117_213005_705272.json"
    );
    const RICH: &str = include_str!(
        "../../../tests/fixtures/buildrunner/seed/checkpoint_20251119_101500_000001.json"
    );
    const WRONG_TYPES: &str =
        include_str!("../../../tests/fixtures/buildrunner/junk/wrong-types.json");
    const TRUNCATED: &str = include_str!("../../../tests/fixtures/buildrunner/junk/truncated.json");
    const ARRAY: &str = include_str!("../../../tests/fixtures/buildrunner/junk/array.json");

    fn has(warnings: &[String], part: &str) -> bool {
        warnings.iter().any(|warning| warning.contains(part))
    }

    #[test]
    fn reads_a_real_checkpoint_without_warnings() {
        let (checkpoint, warnings) = parse_checkpoint(REAL.as_bytes());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(checkpoint.id, "checkpoint_20251117_213005_705272");
        assert_eq!(
            checkpoint.timestamp.as_deref(),
            Some("2025-11-17T21:30:05.705279")
        );
        assert_eq!(checkpoint.phase, "build_3a_batch_2_complete");
        assert!(checkpoint.tasks_completed.is_empty() && checkpoint.files_created.is_empty());
        assert_eq!(checkpoint.status, CheckpointStatus::Created);
        assert_eq!(checkpoint.metadata.created_by.as_deref(), Some("cli"));
        assert_eq!(
            checkpoint.metadata.description.as_deref(),
            Some("Completed adaptive Batch 2 with CLI layer and validation system")
        );
        assert_eq!(checkpoint.display_name(), "build_3a_batch_2_complete");
        assert!(checkpoint.components.is_empty() && checkpoint.features.is_empty());
    }

    #[test]
    fn reads_the_richer_shape_with_both_vocabularies() {
        let (checkpoint, warnings) = parse_checkpoint(RICH.as_bytes());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(checkpoint.tasks_completed_count(), 3);
        assert_eq!(checkpoint.files_created_count(), 2);
        let statuses: Vec<WorkStatus> = checkpoint.components.iter().map(|c| c.status).collect();
        assert_eq!(
            statuses,
            [
                WorkStatus::Completed,
                WorkStatus::InProgress,
                WorkStatus::NotStarted,
                WorkStatus::Failed,
                WorkStatus::Blocked
            ]
        );
        let api = &checkpoint.components[1];
        assert_eq!(api.kind.as_deref(), Some("backend"));
        assert_eq!(api.progress, Some(45.5));
        assert_eq!(api.dependencies, ["auth_service"]);
        assert_eq!(api.tests_pass, Some(false));
        assert_eq!(
            checkpoint.components[3].error.as_deref(),
            Some("ImportError: No module named 'stripe'")
        );
        assert_eq!(checkpoint.components[0].error, None);
        let features: Vec<WorkStatus> = checkpoint.features.iter().map(|f| f.status).collect();
        assert_eq!(
            features,
            [
                WorkStatus::Completed,
                WorkStatus::InProgress,
                WorkStatus::NotStarted,
                WorkStatus::Failed
            ]
        );
        let checkout = &checkpoint.features[1];
        assert_eq!(checkout.tasks.len(), 2);
        assert!(checkout.tasks[0].completed && !checkout.tasks[1].completed);
        assert_eq!(checkout.tasks[1].name, "Payment");
        // The wire form reads back as the same checkpoint, `type` spelled as in the file.
        let json = serde_json::to_value(&checkpoint).unwrap_or_default();
        assert_eq!(json["components"][0]["type"], "backend");
        let back: Option<Checkpoint> = serde_json::from_value(json).ok();
        assert_eq!(back.as_ref(), Some(&checkpoint));
    }

    #[test]
    fn wrong_types_become_warnings_and_defaults() {
        let (checkpoint, warnings) = parse_checkpoint(WRONG_TYPES.as_bytes());
        assert_eq!(checkpoint.id, "42");
        assert_eq!(checkpoint.timestamp, None);
        assert_eq!(checkpoint.phase, "");
        assert_eq!(checkpoint.tasks_completed, ["only-task"]);
        assert_eq!(checkpoint.files_created, ["1", "b.py"]);
        assert_eq!(checkpoint.status, CheckpointStatus::Created);
        assert_eq!(checkpoint.metadata, CheckpointMetadata::default());
        assert!(checkpoint.components.is_empty());
        assert_eq!(checkpoint.features.len(), 2);
        let (f1, f2) = (&checkpoint.features[0], &checkpoint.features[1]);
        assert_eq!((f1.status, f1.progress), (WorkStatus::NotStarted, None));
        assert_eq!(f1.tasks.len(), 1);
        assert!(!f1.tasks[0].completed);
        assert_eq!((f2.status, f2.progress), (WorkStatus::Completed, Some(0.0)));
        assert!(f2.tasks.is_empty());
        for part in [
            "`timestamp` is an array",
            "`phase` is an object",
            "`files_created`: 2 items",
            "unknown `status` \"exploded\"",
            "`metadata` is an array",
            "`components` is an object",
            "feature 0 is not an object",
            "feature 1 is not an object",
            "unknown `status` paused, read as not_started",
            "`progress` is not a percentage: lots",
            "task 1 is not an object",
            "`completed` is not true or false: maybe",
            "`progress` -5 is outside 0..=100",
            "`tasks` is a string, not a list",
        ] {
            assert!(has(&warnings, part), "{part}: {warnings:#?}");
        }
    }

    #[test]
    fn files_that_are_not_checkpoints_are_one_warning() {
        for (bytes, part) in [
            (TRUNCATED.as_bytes(), "not JSON"),
            (ARRAY.as_bytes(), "an array, not a JSON object"),
            (b"".as_slice(), "empty file"),
            (b"  \n".as_slice(), "empty file"),
            (b"null".as_slice(), "null, not a JSON object"),
        ] {
            let (checkpoint, warnings) = parse_checkpoint(bytes);
            assert_eq!(checkpoint, Checkpoint::default());
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(warnings[0].contains(part), "{warnings:?}");
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_with_a_warning() {
        let mut bytes = b"\xEF\xBB\xBF{\"id\": \"cp\", \"phase\": \"a".to_vec();
        bytes.extend_from_slice(b"\xFF\xFE\"}");
        let (checkpoint, warnings) = parse_checkpoint(&bytes);
        assert_eq!(checkpoint.id, "cp");
        assert_eq!(checkpoint.phase, "a\u{FFFD}\u{FFFD}");
        assert_eq!(warnings, ["checkpoint: invalid UTF-8 replaced"]);
    }

    #[test]
    fn huge_lists_are_capped_and_counted() {
        let tasks: Vec<String> = (0..1500).map(|i| format!("\"t{i}\"")).collect();
        let components: Vec<String> = (0..1200)
            .map(|i| {
                let status = if i % 2 == 0 { "completed" } else { "error" };
                format!(r#"{{"id": "c{i}", "status": "{status}"}}"#)
            })
            .collect();
        let json = format!(
            r#"{{"tasks_completed": [{}], "components": [{}]}}"#,
            tasks.join(","),
            components.join(",")
        );
        let (checkpoint, warnings) = parse_checkpoint(json.as_bytes());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            checkpoint.tasks_completed.len(),
            super::super::MAX_LIST_ITEMS
        );
        assert_eq!(checkpoint.tasks_completed_count(), 1500);
        assert_eq!(checkpoint.components.len(), super::super::MAX_LIST_ITEMS);
        let omitted = checkpoint.omitted.components;
        assert_eq!(
            (omitted.total, omitted.completed, omitted.failed),
            (200, 100, 100)
        );
    }

    #[test]
    fn names_and_timestamps_give_the_same_stamp() {
        let from_name = CheckpointStamp::from_name("checkpoint_20251117_213005_705272.json");
        let from_id = CheckpointStamp::from_name("checkpoint_20251117_213005_705272");
        let from_time = CheckpointStamp::from_timestamp("2025-11-17T21:30:05.705272");
        let expected = CheckpointStamp {
            date: 20251117,
            time: 213005,
            micros: 705272,
        };
        assert_eq!(from_name, Some(expected));
        assert_eq!(from_id, Some(expected));
        assert_eq!(from_time, Some(expected));
        assert_eq!(
            CheckpointStamp::from_timestamp("2025-11-17 21:30:05.7"),
            Some(CheckpointStamp {
                micros: 700_000,
                ..expected
            })
        );
        assert_eq!(
            CheckpointStamp::from_timestamp("2025-11-17T21:30:05Z").map(|s| s.micros),
            Some(0)
        );
        for bad in [
            "checkpoint_2025111_213005_705272.json",
            "checkpoint_20251317_213005_705272.json",
            "checkpoint_20251117_253005_705272.json",
            "checkpoint_20251117_213005.json",
            "checkpoint_20251117_213005_705272_1.json",
            "other.json",
            "checkpoint_２０２５１１１７_213005_705272",
        ] {
            assert_eq!(CheckpointStamp::from_name(bad), None, "{bad}");
        }
        for bad in [
            "2025-11-17",
            "2025/11/17T21:30:05",
            "2025-11-17T21:30",
            "ab",
        ] {
            assert_eq!(CheckpointStamp::from_timestamp(bad), None, "{bad}");
        }
        let earlier = CheckpointStamp::from_name("checkpoint_20251117_213005_705271");
        assert!(earlier < from_name);
    }

    fn mutate(bytes: &mut Vec<u8>, op: u8, at: usize, value: u8) {
        let len = bytes.len();
        match op % 4 {
            0 if len > 0 => bytes[at % len] ^= value,
            1 => bytes.insert(at % (len + 1), value),
            2 if len > 0 => {
                let start = at % len;
                bytes.drain(start..(start + usize::from(value % 16)).min(len));
            }
            _ => bytes.truncate(at % (len + 1)),
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (checkpoint, warnings) = parse_checkpoint(&bytes);
            prop_assert!(warnings.len() <= super::super::MAX_WARNINGS + 1);
            let start = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes).trim_ascii_start();
            if checkpoint == Checkpoint::default() && !start.starts_with(b"{") {
                prop_assert!(!warnings.is_empty());
            }
        }

        #[test]
        fn mutated_checkpoints_never_panic(
            ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..8),
        ) {
            let mut bytes = RICH.as_bytes().to_vec();
            for (op, at, value) in ops {
                mutate(&mut bytes, op, at, value);
            }
            let (checkpoint, _) = parse_checkpoint(&bytes);
            for progress in checkpoint
                .components
                .iter()
                .map(|c| c.progress)
                .chain(checkpoint.features.iter().map(|f| f.progress))
                .flatten()
            {
                prop_assert!((0.0..=100.0).contains(&progress));
            }
            prop_assert_eq!(parse_checkpoint(&bytes).0, checkpoint);
        }

        #[test]
        fn stamps_read_back_what_was_written(
            date in (2000u32..2100, 1u32..=12, 1u32..=28),
            time in (0u32..24, 0u32..60, 0u32..60),
            micros in 0u32..1_000_000,
        ) {
            let name = format!(
                "checkpoint_{:04}{:02}{:02}_{:02}{:02}{:02}_{micros:06}.json",
                date.0, date.1, date.2, time.0, time.1, time.2
            );
            let iso = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{micros:06}",
                date.0, date.1, date.2, time.0, time.1, time.2
            );
            let stamp = CheckpointStamp::from_name(&name);
            prop_assert!(stamp.is_some());
            prop_assert_eq!(stamp, CheckpointStamp::from_timestamp(&iso));
        }
    }
}
