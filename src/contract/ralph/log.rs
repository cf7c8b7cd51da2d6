//! `.ralph/ralph.log`: the append-only human log of a loop. Lines look like `[HH:MM:SS] msg`
//! (local time, no date) with ANSI colours anywhere and raw agent output in between. This module
//! recognises iteration headers, token counts and emoji marker lines; everything else is noise.

use serde::{Deserialize, Serialize};

use super::iterations::IterationStatus;
use crate::contract::ansi::strip_ansi;

/// Marker texts come from arbitrary agent output; capping keeps events small on the wire.
pub const MAX_MARKER_TEXT_CHARS: usize = 500;

/// Splits a `[HH:MM:SS]` prefix (leading whitespace allowed) from the rest of the line.
/// The clock is `Some` only when valid (hours < 24, minutes and seconds < 60); a clock-shaped but
/// invalid prefix is still removed, since it is the loop's prefix and not part of the message.
/// With a prefix the rest has its leading whitespace trimmed; without one the line comes back as is.
pub fn strip_clock(line: &str) -> (Option<&str>, &str) {
    let Some(after_bracket) = line.trim_start().strip_prefix('[') else {
        return (None, line);
    };
    let Some(clock) = after_bracket.get(..8) else {
        return (None, line);
    };
    let Some(rest) = after_bracket
        .get(8..)
        .and_then(|rest| rest.strip_prefix(']'))
    else {
        return (None, line);
    };
    let Some([hours, minutes, seconds]) = clock_fields(clock) else {
        return (None, line);
    };
    let valid = hours < 24 && minutes < 60 && seconds < 60;
    (valid.then_some(clock), rest.trim_start())
}

/// `dd:dd:dd` as three numbers, or `None` when the shape is wrong.
fn clock_fields(clock: &str) -> Option<[u8; 3]> {
    let digit = |byte: u8| byte.is_ascii_digit().then(|| byte - b'0');
    match clock.as_bytes() {
        &[h1, h2, b':', m1, m2, b':', s1, s2] => Some([
            digit(h1)? * 10 + digit(h2)?,
            digit(m1)? * 10 + digit(m2)?,
            digit(s1)? * 10 + digit(s2)?,
        ]),
        _ => None,
    }
}

/// A line cleaned of ANSI codes and split into its clock and trimmed message.
fn clock_and_message(plain: &str) -> (Option<&str>, &str) {
    let (clock, message) = strip_clock(plain);
    (clock, message.trim())
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IterationHeader {
    /// Absolute iteration number (the new format's number is absolute too).
    pub iteration: u32,
    /// Maximum iterations of the run; 0 means unlimited.
    pub max: u32,
    /// `i` of `loop i/M` in the new format: the iteration's index within the current run.
    pub loop_index: Option<u32>,
    /// `HH:MM:SS` local time of the header, when the line had a valid clock prefix.
    pub clock: Option<String>,
}

impl IterationHeader {
    /// The iteration's place within the current run of the loop, what "n / max" means: `i` of
    /// `(loop i/M)`, since the absolute number of the new format keeps counting across restarts
    /// (iteration 65 of a run of 40); the old format's number starts again at 1 when the loop
    /// restarts, so it is the place itself.
    pub fn position(&self) -> u32 {
        self.loop_index.unwrap_or(self.iteration)
    }
}

/// Parses `=== Iteration N/M ===` (old) or `=== Iteration N (loop i/M) ===` (new), with or without
/// ANSI codes and a `[HH:MM:SS]` prefix; at least three `=` on each side, extra spaces tolerated.
/// The header must be the whole message, so prose that merely quotes one is not taken for it.
pub fn parse_header(line: &str) -> Option<IterationHeader> {
    let plain = strip_ansi(line);
    let (clock, message) = clock_and_message(&plain);
    header_from_message(clock, message)
}

fn header_from_message(clock: Option<&str>, message: &str) -> Option<IterationHeader> {
    let inside = strip_equals_fence(message)?;
    let after_word = strip_prefix_ignore_ascii_case(inside, "iteration")?;
    if !after_word.starts_with(char::is_whitespace) {
        return None;
    }
    let (iteration, rest) = take_u32(after_word.trim_start())?;
    let rest = rest.trim_start();
    let (max, loop_index, rest) = if let Some(rest) = rest.strip_prefix('/') {
        let (max, rest) = take_u32(rest.trim_start())?;
        (max, None, rest)
    } else {
        let rest = rest.strip_prefix('(')?.trim_start();
        let rest = strip_prefix_ignore_ascii_case(rest, "loop")?;
        let (loop_index, rest) = take_u32(rest.trim_start())?;
        let rest = rest.trim_start().strip_prefix('/')?;
        let (max, rest) = take_u32(rest.trim_start())?;
        let rest = rest.trim_start().strip_prefix(')')?;
        (max, Some(loop_index), rest)
    };
    if !rest.trim().is_empty() {
        return None;
    }
    Some(IterationHeader {
        iteration,
        max,
        loop_index,
        clock: clock.map(str::to_owned),
    })
}

/// The text between at least three leading and three trailing `=`, trimmed.
fn strip_equals_fence(message: &str) -> Option<&str> {
    let after_leading = message.trim_start_matches('=');
    let before_trailing = after_leading.trim_end_matches('=');
    let leading = message.len() - after_leading.len();
    let trailing = after_leading.len() - before_trailing.len();
    (leading >= 3 && trailing >= 3).then(|| before_trailing.trim())
}

/// A leading run of ASCII digits as a `u32` (`None` when absent or overflowing) and the rest.
fn take_u32(text: &str) -> Option<(u32, &str)> {
    let digit_count = text.bytes().take_while(u8::is_ascii_digit).count();
    let digits = text
        .get(..digit_count)
        .filter(|digits| !digits.is_empty())?;
    let value = digits.parse().ok()?;
    Some((value, text.get(digit_count..)?))
}

/// `prefix` must be ASCII; the match is ASCII case-insensitive.
fn strip_prefix_ignore_ascii_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.as_bytes().get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix.as_bytes()) {
        text.get(prefix.len()..)
    } else {
        None
    }
}

