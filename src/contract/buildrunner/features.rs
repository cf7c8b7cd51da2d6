//! `.buildrunner/features.json`, the feature registry: `project`, `version`, `status`,
//! `last_updated`, `features` (`id`, `name`, `description`, `priority`, `status` as
//! `planned|in_progress|complete`, and sometimes `progress`, `components` and `tests`), and the
//! `metrics` the registry last wrote.
//!
//! The metrics are recomputed from the list ([`FeaturesFile::metrics`]); where the file's own
//! disagree (hand edits forget them), the list wins and the difference is a warning.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::read::{capped, parse_object, Fields, Warnings};
use super::status::{StatusCounts, WorkStatus};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeaturesFile {
    pub project: Option<String>,
    pub version: Option<String>,
    /// The project's status as written (`active`, `in_development`, ...): free text.
    pub status: Option<String>,
    /// As written (`2025-11-19T05:51:19Z`).
    pub last_updated: Option<String>,
    pub description: Option<String>,
    pub features: Vec<Feature>,
    /// Features past the list cap, counted by status but not kept.
    #[serde(default)]
    pub omitted: StatusCounts,
    /// The file's own `metrics`, when it has them.
    pub declared_metrics: Option<DeclaredMetrics>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// As written (`critical`, `high`, `medium`, `low`, ...).
    pub priority: Option<String>,
    pub status: WorkStatus,
    /// 0..=100 when present.
    pub progress: Option<f64>,
    /// Paths of the code that makes up the feature.
    pub components: Vec<String>,
    pub tests: Option<FeatureTests>,
}

/// A feature's `tests`: counts per kind and whether they pass; other keys are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureTests {
    pub unit: Option<u32>,
    pub integration: Option<u32>,
    pub e2e: Option<u32>,
    pub passing: Option<bool>,
    /// As written (`80%`).
    pub coverage: Option<String>,
}

/// `metrics` as the registry writes them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeclaredMetrics {
    pub features_complete: Option<u32>,
    pub features_in_progress: Option<u32>,
    pub features_planned: Option<u32>,
    pub completion_percentage: Option<f64>,
}

/// The registry's metrics, computed from the feature list. `features_planned` is every feature
/// not started (blocked ones included); failed features are in none of the three.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureMetrics {
    pub features_complete: u32,
    pub features_in_progress: u32,
    pub features_planned: u32,
    /// `features_complete / total × 100` to one decimal, 0 for no features.
    pub completion_percentage: f64,
}

impl FeaturesFile {
    /// Every feature's status counted, the ones not kept included.
    pub fn counts(&self) -> StatusCounts {
        StatusCounts::of(self.features.iter().map(|feature| feature.status)).merged(self.omitted)
    }

    pub fn metrics(&self) -> FeatureMetrics {
        let counts = self.counts();
        FeatureMetrics {
            features_complete: counts.completed,
            features_in_progress: counts.in_progress,
            features_planned: counts.pending,
            completion_percentage: counts.completion_percentage(),
        }
    }

    /// Where the file's own `metrics` disagree with its list, one sentence each. A declared
    /// percentage agrees when it is within one point of the computed one (the registry rounds).
    pub fn metric_disagreements(&self) -> Vec<String> {
        let Some(declared) = &self.declared_metrics else {
            return Vec::new();
        };
        let computed = self.metrics();
        let mut found = Vec::new();
        for (label, said, counted) in [
            (
                "complete",
                declared.features_complete,
                computed.features_complete,
            ),
            (
                "in progress",
                declared.features_in_progress,
                computed.features_in_progress,
            ),
            (
                "planned",
                declared.features_planned,
                computed.features_planned,
            ),
        ] {
            if let Some(said) = said.filter(|said| *said != counted) {
                found.push(format!(
                    "features.json metrics say {said} features {label}, its list has {counted}"
                ));
            }
        }
        if let Some(said) = declared.completion_percentage {
            if (said - computed.completion_percentage).abs() >= 1.0 {
                found.push(format!(
                    "features.json metrics say {said}% complete, its list makes {:.1}%",
                    computed.completion_percentage
                ));
            }
        }
        found
    }
}

/// Parses `features.json`. Never fails: a file that is not a JSON object is an empty registry
/// and a warning; fields of the wrong type are warnings; the metrics' disagreements with the
/// list are warnings too.
pub fn parse_features(bytes: &[u8]) -> (FeaturesFile, Vec<String>) {
    let mut warnings = Warnings::default();
    let file = match parse_object(bytes, "features.json", &mut warnings) {
        Some(object) => features_from(&object, &mut warnings),
        None => FeaturesFile::default(),
    };
    for disagreement in file.metric_disagreements() {
        warnings.push(disagreement);
    }
    (file, warnings.finish())
}

