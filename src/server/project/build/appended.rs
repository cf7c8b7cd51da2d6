//! The files tools append to: context Markdown (`.buildrunner/context/*.md`) and logs
//! (`.buildrunner/*.log`). Each is read from where the last read stopped; what arrived is
//! terminal output (a context file's appended blocks, a log's complete lines), and a context
//! file's error blocks are errors too. A file that shrank was replaced: it is read afresh.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::SystemTime,
};

use crate::contract::buildrunner::context::{parse_context, BlockKind, ContextBlock, ContextFile};
use crate::model::build::{BuildEvent, ContextView, FileChangeType, OutputEntry, OutputType};

use super::{file_change, list, read_from, stamp, Report, Stamp, MAX_SMALL_FILE};

/// New text read per file in one pass; more than this and the older part is skipped.
const MAX_APPEND_BYTES: u64 = 256 * 1024;
/// Appended text carried in a `file_change` event.
const MAX_CHANGE_CONTENT_CHARS: usize = 16 * 1024;

/// Which files and how their new text reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Flavour {
    /// Markdown with blocks; kept whole for the build page.
    #[default]
    Context,
    /// Plain lines.
    Log,
}

#[derive(Debug, Default)]
struct Tracked {
    stamp: Option<Stamp>,
    /// Bytes read so far (up to the last complete line of a log).
    offset: u64,
    /// A context file as it now reads.
    parsed: Option<ContextFile>,
}

#[derive(Debug, Default)]
pub struct Appended {
    flavour: Flavour,
    files: BTreeMap<String, Tracked>,
}

impl Appended {
    pub fn context() -> Self {
        Appended {
            flavour: Flavour::Context,
            files: BTreeMap::new(),
        }
    }

    pub fn logs() -> Self {
        Appended {
            flavour: Flavour::Log,
            files: BTreeMap::new(),
        }
    }

    fn dir(&self) -> &'static str {
        match self.flavour {
            Flavour::Context => ".buildrunner/context",
            Flavour::Log => ".buildrunner",
        }
    }

    fn rel(&self, name: &str) -> String {
        format!("{}/{name}", self.dir())
    }

    pub fn last_written(&self) -> Option<SystemTime> {
        self.files
            .values()
            .filter_map(|file| file.stamp.and_then(|stamp| stamp.modified))
            .max()
    }

    /// The context files, as the build page shows them.
    pub fn views(&self) -> Vec<ContextView> {
        self.files
            .iter()
            .filter_map(|(name, file)| file.parsed.as_ref().map(|parsed| view(name, parsed)))
            .collect()
    }

    /// Reads what was appended since the last pass. Returns the events about the files and,
    /// apart, the output. A log found by the first (quiet) read is followed from its end.
    pub fn sync(
        &mut self,
        dir: &Path,
        warnings: &mut BTreeMap<String, String>,
        report: Report,
    ) -> (Vec<BuildEvent>, Vec<BuildEvent>) {
        let suffix = match self.flavour {
            Flavour::Context => ".md",
            Flavour::Log => ".log",
        };
        let key = format!("{}/", self.dir());
        let names = match list(dir, self.dir(), suffix) {
            Ok(names) => {
                warnings.remove(&key);
                names
            }
            Err(error) => {
                warnings.insert(key.clone(), format!("cannot list {key}: {error}"));
                return (Vec::new(), Vec::new());
            }
        };
        let mut changes = Vec::new();
        let mut output = Vec::new();
        let listed: BTreeSet<&String> = names.iter().collect();
        let gone: Vec<String> = self
            .files
            .keys()
            .filter(|name| !listed.contains(name))
            .cloned()
            .collect();
        for name in gone {
            self.files.remove(&name);
            warnings.remove(&self.rel(&name));
            changes.push(file_change(&self.rel(&name), FileChangeType::Deleted, None));
        }
        for name in &names {
            self.read(dir, name, warnings, report, &mut changes, &mut output);
        }
        (changes, output)
    }

    fn read(
        &mut self,
        dir: &Path,
        name: &str,
        warnings: &mut BTreeMap<String, String>,
        report: Report,
        changes: &mut Vec<BuildEvent>,
        output: &mut Vec<BuildEvent>,
    ) {
        let rel = self.rel(name);
        let seen = match stamp(dir, &rel) {
            Ok(Some(seen)) => seen,
            Ok(None) => return,
            Err(error) => {
                warnings.insert(rel, format!("cannot read {name}: {error}"));
                return;
            }
        };
        let flavour = self.flavour;
        let known = self.files.contains_key(name);
        let tracked = self.files.entry(name.to_owned()).or_default();
        if tracked.stamp == Some(seen) {
            return;
        }
        let replaced = seen.len < tracked.offset;
        if replaced {
            tracked.offset = 0;
        }
        if !known && flavour == Flavour::Log && report == Report::Quiet {
            // Old lines are history: the pane follows what the build writes from now on.
            tracked.offset = seen.len;
        }
        let start = tracked
            .offset
            .max(seen.len.saturating_sub(MAX_APPEND_BYTES));
        let bytes = match read_from(dir, &rel, start, MAX_APPEND_BYTES) {
            Ok(bytes) => bytes,
            Err(error) => {
                warnings.insert(rel, format!("cannot read {name}: {error}"));
                return;
            }
        };
        warnings.remove(&rel);
        tracked.stamp = Some(seen);
        // A log's last line may still be being written: it is read once it ends.
        let complete = match flavour {
            Flavour::Log => bytes
                .iter()
                .rposition(|byte| *byte == b'\n')
                .map_or(0, |end| end + 1),
            Flavour::Context => bytes.len(),
        };
        tracked.offset = start + complete as u64;
        let text = String::from_utf8_lossy(&bytes[..complete]).into_owned();
        let change_type = match (known, replaced) {
            (false, _) => FileChangeType::Created,
            _ => FileChangeType::Modified,
        };
        match flavour {
            Flavour::Log => {
                if !text.is_empty() {
                    output.push(BuildEvent::Output(OutputEntry {
                        output: text.clone(),
                        output_type: OutputType::Stdout,
                        source: name.to_owned(),
                    }));
                }
            }
            Flavour::Context => {
                let whole = match read_from(dir, &rel, 0, MAX_SMALL_FILE) {
                    Ok(bytes) => bytes,
                    Err(error) => {
                        warnings.insert(rel, format!("cannot read {name}: {error}"));
                        return;
                    }
                };
                let (parsed, problems) = parse_context(&whole);
                if !problems.is_empty() {
                    warnings.insert(rel.clone(), format!("{name}: {}", problems.join("; ")));
                }
                // A replaced file's text is not new output; an appended chunk's blocks are.
                if !replaced {
                    let source = format!("context/{name}");
                    output.extend(appended_output(&text, &source));
                }
                changes.push(context_event(
                    name,
                    &parsed,
                    tracked.parsed.as_ref(),
                    start,
                    replaced,
                ));
                tracked.parsed = Some(parsed);
            }
        }
        if !text.is_empty() || change_type == FileChangeType::Created {
            let content = (!replaced && !text.is_empty())
                .then(|| text.chars().take(MAX_CHANGE_CONTENT_CHARS).collect());
            changes.push(file_change(&rel, change_type, content));
        }
    }
}

