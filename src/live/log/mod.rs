//! The live log of the open project: every line once, in order, with what the log pane needs to
//! filter and jump without rescanning (plain text, header and error flags). The rules for a
//! single line live beside it: [`error_line`] (the errors-only filter) and [`search`].

mod error_line;
pub mod search;

use std::borrow::Cow;

use leptos::prelude::*;

use crate::contract::{ansi::strip_ansi, ralph::log::parse_header};
use crate::model::api_types::{LogText, MAX_LOG_BYTES};
use error_line::is_error_line;
use search::{matching_lines, Lines, Query};

/// One line of `ralph.log`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// As written, ANSI codes kept for colouring.
    pub raw: String,
    /// The text without escape sequences, when that differs from `raw` (most lines have none,
    /// and keep no second copy).
    plain: Option<String>,
    /// An iteration header, by the rules the server indexes with.
    pub header: bool,
    /// An error line (never a header), for the errors-only filter.
    pub error: bool,
}

impl LogLine {
    pub fn new(raw: String) -> Self {
        let plain = match strip_ansi(&raw) {
            Cow::Borrowed(_) => None,
            Cow::Owned(plain) => Some(plain),
        };
        let text = plain.as_deref().unwrap_or(&raw);
        let header = parse_header(text).is_some();
        let error = !header && is_error_line(text);
        Self {
            raw,
            plain,
            header,
            error,
        }
    }

    /// The text without escape sequences (what search looks at).
    pub fn plain(&self) -> &str {
        self.plain.as_deref().unwrap_or(&self.raw)
    }
}

/// The lines, held outside the reactive graph (a 100k-line log is not cloned per change);
/// `version` is the signal views track.
#[derive(Clone, Copy, Debug)]
pub struct LogBuffer {
    lines: StoredValue<Vec<LogLine>>,
    /// Line indices of iteration headers, ascending.
    headers: StoredValue<Vec<usize>>,
    pub version: RwSignal<u64>,
    /// Only the end of the log was loaded.
    pub truncated: RwSignal<bool>,
    /// How much of the log a reload fetches: the page's share until the log tab asks for all.
    fetch_bytes: StoredValue<u64>,
}

impl LogBuffer {
    pub fn new(log: &LogText) -> Self {
        let buffer = Self {
            lines: StoredValue::new(Vec::new()),
            headers: StoredValue::new(Vec::new()),
            version: RwSignal::new(0),
            truncated: RwSignal::new(log.truncated),
            fetch_bytes: StoredValue::new(super::LOG_PAGE_BYTES),
        };
        buffer.push_text(&log.text);
        buffer
    }

    /// Appends the complete lines of a `log_append` event.
    pub fn push_text(&self, text: &str) {
        let new: Vec<LogLine> = split_lines(text).into_iter().map(LogLine::new).collect();
        if new.is_empty() {
            return;
        }
        self.lines.update_value(|lines| {
            let start = lines.len();
            self.headers.update_value(|headers| {
                headers.extend(
                    new.iter()
                        .enumerate()
                        .filter(|(_, line)| line.header)
                        .map(|(i, _)| start + i),
                );
            });
            lines.extend(new);
        });
        self.version.update(|v| *v += 1);
    }

    /// Replaces everything (after a rotation or a resync).
    pub fn reset(&self, log: &LogText) {
        self.lines.set_value(Vec::new());
        self.headers.set_value(Vec::new());
        self.truncated.set(log.truncated);
        self.push_text(&log.text);
        self.version.update(|v| *v += 1);
    }

    /// From now on reloads fetch the whole log (up to the server's cap). Returns whether the
    /// buffer holds less than that now (so the caller should reload it).
    pub fn want_full(&self) -> bool {
        self.fetch_bytes.set_value(MAX_LOG_BYTES);
        self.truncated.get_untracked()
    }

    pub fn fetch_bytes(&self) -> u64 {
        self.fetch_bytes.get_value()
    }

