//! Percent-encoding of a value placed in a URL's query string (a file name, a path to return
//! to): the server's login redirects and the browser's links use this one rule.

/// Percent-encodes `text` for a query value. Unreserved characters and `/` stay as they are (a
/// path stays readable); every other byte, `?`, `&`, `=`, `#`, `%` and non-ASCII included,
/// becomes `%XX`.
pub fn encode_query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(char::from(byte))
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_keep_paths_readable_and_escape_the_rest() {
        assert_eq!(encode_query_value("/p/a b?x=1&y"), "/p/a%20b%3Fx%3D1%26y");
        assert_eq!(
            encode_query_value("specs/api-v2_x.md~"),
            "specs/api-v2_x.md~"
        );
        assert_eq!(encode_query_value("100%#é"), "100%25%23%C3%A9");
        assert_eq!(encode_query_value(""), "");
    }

    #[test]
    fn every_byte_outside_the_kept_set_is_escaped_and_decodes_back() {
        let all: String = (1..=0x7Fu8).map(char::from).chain(['é', '漢']).collect();
        let encoded = encode_query_value(&all);
        assert!(encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~/%".contains(&b)));
        // Decoding the escapes gives the text back.
        let bytes = encoded.as_bytes();
        let mut decoded = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            if bytes[at] == b'%' {
                let hex = std::str::from_utf8(&bytes[at + 1..at + 3]).expect("ascii");
                decoded.push(u8::from_str_radix(hex, 16).expect("hex"));
                at += 3;
            } else {
                decoded.push(bytes[at]);
                at += 1;
            }
        }
        assert_eq!(String::from_utf8(decoded).expect("utf-8"), all);
    }
}
