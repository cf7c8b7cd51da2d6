//! `.ralph/iterations.jsonl`: one JSON object per finished iteration, appended by the loop script.
//!
//! Loop scripts differ in how they spell values, so every field is read leniently: numbers may be
//! strings (`"62.698"`, `"1,234.5"`), lists may be one comma-separated string, and a field of the
//! wrong shape becomes "unknown" instead of losing the whole row. Only `iteration` is required.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest `test_output` kept, in bytes.
pub const MAX_TEST_OUTPUT_BYTES: usize = 64 * 1024;
/// Longest other string kept (ids, commit, messages, errors, timestamps), in bytes.
pub const MAX_TEXT_BYTES: usize = 4 * 1024;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IterationRecord {
    pub iteration: u32,
    /// Iteration limit of the run; 0 = unlimited (also when missing or unreadable).
    pub max: u32,
    pub start: Option<String>,
    pub end: Option<String>,
    /// Finite and non-negative when present.
    pub duration_seconds: Option<f64>,
    /// Thousands of tokens; finite and non-negative when present.
    pub tokens: Option<f64>,
    pub status: IterationStatus,
    /// Task ids as written (trimmed, empty ones dropped); compare them with
    /// [`crate::contract::ralph::plan::normalize_task_id`].
    pub tasks_completed: Vec<String>,
    pub commit: Option<String>,
    pub commit_message: Option<String>,
    pub test_passed: Option<bool>,
    pub test_output: Option<String>,
    pub errors: Vec<String>,
    /// 1-based run the row belongs to (see [`RunTracker`]); 0 until assigned.
    pub run: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IterationStatus {
    Success,
    Error,
    /// Any other text, as written. A missing, null or empty status is `Other("")`: the row still
    /// counts, it is just neither a success nor an error.
    Other(String),
}

impl IterationStatus {
    pub fn is_success(&self) -> bool {
        matches!(self, IterationStatus::Success)
    }

    pub fn is_error(&self) -> bool {
        matches!(self, IterationStatus::Error)
    }

    /// `success` and `error` are matched case-insensitively, ignoring surrounding whitespace.
    fn parse(text: &str) -> Self {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("success") {
            IterationStatus::Success
        } else if trimmed.eq_ignore_ascii_case("error") {
            IterationStatus::Error
        } else {
            IterationStatus::Other(cap(text, MAX_TEXT_BYTES))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
// Records are the common case and move straight into a Vec; a Box would add an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum LineOutcome {
    Record(IterationRecord),
    /// Empty or whitespace only.
    Blank,
    Skipped(SkipReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    InvalidUtf8,
    /// Not valid JSON; this includes a truncated line (a write in progress).
    NotJson,
    NotAnObject,
    /// No `iteration` field, or `null`.
    MissingIteration,
    /// `iteration` is not a whole number in `0..=u32::MAX` (as a number or a numeric string).
    BadIteration,
}

/// Parses one line, given without its `\n` (a trailing `\r` and a leading byte-order mark are
/// tolerated). The record's `run` is 0: runs depend on the lines before, see [`RunTracker`].
pub fn parse_line(line: &[u8]) -> LineOutcome {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let text = match std::str::from_utf8(line) {
        Ok(text) => text,
        // A sequence cut off at the very end is a write in progress, like any other truncation.
        Err(error) if error.error_len().is_none() => {
            return LineOutcome::Skipped(SkipReason::NotJson)
        }
        Err(_) => return LineOutcome::Skipped(SkipReason::InvalidUtf8),
    };
    if text.trim().is_empty() {
        return LineOutcome::Blank;
    }
    let object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return LineOutcome::Skipped(SkipReason::NotAnObject),
        Err(_) => return LineOutcome::Skipped(SkipReason::NotJson),
    };
    match record_from_object(&object) {
        Ok(record) => LineOutcome::Record(record),
        Err(reason) => LineOutcome::Skipped(reason),
    }
}

fn record_from_object(object: &Map<String, Value>) -> Result<IterationRecord, SkipReason> {
    let iteration = match object.get("iteration") {
        None | Some(Value::Null) => return Err(SkipReason::MissingIteration),
        Some(value) => as_u32(value).ok_or(SkipReason::BadIteration)?,
    };
    let field = |name: &str| object.get(name).unwrap_or(&Value::Null);
    Ok(IterationRecord {
        iteration,
        max: as_u32(field("max")).unwrap_or(0),
        start: as_text(field("start"), MAX_TEXT_BYTES),
        end: as_text(field("end"), MAX_TEXT_BYTES),
        duration_seconds: as_amount(field("duration_seconds")),
        tokens: as_amount(field("tokens")),
        status: match field("status") {
            Value::Null => IterationStatus::Other(String::new()),
            Value::String(text) => IterationStatus::parse(text),
            other => IterationStatus::parse(&other.to_string()),
        },
        tasks_completed: as_ids(field("tasks_completed")),
        commit: as_text(field("commit"), MAX_TEXT_BYTES),
        commit_message: as_text(field("commit_message"), MAX_TEXT_BYTES),
        test_passed: as_bool(field("test_passed")),
        test_output: as_text(field("test_output"), MAX_TEST_OUTPUT_BYTES),
        errors: as_errors(field("errors")),
        run: 0,
    })
}

/// A finite number from a JSON number or a numeric string; `,` is read as a thousands separator.
fn as_number(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(number) => number.as_f64()?,
        Value::String(text) => {
            let cleaned: String = text.trim().chars().filter(|&c| c != ',').collect();
            // `f64::from_str` also takes "inf" and "NaN"; only plain decimal notation is a number.
            if cleaned.is_empty()
                || !cleaned
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
            {
                return None;
            }
            cleaned.parse::<f64>().ok()?
        }
        _ => return None,
    };
    number.is_finite().then_some(number)
}

/// Durations and token counts: a negative amount is a broken value, not a refund.
fn as_amount(value: &Value) -> Option<f64> {
    as_number(value).filter(|&number| number >= 0.0)
}

/// A whole number in `0..=u32::MAX` (`5`, `5.0`, `"5"`).
fn as_u32(value: &Value) -> Option<u32> {
    if let Some(whole) = value.as_u64() {
        return u32::try_from(whole).ok();
    }
    let number = as_number(value)?;
    (number.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&number))
        .then_some(number as u32)
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) if text.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(text) if text.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Text fields: strings as written, numbers and booleans as their JSON text; empty, null and
/// structured values are `None`.
fn as_text(value: &Value, limit: usize) -> Option<String> {
    let text = match value {
        Value::String(text) => cap(text, limit),
        Value::Number(_) | Value::Bool(_) => cap(&value.to_string(), limit),
        _ => return None,
    };
    (!text.trim().is_empty()).then_some(text)
}

/// Task ids: an array of strings or numbers, or one comma-separated string. A single number is one
/// id (`3` is task 3, not a count).
fn as_ids(value: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    let mut push = |item: &Value| match item {
        Value::String(text) => ids.extend(
            text.split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(|id| cap(id, MAX_TEXT_BYTES)),
        ),
        Value::Number(number) => ids.push(number.to_string()),
        _ => {}
    };
    match value {
        Value::Array(items) => items.iter().for_each(&mut push),
        other => push(other),
    }
    ids
}

/// Errors: a list whose entries may be strings, numbers or objects (kept as compact JSON), or one
/// such value. Null and empty entries are no error.
fn as_errors(value: &Value) -> Vec<String> {
    let entry = |item: &Value| match item {
        Value::Null => None,
        Value::String(text) => (!text.trim().is_empty()).then(|| cap(text, MAX_TEXT_BYTES)),
        other => Some(cap(&other.to_string(), MAX_TEXT_BYTES)),
    };
    match value {
        Value::Array(items) => items.iter().filter_map(entry).collect(),
        other => entry(other).into_iter().collect(),
    }
}

/// At most `limit` bytes of `text`, cut on a char boundary.
fn cap(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

/// Numbers runs of iterations: older loop scripts restart at 1, so an iteration number that is not
/// greater than the previous one starts a new run. Runs count from 1. Feed it the iteration numbers
/// of one source in order (JSONL rows, or log headers, with a tracker each) so that iteration N of
/// run 2 is never matched with iteration N of run 1.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTracker {
    last: Option<u32>,
    run: u32,
}

impl RunTracker {
    pub fn assign(&mut self, iteration: u32) -> u32 {
        match self.last {
            Some(last) if iteration > last => {}
            _ => self.run = self.run.saturating_add(1),
        }
        self.last = Some(iteration);
        self.run
    }
}

/// Skipped lines by reason (blank lines are not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipCounts {
    pub invalid_utf8: u32,
    pub not_json: u32,
    pub not_an_object: u32,
    pub missing_iteration: u32,
    pub bad_iteration: u32,
}