    /// Whether the buffer holds exactly `text` (cheap: compares sizes and the last line).
    pub fn holds(&self, text: &str) -> bool {
        let lines = split_lines(text);
        self.with_lines(|held| {
            held.len() == lines.len() && held.last().map(|l| &l.raw) == lines.last()
        })
    }

    pub fn len(&self) -> usize {
        self.lines.with_value(Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn with_lines<R>(&self, f: impl FnOnce(&[LogLine]) -> R) -> R {
        self.lines.with_value(|lines| f(lines))
    }

    /// Indices of the lines that match `query` and pass `lines`, in order.
    pub fn matching(&self, query: &Query, lines: Lines) -> Vec<usize> {
        self.with_lines(|log| matching_lines(log, query, lines))
    }

    pub fn headers(&self) -> Vec<usize> {
        self.headers.get_value()
    }
}

/// Splits appended text into lines without their `\n` (or `\r\n`). The protocol sends whole
/// lines, but text without a final newline still yields its rest as a last line (keeping a
/// final lone `\r`). Empty text gives no lines; `"\n"` gives one empty line.
pub fn split_lines(text: &str) -> Vec<String> {
    text.split_inclusive('\n')
        .map(|line| match line.strip_suffix('\n') {
            Some(line) => line.strip_suffix('\r').unwrap_or(line),
            // The unterminated rest: a `\r` there is not half of a `\r\n` (yet).
            None => line,
        })
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    fn lines(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|text| (*text).to_owned()).collect()
    }

    #[test]
    fn a_line_keeps_a_plain_copy_only_when_it_has_escapes() {
        let plain = LogLine::new("error: boom".to_owned());
        assert_eq!(
            (plain.plain.as_deref(), plain.plain()),
            (None, "error: boom")
        );
        assert!(plain.error && !plain.header);
        let coloured = LogLine::new("\x1b[1;34m=== Iteration 2/5 ===\x1b[0m".to_owned());
        assert_eq!(coloured.plain(), "=== Iteration 2/5 ===");
        assert!(coloured.header && !coloured.error);
    }

    // ---------------------------------------------------------------- split_lines

    #[test]
    fn split_lines_cases() {
        assert_eq!(split_lines(""), Vec::<String>::new());
        assert_eq!(split_lines("\n"), lines(&[""]));
        assert_eq!(split_lines("a\nb\n"), lines(&["a", "b"]));
        assert_eq!(split_lines("a\r\nb\r\n"), lines(&["a", "b"]));
        assert_eq!(split_lines("a\n\nb"), lines(&["a", "", "b"]));
        assert_eq!(split_lines("partial"), lines(&["partial"]));
        assert_eq!(split_lines("a\nrest\r"), lines(&["a", "rest\r"]));
        // A `\r` inside a line is a redraw, left for the ANSI renderer.
        assert_eq!(split_lines("10%\r20%\n"), lines(&["10%\r20%"]));
        assert_eq!(split_lines("漢\n😀\r\n"), lines(&["漢", "😀"]));
    }

    #[test]
    fn random_split_lines_round_trip() {
        let mut rng = Rng(0x7777_1234_ABCD_0001);
        for _ in 0..10_000 {
            let text: String = (0..rng.below(12))
                .map(|_| rng.pick(&["a", "é", "\n", "\r\n", "\r", "漢", " "]))
                .collect();
            let out = split_lines(&text);
            assert!(out.iter().all(|line| !line.contains('\n')), "{text:?}");
            // Joining with newlines gives the text back, up to the newline forms.
            let normalised = text.replace("\r\n", "\n");
            let body = normalised.strip_suffix('\n').unwrap_or(&normalised);
            if text.is_empty() {
                assert!(out.is_empty());
            } else {
                assert_eq!(out.join("\n"), body, "{text:?}");
                assert_eq!(out.len(), body.matches('\n').count() + 1, "{text:?}");
            }
            // Splitting in two at a line boundary gives the same lines: appends compose.
            if let Some(cut) = text.find('\n') {
                let mut both = split_lines(&text[..=cut]);
                both.extend(split_lines(&text[cut + 1..]));
                assert_eq!(both, out, "{text:?}");
            }
        }
    }
}
