//! Reading an append-only project file incrementally: from a byte offset to the end, whole
//! lines only, a bounded number of bytes per pass.
//!
//! - The file is opened through [`safe_open`] (never through a link, never a FIFO or device).
//! - Lines are split at `\n` only, and a UTF-8 sequence never contains that byte, so a line is
//!   never cut inside a character; an unfinished last line waits in a carry buffer.
//! - A line longer than the limit is cut (at a character boundary) and marked, so one runaway
//!   write cannot make memory grow without bound; the same cut applies to text served later
//!   ([`read_lines`], [`cut_lines`]).
//! - One pass reads at most [`PASS_BYTES`]; a caller that finds the tail [`Tail::behind`] asks
//!   for another pass later, so a huge append never holds anyone up for long.
//! - Truncation (size below the offset) and replacement (another inode) restart from byte 0.

use std::{
    collections::VecDeque,
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

use crate::server::safe_open;

/// How much of a file's beginning is remembered to recognise a rewritten file.
const HEAD_BYTES: usize = 64;
/// Longest line kept whole.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
const CHUNK_BYTES: usize = 256 * 1024;
/// Most bytes one [`Tail::read_new`] pass reads.
pub const PASS_BYTES: u64 = 8 * 1024 * 1024;
/// Over-long lines remembered (start, length), so served text can show them cut from their start:
/// enough for any 8 MiB window (each is longer than [`MAX_LINE_BYTES`]).
const LONG_LINES_KEPT: usize = 256;

/// The text appended to a line cut after its first bytes.
pub fn cut_marker(dropped: u64) -> String {
    format!(" \u{2026} [line cut: {dropped} more bytes]")
}

/// Why a tail started over from the beginning of its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// The file is shorter than what was already read (copytruncate, `> file`).
    Truncated,
    /// The path now names another file (rotation, editor save by rename).
    Replaced,
}

/// What one [`Tail::read_new`] call found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Set when the tail started over; everything derived from the file must be rebuilt.
    pub restarted: Option<Restart>,
    pub lines: u64,
    pub bytes: u64,
    /// The file does not exist (yet, or any more).
    pub missing: bool,
    /// The pass stopped at [`PASS_BYTES`]: more may be waiting.
    pub more: bool,
}

#[derive(Debug)]
pub struct Tail {
    /// The project directory the file is opened beneath, and its path there.
    dir: PathBuf,
    rel: String,
    /// Where the current (unfinished) line starts: every byte before it has been delivered.
    offset: u64,
    identity: Option<(u64, u64)>,
    carry: Vec<u8>,
    /// Bytes of the current over-long line dropped after the cut.
    dropped: u64,
    /// The file's first bytes as read: if they change, the file was truncated and rewritten
    /// (perhaps past the old size before we looked), which the size alone cannot tell.
    head: Vec<u8>,
    max_line: usize,
    /// Reading began inside a line (see [`Tail::start_near_end`]): it is skipped, not delivered.
    skipping: bool,
    /// The last pass stopped at its byte budget.
    behind: bool,
    /// (start, length without the `\n`) of the latest over-long lines, oldest first.
    long_lines: VecDeque<(u64, u64)>,
}

