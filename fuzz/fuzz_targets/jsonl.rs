//! `iterations.jsonl`: `parse_line` on each line of arbitrary bytes, `parse_all` on the whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loopwatch::contract::ralph::iterations::{
    parse_all, parse_line, IterationRecord, IterationStatus, LineOutcome, MAX_TEST_OUTPUT_BYTES,
    MAX_TEXT_BYTES,
};

fn check_text(field: &Option<String>, limit: usize, name: &str) {
    if let Some(text) = field {
        assert!(text.len() <= limit, "{name} over {limit} bytes");
        assert!(!text.trim().is_empty(), "{name} is blank but Some");
    }
}

fn check_amount(amount: Option<f64>, name: &str) {
    if let Some(amount) = amount {
        assert!(amount.is_finite() && amount >= 0.0, "{name} = {amount}");
    }
}

fn check_record(record: &IterationRecord) {
    check_text(&record.start, MAX_TEXT_BYTES, "start");
    check_text(&record.end, MAX_TEXT_BYTES, "end");
    check_text(&record.commit, MAX_TEXT_BYTES, "commit");
    check_text(&record.commit_message, MAX_TEXT_BYTES, "commit_message");
    check_text(&record.test_output, MAX_TEST_OUTPUT_BYTES, "test_output");
    check_amount(record.duration_seconds, "duration_seconds");
    check_amount(record.tokens, "tokens");
    if let IterationStatus::Other(text) = &record.status {
        assert!(text.len() <= MAX_TEXT_BYTES, "status over {MAX_TEXT_BYTES} bytes");
    }
    for id in &record.tasks_completed {
        assert!(!id.is_empty() && id.len() <= MAX_TEXT_BYTES, "task id {id:?}");
    }
    for error in &record.errors {
        assert!(error.len() <= MAX_TEXT_BYTES, "error over {MAX_TEXT_BYTES} bytes");
    }
}

fuzz_target!(|data: &[u8]| {
    // Line by line, the way `parse_all` splits: on `\n`, one trailing `\r` dropped.
    let mut line_count = 0usize;
    let mut expected = Vec::new();
    for line in data.split(|&byte| byte == b'\n') {
        line_count += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let LineOutcome::Record(record) = parse_line(line) {
            assert_eq!(record.run, 0, "parse_line assigned a run");
            check_record(&record);
            expected.push(record);
        }
    }

    let (records, skips) = parse_all(data);
    assert!(
        records.len() as u64 + skips.total() <= line_count as u64,
        "more outcomes than lines"
    );
    assert_eq!(records.len(), expected.len(), "parse_all kept other records");
    let mut previous: Option<&IterationRecord> = None;
    for (record, alone) in records.iter().zip(&expected) {
        check_record(record);
        let mut unrun = record.clone();
        unrun.run = 0;
        assert_eq!(&unrun, alone, "parse_all and parse_line disagree");
        match previous {
            None => assert_eq!(record.run, 1, "first run"),
            Some(before) if record.iteration > before.iteration => {
                assert_eq!(record.run, before.run, "run changed on a rising iteration")
            }
            Some(before) => assert_eq!(record.run, before.run + 1, "run not bumped"),
        }
        previous = Some(record);
    }
});
