//! Brute-force budgets in this process's memory: for SQLite, where there is one instance by
//! nature. With PostgreSQL the budgets live in the database ([`crate::store::SharedThrottle`]),
//! so that every instance sees the same counts.
//!
//! Each key's theoretical arrival time (GCRA, as [`warden_domain::throttle`] describes) is kept
//! in one map behind one lock, so that a reservation of several keys is checked and taken in
//! one step, and a refund gives back exactly what a reservation took: what was counted is
//! remembered until it has come back, as the PostgreSQL store does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use warden_domain::throttle::{Rate, Rates, ThrottleKey, ThrottleStore};

/// Brute-force budgets kept in memory.
pub struct MemoryThrottle {
    rates: Rates,
    /// Each counted key's theoretical arrival time; a key that is not here is whole.
    arrivals: Mutex<HashMap<ThrottleKey, Instant>>,
}

impl std::fmt::Debug for MemoryThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryThrottle").finish_non_exhaustive()
    }
}

impl MemoryThrottle {
    pub fn new(rates: &Rates) -> Self {
        Self {
            rates: *rates,
            arrivals: Mutex::new(HashMap::new()),
        }
    }

    /// The keys that have a rate, without repeats.
    fn rated<'a>(&self, keys: &'a [ThrottleKey]) -> Vec<(&'a ThrottleKey, Rate)> {
        let mut rated: Vec<(&ThrottleKey, Rate)> = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(rate) = self.rates.of(key.kind)
                && !rated.iter().any(|(seen, _)| *seen == key)
            {
                rated.push((key, rate));
            }
        }
        rated
    }

    fn arrivals(&self) -> std::sync::MutexGuard<'_, HashMap<ThrottleKey, Instant>> {
        self.arrivals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl ThrottleStore for MemoryThrottle {
    async fn reserve(&self, keys: &[ThrottleKey]) -> anyhow::Result<Option<Duration>> {
        let rated = self.rated(keys);
        if rated.is_empty() {
            return Ok(None);
        }
        let now = Instant::now();
        let mut arrivals = self.arrivals();
        let wait = rated
            .iter()
            .filter_map(|(key, rate)| {
                let ahead = arrivals
                    .get(*key)
                    .map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
                rate.wait(ahead)
            })
            .max();
        if wait.is_none() {
            for (key, rate) in rated {
                let at = arrivals.entry(key.clone()).or_insert(now);
                *at = (*at).max(now) + rate.interval();
            }
        }
        Ok(wait)
    }

    async fn refund(&self, keys: &[ThrottleKey]) -> anyhow::Result<()> {
        let now = Instant::now();
        let mut arrivals = self.arrivals();
        for (key, rate) in self.rated(keys) {
            let Some(at) = arrivals.get_mut(key) else {
                continue;
            };
            match at.checked_sub(rate.interval()) {
                Some(earlier) if earlier > now => *at = earlier,
                // Whole again.
                _ => {
                    arrivals.remove(key);
                }
            }
        }
        Ok(())
    }

    async fn prune(&self) -> anyhow::Result<u64> {
        let now = Instant::now();
        let mut arrivals = self.arrivals();
        let before = arrivals.len();
        arrivals.retain(|_, at| *at > now);
        Ok((before - arrivals.len()) as u64)
    }
}
