//! Brute-force throttling: failed logins per submitted username and per client address, and
//! registrations per client address.
//!
//! governor keeps the counts (GCRA: a burst of `max` events, then one more per `window / max`).
//! A login may only be refused *before* its password is checked, but only failures count, and
//! governor cannot tell whether a key has budget left without spending it. So when a failure
//! spends a key's last unit, the key is remembered as blocked until the next unit comes back,
//! and attempts are checked against that. Keys are the username as submitted (trimmed and
//! lower-cased, whether or not the account exists, so the answer tells nothing) and the client
//! address.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use poem::Request;
use poem::web::RemoteAddr;

/// How many events of a kind are let through: `max` at once, then one more every
/// `window / max`. `max` zero turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

impl Limit {
    fn quota(self) -> Option<Quota> {
        let max = NonZeroU32::new(self.max)?;
        Quota::with_period(self.window / self.max).map(|quota| quota.allow_burst(max))
    }
}

/// Counts events per key, and refuses keys that ran out.
struct Counter<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>,
    clock: DefaultClock,
    /// How long a key waits for one unit to come back.
    replenish: Duration,
    blocked: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> Counter<K> {
    fn new(limit: Limit) -> Option<Self> {
        let quota = limit.quota()?;
        Some(Self {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            clock: DefaultClock::default(),
            replenish: quota.replenish_interval(),
            blocked: Mutex::new(HashMap::new()),
        })
    }

    /// How long `key` must wait, if it has run out.
    fn blocked_for(&self, key: &K) -> Option<Duration> {
        let blocked = self
            .blocked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let until = *blocked.get(key)?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts one event for `key`; if that spent its last unit, blocks the key until one
    /// comes back.
    fn count(&self, key: &K) {
        let wait = match self.limiter.check_key(key) {
            Ok(state) if state.remaining_burst_capacity() > 0 => return,
            Ok(_) => self.replenish,
            // Racing events may overdraw a key: it waits as long as governor says.
            Err(not_until) => not_until.wait_time_from(self.clock.now()),
        };
        let mut blocked = self
            .blocked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        blocked.insert(key.clone(), Instant::now() + wait);
    }

    /// Forgets keys that are neither blocked nor counted any more, so that memory stays
    /// bounded by recent activity.
    fn prune(&self) {
        let now = Instant::now();
        let mut blocked = self
            .blocked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        blocked.retain(|_, until| *until > now);
        drop(blocked);
        self.limiter.retain_recent();
    }
}

/// The throttling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub login_failures_per_username: Limit,
    pub login_failures_per_address: Limit,
    pub registrations_per_address: Limit,
    /// How many proxies in front of Warden append to `X-Forwarded-For`; 0 believes none of it.
    pub trusted_proxy_hops: usize,
}

/// Every throttle of the app.
pub struct Throttle {
    by_username: Option<Counter<String>>,
    by_address: Option<Counter<Option<IpAddr>>>,
    registrations: Option<Counter<Option<IpAddr>>>,
    trusted_proxy_hops: usize,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle").finish_non_exhaustive()
    }
}

/// The throttle key of a submitted username.
fn username_key(username: &str) -> String {
    username.trim().to_lowercase()
}

impl Throttle {
    pub fn new(config: &ThrottleConfig) -> Self {
        Self {
            by_username: Counter::new(config.login_failures_per_username),
            by_address: Counter::new(config.login_failures_per_address),
            registrations: Counter::new(config.registrations_per_address),
            trusted_proxy_hops: config.trusted_proxy_hops,
        }
    }

    /// The client's address: the peer, or with `trusted_proxy_hops` = n > 0, the n-th address
    /// from the right of `X-Forwarded-For` (each trusted proxy appends the address it saw; what
    /// lies further left, the client could have written itself). `None` when unknown, which
    /// is then one shared key.
    pub fn client_address(&self, req: &Request) -> Option<IpAddr> {
        let peer = match req.remote_addr() {
            RemoteAddr(poem::Addr::SocketAddr(addr)) => Some(addr.ip()),
            _ => None,
        };
        if self.trusted_proxy_hops == 0 {
            return peer;
        }
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        forwarded
            .len()
            .checked_sub(self.trusted_proxy_hops)
            .and_then(|index| forwarded[index].parse().ok())
            .or(peer)
    }

