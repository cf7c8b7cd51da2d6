//! `.buildrunner/context/*.md` (`architecture.md`, `current-work.md`, `blockers.md`,
//! `test-results.md`): free Markdown that BuildRunner's tools append blocks to. Output piped
//! into the context arrives as
//!
//! ~~~text
//! ## Output: TAG
//! **Timestamp:** 2025-11-17 21:30:05
//!
//! ```
//! the output
//! ```
//! ~~~
//!
//! and the error watcher appends to `blockers.md`
//!
//! ~~~text
//! ---
//! ## Auto-Detected Error - 2025-11-17 21:30:05
//!
//! **Source:** `path`
//! **Detected By:** Error Watcher Daemon
//!
//! ### ErrorType
//! ```
//! the error text
//! ```
//! ~~~
//!
//! A file splits into its free text (before the first block) and its blocks; each block runs to
//! the next block heading. Headings count wherever a line starts with them, fences or not: an
//! append still being written leaves a fence open, and that must not hide the blocks after it.
//! Parsing an appended chunk alone gives the blocks it added, which is how a tail streams them.

use serde::{Deserialize, Serialize};

use super::read::{cap_chars, decode, Warnings};

/// Characters kept of the free text.
pub const MAX_FREE_TEXT_CHARS: usize = 256 * 1024;
/// Characters kept of each block's Markdown and of its extracted text.
pub const MAX_BLOCK_CHARS: usize = 64 * 1024;
/// Blocks kept: the newest ones, since appends are what a reader follows.
pub const MAX_CONTEXT_BLOCKS: usize = 500;
/// `### ` error types kept per block.
pub const MAX_ERROR_TYPES: usize = 100;

