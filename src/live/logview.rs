//! The pure logic of the live log view: which lines of a long list to render (virtual
//! scrolling over 100,000+ lines at a fixed line height), whether the view is pinned to the
//! bottom, the search and errors-only filters, jumping between iteration headers, and splitting
//! appended text into lines.
//!
//! Iteration headers are recognised by `contract::log::parse_header` (the same rules the server
//! indexes with); [`header_indices`] takes that as a predicate so this module stays standalone.

/// What the visible window of a fixed-line-height list should render: lines `first..last`,
/// the first one placed `offset_px` from the top of a `total_px`-tall scroll area.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub first: usize,
    /// Exclusive.
    pub last: usize,
    /// Top of line `first`.
    pub offset_px: f64,
    /// Height of all `len` lines.
    pub total_px: f64,
}

/// The lines to render for a viewport of `viewport_px` scrolled to `scroll_top`, plus
/// `overscan` extra lines on each side so fast scrolling does not flash blank. A scroll
/// position past the end (the list shrank, or a stale value) is clamped to the last screenful.
/// Negative or non-finite inputs count as 0; a line height that is not positive and finite
/// renders nothing (`0..0`, no height), since no position can be computed from it.
pub fn window(
    len: usize,
    line_height: f64,
    scroll_top: f64,
    viewport_px: f64,
    overscan: usize,
) -> Window {
    if !(line_height.is_finite() && line_height > 0.0) {
        return Window {
            first: 0,
            last: 0,
            offset_px: 0.0,
            total_px: 0.0,
        };
    }
    let total_px = len as f64 * line_height;
    let viewport_px = non_negative(viewport_px);
    let scroll_top = non_negative(scroll_top).min((total_px - viewport_px).max(0.0));
    // Float-to-int `as` saturates (and maps NaN to 0), so these cannot wrap; min keeps them in
    // the list.
    let first_visible = ((scroll_top / line_height).floor() as usize).min(len);
    let last_visible = (((scroll_top + viewport_px) / line_height).ceil() as usize).min(len);
    let first = first_visible.saturating_sub(overscan);
    let last = last_visible.saturating_add(overscan).min(len).max(first);
    Window {
        first,
        last,
        offset_px: first as f64 * line_height,
        total_px,
    }
}

/// Whether a scroll position counts as "at the bottom" (within `slack_px` of it), so
/// auto-scroll stays pinned while new lines arrive. Content shorter than the viewport is
/// always at the bottom. Negative or non-finite inputs count as 0.
pub fn at_bottom(scroll_top: f64, viewport_px: f64, total_px: f64, slack_px: f64) -> bool {
    let below = non_negative(total_px) - non_negative(scroll_top) - non_negative(viewport_px);
    below <= non_negative(slack_px)
}

/// The indices of the header lines, in order; `is_header` decides. Pass
/// `|line| crate::contract::ralph::log::parse_header(line).is_some()`, which accepts raw (coloured)
/// and stripped lines alike.
pub fn header_indices(lines: &[String], is_header: impl Fn(&str) -> bool) -> Vec<usize> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| is_header(line))
        .map(|(index, _)| index)
        .collect()
}

/// Words that make a line an error line, matched case-insensitively anywhere (so `TypeError`,
/// `panicked`, `FAILED` and `failures:` count).
const ERROR_WORDS: [&str; 7] = [
    "error",
    "fail",
    "panic",
    "traceback",
    "exception",
    "fatal",
    "\u{274C}", // ❌, the loop's own failure marker
];

/// Words before an error word that say there was none: `0 errors`, `no errors`, `without
/// error`, `zero failures`, `none failed`.
const NEGATIONS: [&str; 5] = ["0", "no", "zero", "none", "without"];

/// Phrases followed by a process exit code.
const EXIT_CODE_PHRASES: [&str; 4] = ["exit code", "exit status", "exited with code", "exit_code"];

/// A line counts as an error line (for the errors-only filter) when it
/// * contains, case-insensitively, `error`, `fail` (`failed`, `failure`, `tests failed`),
///   `panic`, `traceback`, `exception`, `fatal` or ❌, anywhere in a word, unless that word
///   reports a zero count: preceded by `0`, `no`, `zero`, `none` or `without` (looking past a
///   `test`/`tests` in between: `0 tests failed`), or followed by a zero count (`errors: 0`,
///   `failed=0`, `error_count 0`); or
/// * reports a non-zero exit code: `exit code`, `exit status`, `exited with code` or
///   `exit_code`, then optional `:`/`=`, then a number other than 0.
///
/// So `test result: ok. 5 passed; 0 failed` and `Found 0 errors` are not error lines, while
/// `error[E0308]: mismatched types`, `2 errors` and `Agent exited with code 1` are. Prose that
/// merely talks about errors ("error handling") does count; the filter errs towards showing.
pub fn is_error_line(plain: &str) -> bool {
    // ASCII lowering keeps byte offsets, so positions found here index `plain` too.
    let lower = plain.to_ascii_lowercase();
    let has_error_word = ERROR_WORDS.iter().any(|word| {
        lower
            .match_indices(word)
            .any(|(at, found)| !reports_zero(&lower, at, at.saturating_add(found.len())))
    });
    has_error_word || has_nonzero_exit_code(&lower)
}