/// Parses a token count into THOUSANDS of tokens. `,` thousands separators are allowed (groups of
/// three). A bare integer of 500 or more counts raw tokens; an integer below 500 or any number
/// with a decimal point is already in thousands: `12,345` -> 12.345, `69.310` -> 69.31,
/// `42` -> 42.0. Signs, exponents, NaN, infinities and anything else are refused.
pub fn parse_token_number(text: &str) -> Option<f64> {
    let text = text.trim();
    let (integer_part, fraction) = match text.split_once('.') {
        Some((integer_part, fraction)) => (integer_part, Some(fraction)),
        None => (text, None),
    };
    if !is_grouped_integer(integer_part) {
        return None;
    }
    if let Some(fraction) = fraction {
        if fraction.is_empty() || !fraction.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
    }
    let without_separators: String = text.chars().filter(|&c| c != ',').collect();
    let value: f64 = without_separators.parse().ok()?;
    if !value.is_finite() {
        // Hundreds of digits overflow to infinity.
        return None;
    }
    let is_raw_token_count = fraction.is_none() && value >= 500.0;
    Some(if is_raw_token_count {
        value / 1000.0
    } else {
        value
    })
}

/// Digits, optionally grouped by commas: 1-3 digits first, then groups of exactly three.
fn is_grouped_integer(text: &str) -> bool {
    let all_digits = |group: &str| group.bytes().all(|byte| byte.is_ascii_digit());
    let mut groups = text.split(',');
    let Some(first) = groups.next() else {
        return false;
    };
    if first.is_empty() || !all_digits(first) {
        return false;
    }
    let has_separators = text.contains(',');
    !has_separators
        || (first.len() <= 3 && groups.all(|group| group.len() == 3 && all_digits(group)))
}

/// What a `tokens used` line says about the count.
#[derive(Clone, Copy, Debug, PartialEq)]
enum TokensLine {
    /// The count is on the next line.
    OnNextLine,
    /// Same-line form, `tokens used: 12,345`.
    Thousands(f64),
}

