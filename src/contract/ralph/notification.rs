//! `.ralph/pending-notification.txt`: the one pending notification raised by the agent or the loop
//! (last writer wins). Accepted forms, all reduced to one [`Notification`] summary:
//! - a JSON object with `event_id`, `timestamp`, `prefix`, `kind`, `severity`, `message`,
//!   `details`, `iteration`, `max_iterations`, `cli`, `log_tail` (base64) and `status`, any of
//!   them missing, numbers possibly written as strings;
//! - a JSON object whose `message` carries the prefix (`"DONE: all tasks complete"`);
//! - plain text `PREFIX: message`, the following lines being the details;
//! - anything else: the whole text is the message of an [`NotificationKind::Other`] notification.
//!
//! Pure functions over bytes: no I/O, compiled for the server and the WASM client alike.

use crate::contract::lenient::{whole_u32, Whole};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest message kept, in bytes (cut on a char boundary).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024;
/// Longest details text kept, in bytes (cut on a char boundary).
pub const MAX_DETAILS_BYTES: usize = 16 * 1024;
/// Cap for the short fields (`timestamp`, `cli`, `status`): they are labels, not documents.
const MAX_SHORT_FIELD_BYTES: usize = 256;
/// Longer `event_id`s are hashed so ids stay small enough for URLs and wire frames.
const MAX_EVENT_ID_BYTES: usize = 128;
/// Longest token read as a prefix; also the cap of an `Other` prefix taken from JSON.
const MAX_PREFIX_BYTES: usize = 64;
/// Offending values quoted in warnings are cut to this many bytes.
const MAX_QUOTED_BYTES: usize = 60;

/// Summary of the pending notification. It never carries the `log_tail` itself (it can be large);
/// [`log_tail`] decodes it on demand for the detail view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// `event_id` when the writer gave one, else a hash of the content (see [`parse_notification`]).
    pub id: String,
    /// As written (not validated as ISO-8601); `None` when missing or an unexpanded `$(...)`.
    pub timestamp: Option<String>,
    pub kind: NotificationKind,
    pub severity: Severity,
    pub message: String,
    pub details: Option<String>,
    pub iteration: Option<u32>,
    /// As written: 0 means unlimited.
    pub max_iterations: Option<u32>,
    pub cli: Option<String>,
    pub status: Option<String>,
    /// The file carries a non-empty, decodable `log_tail`.
    pub has_log_tail: bool,
    /// What was odd about the file and how it was read (shown to the operator, never fatal).
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    Error,
    Blocked,
    Decision,
    Question,
    Progress,
    Done,
    PlanningComplete,
    /// Raised by loopwatch itself (a stuck or struggling loop), never read from a file.
    Alert(super::alerts::AlertKind),
    /// An unknown prefix, upper-cased; empty when the notification had no prefix at all.
    Other(String),
}

impl NotificationKind {
    /// The known kind for a prefix or `kind` value: case-insensitive, `-` or a space may stand for
    /// `_`, and one trailing `:` is ignored. `None` for anything else.
    pub fn from_prefix(value: &str) -> Option<Self> {
        let value = value.trim();
        let value = value.strip_suffix(':').unwrap_or(value).trim();
        let normalized: String = value
            .chars()
            .map(|c| match c {
                '-' | ' ' => '_',
                c => c.to_ascii_uppercase(),
            })
            .collect();
        Some(match normalized.as_str() {
            "ERROR" => Self::Error,
            "BLOCKED" => Self::Blocked,
            "DECISION" => Self::Decision,
            "QUESTION" => Self::Question,
            "PROGRESS" => Self::Progress,
            "DONE" => Self::Done,
            "PLANNING_COMPLETE" => Self::PlanningComplete,
            _ => return None,
        })
    }

    /// The prefix as the loop writes it (`"DONE"`, `"PLANNING_COMPLETE"`, or the unknown one).
    pub fn prefix(&self) -> &str {
        match self {
            Self::Error => "ERROR",
            Self::Blocked => "BLOCKED",
            Self::Decision => "DECISION",
            Self::Question => "QUESTION",
            Self::Progress => "PROGRESS",
            Self::Done => "DONE",
            Self::PlanningComplete => "PLANNING_COMPLETE",
            Self::Alert(_) => "ALERT",
            Self::Other(prefix) => prefix,
        }
    }

    /// Kinds that deserve a toast: the operator should look now.
    pub fn toast_worthy(&self) -> bool {
        !matches!(self, Self::Question | Self::Progress | Self::Other(_))
    }