impl Tail {
    /// A tail of `path`, opened beneath its parent directory.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let dir = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let rel = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::beneath(dir, rel, MAX_LINE_BYTES)
    }

    /// A tail that cuts lines at `max_line` bytes (tests use small limits).
    #[cfg(test)]
    pub fn with_max_line(path: impl Into<PathBuf>, max_line: usize) -> Self {
        let mut tail = Self::new(path);
        tail.max_line = max_line.max(16);
        tail
    }

    /// A tail of `rel` (such as `.ralph/ralph.log`) inside the project directory `dir`.
    pub fn beneath(dir: impl Into<PathBuf>, rel: impl Into<String>, max_line: usize) -> Self {
        Self {
            dir: dir.into(),
            rel: rel.into(),
            offset: 0,
            identity: None,
            carry: Vec::new(),
            dropped: 0,
            head: Vec::new(),
            max_line: max_line.max(16),
            skipping: false,
            behind: false,
            long_lines: VecDeque::new(),
        }
    }

    /// A new tail of the same file, from its beginning.
    pub fn fresh(&self) -> Self {
        Self::beneath(self.dir.clone(), self.rel.clone(), self.max_line)
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.rel)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn rel(&self) -> &str {
        &self.rel
    }

    /// Bytes of the file delivered as complete lines.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether the last pass stopped at its budget with more of the file perhaps unread.
    pub fn behind(&self) -> bool {
        self.behind
    }

    /// The over-long lines among the delivered ones that overlap `[from, to)`, oldest first.
    pub fn long_lines(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        self.long_lines
            .iter()
            .filter(|(start, len)| *start < to && start + len + 1 > from)
            .copied()
            .collect()
    }

    /// For a fresh tail: when the file is longer than `window`, starts reading at its last
    /// `window` bytes (at the next line start) instead of byte 0, so a huge file costs a bounded
    /// read. Returns how many bytes were skipped (0 when none or the file is missing).
    pub fn start_near_end(&mut self, window: u64) -> io::Result<u64> {
        let mut file = match safe_open::open(&self.dir, &self.rel) {
            Ok(file) => file,
            Err(safe_open::OpenError::Missing(_)) => return Ok(0),
            Err(error) => return Err(error.into()),
        };
        let metadata = file.metadata()?;
        let size = metadata.len();
        if size <= window || self.identity.is_some() || self.consumed() > 0 {
            return Ok(0);
        }
        let start = size - window;
        let mut head = vec![0u8; HEAD_BYTES];
        let filled = read_full(&mut file, 0, &mut head)?;
        head.truncate(filled);
        let mut before = [0u8; 1];
        let at_line_start =
            read_full(&mut file, start - 1, &mut before)? == 1 && before[0] == b'\n';
        self.head = head;
        self.identity = Some(file_identity(&metadata));
        self.offset = start;
        self.skipping = !at_line_start;
        Ok(start)
    }

    /// Reads what was appended since the last call (at most [`PASS_BYTES`] of it) and calls
    /// `on_line(start_offset, line)` for each complete line (without its `\n`; a trailing `\r`
    /// is kept for the parser to judge).
    pub fn read_new(&mut self, mut on_line: impl FnMut(u64, &[u8])) -> io::Result<ReadOutcome> {
        let mut outcome = ReadOutcome::default();
        self.behind = false;
        let mut file = match safe_open::open(&self.dir, &self.rel) {
            Ok(file) => file,
            Err(safe_open::OpenError::Missing(_)) => {
                outcome.missing = true;
                return Ok(outcome);
            }
            Err(error) => return Err(error.into()),
        };
        let metadata = file.metadata()?;
        let identity = file_identity(&metadata);
        if self.identity.is_some_and(|known| known != identity) {
            outcome.restarted = Some(Restart::Replaced);
        } else if metadata.len() < self.consumed() || !self.head_unchanged(&mut file)? {
            outcome.restarted = Some(Restart::Truncated);
        }
        if outcome.restarted.is_some() {
            self.offset = 0;
            self.carry.clear();
            self.dropped = 0;
            self.head.clear();
            self.skipping = false;
            self.long_lines.clear();
        }
        self.identity = Some(identity);
        file.seek(SeekFrom::Start(self.consumed()))?;

        let mut buffer = vec![0u8; CHUNK_BYTES];
        loop {
            if outcome.bytes >= PASS_BYTES {
                outcome.more = true;
                self.behind = true;
                break;
            }
            let read = file.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            outcome.bytes += read as u64;
            if self.head.len() < HEAD_BYTES && self.consumed() == self.head.len() as u64 {
                let wanted = (HEAD_BYTES - self.head.len()).min(read);
                self.head.extend_from_slice(&buffer[..wanted]);
            }
            let mut rest = &buffer[..read];
            while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
                self.take(&rest[..newline]);
                let line_bytes = self.carry.len() as u64 + self.dropped + 1;
                let start = self.offset;
                rest = &rest[newline + 1..];
                if self.skipping {
                    // The rest of a line that began before the window: not a whole line.
                    self.skipping = false;
                } else {
                    if self.dropped > 0 {
                        self.remember_long_line(start, line_bytes - 1);
                        let marker = cut_marker(self.dropped);
                        self.carry.extend_from_slice(marker.as_bytes());
                    }
                    on_line(start, &self.carry);
                    outcome.lines += 1;
                }
                self.offset += line_bytes;
                self.carry.clear();
                self.dropped = 0;
            }
            self.take(rest);
        }
        Ok(outcome)
    }

    fn remember_long_line(&mut self, start: u64, len: u64) {
        if self.long_lines.len() >= LONG_LINES_KEPT {
            self.long_lines.pop_front();
        }
        self.long_lines.push_back((start, len));
    }

    /// Whether the file still starts with the bytes it started with.
    fn head_unchanged(&self, file: &mut File) -> io::Result<bool> {
        if self.head.is_empty() {
            return Ok(true);
        }
        let mut now = vec![0u8; self.head.len()];
        let filled = read_full(file, 0, &mut now)?;
        Ok(now[..filled] == self.head[..])
    }

    /// Bytes read from the file so far: delivered lines plus the unfinished one.
    fn consumed(&self) -> u64 {
        self.offset + self.carry.len() as u64 + self.dropped
    }

    /// Appends to the current line, cutting it at the limit on a character boundary.
    fn take(&mut self, bytes: &[u8]) {
        if self.skipping {
            self.dropped += bytes.len() as u64;
            return;
        }
        let room = self.max_line.saturating_sub(self.carry.len());
        if self.dropped > 0 || bytes.len() > room {
            let keep = if self.dropped == 0 {
                char_boundary(bytes, room.min(bytes.len()))
            } else {
                0
            };
            self.carry.extend_from_slice(&bytes[..keep]);
            self.dropped += (bytes.len() - keep) as u64;
        } else {
            self.carry.extend_from_slice(bytes);
        }
    }
}