impl SkipCounts {
    pub fn add(&mut self, reason: SkipReason) {
        let slot = match reason {
            SkipReason::InvalidUtf8 => &mut self.invalid_utf8,
            SkipReason::NotJson => &mut self.not_json,
            SkipReason::NotAnObject => &mut self.not_an_object,
            SkipReason::MissingIteration => &mut self.missing_iteration,
            SkipReason::BadIteration => &mut self.bad_iteration,
        };
        *slot = slot.saturating_add(1);
    }

    pub fn total(&self) -> u64 {
        [
            self.invalid_utf8,
            self.not_json,
            self.not_an_object,
            self.missing_iteration,
            self.bad_iteration,
        ]
        .iter()
        .map(|&count| u64::from(count))
        .sum()
    }
}

/// Parses a whole file: lines split on `\n` (a `\r` before it is dropped), runs assigned in order.
/// A last line without `\n` is kept when it is a complete record and otherwise ignored without
/// being counted, because it is most likely a write still in progress.
pub fn parse_all(text: &[u8]) -> (Vec<IterationRecord>, SkipCounts) {
    let mut records = Vec::new();
    let mut skips = SkipCounts::default();
    let mut runs = RunTracker::default();
    let mut lines = text.split(|&byte| byte == b'\n').peekable();
    while let Some(line) = lines.next() {
        let is_last = lines.peek().is_none();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match parse_line(line) {
            LineOutcome::Record(mut record) => {
                record.run = runs.assign(record.iteration);
                records.push(record);
            }
            LineOutcome::Blank => {}
            LineOutcome::Skipped(_) if is_last => {}
            LineOutcome::Skipped(reason) => skips.add(reason),
        }
    }
    (records, skips)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A realistic file, shared with the stats tests. Rows 1-4 are run 1, then the script was
    /// restarted and counts from 1 again.
    pub(crate) const FIXTURE: &[u8] = b"{\"iteration\":1,\"max\":10,\"start\":\"2024-01-15T10:00:00Z\",\"end\":\"2024-01-15T10:10:00Z\",\"duration_seconds\":600,\"tokens\":50.5,\"status\":\"success\",\"tasks_completed\":[\"1.1\"],\"commit\":\"abc123\",\"commit_message\":\"feat: set up\",\"test_passed\":true,\"test_output\":\"ok\",\"errors\":[]}
{\"iteration\":2,\"max\":10,\"start\":\"2024-01-15T10:10:00Z\",\"end\":\"2024-01-15T10:25:00Z\",\"duration_seconds\":\"900\",\"tokens\":\"62.698\",\"status\":\"success\",\"tasks_completed\":\"1.2, 1.3\",\"commit\":\"def456\",\"test_passed\":\"true\",\"errors\":null}

{\"iteration\":3,\"max\":10,\"start\":\"2024-01-15T10:25:00Z\",\"end\":\"2024-01-15T10:30:00Z\",\"duration_seconds\":300,\"tokens\":\"1,234.5\",\"status\":\"error\",\"tasks_completed\":[],\"test_passed\":null,\"errors\":[\"agent exited with code 1\",{\"code\":2}]}
{\"iteration\":4,\"max\":10,\"start\":\"2024-01-15T10:30:00Z\",\"end\":\"2024-01-15T10:40:00Z\",\"duration_seconds\":600,\"tokens\":null,\"status\":\"success\",\"tasks_completed\":[],\"test_passed\":false,\"test_output\":\"1 failed\",\"errors\":[]}
not json at all
[1,2,3]
{\"max\":10,\"status\":\"success\"}
{\"iteration\":\"four\",\"status\":\"success\"}
{\"iteration\":1,\"max\":0,\"start\":\"2024-01-15 11:00:00\",\"end\":\"2024-01-15 11:20:00\",\"tokens\":40,\"status\":\"success\",\"tasks_completed\":[2.1, \"Task 9\"],\"test_passed\":false,\"errors\":[]}\r
{\"iteration\":2,\"max\":0,\"start\":\"2024-01-15T11:20:00+00:00\",\"end\":\"2024-01-15T11:30:00+00:00\",\"duration_seconds\":600,\"tokens\":30,\"status\":\"timeout\",\"tasks_completed\":[],\"errors\":\"\"}
\xff\xfe{\"iteration\":3}
{\"iteration\":3,\"max\":0,\"start\":\"2024-01-15T11:30:00Z\",\"end\":\"2024-01-15T11:45:00Z\",\"duration_seconds\":900,\"tokens\":45,\"status\":\"SUCCESS\",\"tasks_completed\":\"1.1,2.2\",\"test_passed\":true,\"errors\":[],\"extra\":{\"ignored\":true}}
{\"iteration\":4,\"max\":0,\"start\":\"2024-01-15T11:45:00Z\",\"dur";

    fn records() -> (Vec<IterationRecord>, SkipCounts) {
        parse_all(FIXTURE)
    }

    #[test]
    fn fixture_skips() {
        let (records, skips) = records();
        assert_eq!(records.len(), 7);
        assert_eq!(
            skips,
            SkipCounts {
                invalid_utf8: 1,
                not_json: 1,
                not_an_object: 1,
                missing_iteration: 1,
                bad_iteration: 1,
            }
        );
        assert_eq!(skips.total(), 5, "the truncated last line is not counted");
    }

    #[test]
    fn fixture_first_row_every_field() {
        let (records, _) = records();
        assert_eq!(
            records[0],
            IterationRecord {
                iteration: 1,
                max: 10,
                start: Some("2024-01-15T10:00:00Z".into()),
                end: Some("2024-01-15T10:10:00Z".into()),
                duration_seconds: Some(600.0),
                tokens: Some(50.5),
                status: IterationStatus::Success,
                tasks_completed: vec!["1.1".into()],
                commit: Some("abc123".into()),
                commit_message: Some("feat: set up".into()),
                test_passed: Some(true),
                test_output: Some("ok".into()),
                errors: vec![],
                run: 1,
            }
        );
    }

    #[test]
    fn fixture_string_numbers_and_lists() {
        let (records, _) = records();
        let second = &records[1];
        assert_eq!(second.duration_seconds, Some(900.0));
        assert_eq!(second.tokens, Some(62.698));
        assert_eq!(second.tasks_completed, ["1.2", "1.3"]);
        assert_eq!(second.test_passed, Some(true));
        assert_eq!(second.errors, Vec::<String>::new());
        assert_eq!(second.commit_message, None);
        assert_eq!(second.test_output, None);

        let third = &records[2];
        assert_eq!(third.tokens, Some(1234.5));
        assert_eq!(third.status, IterationStatus::Error);
        assert_eq!(third.test_passed, None);
        assert_eq!(third.errors, ["agent exited with code 1", "{\"code\":2}"]);

        let fourth = &records[3];
        assert_eq!(fourth.tokens, None);
        assert_eq!(fourth.test_passed, Some(false));
        assert_eq!(fourth.test_output.as_deref(), Some("1 failed"));
    }

    #[test]
    fn fixture_restart_runs_and_crlf() {
        let (records, _) = records();
        let keys: Vec<(u32, u32)> = records.iter().map(|r| (r.run, r.iteration)).collect();
        assert_eq!(
            keys,
            [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (2, 3)]
        );
        let restarted = &records[4];
        assert_eq!(restarted.max, 0);
        assert_eq!(restarted.start.as_deref(), Some("2024-01-15 11:00:00"));
        assert_eq!(restarted.duration_seconds, None);
        assert_eq!(restarted.tasks_completed, ["2.1", "Task 9"]);
        assert_eq!(records[5].status, IterationStatus::Other("timeout".into()));
        assert_eq!(
            records[5].errors,
            Vec::<String>::new(),
            "an empty string is no error"
        );
        assert_eq!(records[6].status, IterationStatus::Success);
        assert_eq!(records[6].tasks_completed, ["1.1", "2.2"]);
    }

    #[test]
    fn line_outcomes() {
        assert_eq!(parse_line(b""), LineOutcome::Blank);
        assert_eq!(parse_line(b" \t\r"), LineOutcome::Blank);
        assert_eq!(
            parse_line(b"\xff"),
            LineOutcome::Skipped(SkipReason::InvalidUtf8)
        );
        // "é" cut in half at the end: a torn write, not corruption.
        assert_eq!(
            parse_line(b"{\"iteration\":1,\"commit_message\":\"caf\xc3"),
            LineOutcome::Skipped(SkipReason::NotJson)
        );
        assert_eq!(
            parse_line(b"{\"iteration\":1"),
            LineOutcome::Skipped(SkipReason::NotJson)
        );
        assert_eq!(
            parse_line(b"\"text\""),
            LineOutcome::Skipped(SkipReason::NotAnObject)
        );
        assert_eq!(
            parse_line(b"{\"iteration\":null}"),
            LineOutcome::Skipped(SkipReason::MissingIteration)
        );
        for bad in [
            "-1",
            "1.5",
            "4294967296",
            "\"x\"",
            "true",
            "[1]",
            "\"NaN\"",
            "\"inf\"",
        ] {
            let line = format!("{{\"iteration\":{bad}}}");
            assert_eq!(
                parse_line(line.as_bytes()),
                LineOutcome::Skipped(SkipReason::BadIteration),
                "{bad}"
            );
        }
        for good in ["7", "7.0", "\"7\"", "\" 7 \"", "\"7e0\""] {
            let line = format!("{{\"iteration\":{good}}}");
            let LineOutcome::Record(record) = parse_line(line.as_bytes()) else {
                panic!("{good} should parse");
            };
            assert_eq!(record.iteration, 7, "{good}");
        }
    }

    #[test]
    fn minimal_row_defaults() {
        let LineOutcome::Record(record) = parse_line(b"\xEF\xBB\xBF{\"iteration\":4294967295}\r")
        else {
            panic!("minimal row should parse");
        };
        assert_eq!(
            record,
            IterationRecord {
                iteration: u32::MAX,
                max: 0,
                start: None,
                end: None,
                duration_seconds: None,
                tokens: None,
                status: IterationStatus::Other(String::new()),
                tasks_completed: vec![],
                commit: None,
                commit_message: None,
                test_passed: None,
                test_output: None,
                errors: vec![],
                run: 0,
            }
        );
    }

    #[test]
    fn lenient_field_shapes() {
        let line = br#"{"iteration":1,"max":"-3","duration_seconds":-5,"tokens":"1e400","status":7,
            "tasks_completed":3,"commit":1234567,"test_passed":"FALSE","errors":{"kind":"oom"}}"#;
        let LineOutcome::Record(record) = parse_line(&line[..]) else {
            panic!("row should parse");
        };
        assert_eq!(record.max, 0);
        assert_eq!(
            record.duration_seconds, None,
            "negative durations are dropped"
        );
        assert_eq!(record.tokens, None, "non-finite numbers are dropped");
        assert_eq!(record.status, IterationStatus::Other("7".into()));
        assert_eq!(record.tasks_completed, ["3"]);
        assert_eq!(record.commit.as_deref(), Some("1234567"));
        assert_eq!(record.test_passed, Some(false));
        assert_eq!(record.errors, ["{\"kind\":\"oom\"}"]);

        let line = br#"{"iteration":1,"tokens":"  ","test_passed":"maybe","errors":"boom","tasks_completed":[["1.1"],null," ,1.2,"]}"#;
        let LineOutcome::Record(record) = parse_line(&line[..]) else {
            panic!("row should parse");
        };
        assert_eq!(record.tokens, None);
        assert_eq!(record.test_passed, None);
        assert_eq!(record.errors, ["boom"]);
        assert_eq!(record.tasks_completed, ["1.2"]);
    }

    #[test]
    fn long_strings_are_capped_on_char_boundaries() {
        let output = "é".repeat(MAX_TEST_OUTPUT_BYTES); // two bytes each
        let message = format!("ab{}", "€".repeat(MAX_TEXT_BYTES)); // three bytes each
        let line = serde_json::json!({
            "iteration": 1,
            "test_output": output,
            "commit_message": message,
        })
        .to_string();
        let LineOutcome::Record(record) = parse_line(line.as_bytes()) else {
            panic!("row should parse");
        };
        let kept_output = record.test_output.unwrap_or_default();
        assert_eq!(kept_output.len(), MAX_TEST_OUTPUT_BYTES);
        assert!(output.starts_with(&kept_output));
        let kept_message = record.commit_message.unwrap_or_default();
        assert_eq!(
            kept_message.len(),
            MAX_TEXT_BYTES - 2,
            "2 + 3k bytes: 4094, as 4097 would split a char"
        );
        assert!(message.starts_with(&kept_message));
    }

    #[test]
    fn run_tracker() {
        let mut runs = RunTracker::default();
        let assigned: Vec<u32> = [1, 2, 3, 3, 1, 5, 9, 2]
            .into_iter()
            .map(|iteration| runs.assign(iteration))
            .collect();
        assert_eq!(assigned, [1, 1, 1, 2, 3, 3, 3, 4]);
        let mut first = RunTracker::default();
        assert_eq!(
            first.assign(0),
            1,
            "the first iteration opens run 1 whatever its number"
        );
    }

    #[test]
    fn final_line_handling() {
        let complete = b"{\"iteration\":1}\n{\"iteration\":2}";
        let (records, skips) = parse_all(complete);
        assert_eq!(
            records.len(),
            2,
            "a complete last object counts without its newline"
        );
        assert_eq!(skips.total(), 0);
        let (records, skips) = parse_all(b"{\"iteration\":1}\nnot json\n");
        assert_eq!(records.len(), 1);
        assert_eq!(skips.not_json, 1, "a finished bad line is counted");
        let (records, skips) = parse_all(b"");
        assert!(records.is_empty());
        assert_eq!(skips.total(), 0);
    }

    fn mutate(line: &[u8], kind: u8, position: usize, byte: u8) -> Vec<u8> {
        let mut bytes = line.to_vec();
        let at = if bytes.is_empty() {
            0
        } else {
            position % bytes.len()
        };
        match kind % 4 {
            0 => bytes.truncate(at),
            1 => {
                if let Some(slot) = bytes.get_mut(at) {
                    *slot = byte;
                }
            }
            2 => bytes.insert(at, byte),
            _ => {
                if at < bytes.len() {
                    bytes.remove(at);
                }
            }
        }
        bytes
    }

    fn check_record(record: &IterationRecord) -> Result<(), TestCaseError> {
        for amount in [record.duration_seconds, record.tokens]
            .into_iter()
            .flatten()
        {
            prop_assert!(amount.is_finite() && amount >= 0.0);
        }
        let texts = [
            &record.start,
            &record.end,
            &record.commit,
            &record.commit_message,
        ];
        for text in texts.into_iter().flatten() {
            prop_assert!(text.len() <= MAX_TEXT_BYTES && !text.trim().is_empty());
        }
        for text in record.tasks_completed.iter().chain(&record.errors) {
            prop_assert!(text.len() <= MAX_TEXT_BYTES && !text.trim().is_empty());
        }
        if let Some(output) = &record.test_output {
            prop_assert!(output.len() <= MAX_TEST_OUTPUT_BYTES);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let LineOutcome::Record(record) = parse_line(&bytes) {
                check_record(&record)?;
                prop_assert_eq!(record.run, 0);
            }
            let (records, _) = parse_all(&bytes);
            for record in &records {
                check_record(record)?;
            }
        }

        #[test]
        fn mutated_fixture_lines_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<usize>(), any::<u8>()), 1..6),
        ) {
            let mut lines: Vec<Vec<u8>> = FIXTURE.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            for (line, kind, position, byte) in edits {
                let index = line % lines.len();
                if let Some(slot) = lines.get_mut(index) {
                    *slot = mutate(slot, kind, position, byte);
                }
            }
            for line in &lines {
                if let LineOutcome::Record(record) = parse_line(line) {
                    check_record(&record)?;
                }
            }
            let (records, _) = parse_all(&lines.join(&b'\n'));
            for record in &records {
                check_record(record)?;
            }
        }

        #[test]
        fn every_line_is_accounted_for(
            lines in proptest::collection::vec(
                prop_oneof![
                    (0u32..6).prop_map(|i| format!("{{\"iteration\":{i},\"tokens\":\"1,0{i}\"}}")),
                    Just(String::new()),
                    Just("{\"iteration\":".to_owned()),
                    Just("[]".to_owned()),
                    Just("{}".to_owned()),
                    Just("{\"iteration\":-2}".to_owned()),
                ],
                0..30,
            ),
        ) {
            let text = lines.iter().map(|line| format!("{line}\n")).collect::<String>();
            let (records, skips) = parse_all(text.as_bytes());
            let blanks = lines.iter().filter(|line| line.is_empty()).count();
            prop_assert_eq!(records.len() as u64 + skips.total() + blanks as u64, lines.len() as u64);
            // Runs start at 1, never skip, and rise exactly where the number does not.
            let mut previous: Option<&IterationRecord> = None;
            for record in &records {
                let expected = match previous {
                    None => 1,
                    Some(p) if record.iteration > p.iteration => p.run,
                    Some(p) => p.run + 1,
                };
                prop_assert_eq!(record.run, expected);
                previous = Some(record);
            }
        }

        #[test]
        fn cap_keeps_a_valid_prefix(text in "\\PC{0,64}", limit in 0usize..80) {
            let capped = cap(&text, limit);
            prop_assert!(capped.len() <= limit);
            prop_assert!(text.starts_with(&capped));
            prop_assert!(capped.len() + 4 > limit || capped.len() == text.len());
        }
    }
}
