//! Which log lines count as error lines (the log pane's errors-only filter): a few words,
//! unless they report a zero count, and non-zero exit codes. Pure text rules.

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
    let rest = after_separator(lower.get(at..).unwrap_or_default());
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
            let rest = after_separator(
                lower
                    .get(at.saturating_add(found.len())..)
                    .unwrap_or_default(),
            );
            let rest = rest.strip_prefix('-').unwrap_or(rest);
            let digits: Vec<u8> = rest.bytes().take_while(u8::is_ascii_digit).collect();
            !digits.is_empty() && digits.iter().any(|&digit| digit != b'0')
        })
    })
}

/// What follows a count's label: spaces, an optional `:` or `=`, spaces.
fn after_separator(text: &str) -> &str {
    let text = text.trim_start_matches([' ', '\t']);
    text.strip_prefix([':', '='])
        .unwrap_or(text)
        .trim_start_matches([' ', '\t'])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::test_rng::Rng;

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

    pub(crate) const WORDS: &[&str] = &[
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

    /// A line of up to ten [`WORDS`].
    pub(crate) fn random_line(rng: &mut Rng) -> String {
        (0..rng.below(10)).map(|_| rng.pick(WORDS)).collect()
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
}
