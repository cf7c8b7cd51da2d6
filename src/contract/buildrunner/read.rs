//! Reading BuildRunner's JSON leniently: bytes to text (invalid UTF-8 replaced), text to an
//! object, and one field at a time with a warning for each value of the wrong shape. The caps that
//! bound what a huge or hostile file costs live here, so every parser applies the same ones.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::status::WorkStatus;
use crate::contract::lenient::{whole_u32, Whole};

/// Characters kept of a name, id, path, description or other text field (longer ones end in `…`).
pub const MAX_TEXT_CHARS: usize = 4096;
/// Items kept of any list (tasks, files, components, features, dependencies); the rest are counted.
pub const MAX_LIST_ITEMS: usize = 1000;
/// Warnings kept per file; the rest are summed up in one last warning.
pub const MAX_WARNINGS: usize = 50;
/// Characters of an offending value quoted in a warning.
const MAX_QUOTED_CHARS: usize = 60;

/// The warnings of one file, capped at [`MAX_WARNINGS`].
#[derive(Debug, Default)]
pub(super) struct Warnings {
    list: Vec<String>,
    dropped: u32,
}

impl Warnings {
    pub(super) fn push(&mut self, warning: String) {
        if self.list.len() < MAX_WARNINGS {
            self.list.push(warning);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    pub(super) fn finish(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.list
                .push(format!("{} more warnings not shown", self.dropped));
        }
        self.list
    }
}

/// The text of a file: a byte-order mark dropped, invalid UTF-8 replaced by U+FFFD (with a
/// warning, so a damaged file is visible rather than silently altered).
pub(super) fn decode<'a>(bytes: &'a [u8], what: &str, warnings: &mut Warnings) -> Cow<'a, str> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes);
    if matches!(text, Cow::Owned(_)) {
        warnings.push(format!("{what}: invalid UTF-8 replaced"));
    }
    text
}

/// The JSON object a file holds, or `None` and a warning saying why not.
pub(super) fn parse_object(
    bytes: &[u8],
    what: &str,
    warnings: &mut Warnings,
) -> Option<Map<String, Value>> {
    let text = decode(bytes, what, warnings);
    if text.trim().is_empty() {
        warnings.push(format!("{what}: empty file"));
        return None;
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(object)) => Some(object),
        Ok(other) => {
            warnings.push(format!("{what}: {}, not a JSON object", kind(&other)));
            None
        }
        Err(error) => {
            warnings.push(format!("{what}: not JSON ({error})"));
            None
        }
    }
}

