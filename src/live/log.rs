//! The live log of the open project: every line once, in order, with what the log pane needs to
//! filter and jump without rescanning (plain text, header and error flags).

use leptos::prelude::*;

use super::logview::{is_error_line, split_lines};
use crate::contract::ralph::log::{parse_header, strip_ansi};

/// One line of `ralph.log`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// As written, ANSI codes kept for colouring.
    pub raw: String,
    /// Without escape sequences, lower-cased for search.
    pub folded: String,
    pub header: bool,
    pub error: bool,
}

impl LogLine {
    pub fn new(raw: String) -> Self {
        let plain = strip_ansi(&raw);
        let header = parse_header(&plain).is_some();
        let error = !header && is_error_line(&plain);
        let folded = plain.to_lowercase();
        Self {
            raw,
            folded,
            header,
            error,
        }
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
    pub fn new(text: &str, truncated: bool) -> Self {
        let buffer = Self {
            lines: StoredValue::new(Vec::new()),
            headers: StoredValue::new(Vec::new()),
            version: RwSignal::new(0),
            truncated: RwSignal::new(truncated),
            fetch_bytes: StoredValue::new(super::LOG_PAGE_BYTES),
        };
        buffer.push_text(text);
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
    pub fn reset(&self, text: &str, truncated: bool) {
        self.lines.set_value(Vec::new());
        self.headers.set_value(Vec::new());
        self.truncated.set(truncated);
        self.push_text(text);
        self.version.update(|v| *v += 1);
    }

    /// From now on reloads fetch the whole log (up to the server's cap). Returns whether the
    /// buffer holds less than that now (so the caller should reload it).
    pub fn want_full(&self) -> bool {
        self.fetch_bytes.set_value(super::LOG_FULL_BYTES);
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

    pub fn headers(&self) -> Vec<usize> {
        self.headers.get_value()
    }

    /// The whole text as held (what a test compares with the file).
    pub fn text(&self) -> String {
        self.with_lines(|lines| {
            let mut text = String::new();
            for line in lines {
                text.push_str(&line.raw);
                text.push('\n');
            }
            text
        })
    }
}
