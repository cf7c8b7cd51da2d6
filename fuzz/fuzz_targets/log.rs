//! `ralph.log`: arbitrary bytes, split on `\n` and lossily decoded like the server's tailer does,
//! go through one `LogScanner` (with byte offsets) and through each public line parser.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use loopwatch::contract::ansi::strip_ansi;
use loopwatch::contract::ralph::log::{
    parse_header, parse_marker, parse_token_number, LogEvent, LogScanner, Marker,
    MAX_MARKER_TEXT_CHARS,
};

fn check_marker(marker: &Marker) {
    if let Marker::Failure { text } | Marker::Stopped { text } | Marker::RateLimited { text } =
        marker
    {
        assert!(
            text.chars().count() <= MAX_MARKER_TEXT_CHARS,
            "marker text over {MAX_MARKER_TEXT_CHARS} chars"
        );
    }
}

fn check_thousands(thousands: f64) {
    assert!(
        thousands.is_finite() && thousands >= 0.0,
        "bad token count {thousands}"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut scanner = LogScanner::default();
    let mut offset: u64 = 0;
    for raw in data.split(|&byte| byte == b'\n') {
        let decoded = String::from_utf8_lossy(raw);
        let line: &str = &decoded;

        let plain = strip_ansi(line);
        assert!(!plain.contains('\x1b'), "ESC left in {plain:?}");
        assert!(plain.len() <= line.len(), "strip_ansi grew the line");
        if !line.contains('\x1b') {
            assert!(matches!(plain, Cow::Borrowed(_)), "copied an ESC-free line");
            assert_eq!(plain, line);
        }

        let header = parse_header(line);
        if let Some(clock) = header.as_ref().and_then(|header| header.clock.as_deref()) {
            assert_eq!(clock.len(), 8, "clock {clock:?}");
        }
        if let Some(thousands) = parse_token_number(line) {
            check_thousands(thousands);
        }
        let marker = parse_marker(line);
        if let Some(marker) = &marker {
            check_marker(marker);
        }

        match scanner.push(offset, line) {
            Some(LogEvent::IterationStarted {
                header: scanned,
                offset: at,
            }) => {
                assert_eq!(at, offset, "header offset");
                assert_eq!(Some(scanned), header, "scanner and parse_header disagree");
            }
            Some(LogEvent::Tokens { thousands }) => check_thousands(thousands),
            Some(LogEvent::Marker(scanned)) => {
                check_marker(&scanned);
                assert_eq!(Some(scanned), marker, "scanner and parse_marker disagree");
            }
            None => {}
        }
        offset += raw.len() as u64 + 1;
    }
});