/// Indices of the lines matching both filters: `query` as a case-insensitive substring (empty
/// matches everything; it is not trimmed) and, when `errors_only`, [`is_error_line`]. `lines`
/// are already ANSI-stripped.
pub fn filter(lines: &[String], query: &str, errors_only: bool) -> Vec<usize> {
    let query = Query::new(query);
    lines
        .iter()
        .enumerate()
        .filter(|(_, line)| query.matches(line) && (!errors_only || is_error_line(line)))
        .map(|(index, _)| index)
        .collect()
}

/// The first header strictly after line `from` in `headers` (sorted ascending).
pub fn next_header(headers: &[usize], from: usize) -> Option<usize> {
    let after = headers.partition_point(|&header| header <= from);
    headers.get(after).copied()
}

/// The last header strictly before line `from` in `headers` (sorted ascending).
pub fn prev_header(headers: &[usize], from: usize) -> Option<usize> {
    let before = headers.partition_point(|&header| header < from);
    before
        .checked_sub(1)
        .and_then(|index| headers.get(index))
        .copied()
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

fn non_negative(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

/// A search query prepared once for many lines.
enum Query {
    All,
    /// ASCII queries compare bytes case-insensitively without allocating per line.
    Ascii(Vec<u8>),
    /// Other queries compare Unicode-lowercased text.
    Unicode(String),
}

impl Query {
    fn new(query: &str) -> Self {
        if query.is_empty() {
            Query::All
        } else if query.is_ascii() {
            Query::Ascii(query.as_bytes().to_ascii_lowercase())
        } else {
            Query::Unicode(query.to_lowercase())
        }
    }

    fn matches(&self, line: &str) -> bool {
        match self {
            Query::All => true,
            // An ASCII needle can only match ASCII bytes, so multi-byte text is safe here.
            Query::Ascii(needle) => line
                .as_bytes()
                .windows(needle.len())
                .any(|window| window.eq_ignore_ascii_case(needle)),
            Query::Unicode(needle) => line.to_lowercase().contains(needle.as_str()),
        }
    }
}

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Whether the error word found at `start..end` of `lower` reports a zero count.
fn reports_zero(lower: &str, start: usize, end: usize) -> bool {
    let bytes = lower.as_bytes();
    // Widen to the whole word: `TypeError`, `errors`, `error_count`.
    let word_bytes_before = bytes
        .get(..start)
        .unwrap_or_default()
        .iter()
        .rev()
        .take_while(|&&byte| is_word_byte(byte))
        .count();
    let word_bytes_after = bytes
        .get(end..)
        .unwrap_or_default()
        .iter()
        .take_while(|&&byte| is_word_byte(byte))
        .count();
    let word_start = start.saturating_sub(word_bytes_before);
    let word_end = end.saturating_add(word_bytes_after);
    negated_before(lower, word_start) || zero_after(lower, word_end)
}

/// The word before `at` is a negation, looking past one `test`/`tests` (`0 tests failed`).
/// Only spaces may separate the words: in `0 passed; error` the 0 counts something else.
fn negated_before(lower: &str, at: usize) -> bool {
    let mut before = lower.get(..at).unwrap_or_default();
    for _ in 0..2 {
        let spaced = before.trim_end_matches([' ', '\t']);
        if spaced.len() == before.len() {
            return false;
        }
        let word_len = spaced
            .bytes()
            .rev()
            .take_while(|&byte| is_word_byte(byte))
            .count();
        let word_start = spaced.len().saturating_sub(word_len);
        let word = spaced.get(word_start..).unwrap_or_default();
        if NEGATIONS.contains(&word) {
            return true;
        }
        if word != "test" && word != "tests" {
            return false;
        }
        before = spaced.get(..word_start).unwrap_or_default();
    }
    false
}

/// After the word ending at `at`: optional spaces, an optional `:` or `=`, spaces, then a count
/// of zero (`0`, `00`), not followed by more of a number (`0.5`, `0x1`).
fn zero_after(lower: &str, at: usize) -> bool {
    let rest = lower
        .get(at..)
        .unwrap_or_default()
        .trim_start_matches([' ', '\t']);
    let rest = rest
        .strip_prefix([':', '='])
        .unwrap_or(rest)
        .trim_start_matches([' ', '\t']);
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let number = rest.get(..digits).unwrap_or_default();
    let after = rest.get(digits..).unwrap_or_default();
    let continues = after
        .bytes()
        .next()
        .is_some_and(|byte| byte == b'.' || is_word_byte(byte));
    digits > 0 && number.bytes().all(|byte| byte == b'0') && !continues
}

/// An exit-code phrase followed by a number other than zero (`exit code: 1`, `exit status -9`).
fn has_nonzero_exit_code(lower: &str) -> bool {
    EXIT_CODE_PHRASES.iter().any(|phrase| {
        lower.match_indices(phrase).any(|(at, found)| {
            let rest = lower
                .get(at.saturating_add(found.len())..)
                .unwrap_or_default()
                .trim_start_matches([' ', '\t']);
            let rest = rest
                .strip_prefix([':', '='])
                .unwrap_or(rest)
                .trim_start_matches([' ', '\t']);
            let rest = rest.strip_prefix('-').unwrap_or(rest);
            let digits: Vec<u8> = rest.bytes().take_while(u8::is_ascii_digit).collect();
            !digits.is_empty() && digits.iter().any(|&digit| digit != b'0')
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|text| (*text).to_owned()).collect()
    }

    // ---------------------------------------------------------------- window

    #[test]
    fn window_covers_the_viewport_with_overscan() {
        // 20 px lines, a 100 px viewport scrolled to 210: lines 10..16 are visible.
        let out = window(1000, 20.0, 210.0, 100.0, 3);
        assert_eq!(
            out,
            Window {
                first: 7,
                last: 19,
                offset_px: 140.0,
                total_px: 20_000.0
            }
        );
        let exact = window(1000, 20.0, 200.0, 100.0, 0);
        assert_eq!((exact.first, exact.last), (10, 15));
    }

    #[test]
    fn window_at_the_edges() {
        let top = window(1000, 20.0, 0.0, 100.0, 5);
        assert_eq!((top.first, top.last, top.offset_px), (0, 10, 0.0));
        let bottom = window(1000, 20.0, 19_900.0, 100.0, 5);
        assert_eq!((bottom.first, bottom.last), (990, 1000));
        // Past the end (the list shrank): clamped to the last screenful.
        let stale = window(1000, 20.0, 1e12, 100.0, 0);
        assert_eq!(
            (stale.first, stale.last, stale.offset_px),
            (995, 1000, 19_900.0)
        );
        // Shorter than the viewport: everything.
        let short = window(3, 20.0, 500.0, 100.0, 0);
        assert_eq!((short.first, short.last, short.total_px), (0, 3, 60.0));
        let empty = window(0, 20.0, 0.0, 100.0, 10);
        assert_eq!((empty.first, empty.last, empty.total_px), (0, 0, 0.0));
    }

    #[test]
    fn window_survives_bad_inputs() {
        for line_height in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let out = window(100, line_height, 10.0, 100.0, 2);
            assert_eq!((out.first, out.last, out.total_px), (0, 0, 0.0));
        }
        // No viewport: only the overscan is rendered.
        let out = window(100, 10.0, f64::NAN, f64::NAN, 2);
        assert_eq!((out.first, out.last, out.offset_px), (0, 2, 0.0));
        let out = window(100, 10.0, -50.0, f64::INFINITY, usize::MAX);
        assert_eq!((out.first, out.last), (0, 100));
        let out = window(usize::MAX, 1.0, f64::MAX, 1000.0, usize::MAX);
        assert!(out.first <= out.last && out.total_px.is_finite());
    }

    #[test]
    fn at_bottom_within_slack() {
        assert!(at_bottom(900.0, 100.0, 1000.0, 0.0));
        assert!(at_bottom(895.0, 100.0, 1000.0, 8.0));
        assert!(!at_bottom(880.0, 100.0, 1000.0, 8.0));
        // Content shorter than the viewport is always at the bottom.
        assert!(at_bottom(0.0, 500.0, 100.0, 0.0));
        assert!(at_bottom(0.0, 0.0, 0.0, 0.0));
        // Bad inputs count as 0.
        assert!(!at_bottom(f64::NAN, 100.0, 1000.0, 8.0));
        assert!(at_bottom(900.0, 100.0, 1000.0, f64::NAN));
        assert!(at_bottom(900.0, 100.0, f64::INFINITY, 0.0));
    }

    // ---------------------------------------------------------------- errors

    #[test]
    fn error_lines() {
        for line in [
            "error[E0308]: mismatched types",
            "Error: something broke",
            "TypeError: x is undefined",
            "thread 'main' panicked at src/main.rs:3:5",
            "Traceback (most recent call last):",
            "java.lang.NullPointerException",
            "fatal: not a git repository",
            "test result: FAILED. 5 passed; 1 failed; 0 ignored",
            "failures:",
            "1 failure",
            "❌ Tests failed",
            "Tests failed",
            "Agent exited with code 1",
            "process exit code: 137",
            "exit status -9",
            "exit_code=2",
            "2 errors; 0 warnings",
            "0 errors, 1 failed",
            "error: 0.5 is not an integer",
            "could not compile: 10 errors",
            "errors: 3",
            "ERROR",
        ] {
            assert!(is_error_line(line), "{line:?}");
        }
    }

    #[test]
    fn not_error_lines() {
        for line in [
            "",
            "Compiling loopwatch v0.1.0",
            "test result: ok. 5 passed; 0 failed; 0 ignored",
            "Found 0 errors.",
            "no errors",
            "No errors or warnings",
            "errors: 0",
            "Error: 0",
            "failed=0",
            "failures = 00",
            "error_count 0",
            "built without errors",
            "zero failures",
            "none failed",
            "0 tests failed",
            "No tests failed",
            "exit code 0",
            "exited with code 0",
            "exit status: 0",
            "✅ Tests passed",
        ] {
            assert!(!is_error_line(line), "{line:?}");
        }
    }

    // ---------------------------------------------------------------- filter

    #[test]
    fn filter_by_query_and_errors() {
        let log = lines(&[
            "Compiling app",
            "error: boom",
            "Running TESTS",
            "test result: ok. 3 passed; 0 failed",
            "Ünïcode ERROR here",
        ]);
        assert_eq!(filter(&log, "", false), vec![0, 1, 2, 3, 4]);
        assert_eq!(filter(&log, "test", false), vec![2, 3]);
        assert_eq!(filter(&log, "ERROR", false), vec![1, 4]);
        assert_eq!(filter(&log, "", true), vec![1, 4]);
        assert_eq!(filter(&log, "boom", true), vec![1]);
        assert_eq!(filter(&log, "running", true), Vec::<usize>::new());
        assert_eq!(filter(&log, "ünï", false), vec![4]);
        assert_eq!(filter(&log, "ÜNÏ", false), vec![4]);
        assert_eq!(filter(&log, "absent", false), Vec::<usize>::new());
        assert_eq!(filter(&[], "x", true), Vec::<usize>::new());
    }

    // ---------------------------------------------------------------- headers

    #[test]
    fn header_navigation() {
        let headers = [3, 10, 42];
        assert_eq!(next_header(&headers, 0), Some(3));
        assert_eq!(next_header(&headers, 3), Some(10));
        assert_eq!(next_header(&headers, 41), Some(42));
        assert_eq!(next_header(&headers, 42), None);
        assert_eq!(prev_header(&headers, 42), Some(10));
        assert_eq!(prev_header(&headers, 43), Some(42));
        assert_eq!(prev_header(&headers, 3), None);
        assert_eq!(prev_header(&headers, 0), None);
        assert_eq!(next_header(&[], 0), None);
        assert_eq!(prev_header(&[], usize::MAX), None);
        assert_eq!(next_header(&headers, usize::MAX), None);
    }

    #[test]
    fn header_indices_use_the_predicate() {
        let log = lines(&["=== Iteration 1/3 ===", "work", "=== Iteration 2/3 ==="]);
        assert_eq!(
            header_indices(&log, |line| line.starts_with("===")),
            vec![0, 2]
        );
        assert_eq!(header_indices(&log, |_| false), Vec::<usize>::new());
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

    // ---------------------------------------------------------------- properties

    use crate::test_rng::Rng;

    fn any_float(rng: &mut Rng, scale: f64) -> f64 {
        match rng.below(16) {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => -rng.unit() * scale,
            3 => 0.0,
            4 => 1e300,
            _ => rng.unit() * scale,
        }
    }

    #[test]
    fn random_windows_cover_the_viewport() {
        let mut rng = Rng(0x2468_ACE0_1357_9BDF);
        for _ in 0..50_000 {
            let len = match rng.below(4) {
                0 => 0,
                1 => rng.below(10),
                _ => rng.below(200_000),
            };
            let line_height = if rng.below(10) == 0 {
                any_float(&mut rng, 30.0)
            } else {
                1.0 + rng.unit() * 30.0
            };
            let scroll_top = any_float(&mut rng, len as f64 * 40.0);
            let viewport = any_float(&mut rng, 2000.0);
            let overscan = rng.below(50);
            let out = window(len, line_height, scroll_top, viewport, overscan);
            let case = format!("{len} {line_height} {scroll_top} {viewport} {overscan}: {out:?}");
            assert!(out.first <= out.last && out.last <= len, "{case}");
            assert!(
                out.offset_px.is_finite() && out.total_px.is_finite(),
                "{case}"
            );
            if !(line_height.is_finite() && line_height > 0.0) {
                assert_eq!((out.first, out.last), (0, 0), "{case}");
                continue;
            }
            assert!(
                close(out.offset_px, out.first as f64 * line_height),
                "{case}"
            );
            assert!(close(out.total_px, len as f64 * line_height), "{case}");
            // The rendered lines cover the (clamped) viewport.
            let viewport = if viewport.is_finite() && viewport > 0.0 {
                viewport
            } else {
                0.0
            };
            let max_scroll = (out.total_px - viewport).max(0.0);
            let scroll = if scroll_top.is_finite() && scroll_top > 0.0 {
                scroll_top.min(max_scroll)
            } else {
                0.0
            };
            let rendered_bottom = out.offset_px + (out.last - out.first) as f64 * line_height;
            assert!(out.offset_px <= scroll + 1e-6, "{case}");
            assert!(
                rendered_bottom + 1e-6 * line_height >= (scroll + viewport).min(out.total_px),
                "{case}"
            );
            // Overscan is bounded: at most the visible lines plus two overscans.
            let visible = ((viewport / line_height).ceil() as usize).saturating_add(1);
            assert!(
                out.last - out.first <= visible.saturating_add(2 * overscan),
                "{case}"
            );
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    const WORDS: &[&str] = &[
        "error",
        "Error",
        "0",
        "no",
        "failed",
        "tests",
        "exit code",
        "1",
        "passed",
        ";",
        ":",
        " ",
        " ",
        " ",
        "x",
        "é",
        "漢",
        "😀",
        "\t",
        "ERROR",
        "=",
        "panic",
        "ok",
    ];

    fn random_line(rng: &mut Rng) -> String {
        (0..rng.below(10)).map(|_| rng.pick(WORDS)).collect()
    }

    #[test]
    fn random_filters_and_headers_agree_with_their_definitions() {
        let mut rng = Rng(0x1111_2222_3333_4444);
        for _ in 0..500 {
            let log: Vec<String> = (0..rng.below(80)).map(|_| random_line(&mut rng)).collect();
            let query = match rng.below(4) {
                0 => String::new(),
                _ => rng.pick(WORDS).to_owned(),
            };
            let errors_only = rng.below(2) == 0;
            let matched = filter(&log, &query, errors_only);
            // Exactly the lines the definition names, in order.
            let expected: Vec<usize> = (0..log.len())
                .filter(|&i| {
                    log[i].to_lowercase().contains(&query.to_lowercase())
                        && (!errors_only || is_error_line(&log[i]))
                })
                .collect();
            assert_eq!(matched, expected, "{query:?} {errors_only}");
            // Adding a filter never adds lines.
            let wider = filter(&log, &query, false);
            assert!(matched.iter().all(|i| wider.contains(i)));

            let headers = header_indices(&log, |line| line.contains("exit code"));
            assert!(headers.windows(2).all(|pair| pair[0] < pair[1]));
            for from in 0..=log.len() {
                let next = next_header(&headers, from);
                let expected_next = headers.iter().copied().find(|&h| h > from);
                assert_eq!(next, expected_next);
                let prev = prev_header(&headers, from);
                let expected_prev = headers.iter().rev().copied().find(|&h| h < from);
                assert_eq!(prev, expected_prev);
            }
        }
    }

    #[test]
    fn random_error_lines_never_panic_and_zero_counts_are_clean() {
        let mut rng = Rng(0x5A5A_A5A5_0F0F_F0F0);
        for _ in 0..20_000 {
            let line = random_line(&mut rng);
            let _ = is_error_line(&line);
            // A line made only of zero-count reports is never an error line.
            let word = rng.pick(&["error", "errors", "failed", "failures", "FAILED", "Error"]);
            let clean = match rng.below(3) {
                0 => format!("0 {word}"),
                1 => format!("no {word}"),
                _ => format!("{word}: 0"),
            };
            assert!(!is_error_line(&clean), "{clean:?}");
            assert!(is_error_line(&format!("3 {word}")), "{word}");
        }
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