/// The first `max` characters of `text`, ending in `…` when cut.
pub(super) fn cap_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => {
            let mut kept = text[..end].to_owned();
            kept.push('…');
            kept
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn quote(value: &Value) -> String {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    cap_chars(&text, MAX_QUOTED_CHARS)
}

/// A list cut at [`MAX_LIST_ITEMS`]: what is kept, and how many more there were.
pub(super) struct Capped<T> {
    pub kept: Vec<T>,
    pub omitted: u32,
}

/// Keeps the first [`MAX_LIST_ITEMS`] items that `read` accepts and counts the accepted rest,
/// showing each of those to `on_omitted` before it is dropped (so statistics can count it).
pub(super) fn capped<T>(
    items: &[Value],
    mut read: impl FnMut(usize, &Value) -> Option<T>,
    mut on_omitted: impl FnMut(&T),
) -> Capped<T> {
    let mut kept = Vec::new();
    let mut omitted = 0u32;
    for (index, item) in items.iter().enumerate() {
        if let Some(value) = read(index, item) {
            if kept.len() < MAX_LIST_ITEMS {
                kept.push(value);
            } else {
                on_omitted(&value);
                omitted = omitted.saturating_add(1);
            }
        }
    }
    Capped { kept, omitted }
}

/// The fields of one JSON object, read with warnings that name `at` (`checkpoint`, `feature 3`).
pub(super) struct Fields<'a, 'w> {
    object: &'a Map<String, Value>,
    at: String,
    warnings: &'w mut Warnings,
}

impl<'a, 'w> Fields<'a, 'w> {
    pub(super) fn new(
        object: &'a Map<String, Value>,
        at: String,
        warnings: &'w mut Warnings,
    ) -> Self {
        Fields {
            object,
            at,
            warnings,
        }
    }

    pub(super) fn warn(&mut self, message: String) {
        let warning = format!("{}: {message}", self.at);
        self.warnings.push(warning);
    }

    pub(super) fn at(&self) -> &str {
        &self.at
    }

    /// Missing and `null` are both absent.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name).filter(|value| !value.is_null())
    }

    /// Text as written; a number or boolean becomes its JSON spelling, anything else a warning.
    pub(super) fn text(&mut self, name: &str) -> Option<String> {
        let value = self.get(name)?;
        match value {
            Value::String(text) => Some(cap_chars(text, MAX_TEXT_CHARS)),
            Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
            other => {
                self.warn(format!("`{name}` is {}, not text", kind(other)));
                None
            }
        }
    }

    /// Text, or the empty string when absent or unreadable.
    pub(super) fn text_or_empty(&mut self, name: &str) -> String {
        self.text(name).unwrap_or_default()
    }

    /// A list of texts. One string is a one-item list; items that are not text are skipped with
    /// one warning for the list.
    pub(super) fn text_list(&mut self, name: &str) -> Capped<String> {
        let empty = Capped {
            kept: Vec::new(),
            omitted: 0,
        };
        let Some(value) = self.get(name) else {
            return empty;
        };
        let items = match value {
            Value::Array(items) => items.as_slice(),
            Value::String(text) if text.trim().is_empty() => return empty,
            Value::String(_) => std::slice::from_ref(value),
            other => {
                self.warn(format!("`{name}` is {}, not a list", kind(other)));
                return empty;
            }
        };
        let mut skipped = 0u32;
        let list = capped(
            items,
            |_, item| match item {
                Value::String(text) => Some(cap_chars(text, MAX_TEXT_CHARS)),
                Value::Number(_) => Some(item.to_string()),
                _ => {
                    skipped = skipped.saturating_add(1);
                    None
                }
            },
            |_| {},
        );
        if skipped > 0 {
            self.warn(format!(
                "`{name}`: {skipped} items that are not text skipped"
            ));
        }
        list
    }

    /// The items of an array field; anything but an array (or absence) is a warning.
    pub(super) fn array(&mut self, name: &str) -> &'a [Value] {
        match self.get(name) {
            None => &[],
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.warn(format!("`{name}` is {}, not a list", kind(other)));
                &[]
            }
        }
    }

    pub(super) fn object(&mut self, name: &str) -> Option<&'a Map<String, Value>> {
        match self.get(name)? {
            Value::Object(object) => Some(object),
            other => {
                self.warn(format!("`{name}` is {}, not an object", kind(other)));
                None
            }
        }
    }

    /// A percentage: a number, or a numeric string with an optional `%`. Values outside 0..=100
    /// are clamped with a warning; non-numbers are a warning and absent.
    pub(super) fn percent(&mut self, name: &str) -> Option<f64> {
        let value = self.get(name)?;
        let number = match value {
            Value::Number(number) => number.as_f64(),
            Value::String(text) => text.trim().trim_end_matches('%').trim().parse::<f64>().ok(),
            _ => None,
        };
        match number.filter(|n| n.is_finite()) {
            None => {
                self.warn(format!("`{name}` is not a percentage: {}", quote(value)));
                None
            }
            Some(n) if !(0.0..=100.0).contains(&n) => {
                self.warn(format!("`{name}` {n} is outside 0..=100, clamped"));
                Some(n.clamp(0.0, 100.0))
            }
            Some(n) => Some(n),
        }
    }

    /// A count: a whole number, also as an integral float or numeric string.
    pub(super) fn whole(&mut self, name: &str) -> Option<u32> {
        let value = self.get(name)?;
        match whole_u32(value) {
            Whole::Value(n) => Some(n),
            Whole::Absent => None,
            Whole::Invalid => {
                self.warn(format!("`{name}` is not a whole number: {}", quote(value)));
                None
            }
        }
    }

    /// A yes/no: a boolean, `"true"`/`"false"`/`"yes"`/`"no"`, or 0/1.
    pub(super) fn flag(&mut self, name: &str) -> Option<bool> {
        let value = self.get(name)?;
        let flag = match value {
            Value::Bool(flag) => Some(*flag),
            Value::Number(number) => match number.as_u64() {
                Some(0) => Some(false),
                Some(1) => Some(true),
                _ => None,
            },
            Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Some(true),
                "false" | "no" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        };
        if flag.is_none() {
            self.warn(format!("`{name}` is not true or false: {}", quote(value)));
        }
        flag
    }

    /// A status in any vocabulary; missing is [`WorkStatus::NotStarted`] silently, unknown is
    /// the same fallback with a warning.
    pub(super) fn status(&mut self, name: &str) -> WorkStatus {
        let Some(value) = self.get(name) else {
            return WorkStatus::default();
        };
        let parsed = value.as_str().and_then(WorkStatus::parse);
        if parsed.is_none() {
            self.warn(format!(
                "unknown `{name}` {}, read as {}",
                quote(value),
                WorkStatus::default().as_str()
            ));
        }
        parsed.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read<T>(value: Value, reader: impl FnOnce(&mut Fields<'_, '_>) -> T) -> (T, Vec<String>) {
        let mut object = Map::new();
        object.insert("field".to_owned(), value);
        let mut warnings = Warnings::default();
        let value = reader(&mut Fields::new(&object, "file".to_owned(), &mut warnings));
        (value, warnings.finish())
    }

    #[test]
    fn percentages_in_the_spellings_files_use() {
        for (value, expected, warned) in [
            (json!(45.5), Some(45.5), false),
            (json!("45.5"), Some(45.5), false),
            (json!(" 80% "), Some(80.0), false),
            (json!(140), Some(100.0), true),
            (json!(-1), Some(0.0), true),
            (json!("lots"), None, true),
            (json!([1]), None, true),
            (json!(null), None, false),
        ] {
            let (percent, warnings) = read(value.clone(), |f| f.percent("field"));
            assert_eq!(percent, expected, "{value}");
            assert_eq!(!warnings.is_empty(), warned, "{value}: {warnings:?}");
        }
    }

    #[test]
    fn flags_and_texts() {
        for (value, expected) in [
            (json!(true), Some(true)),
            (json!("no"), Some(false)),
            (json!(1), Some(true)),
            (json!(0), Some(false)),
            (json!(2), None),
            (json!("maybe"), None),
        ] {
            assert_eq!(
                read(value.clone(), |f| f.flag("field")).0,
                expected,
                "{value}"
            );
        }
        assert_eq!(read(json!(7), |f| f.text("field")).0.as_deref(), Some("7"));
        assert_eq!(
            read(json!({}), |f| f.text("field")).1,
            ["file: `field` is an object, not text"]
        );
        let long = "é".repeat(MAX_TEXT_CHARS + 3);
        let (text, _) = read(json!(long), |f| f.text_or_empty("field"));
        assert_eq!(text.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(text.ends_with('…'));
        assert_eq!(read(json!(""), |f| f.text_list("field").kept.len()).0, 0);
    }

    #[test]
    fn warnings_are_capped_and_summed_up() {
        let mut warnings = Warnings::default();
        for i in 0..MAX_WARNINGS + 150 {
            warnings.push(format!("w{i}"));
        }
        let list = warnings.finish();
        assert_eq!(list.len(), MAX_WARNINGS + 1);
        assert_eq!(
            list.last().map(String::as_str),
            Some("150 more warnings not shown")
        );
    }
}