/// The event for a context file read again: only the blocks an append touched (the last block
/// before it, which the append may have continued, and the ones after), or the whole file when
/// it is new, was replaced, or the append changed its free text.
fn context_event(
    name: &str,
    parsed: &ContextFile,
    before: Option<&ContextFile>,
    appended_at: u64,
    replaced: bool,
) -> BuildEvent {
    let appended_at = usize::try_from(appended_at).unwrap_or(usize::MAX);
    let continued = parsed
        .blocks
        .iter()
        .rev()
        .find(|block| block.offset < appended_at)
        .map(|block| block.offset);
    // No block before the append: the free text is unchanged if the file had it all already.
    let first_new = || {
        parsed
            .blocks
            .first()
            .filter(|_| before.is_some_and(|before| before.text == parsed.text))
            .map(|block| block.offset)
    };
    let from = continued
        .or_else(first_new)
        .filter(|_| before.is_some() && !replaced);
    match from {
        Some(from) => BuildEvent::Context {
            view: ContextView {
                name: name.to_owned(),
                text: String::new(),
                blocks: parsed
                    .blocks
                    .iter()
                    .filter(|block| block.offset >= from)
                    .cloned()
                    .collect(),
                omitted_blocks: parsed.omitted_blocks,
            },
            from: Some(from),
        },
        None => BuildEvent::Context {
            view: view(name, parsed),
            from: None,
        },
    }
}

fn view(name: &str, parsed: &ContextFile) -> ContextView {
    ContextView {
        name: name.to_owned(),
        text: parsed.text.clone(),
        blocks: parsed.blocks.clone(),
        omitted_blocks: parsed.omitted_blocks,
    }
}

/// The output and errors in text appended to a context file: each block is output (an error
/// block on stderr, and an error too); text outside blocks is output as written.
fn appended_output(text: &str, source: &str) -> Vec<BuildEvent> {
    if text.trim().is_empty() {
        return Vec::new();
    }
    let (chunk, _) = parse_context(text.as_bytes());
    let mut events = Vec::new();
    let free = chunk.text.trim();
    if !free.is_empty() {
        events.push(BuildEvent::Output(OutputEntry {
            output: ensure_newline(free),
            output_type: OutputType::Stdout,
            source: source.to_owned(),
        }));
    }
    for block in &chunk.blocks {
        events.extend(block_events(block, source));
    }
    events
}

fn block_events(block: &ContextBlock, source: &str) -> Vec<BuildEvent> {
    let body = if block.text.trim().is_empty() {
        block.markdown.trim()
    } else {
        block.text.trim_end()
    };
    match &block.kind {
        BlockKind::Output { .. } => vec![BuildEvent::Output(OutputEntry {
            output: ensure_newline(body),
            output_type: OutputType::Stdout,
            source: source.to_owned(),
        })],
        BlockKind::Error => {
            let error_type = block
                .error_types
                .first()
                .cloned()
                .unwrap_or_else(|| "Error".to_owned());
            let first_line = body.lines().find(|line| !line.trim().is_empty());
            let error_message = match (&block.source, first_line) {
                (Some(path), Some(line)) => format!("{path}: {line}"),
                (None, Some(line)) => line.to_owned(),
                (Some(path), None) => format!("an error in {path}"),
                (None, None) => "an error was detected".to_owned(),
            };
            vec![
                BuildEvent::Output(OutputEntry {
                    output: ensure_newline(body),
                    output_type: OutputType::Stderr,
                    source: source.to_owned(),
                }),
                BuildEvent::Error {
                    error_message,
                    error_type,
                    traceback: (!body.is_empty()).then(|| body.to_owned()),
                },
            ]
        }
    }
}

fn ensure_newline(text: &str) -> String {
    let mut text = text.to_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}
