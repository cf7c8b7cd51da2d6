//! Reading an append-only file incrementally: from a byte offset to the end, whole lines only.
//!
//! - Lines are split at `\n` only, and a UTF-8 sequence never contains that byte, so a line is
//!   never cut inside a character; an unfinished last line waits in a carry buffer.
//! - A line longer than the limit is cut (at a character boundary) and marked, so one runaway
//!   write cannot make memory grow without bound.
//! - Truncation (size below the offset) and replacement (another inode) restart from byte 0.

use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
};

/// How much of a file's beginning is remembered to recognise a rewritten file.
const HEAD_BYTES: usize = 64;
/// Longest line kept whole.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
const CHUNK_BYTES: usize = 256 * 1024;

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
}

#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
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
}

impl Tail {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_max_line(path, MAX_LINE_BYTES)
    }

    pub fn with_max_line(path: impl Into<PathBuf>, max_line: usize) -> Self {
        Self {
            path: path.into(),
            offset: 0,
            identity: None,
            carry: Vec::new(),
            dropped: 0,
            head: Vec::new(),
            max_line: max_line.max(16),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the file delivered as complete lines.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads what was appended since the last call and calls `on_line(start_offset, line)` for
    /// each complete line (without its `\n`; a trailing `\r` is kept for the parser to judge).
    pub fn read_new(&mut self, mut on_line: impl FnMut(u64, &[u8])) -> io::Result<ReadOutcome> {
        let mut outcome = ReadOutcome::default();
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                outcome.missing = true;
                return Ok(outcome);
            }
            Err(error) => return Err(error),
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
        }
        self.identity = Some(identity);
        file.seek(SeekFrom::Start(self.consumed()))?;

        let mut buffer = vec![0u8; CHUNK_BYTES];
        loop {
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
                if self.dropped > 0 {
                    let marker = format!(" \u{2026} [line cut: {} more bytes]", self.dropped);
                    self.carry.extend_from_slice(marker.as_bytes());
                }
                on_line(start, &self.carry);
                outcome.lines += 1;
                self.offset += line_bytes;
                self.carry.clear();
                self.dropped = 0;
                rest = &rest[newline + 1..];
            }
            self.take(rest);
        }
        Ok(outcome)
    }

    /// Whether the file still starts with the bytes it started with.
    fn head_unchanged(&self, file: &mut File) -> io::Result<bool> {
        if self.head.is_empty() {
            return Ok(true);
        }
        let mut now = vec![0u8; self.head.len()];
        file.seek(SeekFrom::Start(0))?;
        let mut filled = 0;
        while filled < now.len() {
            match file.read(&mut now[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(now[..filled] == self.head[..])
    }

    /// Bytes read from the file so far: delivered lines plus the unfinished one.
    fn consumed(&self) -> u64 {
        self.offset + self.carry.len() as u64 + self.dropped
    }

    /// Appends to the current line, cutting it at the limit on a character boundary.
    fn take(&mut self, bytes: &[u8]) {
        let room = self.max_line.saturating_sub(self.carry.len());
        if self.dropped > 0 || bytes.len() > room {
            let mut keep = room.min(bytes.len());
            if self.dropped == 0 {
                // Back off to a character boundary: never keep half a UTF-8 sequence.
                while keep > 0 && keep < bytes.len() && (bytes[keep] & 0b1100_0000) == 0b1000_0000 {
                    keep -= 1;
                }
            } else {
                keep = 0;
            }
            self.carry.extend_from_slice(&bytes[..keep]);
            self.dropped += (bytes.len() - keep) as u64;
        } else {
            self.carry.extend_from_slice(bytes);
        }
    }
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

/// Reads `[start, end)` of a file (an iteration's slice of the log), at most `cap` bytes.
pub fn read_range(path: &Path, start: u64, end: Option<u64>, cap: u64) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let wanted = end.map_or(cap, |end| end.saturating_sub(start).min(cap));
    let mut bytes = Vec::new();
    file.take(wanted).read_to_end(&mut bytes)?;
    Ok(bytes)
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
            read_range(&path, 4, Some(11), 1024).expect("range"),
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
}