const OUTPUT_HEADING: &str = "## Output:";
const ERROR_HEADING: &str = "## Auto-Detected Error";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextFile {
    /// The Markdown before the first block.
    pub text: String,
    /// Oldest first.
    pub blocks: Vec<ContextBlock>,
    /// Older blocks past [`MAX_CONTEXT_BLOCKS`], counted but not kept.
    #[serde(default)]
    pub omitted_blocks: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BlockKind {
    /// `## Output: TAG`: command output, shown as terminal output.
    Output { tag: String },
    /// `## Auto-Detected Error - TIME`: an error found in a watched file.
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextBlock {
    #[serde(flatten)]
    pub kind: BlockKind,
    /// Byte offset of the heading line in the text parsed: in the decoded text, which differs
    /// from the bytes given only by a leading byte-order mark and replaced invalid UTF-8.
    pub offset: usize,
    /// The local time the tool wrote: the error heading's, or an output's `**Timestamp:**`.
    pub time: Option<String>,
    /// An error's `**Source:**` path, without backticks.
    pub source: Option<String>,
    /// An error's `### ` headings (`SyntaxError`, ...).
    pub error_types: Vec<String>,
    /// The contents of the block's fenced code, joined by newlines; the body without the
    /// `**Key:**` lines when it has no fence. This is the output or error text to stream.
    pub text: String,
    /// The Markdown after the heading line, as written.
    pub markdown: String,
}

impl ContextBlock {
    pub fn is_error(&self) -> bool {
        matches!(self.kind, BlockKind::Error)
    }
}

/// Splits a context file into free text and blocks. Never fails; invalid UTF-8 and cut content
/// are warnings.
pub fn parse_context(bytes: &[u8]) -> (ContextFile, Vec<String>) {
    let mut warnings = Warnings::default();
    let text = decode(bytes, "context file", &mut warnings);
    let starts = block_starts(&text);
    let first = starts.first().map_or(text.len(), |(offset, _)| *offset);
    let free = text.get(..first).unwrap_or_default();
    let free = if starts
        .first()
        .is_some_and(|(_, kind)| matches!(kind, Heading::Error))
    {
        without_trailing_rule(free)
    } else {
        free
    };
    let free = free.trim_end_matches(['\n', '\r']);
    if free.chars().nth(MAX_FREE_TEXT_CHARS).is_some() {
        warnings.push(format!(
            "context file: free text cut at {MAX_FREE_TEXT_CHARS} characters"
        ));
    }
    let skip = starts.len().saturating_sub(MAX_CONTEXT_BLOCKS);
    if skip > 0 {
        warnings.push(format!("context file: {skip} older blocks not shown"));
    }
    let mut cut = false;
    let blocks = starts
        .iter()
        .enumerate()
        .skip(skip)
        .map(|(index, (offset, _))| {
            let end = starts.get(index + 1).map_or(text.len(), |(next, kind)| {
                let body = text.get(*offset..*next).unwrap_or_default();
                match kind {
                    Heading::Error => offset + without_trailing_rule(body).len(),
                    Heading::Output => *next,
                }
            });
            let block_text = text.get(*offset..end).unwrap_or_default();
            let (block, was_cut) = block(*offset, block_text);
            cut |= was_cut;
            block
        })
        .collect();
    if cut {
        warnings.push(format!(
            "context file: blocks cut at {MAX_BLOCK_CHARS} characters"
        ));
    }
    let file = ContextFile {
        text: cap_chars(free, MAX_FREE_TEXT_CHARS),
        blocks,
        omitted_blocks: u32::try_from(skip).unwrap_or(u32::MAX),
    };
    (file, warnings.finish())
}

#[derive(Clone, Copy)]
enum Heading {
    Output,
    Error,
}

/// Byte offsets of the lines that open blocks.
fn block_starts(text: &str) -> Vec<(usize, Heading)> {
    let mut starts = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with(OUTPUT_HEADING) {
            starts.push((offset, Heading::Output));
        } else if line.starts_with(ERROR_HEADING) {
            starts.push((offset, Heading::Error));
        }
        offset += line.len();
    }
    starts
}

/// `text` without the `---` rule (and blank lines) the error watcher writes before its heading.
fn without_trailing_rule(text: &str) -> &str {
    let trimmed = text.trim_end();
    match trimmed.strip_suffix("---") {
        Some(rest) if rest.is_empty() || rest.ends_with('\n') => rest,
        _ => text,
    }
}

/// One block from its heading line to its end; whether something was cut.
fn block(offset: usize, text: &str) -> (ContextBlock, bool) {
    let (heading, body) = text.split_once('\n').unwrap_or((text, ""));
    let heading = heading.trim_end();
    let (kind, mut time) = match heading.strip_prefix(OUTPUT_HEADING) {
        Some(tag) => (
            BlockKind::Output {
                tag: cap_chars(tag.trim(), MAX_BLOCK_CHARS),
            },
            None,
        ),
        None => {
            let rest = heading.strip_prefix(ERROR_HEADING).unwrap_or_default();
            let time = rest.trim().trim_start_matches(['-', '–', '—']).trim();
            (
                BlockKind::Error,
                (!time.is_empty()).then(|| time.to_owned()),
            )
        }
    };
    let mut source = None;
    let mut error_types = Vec::new();
    let mut fenced = Vec::new();
    let mut plain = Vec::new();
    // The character of the open fence (`` ` `` or `~`), while inside one.
    let mut fence: Option<char> = None;
    for line in body.lines() {
        let trimmed = line.trim();
        if let Some(marker) = fence {
            if trimmed.len() >= 3 && trimmed.chars().all(|c| c == marker) {
                fence = None;
            } else {
                fenced.push(line);
            }
            continue;
        }
        if trimmed.starts_with("```") {
            fence = Some('`');
        } else if trimmed.starts_with("~~~") {
            fence = Some('~');
        } else if let Some(value) = trimmed.strip_prefix("**Timestamp:**") {
            time.get_or_insert_with(|| value.trim().to_owned());
        } else if let Some(value) = trimmed.strip_prefix("**Source:**") {
            source.get_or_insert_with(|| value.trim().trim_matches('`').to_owned());
        } else if let Some(name) = trimmed.strip_prefix("### ") {
            if error_types.len() < MAX_ERROR_TYPES {
                error_types.push(cap_chars(name.trim(), MAX_BLOCK_CHARS));
            }
        } else if !(trimmed.starts_with("**") && trimmed.contains(":**")) {
            plain.push(line);
        }
    }
    let text = if fenced.is_empty() && fence.is_none() {
        plain.join("\n").trim().to_owned()
    } else {
        fenced.join("\n").trim_end().to_owned()
    };
    let markdown = body.trim_end();
    let cut = text.chars().nth(MAX_BLOCK_CHARS).is_some()
        || markdown.chars().nth(MAX_BLOCK_CHARS).is_some();
    let block = ContextBlock {
        kind,
        offset,
        time: time.map(|t| cap_chars(&t, MAX_BLOCK_CHARS)),
        source: source.map(|s| cap_chars(&s, MAX_BLOCK_CHARS)),
        error_types,
        text: cap_chars(&text, MAX_BLOCK_CHARS),
        markdown: cap_chars(markdown, MAX_BLOCK_CHARS),
    };
    (block, cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CURRENT_WORK: &str =
        include_str!("../../../tests/fixtures/buildrunner/real/current-work.md");
    const REAL_TEST_RESULTS: &str =
        include_str!("../../../tests/fixtures/buildrunner/real/test-results.md");
    const REAL_BLOCKERS: &str =
        include_str!("../../../tests/fixtures/buildrunner/real/blockers.md");
    const BLOCKERS: &str = include_str!("../../../tests/fixtures/buildrunner/seed/blockers.md");
    const OPEN_FENCE: &str =
        include_str!("../../../tests/fixtures/buildrunner/seed/test-results-open-fence.md");

    #[test]
    fn real_context_files_are_free_text_only() {
        for text in [CURRENT_WORK, REAL_BLOCKERS, REAL_TEST_RESULTS] {
            let (file, warnings) = parse_context(text.as_bytes());
            assert!(warnings.is_empty(), "{warnings:?}");
            assert!(file.blocks.is_empty());
            assert_eq!(file.text, text.trim_end_matches('\n'));
        }
    }

    #[test]
    fn appended_errors_and_outputs_are_blocks() {
        let (file, warnings) = parse_context(BLOCKERS.as_bytes());
        assert!(warnings.is_empty(), "{warnings:?}");
        // The rule the error watcher writes before its heading is not part of the free text.
        assert!(
            file.text.ends_with("*Track blockers here for visibility*"),
            "{:?}",
            file.text
        );
        assert_eq!(file.blocks.len(), 2);
        let error = &file.blocks[0];
        assert!(error.is_error());
        assert_eq!(error.time.as_deref(), Some("2025-11-19 10:21:07"));
        assert_eq!(
            error.source.as_deref(),
            Some("/home/dev/shop/.buildrunner/build.log")
        );
        assert_eq!(error.error_types, ["ImportError", "AssertionError"]);
        assert_eq!(
            error.text,
            "ImportError: No module named 'stripe'\nAssertionError: expected 200, got 500"
        );
        assert!(BLOCKERS[error.offset..].starts_with("## Auto-Detected Error"));
        let output = &file.blocks[1];
        assert_eq!(
            output.kind,
            BlockKind::Output {
                tag: "test-results".to_owned()
            }
        );
        assert_eq!(output.time.as_deref(), Some("2025-11-19 10:22:41"));
        assert_eq!(
            output.text,
            "===== 41 passed, 2 failed in 3.20s =====\n## not a heading: inside the output"
        );
        assert!(output.markdown.starts_with("**Timestamp:**"));
        for block in &file.blocks {
            let json = serde_json::to_value(block).unwrap_or_default();
            let back: Option<ContextBlock> = serde_json::from_value(json).ok();
            assert_eq!(back.as_ref(), Some(block));
        }
        let json = serde_json::to_value(output).unwrap_or_default();
        assert_eq!(
            (json["kind"].as_str(), json["tag"].as_str()),
            (Some("output"), Some("test-results"))
        );
    }

    #[test]
    fn an_append_in_progress_hides_no_later_block() {
        let (file, _) = parse_context(OPEN_FENCE.as_bytes());
        let tags: Vec<_> = file.blocks.iter().map(|b| b.kind.clone()).collect();
        assert_eq!(
            tags,
            [
                BlockKind::Output {
                    tag: "test-results".to_owned()
                },
                BlockKind::Output {
                    tag: "build-output".to_owned()
                },
            ]
        );
        assert_eq!(
            file.blocks[0].text,
            "collected 12 items\ntests/test_auth.py ...."
        );
        assert_eq!(file.blocks[1].text, "Building component...");
        assert!(file.text.ends_with("**Status:** Not yet run"));
    }

    #[test]
    fn parsing_an_appended_chunk_gives_the_blocks_it_added() {
        for text in [BLOCKERS, OPEN_FENCE] {
            let (whole, _) = parse_context(text.as_bytes());
            for (index, block) in whole.blocks.iter().enumerate() {
                let (tail, _) = parse_context(&text.as_bytes()[block.offset..]);
                assert!(tail.text.is_empty());
                let shifted: Vec<ContextBlock> = tail
                    .blocks
                    .into_iter()
                    .map(|mut b| {
                        b.offset += block.offset;
                        b
                    })
                    .collect();
                assert_eq!(shifted, whole.blocks[index..]);
            }
        }
    }

    #[test]
    fn an_output_without_a_fence_is_its_plain_lines() {
        let text = "## Output: build-output\n**Timestamp:** 2025-11-19 10:00:00\n\nok: 3 built\n";
        let (file, _) = parse_context(text.as_bytes());
        assert_eq!(file.blocks[0].text, "ok: 3 built");
        let (file, _) = parse_context(b"## Auto-Detected Error\n");
        assert_eq!(
            (file.blocks[0].time.clone(), file.blocks[0].text.as_str()),
            (None, "")
        );
    }

    #[test]
    fn many_blocks_keep_the_newest() {
        let text: String = (0..MAX_CONTEXT_BLOCKS + 20)
            .map(|i| format!("## Output: t{i}\n```\nline {i}\n```\n"))
            .collect();
        let (file, warnings) = parse_context(text.as_bytes());
        assert_eq!(file.blocks.len(), MAX_CONTEXT_BLOCKS);
        assert_eq!(file.omitted_blocks, 20);
        assert_eq!(file.blocks[0].text, "line 20");
        assert_eq!(warnings, ["context file: 20 older blocks not shown"]);
        let big = format!(
            "## Output: big\n```\n{}\n```\n",
            "x".repeat(MAX_BLOCK_CHARS + 5)
        );
        let (file, warnings) = parse_context(big.as_bytes());
        assert_eq!(file.blocks[0].text.chars().count(), MAX_BLOCK_CHARS + 1);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn invalid_utf8_is_replaced_with_a_warning() {
        let (file, warnings) = parse_context(b"# Notes \xFF\n## Output: x\n```\n\xC3\n```\n");
        assert_eq!(warnings, ["context file: invalid UTF-8 replaced"]);
        assert_eq!(file.text, "# Notes \u{FFFD}");
        assert_eq!(file.blocks[0].text, "\u{FFFD}");
    }

    proptest! {
        #[test]
        fn random_text_never_panics(
            lines in proptest::collection::vec(
                prop::sample::select(vec![
                    "## Output: t", "## Auto-Detected Error - 1", "---", "```", "~~~",
                    "**Timestamp:** x", "**Source:** `p`", "### E", "", "text", "é",
                ]),
                0..40,
            ),
            junk in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut bytes = lines.join("\n").into_bytes();
            bytes.extend_from_slice(&junk);
            let (file, _) = parse_context(&bytes);
            let unmarked = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
            let decoded = String::from_utf8_lossy(unmarked);
            let mut previous = None;
            for block in &file.blocks {
                prop_assert!(decoded.is_char_boundary(block.offset));
                prop_assert!(previous < Some(block.offset));
                previous = Some(block.offset);
            }
        }
    }
}