    /// The severity a notification of this kind has when the writer gives none (or an unknown one).
    pub fn default_severity(&self) -> Severity {
        match self {
            Self::Error | Self::Blocked => Severity::Error,
            Self::Done => Severity::Success,
            Self::Alert(_) => Severity::Warning,
            _ => Severity::Info,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Success,
    /// Never derived from a prefix; kept when a writer says so explicitly.
    Warning,
    Error,
}

impl Severity {
    /// A known severity name, case-insensitive (`warn` counts as `warning`).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "info" => Some(Self::Info),
            "success" => Some(Self::Success),
            "warning" | "warn" => Some(Self::Warning),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationError {
    /// The file holds nothing but whitespace: there is no pending notification.
    #[error("the notification file is empty")]
    Empty,
}

/// Reads the pending notification. Only an empty (all-whitespace) file is an error; anything else
/// gives a notification, with `warnings` saying what was odd.
///
/// The id is `event_id` when present (hashed when longer than 128 bytes), else 16 hex digits of
/// FNV-1a 64 over the kind's prefix, message, details, timestamp and iteration as parsed: the same
/// content gives the same id whatever its form (pretty or compact JSON, JSON or plain text).
pub fn parse_notification(bytes: &[u8]) -> Result<Notification, NotificationError> {
    let mut warnings = Vec::new();
    let text = decode_text(bytes, &mut warnings);
    let text = text.trim();
    if text.is_empty() {
        return Err(NotificationError::Empty);
    }
    let mut draft = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => from_json(&map, &mut warnings),
        Ok(_) => {
            warnings.push("the file is JSON but not an object; read as plain text".to_owned());
            from_text(text)
        }
        Err(err) => {
            // A `{` start means a JSON writer; most likely a write in progress.
            if text.starts_with('{') {
                warnings.push(format!(
                    "the file looks like JSON but does not parse ({err}); read as plain text"
                ));
            }
            from_text(text)
        }
    };
    draft.message = cap(draft.message, MAX_MESSAGE_BYTES, "message", &mut warnings);
    draft.details = draft
        .details
        .map(|details| cap(details, MAX_DETAILS_BYTES, "details", &mut warnings));
    let id = match draft.event_id.take() {
        Some(event_id) if event_id.len() <= MAX_EVENT_ID_BYTES => event_id,
        Some(event_id) => hex_id(&[Some(event_id.as_bytes())]),
        None => content_id(&draft),
    };
    let severity = draft
        .severity
        .unwrap_or_else(|| draft.kind.default_severity());
    Ok(Notification {
        id,
        timestamp: draft.timestamp,
        kind: draft.kind,
        severity,
        message: draft.message,
        details: draft.details,
        iteration: draft.iteration,
        max_iterations: draft.max_iterations,
        cli: draft.cli,
        status: draft.status,
        has_log_tail: draft.has_log_tail,
        warnings,
    })
}

/// The decoded `log_tail` of a JSON notification file, for the detail view: standard (or URL-safe)
/// base64, padding optional, whitespace ignored, decoded as lossy UTF-8 (ANSI codes left in).
/// `None` when the file has none, it is empty, or it is not valid base64.
pub fn log_tail(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_start_matches('\u{feff}').trim();
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let Some(Value::String(encoded)) = map.get("log_tail") else {
        return None;
    };
    let raw = decode_base64(encoded)?;
    if raw.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(&raw).into_owned())
}

/// The fields as read, before the caps and the id.
struct Draft {
    event_id: Option<String>,
    timestamp: Option<String>,
    kind: NotificationKind,
    severity: Option<Severity>,
    message: String,
    details: Option<String>,
    iteration: Option<u32>,
    max_iterations: Option<u32>,
    cli: Option<String>,
    status: Option<String>,
    has_log_tail: bool,
}

impl Draft {
    fn new(kind: NotificationKind, message: String, details: Option<String>) -> Self {
        Self {
            event_id: None,
            timestamp: None,
            kind,
            severity: None,
            message,
            details,
            iteration: None,
            max_iterations: None,
            cli: None,
            status: None,
            has_log_tail: false,
        }
    }
}

fn decode_text(bytes: &[u8], warnings: &mut Vec<String>) -> String {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => {
            warnings.push("the file is not valid UTF-8; invalid bytes were replaced".to_owned());
            String::from_utf8_lossy(bytes).into_owned()
        }
    };
    // CRLF normalised so a file saved on Windows has the same content (and id) as on Unix.
    text.trim_start_matches('\u{feff}').replace("\r\n", "\n")
}

/// Plain text: `PREFIX: message` on the first line, details after; no prefix = all message.
fn from_text(text: &str) -> Draft {
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let Some((kind, message)) = split_prefix(first, Prefixes::AlsoUnknownCapitals) else {
        return Draft::new(
            NotificationKind::Other(String::new()),
            text.to_owned(),
            None,
        );
    };
    let mut message = message.to_owned();
    let mut rest = rest.trim();
    if message.is_empty() {
        // `DONE:` alone on its line: the next line is the message.
        let (next, after) = rest.split_once('\n').unwrap_or((rest, ""));
        message = next.trim().to_owned();
        rest = after.trim();
    }
    let details = (!rest.is_empty()).then(|| rest.to_owned());
    Draft::new(kind, message, details)
}

/// Which `PREFIX:` tokens make a kind.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prefixes {
    /// Only the known ones (`DONE`, `ERROR`, ...).
    KnownOnly,
    /// Known ones, and any other token written in capitals.
    AlsoUnknownCapitals,
}

