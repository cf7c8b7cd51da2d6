//! How many connections the process can hold: the open-file limit, raised at start, and the
//! connection cap that fits under it.

use std::sync::OnceLock;

/// The connection cap when the open-file limit allows it.
pub const MAX_CONNECTIONS: usize = 8192;
/// File descriptors kept free for everything that is not a client connection (project files,
/// the watcher, the data directory).
const RESERVED_FDS: u64 = 256;
/// The smallest cap, whatever the open-file limit says.
const MIN_CONNECTIONS: usize = 16;

/// Raises the open-file soft limit to the hard limit (once per process) and returns the soft
/// limit in force. Each client connection holds a descriptor: the common default of 1,024 is
/// used up by a thousand idle sockets.
pub fn raise_open_file_limit() -> Option<u64> {
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    *LIMIT.get_or_init(raise_open_file_limit_now)
}

#[cfg(unix)]
fn raise_open_file_limit_now() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        let error = std::io::Error::last_os_error();
        tracing::warn!(%error, "cannot read the open-file limit");
        return None;
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(
                from = before,
                to = raised.rlim_cur,
                "raised the open-file limit"
            );
            return Some(as_u64(raised.rlim_cur));
        }
        let error = std::io::Error::last_os_error();
        tracing::warn!(%error, limit = before, "cannot raise the open-file limit");
    } else {
        tracing::info!(limit = before, "open-file limit already at its maximum");
    }
    Some(as_u64(before))
}

#[cfg(unix)]
#[allow(clippy::useless_conversion)] // rlim_t is not u64 on every platform
fn as_u64(value: libc::rlim_t) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

#[cfg(not(unix))]
fn raise_open_file_limit_now() -> Option<u64> {
    None
}

/// The connection cap: the configured one, or the default lowered to fit the open-file limit.
pub fn connection_cap(configured: Option<usize>, open_file_limit: Option<u64>) -> usize {
    if let Some(cap) = configured {
        return cap.max(1);
    }
    let fitting = open_file_limit
        .map(|limit| limit.saturating_sub(RESERVED_FDS))
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(MAX_CONNECTIONS);
    fitting.clamp(MIN_CONNECTIONS, MAX_CONNECTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_open_file_limit() {
        assert_eq!(connection_cap(Some(3), Some(1024)), 3);
        assert_eq!(connection_cap(Some(0), None), 1);
        assert_eq!(connection_cap(None, Some(1024)), 1024 - 256);
        assert_eq!(connection_cap(None, Some(1_048_576)), MAX_CONNECTIONS);
        assert_eq!(connection_cap(None, Some(100)), MIN_CONNECTIONS);
        assert_eq!(connection_cap(None, None), MAX_CONNECTIONS);
    }

    #[test]
    fn raising_the_open_file_limit_reports_the_limit_in_force() {
        let limit = raise_open_file_limit();
        #[cfg(unix)]
        {
            let mut now = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into the struct we pass.
            assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) }, 0);
            assert_eq!(limit, Some(as_u64(now.rlim_cur)));
            assert_eq!(
                now.rlim_cur, now.rlim_max,
                "soft limit raised to the hard one"
            );
        }
    }
}