/// The largest `keep <= at` that does not split a UTF-8 sequence of `bytes`.
fn char_boundary(bytes: &[u8], at: usize) -> usize {
    let mut keep = at.min(bytes.len());
    while keep > 0 && keep < bytes.len() && (bytes[keep] & 0b1100_0000) == 0b1000_0000 {
        keep -= 1;
    }
    keep
}

/// Reads into `buffer` from `offset` until it is full or the file ends; returns the bytes read.
fn read_full(file: &mut File, offset: u64, buffer: &mut [u8]) -> io::Result<usize> {
    file.seek(SeekFrom::Start(offset))?;
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(unix)]
fn file_identity(metadata: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (metadata.dev(), metadata.ino())
}

#[cfg(not(unix))]
fn file_identity(_metadata: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// Reads `[start, end)` of the project file `rel` (an iteration's slice of the log), at most
/// `cap` bytes; `end: None` reads to the end of the file.
pub fn read_range(
    dir: &Path,
    rel: &str,
    start: u64,
    end: Option<u64>,
    cap: u64,
) -> io::Result<Vec<u8>> {
    let mut file = safe_open::open(dir, rel)?;
    file.seek(SeekFrom::Start(start))?;
    let wanted = end.map_or(cap, |end| end.saturating_sub(start).min(cap));
    let mut bytes = Vec::new();
    file.take(wanted).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// `bytes` as text with every line longer than `max_line` cut (on a character boundary) and
/// marked the way the live stream cuts it. Line ends are kept as they are.
pub fn cut_lines(bytes: &[u8], max_line: usize) -> String {
    let mut out = String::with_capacity(bytes.len().min(16 * 1024 * 1024));
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if index > 0 {
            out.push('\n');
        }
        push_cut(&mut out, line, line.len() as u64, max_line);
    }
    out
}

/// Appends the first `max_line` bytes of a line of `full_len` bytes (`line` holds at least its
/// beginning), with the cut marker when bytes are left out.
fn push_cut(out: &mut String, line: &[u8], full_len: u64, max_line: usize) {
    if full_len <= max_line as u64 && line.len() as u64 == full_len {
        out.push_str(&String::from_utf8_lossy(line));
        return;
    }
    let keep = char_boundary(line, max_line.min(line.len()));
    out.push_str(&String::from_utf8_lossy(&line[..keep]));
    out.push_str(&cut_marker(full_len.saturating_sub(keep as u64)));
}

/// The text of the project file `rel` in `[from, end)` as whole lines, each cut at
/// [`MAX_LINE_BYTES`] like the live stream. `long_lines` are the known over-long lines
/// ([`Tail::long_lines`]): one of them is read only as far as its cut, and when `from` falls inside
/// one, that line is shown (cut) from its start. Any other line that began before `from` is left
/// out: its beginning is not in the range.
pub fn read_lines(
    dir: &Path,
    rel: &str,
    from: u64,
    end: u64,
    long_lines: &[(u64, u64)],
) -> io::Result<String> {
    let mut file = safe_open::open(dir, rel)?;
    let mut out = String::new();
    let mut pos = from;
    let mut partial_first = from > 0;
    if let Some(&(start, _)) = long_lines
        .iter()
        .find(|(start, len)| *start < from && from <= start + len)
    {
        pos = start;
        partial_first = false;
    }
    if partial_first {
        let mut before = [0u8; 1];
        partial_first = !(read_full(&mut file, from - 1, &mut before)? == 1 && before[0] == b'\n');
    }
    let mut long = long_lines
        .iter()
        .filter(|(start, _)| *start >= pos && *start < end)
        .copied()
        .collect::<Vec<_>>();
    long.sort_unstable();
    for (start, len) in long {
        if start < pos {
            continue;
        }
        push_region(&mut file, &mut out, pos, start, &mut partial_first)?;
        let mut line = vec![0u8; MAX_LINE_BYTES + 4];
        let filled = read_full(&mut file, start, &mut line)?;
        line.truncate(filled.min(len as usize));
        push_cut(&mut out, &line, len, MAX_LINE_BYTES);
        out.push('\n');
        pos = start + len + 1;
        partial_first = false;
    }
    if pos < end {
        push_region(&mut file, &mut out, pos, end, &mut partial_first)?;
    }
    Ok(out)
}

/// Appends `[from, to)` of the file with lines cut; drops the partial line at its start when
/// `partial_first` is set (and clears it once a line start was reached).
fn push_region(
    file: &mut File,
    out: &mut String,
    from: u64,
    to: u64,
    partial_first: &mut bool,
) -> io::Result<()> {
    if to <= from {
        return Ok(());
    }
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.by_ref().take(to - from).read_to_end(&mut bytes)?;
    let mut text = &bytes[..];
    if *partial_first {
        match text.iter().position(|&b| b == b'\n') {
            Some(newline) => {
                text = &text[newline + 1..];
                *partial_first = false;
            }
            None => return Ok(()),
        }
    }
    out.push_str(&cut_lines(text, MAX_LINE_BYTES));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, bytes: &[u8]) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open for append");
        file.write_all(bytes).expect("append");
    }

    fn collect(tail: &mut Tail) -> (Vec<(u64, String)>, ReadOutcome) {
        let mut lines = Vec::new();
        let outcome = tail
            .read_new(|offset, line| {
                lines.push((offset, String::from_utf8_lossy(line).into_owned()))
            })
            .expect("read");
        (lines, outcome)
    }

    #[test]
    fn partial_lines_wait_and_offsets_are_exact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let mut tail = Tail::new(&path);
        assert!(collect(&mut tail).1.missing);

        append(&path, "one\ntw".as_bytes());
        let (lines, _) = collect(&mut tail);
        assert_eq!(lines, [(0, "one".to_owned())]);
        // "é" split across two writes must come out whole.
        append(&path, b"o \xc3");
        assert!(collect(&mut tail).0.is_empty());
        append(&path, b"\xa9\nthree\n");
        let (lines, outcome) = collect(&mut tail);
        assert_eq!(lines, [(4, "two é".to_owned()), (11, "three".to_owned())]);
        assert_eq!(outcome.lines, 2);
        assert_eq!(tail.offset(), 17);
        assert_eq!(
            read_range(dir.path(), "log", 4, Some(11), 1024).expect("range"),
            "two é\n".as_bytes()
        );
    }

    #[test]
    fn truncation_and_replacement_restart_from_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        append(&path, b"a long first line\n");
        let mut tail = Tail::new(&path);
        collect(&mut tail);

        std::fs::write(&path, b"new\n").expect("truncate");
        let (lines, outcome) = collect(&mut tail);
        assert_eq!(outcome.restarted, Some(Restart::Truncated));
        assert_eq!(lines, [(0, "new".to_owned())]);

        let other = dir.path().join("rotated");
        std::fs::write(&other, b"fresh file, longer than before\n").expect("write");
        std::fs::rename(&other, &path).expect("rotate");
        let (lines, outcome) = collect(&mut tail);
        assert_eq!(outcome.restarted, Some(Restart::Replaced));
        assert_eq!(lines[0].0, 0);
        assert_eq!(lines[0].1, "fresh file, longer than before");
    }

    #[test]
    fn a_file_truncated_and_regrown_past_the_offset_is_noticed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        append(&path, b"short\n");
        let mut tail = Tail::new(&path);
        collect(&mut tail);
        // `> log; echo ... >> log` before the tail looked again: bigger than before.
        std::fs::write(&path, b"a longer first line\n").expect("rewrite");
        let (lines, outcome) = collect(&mut tail);
        assert_eq!(outcome.restarted, Some(Restart::Truncated));
        assert_eq!(lines, [(0, "a longer first line".to_owned())]);
        // Appends after that are plain appends again.
        append(&path, b"more\n");
        let (lines, outcome) = collect(&mut tail);
        assert_eq!(outcome.restarted, None);
        assert_eq!(lines, [(20, "more".to_owned())]);
    }

    #[test]
    fn over_long_lines_are_cut_on_a_character_boundary_and_offsets_stay_right() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let long = "é".repeat(40); // 80 bytes
        append(&path, format!("{long}\nafter\n").as_bytes());
        let mut tail = Tail::with_max_line(&path, 31);
        let (lines, _) = collect(&mut tail);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].1.starts_with(&"é".repeat(15)));
        assert!(
            lines[0].1.contains("[line cut: 50 more bytes]"),
            "{}",
            lines[0].1
        );
        assert!(!lines[0].1.contains('\u{fffd}'), "no broken character");
        assert_eq!(lines[1], (81, "after".to_owned()));
    }

    #[test]
    fn a_pass_reads_a_bounded_amount_and_the_next_one_continues() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let line = format!("{}\n", "x".repeat(1023));
        let lines = (PASS_BYTES as usize / line.len()) + 10;
        append(&path, line.repeat(lines).as_bytes());
        let mut tail = Tail::new(&path);
        let (first, outcome) = collect(&mut tail);
        assert!(outcome.more && tail.behind(), "{outcome:?}");
        assert!(outcome.bytes <= PASS_BYTES + CHUNK_BYTES as u64);
        let (second, outcome) = collect(&mut tail);
        assert!(!outcome.more && !tail.behind());
        assert_eq!(first.len() + second.len(), lines, "every line once");
        assert_eq!(tail.offset(), (lines * line.len()) as u64);
    }

    #[test]
    fn a_huge_file_is_read_from_near_its_end_at_a_line_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        append(&path, b"first line\nsecond line\nthird\n");
        let mut tail = Tail::new(&path);
        // The window begins inside "second line": that line is skipped, not half-delivered.
        let skipped = tail.start_near_end(10).expect("start");
        assert_eq!(skipped, 29 - 10);
        let (lines, _) = collect(&mut tail);
        assert_eq!(lines, [(23, "third".to_owned())]);
        // Appends continue normally, and a rewrite is still noticed from the head.
        append(&path, b"fourth\n");
        assert_eq!(collect(&mut tail).0, [(29, "fourth".to_owned())]);
        std::fs::write(&path, b"rewritten file, much longer than before ....\n").expect("rewrite");
        let (lines, outcome) = collect(&mut tail);
        assert_eq!(outcome.restarted, Some(Restart::Truncated));
        assert_eq!(lines.len(), 1);
        // A file within the window is read from the start.
        let mut small = Tail::new(&path);
        assert_eq!(small.start_near_end(1 << 20).expect("start"), 0);
        // At a line boundary nothing is skipped.
        let mut exact = Tail::new(&path);
        std::fs::write(&path, b"aaaa\nbbbb\n").expect("write");
        assert_eq!(exact.start_near_end(5).expect("start"), 5);
        assert_eq!(collect(&mut exact).0, [(5, "bbbb".to_owned())]);
    }

    #[test]
    fn served_text_cuts_long_lines_like_the_stream_even_when_the_window_starts_inside_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let long = "y".repeat(MAX_LINE_BYTES * 3);
        append(&path, format!("head\n{long}\nshort\n{long}\n").as_bytes());
        let mut tail = Tail::new(&path);
        let (lines, _) = collect(&mut tail);
        assert_eq!(lines.len(), 4);
        let end = tail.offset();
        let cut = format!(
            "{}{}",
            "y".repeat(MAX_LINE_BYTES),
            cut_marker(2 * MAX_LINE_BYTES as u64)
        );
        // The whole file: every line, the long ones cut (what the live stream delivered).
        let all = read_lines(dir.path(), "log", 0, end, &tail.long_lines(0, end)).expect("read");
        let streamed: Vec<String> = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
        assert_eq!(all, streamed.concat());
        assert_eq!(all, format!("head\n{cut}\nshort\n{cut}\n"));
        // A window that starts inside the last line still shows it, from its start, cut.
        let from = end - 100;
        let last =
            read_lines(dir.path(), "log", from, end, &tail.long_lines(from, end)).expect("read");
        assert_eq!(last, format!("{cut}\n"));
        // Without knowing the long line, a partial first line is left out (as before).
        let blind = read_lines(dir.path(), "log", 1, end, &[]).expect("read");
        assert!(
            blind.starts_with(&"y".repeat(MAX_LINE_BYTES)),
            "cut applies anyway"
        );
        assert!(blind.len() < 3 * MAX_LINE_BYTES);
        assert_eq!(cut_lines(b"ab\ncd", 16), "ab\ncd");
    }

    #[cfg(unix)]
    #[test]
    fn links_and_fifos_are_refused_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside");
        append(&outside, b"secret\n");
        let inner = dir.path().join("p");
        std::fs::create_dir(&inner).expect("mkdir");
        std::os::unix::fs::symlink(&outside, inner.join("log")).expect("link");
        let mut tail = Tail::new(inner.join("log"));
        let error = tail.read_new(|_, _| {}).expect_err("refused");
        assert!(safe_open::OpenError::refusal(&error).is_some(), "{error}");
        assert!(read_range(&inner, "log", 0, None, 100).is_err());
    }
}