/// Splits `PREFIX: rest` off a line. Known prefixes match in any case; with [`Prefixes::AlsoUnknownCapitals`], an
/// unknown token counts only when written in capitals (`FOO:`), so prose such as `Note: ...` or
/// `https://...` stays a message. The colon must end the line or be followed by whitespace.
fn split_prefix(line: &str, prefixes: Prefixes) -> Option<(NotificationKind, &str)> {
    let (head, rest) = line.split_once(':')?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    let token = head.trim();
    if token.is_empty() || token.len() > MAX_PREFIX_BYTES {
        return None;
    }
    if let Some(kind) = NotificationKind::from_prefix(token) {
        return Some((kind, rest.trim()));
    }
    let capitals = token.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && token
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-');
    (prefixes == Prefixes::AlsoUnknownCapitals && capitals)
        .then(|| (NotificationKind::Other(token.to_owned()), rest.trim()))
}

fn from_json(map: &Map<String, Value>, warnings: &mut Vec<String>) -> Draft {
    let explicit_kind = text_field(map, "kind", warnings).and_then(|kind| {
        let known = NotificationKind::from_prefix(&kind);
        if known.is_none() {
            warnings.push(format!(
                "unknown kind `{}`; derived from the prefix",
                quote(&kind)
            ));
        }
        known
    });
    let prefix_kind = text_field(map, "prefix", warnings).and_then(|prefix| {
        let prefix = prefix.strip_suffix(':').unwrap_or(&prefix).trim();
        if prefix.is_empty() {
            return None;
        }
        Some(NotificationKind::from_prefix(prefix).unwrap_or_else(|| {
            let mut upper = prefix.to_uppercase();
            truncate_on_char(&mut upper, MAX_PREFIX_BYTES);
            NotificationKind::Other(upper)
        }))
    });
    if let (Some(kind), Some(prefix)) = (&explicit_kind, &prefix_kind) {
        if kind != prefix {
            warnings.push(format!(
                "kind `{}` and prefix `{}` disagree; the kind wins",
                kind.prefix(),
                quote(prefix.prefix())
            ));
        }
    }
    let message = text_field(map, "message", warnings);
    if message.is_none() {
        warnings.push("no `message`".to_owned());
    }
    let message = message.unwrap_or_default();
    // Only known prefixes are read inside a JSON message: JSON has fields for the prefix.
    let message_prefix = split_prefix(&message, Prefixes::KnownOnly);
    let kind = explicit_kind
        .or(prefix_kind)
        .or_else(|| message_prefix.as_ref().map(|(kind, _)| kind.clone()))
        .unwrap_or(NotificationKind::Other(String::new()));
    let message = match message_prefix {
        // The prefix repeated in the message is noise once it is the kind.
        Some((prefix, rest)) if prefix == kind => rest.to_owned(),
        _ => message,
    };

    let mut draft = Draft::new(kind, message, details_field(map, warnings));
    draft.event_id = text_field(map, "event_id", warnings);
    draft.timestamp = match text_field(map, "timestamp", warnings) {
        None => {
            warnings.push("no `timestamp`".to_owned());
            None
        }
        Some(stamp) if is_unexpanded_shell(&stamp) => {
            warnings.push(format!(
                "`timestamp` is an unexpanded shell expression (`{}`); ignored",
                quote(&stamp)
            ));
            None
        }
        Some(stamp) => Some(cap(stamp, MAX_SHORT_FIELD_BYTES, "timestamp", warnings)),
    };
    draft.severity = text_field(map, "severity", warnings).and_then(|value| {
        let known = Severity::parse(&value);
        if known.is_none() {
            warnings.push(format!(
                "unknown severity `{}`; derived from the kind",
                quote(&value)
            ));
        }
        known
    });
    draft.iteration = u32_field(map, "iteration", warnings);
    draft.max_iterations = u32_field(map, "max_iterations", warnings);
    draft.cli = text_field(map, "cli", warnings)
        .map(|cli| cap(cli, MAX_SHORT_FIELD_BYTES, "cli", warnings));
    draft.status = text_field(map, "status", warnings)
        .map(|status| cap(status, MAX_SHORT_FIELD_BYTES, "status", warnings));
    draft.has_log_tail = match map.get("log_tail") {
        None | Some(Value::Null) => false,
        Some(Value::String(encoded)) => match decode_base64(encoded) {
            Some(raw) => !raw.is_empty(),
            None => {
                warnings.push("`log_tail` is not valid base64; ignored".to_owned());
                false
            }
        },
        Some(_) => {
            warnings.push("`log_tail` is not a string; ignored".to_owned());
            false
        }
    };
    draft
}