    /// How long a login for `username` from `address` must wait, if either ran out of failures.
    pub fn login_blocked_for(&self, username: &str, address: Option<IpAddr>) -> Option<Duration> {
        let by_username = self
            .by_username
            .as_ref()
            .and_then(|counter| counter.blocked_for(&username_key(username)));
        let by_address = self
            .by_address
            .as_ref()
            .and_then(|counter| counter.blocked_for(&address));
        by_username.max(by_address)
    }

    pub fn login_failed(&self, username: &str, address: Option<IpAddr>) {
        if let Some(counter) = &self.by_username {
            counter.count(&username_key(username));
        }
        if let Some(counter) = &self.by_address {
            counter.count(&address);
        }
    }

    /// Counts a registration attempt from `address`, unless it must wait; then how long.
    pub fn registration(&self, address: Option<IpAddr>) -> Option<Duration> {
        let counter = self.registrations.as_ref()?;
        let wait = counter.blocked_for(&address);
        if wait.is_none() {
            counter.count(&address);
        }
        wait
    }

    /// Forgets what no longer matters; call it now and then.
    pub fn prune(&self) {
        if let Some(counter) = &self.by_username {
            counter.prune();
        }
        if let Some(counter) = &self.by_address {
            counter.prune();
        }
        if let Some(counter) = &self.registrations {
            counter.prune();
        }
    }
}

/// Whole seconds to wait, rounded up, for `Retry-After`.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(per_username: u32, per_address: u32, registrations: u32, hops: usize) -> Throttle {
        let limit = |max| Limit {
            max,
            window: Duration::from_secs(60),
        };
        Throttle::new(&ThrottleConfig {
            login_failures_per_username: limit(per_username),
            login_failures_per_address: limit(per_address),
            registrations_per_address: limit(registrations),
            trusted_proxy_hops: hops,
        })
    }

    const HOME: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)));
    const AWAY: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2)));

    #[test]
    fn a_username_is_blocked_after_its_failures_and_only_that_username() {
        let throttle = throttle(3, 100, 0, 0);
        for _ in 0..3 {
            assert_eq!(throttle.login_blocked_for("ann@example.com", HOME), None);
            throttle.login_failed("ann@example.com", HOME);
        }

        let wait = throttle
            .login_blocked_for(" ANN@example.com", AWAY)
            .unwrap();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert_eq!(throttle.login_blocked_for("bob@example.com", HOME), None);
    }

    #[test]
    fn an_address_is_blocked_after_its_failures_whatever_the_usernames() {
        let throttle = throttle(100, 2, 0, 0);
        for name in ["a", "b"] {
            throttle.login_failed(name, HOME);
        }
        assert!(throttle.login_blocked_for("zed", HOME).is_some());
        assert_eq!(throttle.login_blocked_for("zed", AWAY), None);
    }

    #[test]
    fn registrations_are_counted_per_address() {
        let throttle = throttle(0, 0, 2, 0);
        assert_eq!(throttle.registration(HOME), None);
        assert_eq!(throttle.registration(HOME), None);
        assert!(throttle.registration(HOME).is_some());
        assert_eq!(throttle.registration(AWAY), None);
    }

    #[test]
    fn a_zero_limit_is_off() {
        let throttle = throttle(0, 0, 0, 0);
        for _ in 0..100 {
            throttle.login_failed("ann", HOME);
            assert_eq!(throttle.registration(HOME), None);
        }
        assert_eq!(throttle.login_blocked_for("ann", HOME), None);
    }

    #[test]
    fn forwarded_addresses_are_believed_only_as_far_as_trusted_proxies_go() {
        let request = |xff: &str| Request::builder().header("x-forwarded-for", xff).finish();
        let untrusting = throttle(0, 0, 0, 0);
        assert_eq!(untrusting.client_address(&request("198.51.100.7")), None);
        let one_proxy = throttle(0, 0, 0, 1);
        assert_eq!(
            one_proxy.client_address(&request("203.0.113.9, 198.51.100.7")),
            Some("198.51.100.7".parse().unwrap())
        );
        let two_proxies = throttle(0, 0, 0, 2);
        assert_eq!(
            two_proxies.client_address(&request("203.0.113.9, 198.51.100.7")),
            Some("203.0.113.9".parse().unwrap())
        );
        // Fewer entries than proxies: the header is not to be believed.
        assert_eq!(two_proxies.client_address(&request("198.51.100.7")), None);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
    }
}
