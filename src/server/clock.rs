//! The time stamps the server writes: RFC 3339 with milliseconds, in UTC.

use std::time::SystemTime;

/// Now, as an RFC 3339 time stamp.
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
