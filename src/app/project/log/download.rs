//! Downloading the log as the page holds it: the whole of it, or the iteration at the top of
//! the pane, as plain text (colour codes removed).

use std::ops::Range;

use crate::live::log::LogLine;

/// The lines of the iteration that line `top` belongs to: from its header (or the start) to
/// the next header (or the end). `headers` are line indices, in order.
pub fn iteration_range(headers: &[usize], len: usize, top: usize) -> Range<usize> {
    let top = top.min(len.saturating_sub(1));
    let start = headers.iter().copied().rfind(|h| *h <= top).unwrap_or(0);
    let end = headers
        .iter()
        .copied()
        .find(|h| *h > top)
        .unwrap_or(len)
        .min(len);
    start.min(end)..end
}

/// The lines as plain text, one `\n` after each.
pub fn plain_text(lines: &[LogLine]) -> String {
    let mut text = String::new();
    for line in lines {
        text.push_str(line.plain());
        text.push('\n');
    }
    text
}

/// A `data:` address for `text`, so a plain link downloads it without a round trip.
#[cfg(feature = "hydrate")]
pub fn data_url(text: &str) -> String {
    format!(
        "data:text/plain;charset=utf-8,{}",
        String::from(js_sys::encode_uri_component(text))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_iteration_under_the_top_line_runs_from_its_header_to_the_next() {
        let headers = [2, 5, 9];
        assert_eq!(
            iteration_range(&headers, 12, 0),
            0..2,
            "before the first header"
        );
        assert_eq!(iteration_range(&headers, 12, 2), 2..5);
        assert_eq!(iteration_range(&headers, 12, 4), 2..5);
        assert_eq!(
            iteration_range(&headers, 12, 10),
            9..12,
            "the last one runs to the end"
        );
        assert_eq!(iteration_range(&headers, 12, 99), 9..12);
        assert_eq!(iteration_range(&[], 0, 0), 0..0);
    }

    #[test]
    fn downloads_are_plain_text() {
        let lines = [
            LogLine::new("\u{1b}[31mred\u{1b}[0m".into()),
            LogLine::new("plain".into()),
        ];
        assert_eq!(plain_text(&lines), "red\nplain\n");
    }
}
