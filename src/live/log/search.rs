//! The log pane's filter: a search query prepared once for many lines, and the errors-only
//! switch. Pure, so the filter that runs in the browser is the one the tests run.

use super::LogLine;

/// A case-insensitive substring query, prepared once for many lines. Empty matches everything;
/// it is not trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query(Needle);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Needle {
    All,
    /// ASCII queries compare bytes case-insensitively without allocating per line.
    Ascii(Vec<u8>),
    /// Other queries compare Unicode-lowercased text.
    Unicode(String),
}

impl Query {
    pub fn new(query: &str) -> Self {
        Query(if query.is_empty() {
            Needle::All
        } else if query.is_ascii() {
            Needle::Ascii(query.as_bytes().to_ascii_lowercase())
        } else {
            Needle::Unicode(query.to_lowercase())
        })
    }

    pub fn matches(&self, line: &str) -> bool {
        match &self.0 {
            Needle::All => true,
            // An ASCII needle can only match ASCII bytes, so multi-byte text is safe here.
            Needle::Ascii(needle) => line
                .as_bytes()
                .windows(needle.len())
                .any(|window| window.eq_ignore_ascii_case(needle)),
            Needle::Unicode(needle) => line.to_lowercase().contains(needle.as_str()),
        }
    }

    pub fn matches_everything(&self) -> bool {
        self.0 == Needle::All
    }
}

/// Which lines the errors-only switch lets through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lines {
    All,
    /// Lines flagged as errors (see [`LogLine::error`]).
    ErrorsOnly,
}

/// Indices of the lines that match `query` (on their text without escape sequences) and pass
/// `lines`, in order.
pub fn matching_lines(log: &[LogLine], query: &Query, lines: Lines) -> Vec<usize> {
    log.iter()
        .enumerate()
        .filter(|(_, line)| (lines == Lines::All || line.error) && query.matches(line.plain()))
        .map(|(index, _)| index)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::log::error_line::{is_error_line, tests::random_line};
    use crate::test_rng::Rng;

    fn log(texts: &[&str]) -> Vec<LogLine> {
        texts
            .iter()
            .map(|text| LogLine::new((*text).to_owned()))
            .collect()
    }

    fn matching(log: &[LogLine], query: &str, lines: Lines) -> Vec<usize> {
        matching_lines(log, &Query::new(query), lines)
    }

    #[test]
    fn filter_by_query_and_errors() {
        let log = log(&[
            "Compiling app",
            "\x1b[31merror\x1b[0m: boom",
            "Running TESTS",
            "test result: ok. 3 passed; 0 failed",
            "Ünïcode ERROR here",
            "\x1b[1;34m=== Iteration 2/5 ===\x1b[0m",
        ]);
        assert_eq!(matching(&log, "", Lines::All), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(matching(&log, "test", Lines::All), vec![2, 3]);
        assert_eq!(matching(&log, "ERROR", Lines::All), vec![1, 4]);
        assert_eq!(matching(&log, "iteration 2", Lines::All), vec![5]);
        // Escape sequences are not text: `31m` is in the raw line only.
        assert_eq!(matching(&log, "31m", Lines::All), Vec::<usize>::new());
        assert_eq!(matching(&log, "error: boom", Lines::All), vec![1]);
        assert_eq!(matching(&log, "", Lines::ErrorsOnly), vec![1, 4]);
        assert_eq!(matching(&log, "boom", Lines::ErrorsOnly), vec![1]);
        assert_eq!(
            matching(&log, "running", Lines::ErrorsOnly),
            Vec::<usize>::new()
        );
        assert_eq!(matching(&log, "ünï", Lines::All), vec![4]);
        assert_eq!(matching(&log, "ÜNÏ", Lines::All), vec![4]);
        assert_eq!(matching(&log, "absent", Lines::All), Vec::<usize>::new());
        assert_eq!(matching(&[], "x", Lines::ErrorsOnly), Vec::<usize>::new());
    }

    #[test]
    fn queries_are_prepared_by_kind() {
        assert!(Query::new("").matches_everything());
        assert!(!Query::new(" ").matches_everything());
        assert!(Query::new("").matches(""));
        // The ASCII path: case-insensitive bytes, multi-byte text around them untouched.
        assert!(Query::new("Err").matches("漢ERROR😀"));
        assert!(!Query::new("err").matches("e r r"));
        assert!(!Query::new("longer than the line").matches("short"));
        // The Unicode path lower-cases both sides.
        assert!(Query::new("ÉTÉ").matches("un été chaud"));
        assert!(!Query::new("été").matches("ete"));
    }

    #[test]
    fn random_filters_agree_with_their_definition() {
        let mut rng = Rng(0x1111_2222_3333_4444);
        for _ in 0..500 {
            let log: Vec<LogLine> = (0..rng.below(80))
                .map(|_| LogLine::new(random_line(&mut rng)))
                .collect();
            let query = match rng.below(4) {
                0 => String::new(),
                _ => random_line(&mut rng),
            };
            let lines = if rng.below(2) == 0 {
                Lines::ErrorsOnly
            } else {
                Lines::All
            };
            let matched = matching(&log, &query, lines);
            // Exactly the lines the definition names, in order.
            let expected: Vec<usize> = (0..log.len())
                .filter(|&i| {
                    log[i].raw.to_lowercase().contains(&query.to_lowercase())
                        && (lines == Lines::All || (is_error_line(&log[i].raw) && !log[i].header))
                })
                .collect();
            assert_eq!(matched, expected, "{query:?} {lines:?}");
            // Adding a filter never adds lines.
            let wider = matching(&log, &query, Lines::All);
            assert!(matched.iter().all(|i| wider.contains(i)));
        }
    }
}
