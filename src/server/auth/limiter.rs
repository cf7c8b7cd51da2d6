//! The per-address limit on failed sign-ins (the login form, and share links opened with a
//! wrong key).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

/// Failed sign-ins allowed per address in one window, by default.
pub const LOGIN_FAILURES: u32 = 5;
/// The window failed sign-ins are counted in, by default.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most: a flood of addresses cannot grow memory without limit.
const LOGIN_ADDRESSES: usize = 4096;

/// Counts failed sign-ins per client address: after `max_failures` in one window, that address
/// is refused (even with the right credential) until the window ends.
pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    capacity: usize,
    tries: Mutex<HashMap<IpAddr, Tries>>,
}

#[derive(Clone, Copy)]
struct Tries {
    failures: u32,
    since: Instant,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(LOGIN_FAILURES, LOGIN_WINDOW, LOGIN_ADDRESSES)
    }
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration, capacity: usize) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
            capacity: capacity.max(1),
            tries: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when `address` has used up its tries for now.
    pub fn check(&self, address: IpAddr) -> Result<(), Duration> {
        let key = client_key(address);
        let now = Instant::now();
        let mut tries = self.lock();
        match tries.get(&key).copied() {
            Some(entry) if now.duration_since(entry.since) >= self.window => {
                tries.remove(&key);
                Ok(())
            }
            Some(entry) if entry.failures >= self.max_failures => {
                let left = self.window.saturating_sub(now.duration_since(entry.since));
                Err(left.max(Duration::from_secs(1)))
            }
            _ => Ok(()),
        }
    }

    /// Counts one failed sign-in from `address`.
    pub fn failed(&self, address: IpAddr) {
        let key = client_key(address);
        let now = Instant::now();
        let mut tries = self.lock();
        if !tries.contains_key(&key) && tries.len() >= self.capacity {
            let window = self.window;
            tries.retain(|_, entry| now.duration_since(entry.since) < window);
            if tries.len() >= self.capacity {
                // Still full: forget the address whose window started first.
                if let Some(oldest) = tries.iter().min_by_key(|(_, e)| e.since).map(|(a, _)| *a) {
                    tries.remove(&oldest);
                }
            }
        }
        let entry = tries.entry(key).or_insert(Tries {
            failures: 0,
            since: now,
        });
        if now.duration_since(entry.since) >= self.window {
            *entry = Tries {
                failures: 0,
                since: now,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
    }

    /// A successful sign-in clears the address's count.
    pub fn succeeded(&self, address: IpAddr) {
        self.lock().remove(&client_key(address));
    }

    /// Addresses currently tracked.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Tries>> {
        self.tries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The unit one client is counted as: its IPv4 address, or its IPv6 /64 (one host usually
/// owns a whole /64, so counting single IPv6 addresses would let it try for ever).
fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}