/// A text field, trimmed; an empty one counts as missing. Numbers and booleans are accepted as
/// their JSON text (writers that skip quoting); arrays and objects are ignored with a warning.
fn text_field(map: &Map<String, Value>, key: &str, warnings: &mut Vec<String>) -> Option<String> {
    let text = match map.get(key)? {
        Value::Null => return None,
        Value::String(text) => text.trim().to_owned(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Array(_) | Value::Object(_) => {
            warnings.push(format!("`{key}` is not text; ignored"));
            return None;
        }
    };
    (!text.is_empty()).then_some(text)
}

/// `details` as text; a list of lines is joined, other structures are shown as pretty JSON.
fn details_field(map: &Map<String, Value>, warnings: &mut Vec<String>) -> Option<String> {
    let text = match map.get("details")? {
        Value::Array(items) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_owned(),
        structured @ (Value::Array(_) | Value::Object(_)) => {
            serde_json::to_string_pretty(structured).unwrap_or_default()
        }
        _ => return text_field(map, "details", warnings),
    };
    (!text.is_empty()).then_some(text)
}

/// A count: a JSON integer, an integral float, or the same written as a string.
fn u32_field(map: &Map<String, Value>, key: &str, warnings: &mut Vec<String>) -> Option<u32> {
    let parsed = match whole_u32(map.get(key)?) {
        Whole::Absent => return None,
        Whole::Value(n) => Some(n),
        Whole::Invalid => None,
    };
    if parsed.is_none() {
        let shown = map.get(key).map(Value::to_string).unwrap_or_default();
        warnings.push(format!(
            "`{key}` is not a count ({}); ignored",
            quote(&shown)
        ));
    }
    parsed
}

/// `$(date -Iseconds)`, `${NOW}`, `` `date` ``, `$NOW`: the writer's shell never expanded it.
fn is_unexpanded_shell(value: &str) -> bool {
    value.contains("$(") || value.contains("${") || value.contains('`') || value.starts_with('$')
}

fn cap(mut text: String, max: usize, what: &str, warnings: &mut Vec<String>) -> String {
    if text.len() > max {
        warnings.push(format!("`{what}` was cut to {max} bytes"));
        truncate_on_char(&mut text, max);
    }
    text
}

/// Cuts to at most `max` bytes without splitting a char.
fn truncate_on_char(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max;
    // Terminates: 0 is always a char boundary.
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    text.truncate(end);
}

/// A value shown in a warning, cut so one bad field cannot flood the list.
fn quote(value: &str) -> String {
    let mut shown = value.to_owned();
    if shown.len() > MAX_QUOTED_BYTES {
        truncate_on_char(&mut shown, MAX_QUOTED_BYTES);
        shown.push('…');
    }
    shown
}

fn content_id(draft: &Draft) -> String {
    let iteration = draft.iteration.map(|n| n.to_string());
    hex_id(&[
        Some(draft.kind.prefix().as_bytes()),
        Some(draft.message.as_bytes()),
        draft.details.as_deref().map(str::as_bytes),
        draft.timestamp.as_deref().map(str::as_bytes),
        iteration.as_deref().map(str::as_bytes),
    ])
}

/// FNV-1a 64 of the fields, each framed by a presence tag and its length so that neither
/// `None` vs `Some("")` nor a shifted field boundary can give the same input.
fn hex_id(fields: &[Option<&[u8]>]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for &byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for field in fields {
        match field {
            None => feed(&[0]),
            Some(bytes) => {
                feed(&[1]);
                feed(&(bytes.len() as u64).to_le_bytes());
                feed(bytes);
            }
        }
    }
    format!("{hash:016x}")
}

/// Standard base64 (URL-safe letters accepted too). ASCII whitespace is skipped anywhere; padding
/// is optional but, when present, must complete the last quantum and end the input.
fn decode_base64(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    let mut symbols: usize = 0;
    let mut padding: usize = 0;
    for byte in input.bytes() {
        if byte.is_ascii_whitespace() {
            continue;
        }
        if byte == b'=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return None;
        }
        acc = (acc << 6) | u32::from(sextet(byte)?);
        bits += 6;
        symbols += 1;
        if bits >= 8 {
            bits -= 8;
            // `acc` holds fewer than 14 bits here, so the shifted value fits a byte.
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    let complete =
        symbols % 4 != 1 && padding <= 2 && (padding == 0 || (symbols + padding).is_multiple_of(4));
    complete.then_some(out)
}

fn sextet(byte: u8) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Notification {
        parse_notification(text.as_bytes()).expect("fixture is not empty")
    }

    /// Test-side encoder, independent of the decoder under test.
    fn encode_base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk.first().copied().unwrap_or(0),
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    const FULL: &str = r#"{
  "event_id": "evt-42",
  "timestamp": "2025-01-02T03:04:05+00:00",
  "prefix": "BLOCKED",
  "kind": "blocked",
  "severity": "error",
  "message": "cannot reach the database",
  "details": "tried 3 times\nconnection refused",
  "iteration": "5",
  "max_iterations": 50,
  "cli": "claude",
  "log_tail": "bGluZSAxCmxpbmUgMgo=",
  "status": "running"
}
"#;

    #[test]
    fn full_pretty_json_is_read_field_by_field() {
        let n = parse(FULL);
        assert_eq!(n.id, "evt-42");
        assert_eq!(n.timestamp.as_deref(), Some("2025-01-02T03:04:05+00:00"));
        assert_eq!(n.kind, NotificationKind::Blocked);
        assert_eq!(n.severity, Severity::Error);
        assert_eq!(n.message, "cannot reach the database");
        assert_eq!(
            n.details.as_deref(),
            Some("tried 3 times\nconnection refused")
        );
        assert_eq!(n.iteration, Some(5));
        assert_eq!(n.max_iterations, Some(50));
        assert_eq!(n.cli.as_deref(), Some("claude"));
        assert_eq!(n.status.as_deref(), Some("running"));
        assert!(n.has_log_tail);
        assert_eq!(n.warnings, Vec::<String>::new());
        assert_eq!(
            log_tail(FULL.as_bytes()).as_deref(),
            Some("line 1\nline 2\n")
        );
    }

    #[test]
    fn the_summary_never_carries_the_log_tail() {
        let json = serde_json::to_string(&parse(FULL)).expect("serializes");
        assert!(!json.contains("bGluZSAx"), "{json}");
        assert!(!json.contains("line 1"), "{json}");
    }

    #[test]
    fn prefix_inside_a_json_message_gives_the_kind() {
        let n = parse(
            r#"{"message": "DONE: all tasks complete", "timestamp": "2025-01-02T03:04:05Z"}"#,
        );
        assert_eq!(n.kind, NotificationKind::Done);
        assert_eq!(n.severity, Severity::Success);
        assert_eq!(n.message, "all tasks complete");
        assert_eq!(n.timestamp.as_deref(), Some("2025-01-02T03:04:05Z"));
        assert_eq!(n.details, None);
        assert_eq!(n.iteration, None);
        assert!(!n.has_log_tail);
        assert_eq!(n.warnings, Vec::<String>::new());
        assert_eq!(n.id.len(), 16);
        assert!(n
            .id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn an_unknown_prefix_inside_a_json_message_is_left_alone() {
        let n = parse(r#"{"message": "Note: something", "timestamp": "t"}"#);
        assert_eq!(n.kind, NotificationKind::Other(String::new()));
        assert_eq!(n.message, "Note: something");
    }

    #[test]
    fn missing_timestamp_is_a_warning() {
        let n = parse(r#"{"prefix": "progress", "message": "3 of 5 tasks done", "iteration": 3}"#);
        assert_eq!(n.timestamp, None);
        assert_eq!(n.kind, NotificationKind::Progress);
        assert_eq!(n.severity, Severity::Info);
        assert_eq!(n.message, "3 of 5 tasks done");
        assert_eq!(n.iteration, Some(3));
        assert_eq!(n.warnings, vec!["no `timestamp`".to_owned()]);
    }

    #[test]
    fn unexpanded_shell_timestamp_is_dropped_with_a_warning() {
        for stamp in ["$(date -Iseconds)", "${NOW}", "`date`", "$NOW"] {
            let text = format!(r#"{{"message": "ERROR: tests fail", "timestamp": "{stamp}"}}"#);
            let n = parse(&text);
            assert_eq!(n.timestamp, None, "{stamp}");
            assert_eq!(n.kind, NotificationKind::Error);
            assert_eq!(n.severity, Severity::Error);
            assert_eq!(n.message, "tests fail");
            assert_eq!(n.warnings.len(), 1, "{stamp}: {:?}", n.warnings);
            assert!(
                n.warnings[0].contains("unexpanded shell"),
                "{:?}",
                n.warnings
            );
            assert!(n.warnings[0].contains(stamp), "{:?}", n.warnings);
        }
    }

    #[test]
    fn plain_text_prefix_and_message() {
        let n = parse("BLOCKED: cannot reach the database\n");
        assert_eq!(n.kind, NotificationKind::Blocked);
        assert_eq!(n.severity, Severity::Error);
        assert_eq!(n.message, "cannot reach the database");
        assert_eq!(n.details, None);
        assert_eq!(n.timestamp, None);
        assert_eq!(n.iteration, None);
        assert_eq!(n.max_iterations, None);
        assert_eq!(n.cli, None);
        assert_eq!(n.status, None);
        assert!(!n.has_log_tail);
        assert_eq!(n.warnings, Vec::<String>::new());
    }

    #[test]
    fn plain_text_following_lines_are_details() {
        let n = parse("decision: use sqlite\r\n\r\nreason: no server\r\nalso: simpler\r\n");
        assert_eq!(n.kind, NotificationKind::Decision);
        assert_eq!(n.severity, Severity::Info);
        assert_eq!(n.message, "use sqlite");
        assert_eq!(
            n.details.as_deref(),
            Some("reason: no server\nalso: simpler")
        );
    }

    #[test]
    fn a_bare_prefix_line_takes_the_next_line_as_message() {
        let n = parse("QUESTION:\nwhich database?\nsqlite or postgres");
        assert_eq!(n.kind, NotificationKind::Question);
        assert_eq!(n.message, "which database?");
        assert_eq!(n.details.as_deref(), Some("sqlite or postgres"));
    }

    #[test]
    fn planning_complete_in_any_spelling() {
        for text in [
            "PLANNING_COMPLETE: plan ready",
            "planning-complete: plan ready",
            "Planning Complete: plan ready",
        ] {
            let n = parse(text);
            assert_eq!(n.kind, NotificationKind::PlanningComplete, "{text}");
            assert_eq!(n.severity, Severity::Info);
            assert_eq!(n.message, "plan ready");
            assert!(n.kind.toast_worthy());
        }
    }

    #[test]
    fn unknown_prefixes_and_no_prefix() {
        let n = parse("FOO: bar");
        assert_eq!(n.kind, NotificationKind::Other("FOO".to_owned()));
        assert_eq!(n.severity, Severity::Info);
        assert_eq!(n.message, "bar");

        let n = parse("the agent stopped\nfor no reason");
        assert_eq!(n.kind, NotificationKind::Other(String::new()));
        assert_eq!(n.message, "the agent stopped\nfor no reason");
        assert_eq!(n.details, None);

        // Prose and URLs are not prefixes.
        for text in [
            "Note: lower-case words are prose",
            "see https://example.com",
            "at 12:30 it failed",
        ] {
            let n = parse(text);
            assert_eq!(n.kind, NotificationKind::Other(String::new()), "{text}");
            assert_eq!(n.message, text);
        }
    }

    #[test]
    fn json_that_is_not_an_object_is_plain_text() {
        let n = parse(r#""text""#);
        assert_eq!(n.kind, NotificationKind::Other(String::new()));
        assert_eq!(n.message, r#""text""#);
        assert_eq!(n.warnings.len(), 1);

        let n = parse("[1]");
        assert_eq!(n.message, "[1]");
        assert_eq!(n.warnings.len(), 1);
    }

    #[test]
    fn truncated_json_is_plain_text_with_a_warning() {
        let n = parse(r#"{"message": "DONE: al"#);
        assert_eq!(n.message, r#"{"message": "DONE: al"#);
        assert_eq!(n.kind, NotificationKind::Other(String::new()));
        assert_eq!(n.warnings.len(), 1);
        assert!(n.warnings[0].contains("does not parse"), "{:?}", n.warnings);
    }

    #[test]
    fn empty_files_are_an_error() {
        for text in ["", "   ", "\n\t\r\n", "\u{feff}  \n"] {
            assert_eq!(
                parse_notification(text.as_bytes()),
                Err(NotificationError::Empty),
                "{text:?}"
            );
        }
    }

    #[test]
    fn invalid_utf8_is_decoded_lossily_with_a_warning() {
        let n = parse_notification(b"ERROR: bad \xff byte").expect("not empty");
        assert_eq!(n.kind, NotificationKind::Error);
        assert_eq!(n.message, "bad \u{fffd} byte");
        assert_eq!(n.warnings.len(), 1);
        assert!(n.warnings[0].contains("UTF-8"));
    }

    #[test]
    fn explicit_kind_and_severity_win_only_when_known() {
        let n = parse(
            r#"{"kind": "question", "prefix": "DONE", "severity": "warning", "message": "m", "timestamp": "t"}"#,
        );
        assert_eq!(n.kind, NotificationKind::Question);
        assert_eq!(n.severity, Severity::Warning);
        assert_eq!(n.warnings.len(), 1, "{:?}", n.warnings);
        assert!(n.warnings[0].contains("disagree"));

        let n = parse(
            r#"{"kind": "alert", "prefix": "done", "severity": "loud", "message": "DONE: m", "timestamp": "t"}"#,
        );
        assert_eq!(n.kind, NotificationKind::Done);
        assert_eq!(n.severity, Severity::Success);
        assert_eq!(n.message, "m");
        assert_eq!(n.warnings.len(), 2, "{:?}", n.warnings);
        assert!(n.warnings[0].contains("unknown kind `alert`"));
        assert!(n.warnings[1].contains("unknown severity `loud`"));

        let n = parse(r#"{"prefix": "foo:", "message": "m", "timestamp": "t"}"#);
        assert_eq!(n.kind, NotificationKind::Other("FOO".to_owned()));
        assert_eq!(n.severity, Severity::Info);
    }

    #[test]
    fn numbers_as_strings_and_bad_numbers() {
        let n = parse(
            r#"{"message": "m", "timestamp": "t", "iteration": " 7 ", "max_iterations": "0", "cli": 5}"#,
        );
        assert_eq!(n.iteration, Some(7));
        assert_eq!(n.max_iterations, Some(0));
        assert_eq!(n.cli.as_deref(), Some("5"));
        assert_eq!(n.warnings, Vec::<String>::new());

        let n = parse(
            r#"{"message": "m", "timestamp": "t", "iteration": -1, "max_iterations": "$MAX"}"#,
        );
        assert_eq!(n.iteration, None);
        assert_eq!(n.max_iterations, None);
        assert_eq!(n.warnings.len(), 2, "{:?}", n.warnings);
        assert!(n.warnings[0].contains("`iteration`"));
        assert!(n.warnings[1].contains("`max_iterations`"));

        let n = parse(
            r#"{"message": "m", "timestamp": "t", "iteration": 4.0, "max_iterations": 99999999999}"#,
        );
        assert_eq!(n.iteration, Some(4));
        assert_eq!(n.max_iterations, None);
    }

    #[test]
    fn structured_details_and_bad_log_tail() {
        let n = parse(
            r#"{"message": "m", "timestamp": "t", "details": ["a", "b"], "log_tail": "!!!"}"#,
        );
        assert_eq!(n.details.as_deref(), Some("a\nb"));
        assert!(!n.has_log_tail);
        assert_eq!(
            n.warnings,
            vec!["`log_tail` is not valid base64; ignored".to_owned()]
        );

        let n = parse(r#"{"message": "m", "timestamp": "t", "details": {"code": 2}}"#);
        assert_eq!(n.details.as_deref(), Some("{\n  \"code\": 2\n}"));
    }

    #[test]
    fn long_texts_are_capped_on_char_boundaries() {
        let message = "é".repeat(3000); // 6000 bytes
        let details = "ü".repeat(9000); // 18000 bytes
        let n = parse(&format!("ERROR: {message}\n{details}"));
        assert_eq!(n.message, "é".repeat(MAX_MESSAGE_BYTES / 2));
        assert_eq!(
            n.details.as_deref(),
            Some("ü".repeat(MAX_DETAILS_BYTES / 2).as_str())
        );
        assert_eq!(n.warnings.len(), 2);

        let odd = format!("x{}", "é".repeat(3000));
        let n = parse(&odd);
        assert_eq!(n.message.len(), MAX_MESSAGE_BYTES - 1);
    }

    #[test]
    fn ids_follow_content_not_form() {
        let text = parse("DONE: all tasks complete");
        let json = parse(r#"{"message": "DONE: all tasks complete"}"#);
        let pretty =
            parse("{\n  \"prefix\": \"DONE\",\n  \"message\": \"all tasks complete\"\n}\n");
        assert_eq!(text.id, json.id);
        assert_eq!(text.id, pretty.id);
        assert_ne!(text.id, parse("DONE: all tasks completed").id);
        assert_ne!(text.id, parse("ERROR: all tasks complete").id);
        assert_ne!(
            parse(r#"{"message": "DONE: x", "timestamp": "1"}"#).id,
            parse(r#"{"message": "DONE: x", "timestamp": "2"}"#).id
        );
        assert_ne!(
            parse(r#"{"message": "DONE: x", "iteration": 1}"#).id,
            parse(r#"{"message": "DONE: x", "iteration": 2}"#).id
        );
        // Known FNV-1a 64 vector: the hash itself is the standard one.
        assert_eq!(hex_id(&[]), "cbf29ce484222325");
    }

    #[test]
    fn long_event_ids_are_hashed() {
        let long = "e".repeat(500);
        let n = parse(&format!(
            r#"{{"event_id": "{long}", "message": "m", "timestamp": "t"}}"#
        ));
        assert_eq!(n.id.len(), 16);
        let n = parse(r#"{"event_id": "  ", "message": "DONE: m"}"#);
        assert_eq!(n.id, parse("DONE: m").id);
    }

    #[test]
    fn kind_helpers() {
        let kinds = [
            (NotificationKind::Error, "ERROR", true, Severity::Error),
            (NotificationKind::Blocked, "BLOCKED", true, Severity::Error),
            (NotificationKind::Decision, "DECISION", true, Severity::Info),
            (
                NotificationKind::Question,
                "QUESTION",
                false,
                Severity::Info,
            ),
            (
                NotificationKind::Progress,
                "PROGRESS",
                false,
                Severity::Info,
            ),
            (NotificationKind::Done, "DONE", true, Severity::Success),
            (
                NotificationKind::PlanningComplete,
                "PLANNING_COMPLETE",
                true,
                Severity::Info,
            ),
            (
                NotificationKind::Other("FOO".to_owned()),
                "FOO",
                false,
                Severity::Info,
            ),
        ];
        for (kind, prefix, toast, severity) in kinds {
            assert_eq!(kind.prefix(), prefix);
            assert_eq!(kind.toast_worthy(), toast, "{prefix}");
            assert_eq!(kind.default_severity(), severity, "{prefix}");
            if !matches!(kind, NotificationKind::Other(_)) {
                assert_eq!(
                    NotificationKind::from_prefix(&prefix.to_lowercase()),
                    Some(kind)
                );
            }
        }
        assert_eq!(
            serde_json::to_string(&NotificationKind::PlanningComplete).expect("serializes"),
            r#""planning_complete""#
        );
    }

    #[test]
    fn base64_edge_cases() {
        assert_eq!(decode_base64("aGk="), Some(b"hi".to_vec()));
        assert_eq!(decode_base64("aGk"), Some(b"hi".to_vec()));
        assert_eq!(decode_base64("aG\n k=\n"), Some(b"hi".to_vec()));
        assert_eq!(decode_base64(""), Some(Vec::new()));
        assert_eq!(decode_base64("a"), None);
        assert_eq!(decode_base64("aGk=="), None);
        assert_eq!(decode_base64("aG=k"), None);
        assert_eq!(decode_base64("aGk*"), None);
        assert_eq!(log_tail(br#"{"log_tail": ""}"#), None);
        assert_eq!(log_tail(b"DONE: x"), None);
        assert_eq!(
            log_tail(br#"{"log_tail": "/w"}"#).as_deref(),
            Some("\u{fffd}")
        );
    }

    fn fixtures() -> Vec<&'static [u8]> {
        vec![
            FULL.as_bytes(),
            br#"{"message": "DONE: all tasks complete", "timestamp": "$(date -Iseconds)"}"#,
            b"BLOCKED: cannot reach the database\nline two\nline three",
            b"FOO: bar",
            b"QUESTION:\nwhich one?",
        ]
    }

    #[derive(Clone, Debug)]
    enum Mutation {
        Flip(usize, u8),
        Insert(usize, u8),
        Remove(usize, usize),
        Truncate(usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Flip(at, b)),
            (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Insert(at, b)),
            (any::<usize>(), 0usize..16).prop_map(|(at, n)| Mutation::Remove(at, n)),
            any::<usize>().prop_map(Mutation::Truncate),
        ]
    }

    fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
        let len = bytes.len();
        match *mutation {
            Mutation::Flip(at, b) if len > 0 => bytes[at % len] ^= b,
            Mutation::Insert(at, b) => bytes.insert(at % (len + 1), b),
            Mutation::Remove(at, n) if len > 0 => {
                let start = at % len;
                bytes.drain(start..(start + n).min(len));
            }
            Mutation::Truncate(at) => bytes.truncate(at % (len + 1)),
            _ => {}
        }
    }

    fn check_invariants(n: &Notification) -> Result<(), TestCaseError> {
        prop_assert!(!n.id.is_empty());
        prop_assert!(n.message.len() <= MAX_MESSAGE_BYTES);
        prop_assert!(n
            .details
            .as_ref()
            .is_none_or(|d| d.len() <= MAX_DETAILS_BYTES));
        Ok(())
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(n) = parse_notification(&bytes) {
                check_invariants(&n)?;
                prop_assert_eq!(parse_notification(&bytes), Ok(n));
            }
            let _ = log_tail(&bytes);
            let _ = decode_base64(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn mutated_fixtures_never_panic(
            which in 0usize..5,
            mutations in proptest::collection::vec(mutation(), 1..8),
        ) {
            let mut bytes = fixtures().get(which).copied().unwrap_or_default().to_vec();
            for m in &mutations {
                mutate(&mut bytes, m);
            }
            match parse_notification(&bytes) {
                Ok(n) => {
                    check_invariants(&n)?;
                    // Stable: reading the same bytes again gives the same id.
                    prop_assert_eq!(parse_notification(&bytes).map(|again| again.id), Ok(n.id));
                }
                Err(NotificationError::Empty) => {
                    let text = String::from_utf8_lossy(&bytes);
                    let blank = text.trim_start_matches('\u{feff}').trim().is_empty();
                    prop_assert!(blank);
                }
            }
            let _ = log_tail(&bytes);
        }

        #[test]
        fn ids_are_stable_across_forms_and_differ_with_content(
            message in "[a-z][a-z ]{0,40}[a-z]",
            other in "[a-z][a-z ]{0,40}[a-z]",
            iteration in proptest::option::of(0u32..1000),
        ) {
            let mut object = serde_json::json!({ "prefix": "DONE", "message": message });
            if let Some(i) = iteration {
                object["iteration"] = serde_json::json!(i.to_string());
            }
            let compact = parse(&object.to_string());
            let pretty = parse(&format!("{object:#}"));
            prop_assert_eq!(&compact.id, &pretty.id);
            prop_assert_eq!(compact.id.len(), 16);
            if iteration.is_none() {
                prop_assert_eq!(&compact.id, &parse(&format!("DONE: {message}")).id);
            }
            if other != message {
                prop_assert_ne!(&parse(&format!("DONE: {message}")).id, &parse(&format!("DONE: {other}")).id);
            }
        }

        #[test]
        fn event_ids_are_kept(event_id in "[A-Za-z0-9_-]{1,100}", message in ".{0,40}") {
            let object = serde_json::json!({ "event_id": event_id, "message": message });
            prop_assert_eq!(parse(&object.to_string()).id, event_id);
        }

        #[test]
        fn base64_round_trips_with_whitespace_and_no_padding(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            wrap in 1usize..80,
            strip_padding in any::<bool>(),
        ) {
            let mut encoded = encode_base64(&bytes);
            if strip_padding {
                encoded = encoded.trim_end_matches('=').to_owned();
            }
            let wrapped: String = encoded
                .as_bytes()
                .chunks(wrap)
                .map(|line| String::from_utf8_lossy(line).into_owned())
                .collect::<Vec<_>>()
                .join("\n ");
            prop_assert_eq!(decode_base64(&wrapped), Some(bytes.clone()));
            let file = serde_json::json!({ "message": "m", "log_tail": wrapped }).to_string();
            let expected = (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned());
            prop_assert_eq!(log_tail(file.as_bytes()), expected);
            prop_assert_eq!(parse(&file).has_log_tail, !bytes.is_empty());
        }
    }
}
