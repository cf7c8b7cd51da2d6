//! `.ralph/ralph.pid`: the decimal PID of the running loop.

/// Linux never hands out PIDs above 2^22 (`PID_MAX_LIMIT` on 64-bit).
const PID_MAX: u32 = 1 << 22;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PidError {
    #[error("ralph.pid is empty")]
    Empty,
    #[error("ralph.pid does not hold a decimal PID: {0:?}")]
    NotANumber(String),
    #[error("ralph.pid holds an impossible PID {0}")]
    OutOfRange(u64),
}

/// Parses the pid file's contents. PIDs 0 and 1 are refused: 0 is not a process and 1 is init,
/// which is always alive and would make a dead loop look like it runs forever.
pub fn parse_pid(contents: &str) -> Result<u32, PidError> {
    let text = contents.trim();
    if text.is_empty() {
        return Err(PidError::Empty);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PidError::NotANumber(text.chars().take(32).collect()));
    }
    let pid: u64 = text
        .parse()
        .map_err(|_| PidError::NotANumber(text.chars().take(32).collect()))?;
    if pid < 2 || pid > u64::from(PID_MAX) {
        return Err(PidError::OutOfRange(pid));
    }
    Ok(pid as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_decimal_with_whitespace() {
        assert_eq!(parse_pid("12345\n"), Ok(12345));
        assert_eq!(parse_pid("  42 "), Ok(42));
    }

    #[test]
    fn refuses_garbage() {
        assert_eq!(parse_pid(""), Err(PidError::Empty));
        assert_eq!(parse_pid(" \n"), Err(PidError::Empty));
        assert!(matches!(parse_pid("abc"), Err(PidError::NotANumber(_))));
        assert!(matches!(parse_pid("-5"), Err(PidError::NotANumber(_))));
        assert!(matches!(parse_pid("12 34"), Err(PidError::NotANumber(_))));
        assert_eq!(parse_pid("0"), Err(PidError::OutOfRange(0)));
        assert_eq!(parse_pid("1"), Err(PidError::OutOfRange(1)));
        assert!(matches!(
            parse_pid("99999999999999999999999"),
            Err(PidError::NotANumber(_))
        ));
        assert_eq!(parse_pid("5000000"), Err(PidError::OutOfRange(5_000_000)));
    }
}
