//! Where brute-force budgets are counted.

use async_trait::async_trait;

use crate::throttle::ThrottleKey;

/// Counts brute-force budgets (see [`crate::throttle`]). Each implementation is built with the
/// [`Rates`](crate::throttle::Rates) it enforces; a key whose kind has no rate is never counted and never
/// refused.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ThrottleStore: Send + Sync + 'static {
    /// Takes one unit from each of `keys`, unless one of them has none left: then takes
    /// nothing and answers how long to wait (the longest wait of the keys that ran out).
    /// Atomic: racing reservations never overdraw a key, and a refused one changes no key.
    /// A reservation is made *before* the guess it pays for is checked (a password, a code),
    /// so that a burst of guesses gets no more checks than the budget has units.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn reserve(&self, keys: &[ThrottleKey]) -> anyhow::Result<Option<std::time::Duration>>;

    /// Gives back to each of `keys` the unit a [`ThrottleStore::reserve`] of them took, when what
    /// it was taken for does not count (the password was right, say). A key whose budget is
    /// whole stays whole.
    ///
    /// # Errors
    ///
    /// As [`ThrottleStore::reserve`].
    async fn refund(&self, keys: &[ThrottleKey]) -> anyhow::Result<()>;

    /// Forgets the keys whose budget is whole again, so that storage stays bounded by recent
    /// activity. Returns how many were forgotten.
    ///
    /// # Errors
    ///
    /// As [`ThrottleStore::reserve`].
    async fn prune(&self) -> anyhow::Result<u64>;
}
