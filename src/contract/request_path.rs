//! The one rule for request paths: which raw paths the server answers at all, and the single
//! normalized form every later decision (public or private, which route) is made on.
//!
//! Pure text in, text out, so the fuzzer can drive it without a server. A path is refused when
//! any reading of it could name something other than what it says: dot segments (raw or
//! percent-encoded, in any case or mix), encoded slashes or backslashes, raw backslashes,
//! control characters, empty segments, double encoding, malformed escapes. Otherwise the
//! normalized path decodes escaped unreserved characters (`%41` is `A`) and upper-cases the hex
//! of the escapes that remain, so that two spellings of one path are one string.

/// Longer paths are refused outright (no route of ours comes close).
pub const MAX_PATH_BYTES: usize = 4096;

/// Why a path was refused. The messages are safe to show to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    TooLong,
    DotSegment,
    EmptySegment,
    EncodedSeparator,
    Backslash,
    ControlCharacter,
    DoubleEncoding,
    BadEscape,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "the path must start with /",
            PathError::TooLong => "the path is too long",
            PathError::DotSegment => "the path has a . or .. segment",
            PathError::EmptySegment => "the path has an empty segment (//)",
            PathError::EncodedSeparator => "the path has an encoded / or \\",
            PathError::Backslash => "the path has a backslash",
            PathError::ControlCharacter => "the path has a control character",
            PathError::DoubleEncoding => "the path is percent-encoded twice",
            PathError::BadEscape => "the path has a malformed %-escape",
        })
    }
}

impl std::error::Error for PathError {}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Checks `raw` (the path of a request, without its query) and returns its normalized form.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    if rest.is_empty() {
        return Ok("/".to_owned());
    }
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    let mut out = String::with_capacity(raw.len());
    for (index, segment) in segments.iter().enumerate() {
        out.push('/');
        if segment.is_empty() {
            // One trailing slash (`/projects/x/`) is harmless; `//` anywhere else is not.
            if index == last {
                continue;
            }
            return Err(PathError::EmptySegment);
        }
        let normalized = normalize_segment(segment)?;
        // Unreserved escapes are decoded above, so `%2e`, `%2E` and `.%2e` arrive here as dots.
        if normalized == "." || normalized == ".." {
            return Err(PathError::DotSegment);
        }
        out.push_str(&normalized);
    }
    Ok(out)
}

fn normalize_segment(segment: &str) -> Result<String, PathError> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let (Some(high), Some(low)) = (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            ) else {
                return Err(PathError::BadEscape);
            };
            let decoded = high * 16 + low;
            match decoded {
                b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                _ if is_unreserved(decoded) => out.push(char::from(decoded)),
                _ => {
                    out.push('%');
                    out.push(char::from(b"0123456789ABCDEF"[usize::from(high)]));
                    out.push(char::from(b"0123456789ABCDEF"[usize::from(low)]));
                }
            }
            i += 3;
            continue;
        }
        // Walk whole characters so non-ASCII text stays intact.
        let Some(c) = segment[i..].chars().next() else {
            break;
        };
        if c == '\\' {
            return Err(PathError::Backslash);
        }
        if c.is_control() {
            return Err(PathError::ControlCharacter);
        }
        out.push(c);
        i += c.len_utf8();
    }
    // `%25` followed by hex (in the result, so `%25%32%65` counts too) is an escape of an
    // escape: a layer that decodes twice would see something this rule never saw.
    let out_bytes = out.as_bytes();
    let double = out_bytes
        .windows(5)
        .any(|w| w.starts_with(b"%25") && hex_value(w[3]).is_some() && hex_value(w[4]).is_some());
    if double {
        return Err(PathError::DoubleEncoding);
    }
    Ok(out)
}

/// Decodes every `%XX` escape of `text` (malformed ones are kept as they are). For checks and
/// tests; routing uses [`normalize`].
pub fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(high), Some(low)) = (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            ) {
                out.push(high * 16 + low);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn dot_segments_are_refused_in_every_spelling() {
        for bad in [
            "/pkg/../projects/x/log",
            "/pkg/.%2e/projects/x/log",
            "/pkg/%2e./x",
            "/pkg/%2E%2E/x",
            "/pkg/%2e%2E/x",
            "/pkg/x/../../",
            "/pkg/./x",
            "/pkg/%2e/x",
            "/..",
            "/.",
            "/x/..",
            "/x/%2e%2e/",
        ] {
            assert_eq!(normalize(bad), Err(PathError::DotSegment), "{bad}");
        }
    }

    #[test]
    fn separators_controls_and_odd_escapes_are_refused() {
        let cases = [
            ("/pkg/..%2fx", PathError::EncodedSeparator),
            ("/pkg/%2F", PathError::EncodedSeparator),
            ("/pkg/%5c..", PathError::EncodedSeparator),
            ("/pkg/%5C", PathError::EncodedSeparator),
            ("/pkg\\..\\x", PathError::Backslash),
            ("/x%00", PathError::ControlCharacter),
            ("/x%0a", PathError::ControlCharacter),
            ("/x%09y", PathError::ControlCharacter),
            ("/x%7f", PathError::ControlCharacter),
            ("/x\ty", PathError::ControlCharacter),
            ("/x\u{85}", PathError::ControlCharacter),
            ("/x%252e%252e", PathError::DoubleEncoding),
            ("/x%25%32%65", PathError::DoubleEncoding),
            ("/x%", PathError::BadEscape),
            ("/x%2", PathError::BadEscape),
            ("/x%zz", PathError::BadEscape),
            ("//evil", PathError::EmptySegment),
            ("/pkg//x", PathError::EmptySegment),
            ("pkg/x", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ];
        for (bad, why) in cases {
            assert_eq!(normalize(bad), Err(why), "{bad:?}");
        }
        assert_eq!(
            normalize(&format!("/{}", "a".repeat(MAX_PATH_BYTES))),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn ordinary_paths_pass_and_spellings_collapse() {
        for good in [
            "/",
            "/login",
            "/pkg/loopwatch.js",
            "/projects/alpha-0123abcd/log",
            "/projects/x/",
            "/a.b/..c/...",
            "/caf\u{e9}",
            "/a%20b",
        ] {
            assert_eq!(normalize(good).as_deref(), Ok(good), "{good}");
        }
        assert_eq!(normalize("/%70kg/x%2Ejs").as_deref(), Ok("/pkg/x.js"));
        assert_eq!(normalize("/a%3fb").as_deref(), Ok("/a%3Fb"));
        assert_eq!(normalize("/a%25b").as_deref(), Ok("/a%25b"));
    }

    proptest! {
        // The fuzz target's invariants, on inputs made of the characters that matter.
        #[test]
        fn accepted_paths_are_clean_and_stable(raw in "[/.%2356eEfF5cC0a9x\\\\]{0,24}") {
            if let Ok(path) = normalize(&raw) {
                prop_assert!(path.starts_with('/'));
                for segment in path.split('/').skip(1) {
                    let decoded = percent_decode(segment);
                    prop_assert!(decoded != b"." && decoded != b"..", "{raw:?} -> {path:?}");
                    prop_assert!(!decoded.iter().any(|b| matches!(b, b'/' | b'\\') || b.is_ascii_control()));
                }
                prop_assert_eq!(normalize(&path), Ok(path.clone()));
            }
        }
    }
}
