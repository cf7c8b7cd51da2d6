//! The live stream's state machine, as pure functions: the socket task feeds it what happened and
//! shows what it returns. Kept free of browser types so it is unit-tested natively.

use super::backoff::reconnect_delay_ms;

/// After this many consecutive failed attempts the client polls the server functions while it
/// keeps trying the socket.
pub const POLL_AFTER_FAILURES: u32 = 3;
/// A connection live this long counts as a success (the backoff starts over).
pub const STABLE_MS: f64 = 10_000.0;
/// Poll period for lists and project state.
pub const POLL_STATE_MS: u32 = 5_000;
/// Poll period while a log is on screen.
pub const POLL_LOG_MS: u32 = 3_000;

/// What the live stream is doing (the stream status indicator shows it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StreamState {
    /// No page has asked for live data yet, or the first attempt is under way.
    Connecting,
    Live,
    /// Waiting before attempt `attempt`, due at `retry_at_ms` (page clock, milliseconds).
    Reconnecting {
        attempt: u32,
        retry_at_ms: f64,
    },
    /// The socket keeps failing: data comes from polling while attempts go on.
    Polling {
        attempt: u32,
        retry_at_ms: f64,
    },
    /// The session is gone: the page is on its way to the login page.
    SignedOut,
    /// The browser says the network is gone: no attempts until it is back.
    Offline,
}

impl StreamState {
    pub fn name(self) -> &'static str {
        match self {
            StreamState::Connecting => "connecting",
            StreamState::Live => "live",
            StreamState::Reconnecting { .. } => "reconnecting",
            StreamState::Polling { .. } => "polling",
            StreamState::SignedOut => "signed-out",
            StreamState::Offline => "offline",
        }
    }

    /// Whether data should come from polling right now.
    pub fn polls(self) -> bool {
        matches!(self, StreamState::Polling { .. })
    }

    /// The indicator's text at page time `now_ms`; empty when live.
    pub fn describe(self, now_ms: f64) -> String {
        match self {
            StreamState::Live => String::new(),
            StreamState::Connecting => "Connecting\u{2026}".to_owned(),
            StreamState::Reconnecting {
                attempt,
                retry_at_ms,
            } => format!(
                "Reconnecting\u{2026} (attempt {attempt}, next in {} s)",
                seconds_left(retry_at_ms, now_ms)
            ),
            StreamState::Polling { .. } => "Live updates unavailable - polling".to_owned(),
            StreamState::SignedOut => "Signed out - taking you to the login page".to_owned(),
            StreamState::Offline => {
                "Offline - what you see may be out of date; reconnecting when the network is back"
                    .to_owned()
            }
        }
    }
}

/// Whole seconds until `due_ms`, rounded up, never negative.
pub fn seconds_left(due_ms: f64, now_ms: f64) -> u32 {
    let left = (due_ms - now_ms) / 1000.0;
    if left.is_finite() && left > 0.0 {
        left.ceil().min(f64::from(u32::MAX)) as u32
    } else {
        0
    }
}

/// Consecutive failures, and what follows from them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Machine {
    failures: u32,
}

impl Machine {
    /// The socket opened and the server said hello.
    pub fn connected(&mut self) -> StreamState {
        StreamState::Live
    }

    /// A connection that was live for `live_ms` ended. Only one that stayed up a while resets
    /// the backoff: a server that says hello and hangs up at once is not hammered every second.
    pub fn ended_after(&mut self, live_ms: f64) {
        if live_ms >= STABLE_MS {
            self.failures = 0;
        }
    }

    /// An attempt failed or a live socket was lost. Returns the state to show and how long to
    /// wait before the next attempt (`random` in `[0, 1)` jitters it). Attempts count the
    /// reconnects: the first wait is before attempt 1.
    pub fn lost(&mut self, now_ms: f64, random: f64) -> (StreamState, u32) {
        self.failures = self.failures.saturating_add(1);
        let delay = reconnect_delay_ms(self.failures, random);
        let retry_at_ms = now_ms + f64::from(delay);
        let attempt = self.failures;
        let state = if self.failures >= POLL_AFTER_FAILURES {
            StreamState::Polling {
                attempt,
                retry_at_ms,
            }
        } else {
            StreamState::Reconnecting {
                attempt,
                retry_at_ms,
            }
        };
        (state, delay)
    }

    pub fn failures(self) -> u32 {
        self.failures
    }
}

/// What the page shows, which sets how often it polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watching {
    /// A project page, whose log should keep moving.
    Project,
    /// The dashboard's cards.
    Cards,
}

/// How often to poll while polling.
pub fn poll_interval_ms(watching: Watching) -> u32 {
    match watching {
        Watching::Project => POLL_LOG_MS,
        Watching::Cards => POLL_STATE_MS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_twice_then_polls_and_success_resets() {
        let mut machine = Machine::default();
        let (first, delay) = machine.lost(0.0, 1.0);
        assert_eq!(
            first,
            StreamState::Reconnecting {
                attempt: 1,
                retry_at_ms: 1_000.0
            }
        );
        assert_eq!(delay, 1_000);
        let (second, _) = machine.lost(1_000.0, 1.0);
        assert!(matches!(
            second,
            StreamState::Reconnecting { attempt: 2, .. }
        ));
        let (third, delay) = machine.lost(3_000.0, 1.0);
        assert!(third.polls(), "{third:?}");
        assert_eq!(delay, 4_000);
        assert_eq!(machine.failures(), 3);
        assert_eq!(machine.connected(), StreamState::Live);
        // Hello, then hung up at once: still failing, the delays keep growing.
        machine.ended_after(500.0);
        assert_eq!(machine.failures(), 3);
        assert!(machine.lost(0.0, 1.0).0.polls());
        // Live for a while: start over.
        assert_eq!(machine.connected(), StreamState::Live);
        machine.ended_after(STABLE_MS);
        assert_eq!(machine.failures(), 0);
        assert!(!machine.lost(0.0, 1.0).0.polls());
    }

    #[test]
    fn delays_grow_and_cap() {
        let mut machine = Machine::default();
        let delays: Vec<u32> = (0..8).map(|_| machine.lost(0.0, 1.0).1).collect();
        assert_eq!(
            delays,
            [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
    }

    #[test]
    fn countdown_rounds_up_and_never_goes_negative() {
        assert_eq!(seconds_left(5_000.0, 0.0), 5);
        assert_eq!(seconds_left(5_000.0, 4_001.0), 1);
        assert_eq!(seconds_left(5_000.0, 5_000.0), 0);
        assert_eq!(seconds_left(5_000.0, 9_000.0), 0);
        assert_eq!(seconds_left(f64::NAN, 0.0), 0);
        let state = StreamState::Reconnecting {
            attempt: 4,
            retry_at_ms: 8_000.0,
        };
        assert_eq!(
            state.describe(1_500.0),
            "Reconnecting\u{2026} (attempt 4, next in 7 s)"
        );
        assert_eq!(StreamState::Live.describe(0.0), "");
        assert_eq!(
            StreamState::Polling {
                attempt: 4,
                retry_at_ms: 0.0
            }
            .describe(0.0),
            "Live updates unavailable - polling"
        );
    }

    #[test]
    fn offline_says_so_and_does_not_poll() {
        let offline = StreamState::Offline;
        assert_eq!(offline.name(), "offline");
        assert!(!offline.polls());
        assert!(offline.describe(0.0).starts_with("Offline"));
    }

    #[test]
    fn log_polls_faster() {
        assert!(poll_interval_ms(Watching::Project) < poll_interval_ms(Watching::Cards));
    }
}
