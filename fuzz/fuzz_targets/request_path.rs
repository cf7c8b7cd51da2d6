//! `request_path::normalize` on arbitrary text: it never panics; an accepted path starts with
//! `/`, has no `.`/`..` segment, no `/`, `\` or control byte inside a segment once every escape
//! is decoded, and normalizing it again gives it back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loopwatch::contract::request_path::{normalize, percent_decode, MAX_PATH_BYTES};

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let Ok(path) = normalize(&raw) else {
        return;
    };
    assert!(path.starts_with('/'), "{raw:?} -> {path:?}");
    assert!(path.len() <= MAX_PATH_BYTES, "{raw:?} -> {path:?}");
    for segment in path.split('/').skip(1) {
        let decoded = percent_decode(segment);
        assert!(
            decoded != b"." && decoded != b"..",
            "dot segment: {raw:?} -> {path:?}"
        );
        assert!(
            !decoded
                .iter()
                .any(|&b| b == b'/' || b == b'\\' || b.is_ascii_control()),
            "separator or control: {raw:?} -> {path:?}"
        );
        // Decoding once more finds no further escape of a separator or a dot.
        let twice = percent_decode(&String::from_utf8_lossy(&decoded));
        assert!(twice != b"." && twice != b"..", "double: {raw:?}");
    }
    assert!(!path.contains("//"), "empty segment: {raw:?} -> {path:?}");
    assert_eq!(normalize(&path).as_deref(), Ok(path.as_str()), "not idempotent: {raw:?}");
});
