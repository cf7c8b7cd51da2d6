//! `pending-notification.txt`: `parse_notification` and `log_tail` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loopwatch::contract::ralph::notification::{
    log_tail, parse_notification, NotificationError, NotificationKind, MAX_DETAILS_BYTES,
    MAX_MESSAGE_BYTES,
};

// Private caps of notification.rs, restated here (keep in sync).
const MAX_SHORT_FIELD_BYTES: usize = 256;
const MAX_EVENT_ID_BYTES: usize = 128;
const MAX_PREFIX_BYTES: usize = 64;

fn check_short(field: &Option<String>, name: &str) {
    if let Some(text) = field {
        assert!(text.len() <= MAX_SHORT_FIELD_BYTES, "{name} over {MAX_SHORT_FIELD_BYTES} bytes");
    }
}

fuzz_target!(|data: &[u8]| {
    let tail = log_tail(data);
    if let Some(tail) = &tail {
        assert!(!tail.is_empty(), "empty log tail returned");
        // base64 gives 3 bytes per 4 symbols; lossy decoding at most triples a byte.
        assert!(tail.len() <= data.len() * 3, "log tail longer than possible");
    }

    match parse_notification(data) {
        Err(NotificationError::Empty) => {
            let text = String::from_utf8_lossy(data);
            assert!(
                text.trim_start_matches('\u{feff}').trim().is_empty(),
                "Empty for a non-blank file"
            );
        }
        Ok(notification) => {
            assert!(
                notification.message.len() <= MAX_MESSAGE_BYTES,
                "message of {} bytes",
                notification.message.len()
            );
            if let Some(details) = &notification.details {
                assert!(
                    details.len() <= MAX_DETAILS_BYTES,
                    "details of {} bytes",
                    details.len()
                );
            }
            check_short(&notification.timestamp, "timestamp");
            check_short(&notification.cli, "cli");
            check_short(&notification.status, "status");
            assert!(
                !notification.id.is_empty() && notification.id.len() <= MAX_EVENT_ID_BYTES,
                "id {:?}",
                notification.id
            );
            if let NotificationKind::Other(prefix) = &notification.kind {
                assert!(prefix.len() <= MAX_PREFIX_BYTES, "prefix of {} bytes", prefix.len());
            }
            assert_eq!(
                notification.has_log_tail,
                tail.is_some(),
                "has_log_tail disagrees with log_tail()"
            );
        }
    }
});