fn features_from(object: &Map<String, Value>, warnings: &mut Warnings) -> FeaturesFile {
    let mut fields = Fields::new(object, "features.json".to_owned(), warnings);
    let project = fields.text("project");
    let version = fields.text("version");
    let status = fields.text("status");
    let last_updated = fields.text("last_updated");
    let description = fields.text("description");
    let items = fields.array("features");
    let metrics = fields.object("metrics");
    let declared_metrics = metrics.map(|object| {
        let mut fields = Fields::new(object, "features.json metrics".to_owned(), warnings);
        DeclaredMetrics {
            features_complete: fields.whole("features_complete"),
            features_in_progress: fields.whole("features_in_progress"),
            features_planned: fields.whole("features_planned"),
            completion_percentage: fields.percent("completion_percentage"),
        }
    });
    let mut omitted = StatusCounts::default();
    let features = capped(
        items,
        |index, item| feature(item, index, warnings),
        |feature| omitted.add(feature.status),
    );
    FeaturesFile {
        project,
        version,
        status,
        last_updated,
        description,
        features: features.kept,
        omitted,
        declared_metrics,
    }
}

fn feature(item: &Value, index: usize, warnings: &mut Warnings) -> Option<Feature> {
    let Some(object) = item.as_object() else {
        warnings.push(format!(
            "features.json: feature {index} is not an object, skipped"
        ));
        return None;
    };
    let mut fields = Fields::new(object, format!("features.json feature {index}"), warnings);
    let id = fields.text_or_empty("id");
    let name = fields.text_or_empty("name");
    let description = fields.text("description");
    let priority = fields.text("priority");
    let status = fields.status("status");
    let progress = fields.percent("progress");
    let components = fields.text_list("components").kept;
    let tests = fields.object("tests");
    let tests = tests.map(|object| {
        let mut fields = Fields::new(
            object,
            format!("features.json feature {index} tests"),
            warnings,
        );
        FeatureTests {
            unit: fields.whole("unit"),
            integration: fields.whole("integration"),
            e2e: fields.whole("e2e"),
            passing: fields.flag("passing"),
            coverage: fields.text("coverage"),
        }
    });
    Some(Feature {
        id,
        name,
        description,
        priority,
        status,
        progress,
        components,
        tests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DISAGREE: &str =
        include_str!("../../../tests/fixtures/buildrunner/real/features-metrics-disagree.json");
    const EXAMPLE: &str =
        include_str!("../../../tests/fixtures/buildrunner/real/features-example.json");
    const EMPTY: &str =
        include_str!("../../../tests/fixtures/buildrunner/real/features-empty.json");
    const SEED: &str = include_str!("../../../tests/fixtures/buildrunner/seed/features.json");

    #[test]
    fn a_real_file_whose_metrics_disagree_with_its_list_warns_once() {
        let (file, warnings) = parse_features(DISAGREE.as_bytes());
        assert_eq!(
            warnings,
            ["features.json metrics say 16 features complete, its list has 17"]
        );
        assert_eq!(file.project.as_deref(), Some("BuildRunner3"));
        assert_eq!(file.version.as_deref(), Some("3.2.0-alpha.1"));
        assert_eq!(file.status.as_deref(), Some("active"));
        assert_eq!(file.features.len(), 17);
        assert!(file
            .features
            .iter()
            .all(|f| f.status == WorkStatus::Completed));
        let metrics = file.metrics();
        assert_eq!(metrics.features_complete, 17);
        assert_eq!(metrics.completion_percentage, 100.0);
        let first = &file.features[0];
        assert_eq!(first.id, "feat-001");
        assert_eq!(first.priority.as_deref(), Some("high"));
        assert_eq!(first.progress, Some(100.0));
        assert!(!first.components.is_empty());
        let tests = first.tests.clone().unwrap_or_default();
        assert_eq!(
            (tests.unit, tests.integration, tests.passing),
            (Some(24), Some(8), Some(true))
        );
        let ninth = file.features[8].tests.clone().unwrap_or_default();
        assert_eq!(
            (ninth.e2e, ninth.coverage.as_deref()),
            (Some(48), Some("80%"))
        );
    }

    #[test]
    fn real_files_that_agree_have_no_warnings() {
        let (file, warnings) = parse_features(EXAMPLE.as_bytes());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(file.features.len(), 6);
        let metrics = file.metrics();
        assert_eq!(
            (
                metrics.features_complete,
                metrics.features_in_progress,
                metrics.features_planned
            ),
            (2, 1, 3)
        );
        assert_eq!(metrics.completion_percentage, 33.3);
        assert_eq!(file.features[0].priority.as_deref(), Some("critical"));
        assert!(file.description.is_some());

        let (file, warnings) = parse_features(EMPTY.as_bytes());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(file.features.is_empty());
        assert_eq!(
            file.last_updated.as_deref(),
            Some("2026-04-20T20:06:20.436398Z")
        );
        assert_eq!(file.metrics(), FeatureMetrics::default());

        let (file, warnings) = parse_features(SEED.as_bytes());
        assert!(warnings.is_empty(), "{warnings:?}");
        let tests = file.features[0].tests.clone().unwrap_or_default();
        assert_eq!(tests.integration, Some(3));
        assert_eq!(file.features[0].components, ["api/auth.py"]);
    }

    #[test]
    fn every_disagreeing_metric_is_named() {
        let json = r#"{"features": [
            {"id": "a", "status": "complete"},
            {"id": "b", "status": "in_progress"},
            {"id": "c", "status": "blocked"},
            {"id": "d", "status": "failed"}
        ], "metrics": {"features_complete": 2, "features_in_progress": 1,
                       "features_planned": "0", "completion_percentage": 50}}"#;
        let (file, warnings) = parse_features(json.as_bytes());
        assert_eq!(
            warnings,
            [
                "features.json metrics say 2 features complete, its list has 1",
                "features.json metrics say 0 features planned, its list has 1",
                "features.json metrics say 50% complete, its list makes 25.0%",
            ]
        );
        assert_eq!(file.counts().failed, 1);
        // Rounded percentages agree.
        let json = r#"{"features": [{"status": "complete"}, {"status": "planned"},
            {"status": "planned"}], "metrics": {"completion_percentage": 33}}"#;
        assert!(parse_features(json.as_bytes()).1.is_empty());
    }

    #[test]
    fn junk_is_a_warning_and_an_empty_registry() {
        for bytes in [b"not json".as_slice(), b"[]", b"", b"\xFF\xFE"] {
            let (file, warnings) = parse_features(bytes);
            assert_eq!(file, FeaturesFile::default());
            assert!(!warnings.is_empty());
        }
        let json = r#"{"project": ["x"], "features": [1, {"status": "someday", "tests": 5,
            "components": "one.py"}], "metrics": "none"}"#;
        let (file, warnings) = parse_features(json.as_bytes());
        assert_eq!(file.project, None);
        assert_eq!(file.features.len(), 1);
        assert_eq!(file.features[0].status, WorkStatus::NotStarted);
        assert_eq!(file.features[0].components, ["one.py"]);
        assert_eq!(file.declared_metrics, None);
        assert_eq!(warnings.len(), 5, "{warnings:#?}");
    }

    #[test]
    fn huge_registries_count_every_feature() {
        let features: Vec<&str> = std::iter::repeat_n(r#"{"status": "complete"}"#, 1100)
            .chain(std::iter::repeat_n(r#"{"status": "planned"}"#, 100))
            .collect();
        let json = format!(r#"{{"features": [{}]}}"#, features.join(","));
        let (file, warnings) = parse_features(json.as_bytes());
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(file.features.len(), super::super::MAX_LIST_ITEMS);
        let counts = file.counts();
        assert_eq!(
            (counts.total, counts.completed, counts.pending),
            (1200, 1100, 100)
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let (file, _) = parse_features(&bytes);
            let metrics = file.metrics();
            prop_assert!((0.0..=100.0).contains(&metrics.completion_percentage));
        }

        #[test]
        fn computed_metrics_never_disagree_with_themselves(
            statuses in proptest::collection::vec(
                prop::sample::select(vec!["planned", "in_progress", "complete", "failed", "x"]),
                0..40,
            ),
        ) {
            let features: Vec<String> =
                statuses.iter().map(|s| format!(r#"{{"status": "{s}"}}"#)).collect();
            let bare = format!(r#"{{"features": [{}]}}"#, features.join(","));
            let metrics = parse_features(bare.as_bytes()).0.metrics();
            let declared = format!(
                r#"{{"features": [{}], "metrics": {}}}"#,
                features.join(","),
                serde_json::to_string(&metrics).unwrap_or_default()
            );
            let unknown = statuses.iter().filter(|s| **s == "x").count();
            prop_assert_eq!(parse_features(declared.as_bytes()).1.len(), unknown);
        }
    }
}
