//! Brute-force budgets in this process's memory: for SQLite, where there is one instance by
//! nature. With PostgreSQL the budgets live in the database ([`crate::store::SharedThrottle`]),
//! so that every instance sees the same counts.
//!
//! governor keeps the counts (GCRA, as [`warden_domain::throttle`] describes). A login may only
//! be refused *before* its password is checked, but only failures count, and governor cannot
//! tell whether a key has budget left without spending it. So when an event spends a key's last
//! unit, the key is remembered as blocked until the next unit comes back, and attempts are
//! checked against that.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use warden_domain::ports::ThrottleStore;
use warden_domain::{Rate, Rates, ThrottleKey, ThrottleKind};

/// Counts events per key of one kind, and refuses keys that ran out.
struct Counter {
    limiter: RateLimiter<
        String,
        DefaultKeyedStateStore<String>,
        DefaultClock,
        StateInformationMiddleware,
    >,
    clock: DefaultClock,
    /// How long a key waits for one unit to come back.
    interval: Duration,
    blocked: Mutex<HashMap<String, Instant>>,
    /// Held across check-and-count, so that racing callers of `count_unless_blocked` cannot
    /// both pass the check.
    admitting: Mutex<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Counter {
    fn new(rate: Rate) -> Self {
        let quota = Quota::with_period(rate.interval())
            .expect("a Rate's interval is never zero")
            .allow_burst(rate.max());
        Self {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            clock: DefaultClock::default(),
            interval: rate.interval(),
            blocked: Mutex::new(HashMap::new()),
            admitting: Mutex::new(()),
        }
    }

    /// How long `subject` must wait, if it has run out.
    fn blocked_for(&self, subject: &str) -> Option<Duration> {
        let until = *lock(&self.blocked).get(subject)?;
        until
            .checked_duration_since(Instant::now())
            .filter(|wait| !wait.is_zero())
    }

    /// Counts one event for `subject`; if that spent its last unit, blocks it until one comes
    /// back.
    fn count(&self, subject: &str) {
        let key = subject.to_owned();
        let wait = match self.limiter.check_key(&key) {
            Ok(state) if state.remaining_burst_capacity() > 0 => return,
            Ok(_) => self.interval,
            // Racing events may overdraw a key: it waits as long as governor says.
            Err(not_until) => not_until.wait_time_from(self.clock.now()),
        };
        lock(&self.blocked).insert(key, Instant::now() + wait);
    }

    /// Forgets subjects that are neither blocked nor counted any more.
    fn prune(&self) -> u64 {
        let now = Instant::now();
        let mut blocked = lock(&self.blocked);
        let before = blocked.len();
        blocked.retain(|_, until| *until > now);
        let forgotten = before - blocked.len();
        drop(blocked);
        self.limiter.retain_recent();
        forgotten as u64
    }
}

/// Brute-force budgets kept in memory.
pub struct MemoryThrottle {
    counters: HashMap<ThrottleKind, Counter>,
}

impl std::fmt::Debug for MemoryThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryThrottle").finish_non_exhaustive()
    }
}

impl MemoryThrottle {
    pub fn new(rates: &Rates) -> Self {
        let counters = ThrottleKind::ALL
            .into_iter()
            .filter_map(|kind| Some((kind, Counter::new(rates.of(kind)?))))
            .collect();
        Self { counters }
    }
}

#[async_trait]
impl ThrottleStore for MemoryThrottle {
    async fn blocked_for(&self, keys: &[ThrottleKey]) -> anyhow::Result<Option<Duration>> {
        Ok(keys
            .iter()
            .filter_map(|key| self.counters.get(&key.kind)?.blocked_for(&key.subject))
            .max())
    }

    async fn count(&self, keys: &[ThrottleKey]) -> anyhow::Result<()> {
        for key in keys {
            if let Some(counter) = self.counters.get(&key.kind) {
                counter.count(&key.subject);
            }
        }
        Ok(())
    }

    async fn count_unless_blocked(&self, key: &ThrottleKey) -> anyhow::Result<Option<Duration>> {
        let Some(counter) = self.counters.get(&key.kind) else {
            return Ok(None);
        };
        let _admitting = lock(&counter.admitting);
        let wait = counter.blocked_for(&key.subject);
        if wait.is_none() {
            counter.count(&key.subject);
        }
        Ok(wait)
    }

    async fn prune(&self) -> anyhow::Result<u64> {
        Ok(self.counters.values().map(Counter::prune).sum())
    }
}
