//! What one client may take: sockets and event streams per address (and the count of all, so a
//! stopping server can wait for them), messages per second on one socket, and how much of a log
//! backlog fits one bounded frame.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::{sync::watch, time::Instant};

/// Sockets one address may hold open at once.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
/// Messages a client may send in a burst...
pub const RATE_BURST: f64 = 40.0;
/// ...and per second after it.
const RATE_PER_SECOND: f64 = 10.0;

/// A token bucket: `RATE_BURST` messages at once, then `RATE_PER_SECOND`.
pub struct RateLimit {
    tokens: f64,
    last: Instant,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimit {
    /// A full bucket.
    pub fn new() -> Self {
        Self {
            tokens: RATE_BURST,
            last: Instant::now(),
        }
    }

    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * RATE_PER_SECOND;
        self.tokens = (self.tokens + refill).min(RATE_BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts open sockets and event streams, per address and in all.
#[derive(Debug)]
pub struct ConnectionLimits {
    open: Mutex<HashMap<IpAddr, usize>>,
    /// All of them, so a stopping server can wait for the last one to end.
    total: watch::Sender<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            open: Mutex::default(),
            total: watch::channel(0).0,
        }
    }
}

/// One counted socket; releases its place when dropped.
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    address: IpAddr,
}

impl ConnectionLimits {
    pub fn acquire(self: &Arc<Self>, address: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_insert(0);
        if *count >= MAX_CONNECTIONS_PER_ADDRESS {
            return None;
        }
        *count += 1;
        self.total.send_modify(|total| *total += 1);
        Some(Slot {
            limits: self.clone(),
            address,
        })
    }

    /// Resolves once every counted socket and stream has ended (at once if none is open). A
    /// stopping server calls it, bounded, so each socket finishes its close handshake before
    /// the process exits.
    pub async fn drained(&self) {
        let mut total = self.total.subscribe();
        // The sender lives in `self`: `wait_for` cannot fail while it is borrowed.
        let _ = total.wait_for(|open| *open == 0).await;
    }

    /// Sockets and streams open now, from every address.
    pub fn open(&self) -> usize {
        *self.total.borrow()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.address);
            }
        }
        drop(open);
        self.limits
            .total
            .send_modify(|total| *total = total.saturating_sub(1));
    }
}

/// The end of `text` that fits in `max_bytes` once JSON-encoded, cut at a line start: the newest
/// lines of a backlog when all of them would make a frame too big. `per_line` is what each line
/// costs on top of its encoding (quotes and a comma when lines are sent as an array).
pub fn tail_within(text: &str, max_bytes: usize, per_line: usize) -> &str {
    let mut used = 0usize;
    let mut start = text.len();
    for line in text.split_inclusive('\n').rev() {
        let cost = encoded_len(line).saturating_add(per_line);
        if used.saturating_add(cost) > max_bytes {
            break;
        }
        used += cost;
        start -= line.len();
    }
    &text[start..]
}

/// The length of `text` inside a JSON string.
fn encoded_len(text: &str) -> usize {
    text.bytes()
        .map(|byte| match byte {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f | 0x7f => 6,
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn connections_per_address_are_capped_and_released() {
        let limits = Arc::new(ConnectionLimits::default());
        let address: IpAddr = "192.0.2.7".parse().expect("ip");
        let slots: Vec<Slot> = (0..MAX_CONNECTIONS_PER_ADDRESS)
            .filter_map(|_| limits.acquire(address))
            .collect();
        assert_eq!(slots.len(), MAX_CONNECTIONS_PER_ADDRESS);
        assert!(limits.acquire(address).is_none(), "one more is refused");
        assert!(
            limits.acquire("192.0.2.8".parse().expect("ip")).is_some(),
            "others unaffected"
        );
        drop(slots);
        assert!(limits.acquire(address).is_some(), "closing frees the place");
    }

    #[tokio::test]
    async fn drained_waits_for_the_last_slot() {
        let limits = Arc::new(ConnectionLimits::default());
        limits.drained().await;
        let first = limits.acquire("192.0.2.1".parse().expect("ip"));
        let second = limits.acquire("192.0.2.2".parse().expect("ip"));
        assert_eq!(limits.open(), 2);
        let waiting = tokio::spawn({
            let limits = limits.clone();
            async move { limits.drained().await }
        });
        drop(first);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one socket is still open");
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("drained once the last one ends")
            .expect("no panic");
    }

    #[test]
    fn tail_within_keeps_the_newest_whole_lines_that_fit() {
        let text = "one\ntwo\nthree\n";
        assert_eq!(tail_within(text, 100, 0), text);
        // "three\n" encodes to 7 bytes, "two\n" to 5.
        assert_eq!(tail_within(text, 12, 0), "two\nthree\n");
        assert_eq!(tail_within(text, 11, 0), "three\n");
        assert_eq!(
            tail_within(text, 9, 3),
            "",
            "a line and its overhead must fit"
        );
        // Escapes count: an ESC is six bytes in JSON.
        assert_eq!(tail_within("a\n\u{1b}[0m\n", 11, 0), "\u{1b}[0m\n");
        assert_eq!(tail_within("a\n\u{1b}[0m\n", 10, 0), "");
    }
}