fn tokens_line_from_message(message: &str) -> Option<TokensLine> {
    let rest = strip_prefix_ignore_ascii_case(message, "tokens used")?.trim_start();
    let rest = rest.strip_prefix(':').unwrap_or(rest).trim();
    if rest.is_empty() {
        Some(TokensLine::OnNextLine)
    } else {
        parse_token_number(rest).map(TokensLine::Thousands)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Marker {
    /// `⚠️ Agent exited with code N`.
    AgentExited { code: i32 },
    /// `✅ Tests passed`.
    TestsPassed,
    /// `❌ Tests failed`.
    TestsFailed,
    /// Any other `❌ ...` line; `text` is what follows the emoji.
    Failure { text: String },
    /// `⏸️ ...`.
    Paused,
    /// `▶️ ...`.
    Resumed,
    /// `🛑 ...`; `text` is what follows the emoji.
    Stopped { text: String },
    /// `🎉 ...`, or a `✅ ...` line saying COMPLETE.
    Complete,
    /// Any line mentioning a rate limit; `text` is the whole message after the clock.
    RateLimited { text: String },
}

const WARNING_SIGN: char = '\u{26A0}';
const CROSS_MARK: char = '\u{274C}';
const CHECK_MARK: char = '\u{2705}';
const PARTY_POPPER: char = '\u{1F389}';
const PAUSE_BUTTON: char = '\u{23F8}';
const PLAY_BUTTON: char = '\u{25B6}';
const STOP_SIGN: char = '\u{1F6D1}';
/// Emoji presentation selector; the loop script's emoji may or may not carry it.
const VARIATION_SELECTOR_16: char = '\u{FE0F}';

/// Recognises a marker line (after ANSI stripping and an optional clock prefix). A rate-limit
/// mention wins over everything else, because it explains the other markers that follow it.
pub fn parse_marker(line: &str) -> Option<Marker> {
    let plain = strip_ansi(line);
    let (_, message) = clock_and_message(&plain);
    marker_from_message(message)
}

fn marker_from_message(message: &str) -> Option<Marker> {
    if mentions_rate_limit(message) {
        return Some(Marker::RateLimited {
            text: cap_marker_text(message),
        });
    }
    if let Some(text) = after_emoji(message, WARNING_SIGN) {
        return agent_exit_code(text).map(|code| Marker::AgentExited { code });
    }
    if let Some(text) = after_emoji(message, CROSS_MARK) {
        let tests_failed = strip_prefix_ignore_ascii_case(text, "tests failed").is_some()
            || strip_prefix_ignore_ascii_case(text, "test failed").is_some();
        return Some(if tests_failed {
            Marker::TestsFailed
        } else {
            Marker::Failure {
                text: cap_marker_text(text),
            }
        });
    }
    if let Some(text) = after_emoji(message, CHECK_MARK) {
        if strip_prefix_ignore_ascii_case(text, "tests passed").is_some() {
            return Some(Marker::TestsPassed);
        }
        return says_complete(text).then_some(Marker::Complete);
    }
    if after_emoji(message, PARTY_POPPER).is_some() {
        return Some(Marker::Complete);
    }
    if after_emoji(message, PAUSE_BUTTON).is_some() {
        return Some(Marker::Paused);
    }
    if after_emoji(message, PLAY_BUTTON).is_some() {
        return Some(Marker::Resumed);
    }
    after_emoji(message, STOP_SIGN).map(|text| Marker::Stopped {
        text: cap_marker_text(text),
    })
}

/// The text after a leading `emoji` (with or without U+FE0F), left-trimmed.
fn after_emoji(message: &str, emoji: char) -> Option<&str> {
    let rest = message.strip_prefix(emoji)?;
    Some(
        rest.strip_prefix(VARIATION_SELECTOR_16)
            .unwrap_or(rest)
            .trim_start(),
    )
}

fn agent_exit_code(text: &str) -> Option<i32> {
    let rest = strip_prefix_ignore_ascii_case(text, "agent exited with code")?.trim_start();
    let rest = rest.strip_prefix(':').unwrap_or(rest).trim_start();
    let sign_len = usize::from(rest.starts_with('-'));
    let digit_count = rest
        .get(sign_len..)?
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    if digit_count == 0 {
        return None;
    }
    rest.get(..sign_len + digit_count)?.parse().ok()
}

/// "rate limit" and its spellings in API errors (`rate-limit`, `rate_limit`, `RateLimitError`).
fn mentions_rate_limit(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["rate limit", "rate-limit", "rate_limit", "ratelimit"]
        .iter()
        .any(|needle| lower.contains(needle))
}

/// COMPLETE as a word (so not "incomplete" or "completed"), and not PLANNING COMPLETE, which
/// only ends the planning phase.
fn says_complete(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    lower.match_indices("complete").any(|(start, word)| {
        let end = start + word.len();
        let letter_before = start
            .checked_sub(1)
            .and_then(|before| bytes.get(before))
            .is_some_and(u8::is_ascii_alphabetic);
        let letter_after = bytes.get(end).is_some_and(u8::is_ascii_alphabetic);
        let before = lower.get(..start).unwrap_or_default();
        let after_planning = before
            .trim_end_matches([' ', '_', '-'])
            .ends_with("planning");
        !letter_before && !letter_after && !after_planning
    })
}

fn cap_marker_text(text: &str) -> String {
    match text.char_indices().nth(MAX_MARKER_TEXT_CHARS) {
        Some((cut, _)) => text.get(..cut).unwrap_or_default().to_owned(),
        None => text.to_owned(),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogEvent {
    /// An iteration header; `offset` is the byte offset of its line in the log file.
    IterationStarted {
        header: IterationHeader,
        offset: u64,
    },
    /// A `tokens used` count, in thousands of tokens.
    Tokens {
        thousands: f64,
    },
    Marker(Marker),
}

/// Turns log lines into events, one complete line at a time. Its only memory is whether the
/// previous line was a bare `tokens used`, whose count is on the following line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogScanner {
    expecting_token_count: bool,
}

impl LogScanner {
    /// Feeds one line without its newline; `offset` is the byte offset of the line in the file.
    /// If a `tokens used` line is followed by a line that is not a number, no token event is
    /// emitted, and that line is still read as a header or marker, so nothing else is lost.
    pub fn push(&mut self, offset: u64, line: &str) -> Option<LogEvent> {
        self.scan(offset, line).event
    }

    /// [`LogScanner::push`], with the line's clock as well (read from the same stripped text).
    pub fn scan(&mut self, offset: u64, line: &str) -> ScannedLine {
        let plain = strip_ansi(line);
        let (clock, message) = clock_and_message(&plain);
        let event = self.event(offset, clock, message);
        ScannedLine {
            clock: clock.and_then(clock_seconds),
            event,
        }
    }

    fn event(&mut self, offset: u64, clock: Option<&str>, message: &str) -> Option<LogEvent> {
        if std::mem::take(&mut self.expecting_token_count) {
            if let Some(thousands) = parse_token_number(message) {
                return Some(LogEvent::Tokens { thousands });
            }
        }
        if let Some(header) = header_from_message(clock, message) {
            return Some(LogEvent::IterationStarted { header, offset });
        }
        match tokens_line_from_message(message) {
            Some(TokensLine::OnNextLine) => {
                self.expecting_token_count = true;
                return None;
            }
            Some(TokensLine::Thousands(thousands)) => return Some(LogEvent::Tokens { thousands }),
            None => {}
        }
        marker_from_message(message).map(LogEvent::Marker)
    }
}

/// One line as [`LogScanner::scan`] read it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScannedLine {
    /// The line's `[HH:MM:SS]` clock as seconds since midnight, when it has a valid one.
    pub clock: Option<u32>,
    pub event: Option<LogEvent>,
}

/// A valid `HH:MM:SS` clock as seconds since midnight.
pub fn clock_seconds(clock: &str) -> Option<u32> {
    let [hours, minutes, seconds] = clock_fields(clock)?;
    (hours < 24 && minutes < 60 && seconds < 60)
        .then(|| u32::from(hours) * 3600 + u32::from(minutes) * 60 + u32::from(seconds))
}

/// Seconds since midnight as `HH:MM:SS` (the log's clocks carry no date).
pub fn format_clock(seconds: u32) -> String {
    let seconds = seconds % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// Seconds from clock `start` to clock `end`; an end before the start crossed midnight once.
pub fn clock_span(start: u32, end: u32) -> u32 {
    (end % 86_400 + 86_400 - start % 86_400) % 86_400
}

/// What an iteration's markers said about how it went, folded as they are read: a few bytes
/// whatever the iteration's length, so every iteration of a huge log can keep one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IterationMarks {
    /// The agent's last exit code.
    pub exit_code: Option<i32>,
    /// The last tests marker: passed or failed.
    pub tests_passed: Option<bool>,
    /// `❌` lines other than failed tests.
    pub failures: u32,
    /// A completion marker: the loop says it is done.
    pub complete: bool,
}

impl IterationMarks {
    pub fn note(&mut self, marker: &Marker) {
        match marker {
            Marker::AgentExited { code } => self.exit_code = Some(*code),
            Marker::TestsPassed => self.tests_passed = Some(true),
            Marker::TestsFailed => self.tests_passed = Some(false),
            Marker::Failure { .. } => self.failures = self.failures.saturating_add(1),
            Marker::Complete => self.complete = true,
            Marker::Paused
            | Marker::Resumed
            | Marker::Stopped { .. }
            | Marker::RateLimited { .. } => {}
        }
    }

    /// The error entries the markers amount to: a non-zero exit code, and the `❌` lines.
    pub fn errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if let Some(code @ (..=-1 | 1..)) = self.exit_code {
            errors.push(format!("agent exited with code {code}"));
        }
        match self.failures {
            0 => {}
            1 => errors.push("a failure was reported in the log".to_owned()),
            n => errors.push(format!("{n} failures were reported in the log")),
        }
        errors
    }

    /// `Error` with any error entry; `Success` when the agent exited with 0, the tests passed or
    /// the loop completed; otherwise unknown (`Other("")`), as a row without a status is.
    pub fn status(&self) -> IterationStatus {
        if !self.errors().is_empty() {
            IterationStatus::Error
        } else if self.exit_code == Some(0) || self.tests_passed == Some(true) || self.complete {
            IterationStatus::Success
        } else {
            IterationStatus::Other(String::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ansi::tests::{escape_sequence, text_without_escape};
    use proptest::prelude::*;

    #[test]
    fn scan_gives_the_clock_of_any_line() {
        let mut scanner = LogScanner::default();
        let line = scanner.scan(0, "\u{1b}[2m[01:02:03]\u{1b}[0m working");
        assert_eq!(line.clock, Some(3723));
        assert_eq!(line.event, None);
        let header = scanner.scan(9, "[23:59:59] === Iteration 8 (loop 1/50) ===");
        assert_eq!(header.clock, Some(86_399));
        assert!(matches!(
            header.event,
            Some(LogEvent::IterationStarted { offset: 9, .. })
        ));
        assert_eq!(scanner.scan(0, "[25:00:00] bad clock").clock, None);
        assert_eq!(scanner.scan(0, "no clock").clock, None);
    }

    #[test]
    fn clocks_print_and_span_midnight() {
        assert_eq!(clock_seconds("00:00:00"), Some(0));
        assert_eq!(clock_seconds("24:00:00"), None);
        assert_eq!(format_clock(3723), "01:02:03");
        assert_eq!(clock_span(3600, 3700), 100);
        assert_eq!(clock_span(86_390, 10), 20, "crossing midnight");
        assert_eq!(clock_span(5, 5), 0);
    }

    #[test]
    fn marks_fold_into_status_and_errors() {
        let marks = |markers: &[Marker]| {
            let mut marks = IterationMarks::default();
            markers.iter().for_each(|m| marks.note(m));
            marks
        };
        let none = marks(&[]);
        assert_eq!(none.status(), IterationStatus::Other(String::new()));
        assert!(none.errors().is_empty());

        let passed = marks(&[Marker::AgentExited { code: 0 }, Marker::TestsPassed]);
        assert_eq!(passed.status(), IterationStatus::Success);
        assert_eq!(passed.tests_passed, Some(true));

        let exited = marks(&[Marker::TestsPassed, Marker::AgentExited { code: 2 }]);
        assert_eq!(exited.status(), IterationStatus::Error);
        assert_eq!(exited.errors(), ["agent exited with code 2"]);

        let failed = marks(&[
            Marker::TestsPassed,
            Marker::TestsFailed,
            Marker::Failure { text: "x".into() },
            Marker::Failure { text: "y".into() },
            Marker::Paused,
        ]);
        assert_eq!(
            failed.tests_passed,
            Some(false),
            "the last tests marker wins"
        );
        assert_eq!(failed.status(), IterationStatus::Error);
        assert_eq!(failed.errors(), ["2 failures were reported in the log"]);

        let complete = marks(&[Marker::Complete]);
        assert!(complete.complete);
        assert_eq!(complete.status(), IterationStatus::Success);
    }

    // ---------------------------------------------------------------- strip_clock

    #[test]
    fn strip_clock_splits_valid_clocks() {
        assert_eq!(strip_clock("[01:23:41] msg"), (Some("01:23:41"), "msg"));
        assert_eq!(strip_clock("  [23:59:59]msg"), (Some("23:59:59"), "msg"));
        assert_eq!(strip_clock("[00:00:00]"), (Some("00:00:00"), ""));
    }

    #[test]
    fn strip_clock_removes_invalid_clock_shapes_without_a_clock() {
        assert_eq!(strip_clock("[24:00:00] msg"), (None, "msg"));
        assert_eq!(strip_clock("[12:60:00] msg"), (None, "msg"));
        assert_eq!(strip_clock("[12:00:60] msg"), (None, "msg"));
    }

    #[test]
    fn strip_clock_leaves_other_lines_alone() {
        assert_eq!(strip_clock("no clock"), (None, "no clock"));
        assert_eq!(strip_clock("[1:23:41] msg"), (None, "[1:23:41] msg"));
        assert_eq!(strip_clock("[01:23:41 msg"), (None, "[01:23:41 msg"));
        assert_eq!(strip_clock("[01-23-41] msg"), (None, "[01-23-41] msg"));
        assert_eq!(strip_clock("[é1:23:41] msg"), (None, "[é1:23:41] msg"));
        assert_eq!(strip_clock("["), (None, "["));
    }

    // ---------------------------------------------------------------- parse_header

    #[test]
    fn position_is_the_place_within_the_current_run_in_both_formats() {
        let old = parse_header("=== Iteration 5/50 ===").expect("old header");
        assert_eq!((old.position(), old.max), (5, 50));
        let new = parse_header("=== Iteration 65 (loop 1/40) ===").expect("new header");
        assert_eq!((new.iteration, new.position(), new.max), (65, 1, 40));
    }

    #[test]
    fn parses_old_header() {
        let header = parse_header("[01:23:41] === Iteration 5/50 ===").expect("header");
        assert_eq!(header.iteration, 5);
        assert_eq!(header.max, 50);
        assert_eq!(header.loop_index, None);
        assert_eq!(header.clock.as_deref(), Some("01:23:41"));
    }

    #[test]
    fn parses_new_header_with_colours() {
        let header = parse_header("\x1b[1;34m[01:23:41] === Iteration 8 (loop 1/50) ===\x1b[0m")
            .expect("header");
        assert_eq!(header.iteration, 8);
        assert_eq!(header.max, 50);
        assert_eq!(header.loop_index, Some(1));
        assert_eq!(header.clock.as_deref(), Some("01:23:41"));
    }

    #[test]
    fn parses_header_without_clock_and_unlimited() {
        let header = parse_header("=== Iteration 12 (loop 3/0) ===").expect("header");
        assert_eq!(header.iteration, 12);
        assert_eq!(header.max, 0);
        assert_eq!(header.loop_index, Some(3));
        assert_eq!(header.clock, None);
    }

    #[test]
    fn header_tolerates_fences_and_spaces() {
        let header =
            parse_header("  ========  iteration   7 (  LOOP 2 /  9 )   =====  \r").expect("header");
        assert_eq!(header.iteration, 7);
        assert_eq!(header.max, 9);
        assert_eq!(header.loop_index, Some(2));
        assert_eq!(header.clock, None);
        let header = parse_header("[99:00:00] ===Iteration 3 / 4===").expect("header");
        assert_eq!(header.iteration, 3);
        assert_eq!(header.max, 4);
        assert_eq!(header.loop_index, None);
        assert_eq!(header.clock, None);
    }

    #[test]
    fn rejects_non_headers() {
        for line in [
            "",
            "======",
            "== Iteration 5/50 ==",
            "=== Iteration 5/50 ==",
            "=== Iteration 5/50",
            "Iteration 5/50",
            "=== Iteration5/50 ===",
            "=== Iteration 5 ===",
            "=== Iteration /50 ===",
            "=== Iteration 5/ ===",
            "=== Iteration -5/50 ===",
            "=== Iteration +5/50 ===",
            "=== Iteration 5/50 extra ===",
            "=== Iteration 5 (loop 1/50 ===",
            "=== Iteration 5 (run 1/50) ===",
            "=== Iteration 4294967296/50 ===",
            "=== Iteration 5/4294967296 ===",
            "=== Iteration 5 (loop 4294967296/1) ===",
            "agent said: === Iteration 5/50 ===",
            "=== Summary ===",
        ] {
            assert_eq!(parse_header(line), None, "{line:?}");
        }
    }

    #[test]
    fn header_accepts_u32_max() {
        let header = parse_header("=== Iteration 4294967295 (loop 4294967295/4294967295) ===")
            .expect("header");
        assert_eq!(header.iteration, u32::MAX);
        assert_eq!(header.max, u32::MAX);
        assert_eq!(header.loop_index, Some(u32::MAX));
    }

    // ---------------------------------------------------------------- tokens

    #[test]
    fn token_numbers_follow_the_thousands_rule() {
        assert_eq!(parse_token_number("12,345"), Some(12.345));
        assert_eq!(parse_token_number("69.310"), Some(69.31));
        assert_eq!(parse_token_number("1,250.5"), Some(1250.5));
        assert_eq!(parse_token_number("42"), Some(42.0));
        assert_eq!(parse_token_number("499"), Some(499.0));
        assert_eq!(parse_token_number("500"), Some(0.5));
        assert_eq!(parse_token_number("0"), Some(0.0));
        assert_eq!(parse_token_number(" 1234567 \r"), Some(1234.567));
        assert_eq!(parse_token_number("1,234,567"), Some(1234.567));
        assert_eq!(parse_token_number("600.0"), Some(600.0));
    }

    #[test]
    fn token_numbers_reject_garbage() {
        for text in [
            "",
            "  ",
            "-5",
            "+5",
            "-0",
            "NaN",
            "nan",
            "inf",
            "infinity",
            "1e5",
            "12,34",
            "1234,567",
            ",123",
            "123,",
            "1,,234",
            "1.2.3",
            "5.",
            ".5",
            "12 345",
            "12,345 tokens",
            "0x10",
            "١٢",
        ] {
            assert_eq!(parse_token_number(text), None, "{text:?}");
        }
        assert_eq!(parse_token_number(&"9".repeat(400)), None);
    }

    #[test]
    fn tokens_lines_are_recognised() {
        assert_eq!(
            tokens_line_from_message("tokens used"),
            Some(TokensLine::OnNextLine)
        );
        assert_eq!(
            tokens_line_from_message("Tokens Used:"),
            Some(TokensLine::OnNextLine)
        );
        assert_eq!(
            tokens_line_from_message("tokens used: 12,345"),
            Some(TokensLine::Thousands(12.345))
        );
        assert_eq!(
            tokens_line_from_message("TOKENS USED 69.310"),
            Some(TokensLine::Thousands(69.31))
        );
        assert_eq!(tokens_line_from_message("tokens used: lots"), None);
        assert_eq!(tokens_line_from_message("total tokens used"), None);
    }

    // ---------------------------------------------------------------- markers

    #[test]
    fn parses_every_marker() {
        let cases = [
            (
                "[01:26:00] ⚠️ Agent exited with code 1",
                Marker::AgentExited { code: 1 },
            ),
            (
                "⚠ agent exited with code: -9 (killed)",
                Marker::AgentExited { code: -9 },
            ),
            ("[01:26:01] ❌ Tests failed", Marker::TestsFailed),
            ("❌ Test failed: 3 cases", Marker::TestsFailed),
            (
                "[01:26:01] ❌ Build broke",
                Marker::Failure {
                    text: "Build broke".to_owned(),
                },
            ),
            (
                "\x1b[32m[01:26:01] ✅ Tests passed\x1b[0m",
                Marker::TestsPassed,
            ),
            ("[01:27:00] ⏸️ Paused", Marker::Paused),
            ("⏸ Pause requested", Marker::Paused),
            ("[01:27:30] ▶️ Resumed", Marker::Resumed),
            ("▶Resumed", Marker::Resumed),
            (
                "[01:28:00] 🛑 Stopped by user",
                Marker::Stopped {
                    text: "Stopped by user".to_owned(),
                },
            ),
            ("[01:28:00] 🎉 All tasks complete", Marker::Complete),
            ("✅ ALL TASKS COMPLETE", Marker::Complete),
            ("✅️ Project complete!", Marker::Complete),
            (
                "[01:29:00] ⏳ Rate limit hit, waiting 60s",
                Marker::RateLimited {
                    text: "⏳ Rate limit hit, waiting 60s".to_owned(),
                },
            ),
            (
                "anthropic.RateLimitError: 429",
                Marker::RateLimited {
                    text: "anthropic.RateLimitError: 429".to_owned(),
                },
            ),
            (
                "❌ API rate-limited",
                Marker::RateLimited {
                    text: "❌ API rate-limited".to_owned(),
                },
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_marker(line), Some(expected), "{line:?}");
        }
    }

    #[test]
    fn rejects_non_markers() {
        for line in [
            "",
            "[01:26:00] Starting agent",
            "⚠️ Low disk space",
            "⚠️ Agent exited with code",
            "⚠️ Agent exited with code 99999999999",
            "✅ Committed abc1234",
            "✅ Iteration 5 completed",
            "✅ Phase incomplete",
            "✅ PLANNING_COMPLETE",
            "✅ Planning complete",
            "Tests passed ✅",
            "the agent printed ❌ somewhere",
        ] {
            assert_eq!(parse_marker(line), None, "{line:?}");
        }
    }

    #[test]
    fn marker_texts_are_capped_on_char_boundaries() {
        let long = "é".repeat(MAX_MARKER_TEXT_CHARS + 20);
        let Some(Marker::Failure { text }) = parse_marker(&format!("❌ {long}")) else {
            panic!("expected a failure marker");
        };
        assert_eq!(text.chars().count(), MAX_MARKER_TEXT_CHARS);
        assert!(long.starts_with(&text));
    }

    // ---------------------------------------------------------------- scanner

    /// Splits a log into `(offset, line)` pairs the way a file reader would.
    fn lines_with_offsets(log: &str) -> Vec<(u64, &str)> {
        let mut offset = 0u64;
        log.split('\n')
            .map(|line| {
                let start = offset;
                offset += line.len() as u64 + 1;
                (start, line)
            })
            .collect()
    }

    fn scan(log: &str) -> Vec<LogEvent> {
        let mut scanner = LogScanner::default();
        lines_with_offsets(log)
            .into_iter()
            .filter_map(|(offset, line)| scanner.push(offset, line))
            .collect()
    }

    /// Byte offset of the start of the line containing `needle`, found independently of the scanner.
    fn line_start(log: &str, needle: &str) -> u64 {
        let at = log.find(needle).expect("needle in fixture");
        log[..at].rfind('\n').map_or(0, |newline| newline + 1) as u64
    }

    const SAMPLE_LOG: &str = "\
[01:20:00] Starting Ralph loop in /home/dev/antique-catalogue
[01:20:00] CLI: codex, max iterations: 50
[01:23:41] === Iteration 5/50 ===
OpenAI Codex v0.46.0 (research preview)
--------
workdir: /home/dev/antique-catalogue
\x1b[2mthinking\x1b[0m
**Reviewing the plan** I will implement task 1.5 next.
exec bash -lc 'cargo test' in /home/dev/antique-catalogue
test result: ok. 42 passed; 0 failed
=== Summary ===
Iteration 4/50 was mentioned here without a fence
\x1b[35m\x1b[3mtokens used\x1b[0m
12,345
[01:26:00] ✅ Tests passed
[01:26:00] ⚠️ Agent exited with code 1
[01:26:01] ❌ Tests failed
[01:26:01] ❌ Could not push: remote rejected
\x1b[1;34m[01:27:00] === Iteration 8 (loop 1/50) ===\x1b[0m
tokens used
not a number after all
tokens used: 69.310
[01:27:10] ⏳ Rate limit hit, waiting 60s
\x1b[33m[01:28:10] ⏸️ Paused\x1b[0m
[01:28:40] ▶ Resumed
=== Iteration 12 (loop 3/0) ===
\x1b]0;codex\x07[01:29:00] tokens used
1,250.5
[01:30:00] 🛑 Stopped by user
[01:31:00] 🎉 All tasks complete
[01:31:00] ✅ STATUS: COMPLETE
[01:31:01] Loop finished\x1b";

    #[test]
    fn scans_the_sample_log() {
        let events = scan(SAMPLE_LOG);
        let expected = vec![
            LogEvent::IterationStarted {
                header: IterationHeader {
                    iteration: 5,
                    max: 50,
                    loop_index: None,
                    clock: Some("01:23:41".to_owned()),
                },
                offset: line_start(SAMPLE_LOG, "=== Iteration 5/50"),
            },
            LogEvent::Tokens { thousands: 12.345 },
            LogEvent::Marker(Marker::TestsPassed),
            LogEvent::Marker(Marker::AgentExited { code: 1 }),
            LogEvent::Marker(Marker::TestsFailed),
            LogEvent::Marker(Marker::Failure {
                text: "Could not push: remote rejected".to_owned(),
            }),
            LogEvent::IterationStarted {
                header: IterationHeader {
                    iteration: 8,
                    max: 50,
                    loop_index: Some(1),
                    clock: Some("01:27:00".to_owned()),
                },
                offset: line_start(SAMPLE_LOG, "=== Iteration 8 (loop 1/50)"),
            },
            LogEvent::Tokens { thousands: 69.31 },
            LogEvent::Marker(Marker::RateLimited {
                text: "⏳ Rate limit hit, waiting 60s".to_owned(),
            }),
            LogEvent::Marker(Marker::Paused),
            LogEvent::Marker(Marker::Resumed),
            LogEvent::IterationStarted {
                header: IterationHeader {
                    iteration: 12,
                    max: 0,
                    loop_index: Some(3),
                    clock: None,
                },
                offset: line_start(SAMPLE_LOG, "=== Iteration 12"),
            },
            LogEvent::Tokens { thousands: 1250.5 },
            LogEvent::Marker(Marker::Stopped {
                text: "Stopped by user".to_owned(),
            }),
            LogEvent::Marker(Marker::Complete),
            LogEvent::Marker(Marker::Complete),
        ];
        assert_eq!(events, expected);
        // The offsets point at the header lines themselves, colour codes included.
        assert_eq!(
            &SAMPLE_LOG[line_start(SAMPLE_LOG, "=== Iteration 8") as usize..][..8],
            "\x1b[1;34m["
        );
    }

    #[test]
    fn a_non_number_after_tokens_used_resets_and_is_still_read() {
        let mut scanner = LogScanner::default();
        assert_eq!(scanner.push(0, "tokens used"), None);
        let event = scanner.push(12, "=== Iteration 2/3 ===");
        assert_eq!(
            event,
            Some(LogEvent::IterationStarted {
                header: IterationHeader {
                    iteration: 2,
                    max: 3,
                    loop_index: None,
                    clock: None,
                },
                offset: 12,
            })
        );
        // The pending count was dropped: a later number is just noise.
        assert_eq!(scanner.push(34, "12,345"), None);
        assert_eq!(scanner, LogScanner::default());
    }

    #[test]
    fn events_serialize_as_snake_case_json() {
        let event = LogEvent::IterationStarted {
            header: IterationHeader {
                iteration: 8,
                max: 50,
                loop_index: Some(1),
                clock: Some("01:23:41".to_owned()),
            },
            offset: 7,
        };
        let json = serde_json::to_value(&event).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({"iteration_started": {
                "header": {"iteration": 8, "max": 50, "loop_index": 1, "clock": "01:23:41"},
                "offset": 7
            }})
        );
        let back: LogEvent = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, event);

        let marker = LogEvent::Marker(Marker::AgentExited { code: 2 });
        let json = serde_json::to_value(&marker).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({"marker": {"agent_exited": {"code": 2}}})
        );
        assert_eq!(
            serde_json::to_value(LogEvent::Marker(Marker::TestsPassed)).expect("serialize"),
            serde_json::json!({"marker": "tests_passed"})
        );
        assert_eq!(
            serde_json::to_value(LogEvent::Tokens { thousands: 12.5 }).expect("serialize"),
            serde_json::json!({"tokens": {"thousands": 12.5}})
        );
    }

    // ---------------------------------------------------------------- properties

    fn clock_text() -> impl Strategy<Value = String> {
        (0u8..24, 0u8..60, 0u8..60).prop_map(|(h, m, s)| format!("{h:02}:{m:02}:{s:02}"))
    }

    fn any_header() -> impl Strategy<Value = IterationHeader> {
        (
            any::<u32>(),
            any::<u32>(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(clock_text()),
        )
            .prop_map(|(iteration, max, loop_index, clock)| IterationHeader {
                iteration,
                max,
                loop_index,
                clock,
            })
    }

    /// Formats a header the way loop scripts do, with random fences, spacing and colour.
    fn header_line(
        header: &IterationHeader,
        left_fence: usize,
        right_fence: usize,
        space: &str,
        coloured: bool,
    ) -> String {
        let numbers = match header.loop_index {
            Some(loop_index) => format!(
                "{} {space}(loop {loop_index}{space}/{}{space})",
                header.iteration, header.max
            ),
            None => format!("{}{space}/{space}{}", header.iteration, header.max),
        };
        let clock = header
            .clock
            .as_ref()
            .map(|clock| format!("[{clock}] "))
            .unwrap_or_default();
        let body = format!(
            "{clock}{} Iteration {space}{numbers} {space}{}",
            "=".repeat(left_fence),
            "=".repeat(right_fence)
        );
        if coloured {
            format!("\x1b[1;34m{body}\x1b[0m")
        } else {
            body
        }
    }

    fn header_style() -> impl Strategy<Value = (usize, usize, &'static str, bool)> {
        (
            3usize..8,
            3usize..8,
            prop_oneof![Just(""), Just(" "), Just("  ")],
            any::<bool>(),
        )
    }

    /// A generated log line and the event it must produce.
    #[derive(Clone, Debug)]
    enum GeneratedLine {
        Header(IterationHeader, (usize, usize, &'static str, bool)),
        /// Raw integer count, same-line form or not.
        IntegerTokens(u64, bool),
        /// Thousands with three decimals, written as `int.fff`.
        DecimalTokens(u32, u16),
        Marker(&'static str, Marker),
        Noise(String),
    }

    fn marker_line() -> impl Strategy<Value = (&'static str, Marker)> {
        prop_oneof![
            Just((
                "[01:00:00] ⚠️ Agent exited with code 3",
                Marker::AgentExited { code: 3 }
            )),
            Just(("\x1b[32m✅ Tests passed\x1b[0m", Marker::TestsPassed)),
            Just(("[01:00:00] ❌ Tests failed", Marker::TestsFailed)),
            Just((
                "❌ boom",
                Marker::Failure {
                    text: "boom".to_owned()
                }
            )),
            Just(("⏸ Paused", Marker::Paused)),
            Just(("▶️ Resumed", Marker::Resumed)),
            Just((
                "🛑 Stopped by user",
                Marker::Stopped {
                    text: "Stopped by user".to_owned()
                }
            )),
            Just(("🎉 All tasks complete", Marker::Complete)),
            Just((
                "rate limit reached",
                Marker::RateLimited {
                    text: "rate limit reached".to_owned()
                }
            )),
        ]
    }

    fn is_silent(line: &str) -> bool {
        let plain = strip_ansi(line);
        let (clock, message) = clock_and_message(&plain);
        header_from_message(clock, message).is_none()
            && tokens_line_from_message(message).is_none()
            && marker_from_message(message).is_none()
            && parse_token_number(message).is_none()
    }

    fn noise_line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("=== Summary ===".to_owned()),
            Just("Iteration 5/50".to_owned()),
            Just("tokens".to_owned()),
            Just("[01:02:03] Running tests".to_owned()),
            Just("✅ Committed".to_owned()),
            "\\PC{0,40}",
            (
                text_without_escape(),
                escape_sequence(),
                text_without_escape()
            )
                .prop_map(|(a, escape, b)| format!("{a}{escape}{b}")),
        ]
        .prop_filter("noise must not parse as anything", |line| {
            !line.contains('\n') && is_silent(line)
        })
    }

    fn generated_line() -> impl Strategy<Value = GeneratedLine> {
        prop_oneof![
            (any_header(), header_style())
                .prop_map(|(header, style)| GeneratedLine::Header(header, style)),
            (0u64..10_000_000_000, any::<bool>())
                .prop_map(|(count, same_line)| GeneratedLine::IntegerTokens(count, same_line)),
            (0u32..100_000, 0u16..1000)
                .prop_map(|(whole, millis)| GeneratedLine::DecimalTokens(whole, millis)),
            marker_line().prop_map(|(line, marker)| GeneratedLine::Marker(line, marker)),
            noise_line().prop_map(GeneratedLine::Noise),
        ]
    }

    /// `1234567` -> `1,234,567`.
    fn with_thousands_separators(value: u64) -> String {
        let digits = value.to_string();
        let mut grouped = String::new();
        for (index, digit) in digits.chars().enumerate() {
            if index > 0 && (digits.len() - index).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        grouped
    }

    /// The log text and the events it must produce, with header offsets computed while writing.
    fn render(lines: &[GeneratedLine]) -> (String, Vec<LogEvent>) {
        let mut log = String::new();
        let mut expected = Vec::new();
        for generated in lines {
            let offset = log.len() as u64;
            match generated {
                GeneratedLine::Header(header, (left, right, space, coloured)) => {
                    log.push_str(&header_line(header, *left, *right, space, *coloured));
                    expected.push(LogEvent::IterationStarted {
                        header: header.clone(),
                        offset,
                    });
                }
                GeneratedLine::IntegerTokens(count, same_line) => {
                    let number = with_thousands_separators(*count);
                    if *same_line {
                        log.push_str(&format!("[01:00:00] tokens used: {number}"));
                    } else {
                        log.push_str(&format!("\x1b[35mtokens used\x1b[0m\n{number}"));
                    }
                    let count = *count as f64;
                    let thousands = if count >= 500.0 {
                        count / 1000.0
                    } else {
                        count
                    };
                    expected.push(LogEvent::Tokens { thousands });
                }
                GeneratedLine::DecimalTokens(whole, millis) => {
                    let number = format!("{whole}.{millis:03}");
                    log.push_str(&format!("[01:00:00] Tokens Used\n{number}"));
                    let thousands = f64::from(*whole) + f64::from(*millis) / 1000.0;
                    expected.push(LogEvent::Tokens { thousands });
                }
                GeneratedLine::Marker(line, marker) => {
                    log.push_str(line);
                    expected.push(LogEvent::Marker(marker.clone()));
                }
                GeneratedLine::Noise(line) => log.push_str(line),
            }
            log.push('\n');
        }
        (log, expected)
    }

    fn approximately_equal(actual: &[LogEvent], expected: &[LogEvent]) -> bool {
        actual.len() == expected.len()
            && actual.iter().zip(expected).all(|pair| match pair {
                (LogEvent::Tokens { thousands: a }, LogEvent::Tokens { thousands: b }) => {
                    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
                }
                (a, b) => a == b,
            })
    }

    proptest! {
        #[test]
        fn parsers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let line = String::from_utf8_lossy(&bytes);
            let _ = strip_clock(&line);
            let _ = parse_header(&line);
            let _ = parse_marker(&line);
            if let Some(thousands) = parse_token_number(&line) {
                prop_assert!(thousands.is_finite() && thousands >= 0.0);
            }
            let mut scanner = LogScanner::default();
            for (offset, part) in line.split('\n').enumerate() {
                let _ = scanner.push(offset as u64, part);
            }
        }

        #[test]
        fn parsers_never_panic_on_near_misses(line in "[\x1b\\[\\]0-9:=/() ,.a-zA-Z✅❌⚠️🎉🛑⏸▶️\u{FE0F}-]{0,60}") {
            let _ = strip_clock(&line);
            let _ = parse_header(&line);
            if let Some(Marker::Failure { text } | Marker::Stopped { text } | Marker::RateLimited { text }) = parse_marker(&line) {
                prop_assert!(text.chars().count() <= MAX_MARKER_TEXT_CHARS);
            }
            if let Some(thousands) = parse_token_number(&line) {
                prop_assert!(thousands.is_finite() && thousands >= 0.0);
            }
        }

        #[test]
        fn marker_texts_are_bounded_prefixes(text in "\\PC{0,700}") {
            if let Some(Marker::Failure { text: stored }) = parse_marker(&format!("❌ x{text}")) {
                prop_assert!(stored.chars().count() <= MAX_MARKER_TEXT_CHARS);
                let written = format!("x{text}");
                prop_assert!(written.trim().starts_with(&stored));
            }
        }

        #[test]
        fn headers_round_trip(header in any_header(), style in header_style()) {
            let (left, right, space, coloured) = style;
            let line = header_line(&header, left, right, space, coloured);
            prop_assert_eq!(parse_header(&line), Some(header));
        }

        #[test]
        fn integer_token_counts_follow_the_rule(count in any::<u64>()) {
            let expected = if count >= 500 { count as f64 / 1000.0 } else { count as f64 };
            prop_assert_eq!(parse_token_number(&count.to_string()), Some(expected));
            prop_assert_eq!(parse_token_number(&with_thousands_separators(count)), Some(expected));
        }

        #[test]
        fn decimal_token_counts_are_thousands(whole in any::<u32>(), millis in 0u16..1000) {
            let text = format!("{}.{millis:03}", with_thousands_separators(u64::from(whole)));
            let expected = f64::from(whole) + f64::from(millis) / 1000.0;
            let parsed = parse_token_number(&text).expect("a number");
            prop_assert!((parsed - expected).abs() <= 1e-9 * expected.max(1.0));
        }

        #[test]
        fn scanner_yields_exactly_the_generated_events(
            lines in proptest::collection::vec(generated_line(), 0..40),
        ) {
            let (log, expected) = render(&lines);
            let events = scan(&log);
            prop_assert!(approximately_equal(&events, &expected), "{events:?} != {expected:?}");
        }
    }
}
