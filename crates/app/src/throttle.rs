//! Brute-force throttling: failed logins per submitted username and per client address, and
//! registrations per client address (contract section 2); wrong passwords and codes at the
//! account's own endpoints against the same budgets as failed logins (contract section 5).
//!
//! The budgets are counted by a [`ThrottleStore`]: in memory with SQLite, in the database with
//! PostgreSQL, so that with several instances on one database an attacker gets one budget, not
//! one per instance. A password or a code is checked only after a unit of its budgets was
//! [reserved](Throttle::reserve_login) for it, and the unit is given back when the guess was
//! right ([`Reservation::settle`]): a burst of guesses gets no more checks than the budget has
//! units, and only failures stay counted. Keys are the username as submitted (trimmed and
//! lower-cased, whether or not the account exists, so the answer tells nothing), or the
//! account's email, and the client address.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use poem_openapi::payload::Json;
use warden_adapters::{MemoryThrottle, Store};
use warden_domain::{
    accounts::User,
    throttle::{Rate, Rates, ThrottleKey, ThrottleStore},
};

use crate::api::error::{ErrorBody, detail};

/// How many events of a kind are let through: `max` at once, then one more every
/// `window / max`. `max` zero turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

impl Limit {
    fn rate(self) -> Option<Rate> {
        Rate::new(self.max, self.window)
    }
}

/// The throttling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub login_failures_per_username: Limit,
    pub login_failures_per_address: Limit,
    pub registrations_per_address: Limit,
    pub mail_requests_per_address: Limit,
    pub mail_requests_per_email: Limit,
}

impl ThrottleConfig {
    /// The rates the throttle store enforces.
    pub fn rates(&self) -> Rates {
        Rates {
            login_username: self.login_failures_per_username.rate(),
            login_address: self.login_failures_per_address.rate(),
            registration: self.registrations_per_address.rate(),
            mail_address: self.mail_requests_per_address.rate(),
            mail_email: self.mail_requests_per_email.rate(),
        }
    }
}

/// Every throttle of the app.
pub struct Throttle {
    store: Arc<dyn ThrottleStore>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle").finish_non_exhaustive()
    }
}

impl Throttle {
    /// A throttle counting in `store`, which enforces the rates of the throttling settings.
    pub fn new(store: Arc<dyn ThrottleStore>) -> Self {
        Self { store }
    }

    /// The throttle of `settings` for `store`: with PostgreSQL its budgets live in the
    /// database, shared by every instance on it; with SQLite (one instance) in memory.
    pub fn for_store(store: &Store, settings: &ThrottleConfig) -> Self {
        let rates = settings.rates();
        let counts: Arc<dyn ThrottleStore> = match store.shared_throttle(rates) {
            Some(shared) => Arc::new(shared),
            None => Arc::new(MemoryThrottle::new(&rates)),
        };
        Self::new(counts)
    }

    /// Reserves a unit of the failed-login budgets of `username` (as submitted) and `address`
    /// for one password check, or says how long to wait if either has run out (the same answer
    /// for existing and unknown usernames). Settle the reservation once the password is checked.
    ///
    /// # Errors
    ///
    /// The store failed (marked unavailable when transient).
    pub async fn reserve_login(
        &self,
        username: &str,
        address: Option<IpAddr>,
    ) -> anyhow::Result<Result<Reservation, Throttled>> {
        self.reserve(
            vec![
                ThrottleKey::login_username(username),
                ThrottleKey::login_address(address),
            ],
            "login",
        )
        .await
    }

    /// Reserves a unit of the failed-login budgets of `account` (its email) and `address` for
    /// the code of a login's second step (the `mfa-otp` grant), or of `address` alone when the
    /// `mfa_token` leads to no account: guessing codes spends the same budgets as guessing
    /// passwords, from however many addresses.
    ///
    /// # Errors
    ///
    /// As [`Throttle::reserve_login`].
    pub async fn reserve_second_step(
        &self,
        account: Option<&User>,
        address: Option<IpAddr>,
    ) -> anyhow::Result<Result<Reservation, Throttled>> {
        let mut keys: Vec<ThrottleKey> = account
            .map(|user| ThrottleKey::login_username(user.email.as_str()))
            .into_iter()
            .collect();
        keys.push(ThrottleKey::login_address(address));
        self.reserve(keys, "login").await
    }

    /// Runs `check`, which checks a password or a code (TOTP or recovery) that a request to one
    /// of `user`'s own endpoints carries, under the account's failed-login budgets (its email)
    /// and `address`'s, as contract section 5 asks: a wrong guess there counts as a failed
    /// login, and the second factor's budget is the account's login budget. A unit of each is
    /// reserved before `check` runs, so that racing guesses never overdraw them, and given back
    /// unless `is_wrong_guess` says the outcome was one. Out of budget, `check` never runs and
    /// the answer is the 429 to give, counted in `warden_throttled_total{kind="account"}`.
    ///
    /// ```ignore
    /// let outcome = match state
    ///     .throttle
    ///     .guard_account_check(&auth.0.user, address, is_wrong, state.users.do_it(...))
    ///     .await?
    /// {
    ///     Ok(outcome) => outcome,
    ///     Err(throttled) => return Ok(throttled.answer()),
    /// };
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Throttle::reserve_login`].
    pub async fn guard_account_check<T, E>(
        &self,
        user: &User,
        address: Option<IpAddr>,
        is_wrong_guess: impl FnOnce(&E) -> bool,
        check: impl Future<Output = Result<T, E>>,
    ) -> anyhow::Result<Result<Result<T, E>, Throttled>> {
        let reservation = match self.reserve_account(user, address).await? {
            Ok(reservation) => reservation,
            Err(throttled) => return Ok(Err(throttled)),
        };
        let outcome = check.await;
        let wrong = outcome.as_ref().err().is_some_and(is_wrong_guess);
        reservation.settle(wrong).await;
        Ok(Ok(outcome))
    }

    async fn reserve_account(
        &self,
        user: &User,
        address: Option<IpAddr>,
    ) -> anyhow::Result<Result<Reservation, Throttled>> {
        self.reserve(
            vec![
                ThrottleKey::login_username(user.email.as_str()),
                ThrottleKey::login_address(address),
            ],
            "account",
        )
        .await
    }

    async fn reserve(
        &self,
        keys: Vec<ThrottleKey>,
        kind: &'static str,
    ) -> anyhow::Result<Result<Reservation, Throttled>> {
        Ok(match self.store.reserve(&keys).await? {
            None => Ok(Reservation {
                store: Arc::clone(&self.store),
                keys,
            }),
            Some(wait) => {
                tracing::warn!(kind, "too many failed attempts: throttled");
                metrics::counter!("warden_throttled_total", "kind" => kind).increment(1);
                Err(Throttled { wait })
            }
        })
    }

    /// Counts a registration attempt from `address`, unless it must wait; then how long.
    ///
    /// # Errors
    ///
    /// As [`Throttle::reserve_login`].
    pub async fn registration(&self, address: Option<IpAddr>) -> anyhow::Result<Option<Duration>> {
        self.store
            .reserve(&[ThrottleKey::registration(address)])
            .await
    }

    /// Counts a mail request (password reset, verification) for `email` from `address`,
    /// unless either must wait; then how long. The address is counted first, so that one
    /// client cannot spend the budgets of many addresses.
    ///
    /// # Errors
    ///
    /// As [`Throttle::reserve_login`].
    pub async fn mail_request(
        &self,
        email: &str,
        address: Option<IpAddr>,
    ) -> anyhow::Result<Option<Duration>> {
        if let Some(wait) = self
            .store
            .reserve(&[ThrottleKey::mail_address(address)])
            .await?
        {
            return Ok(Some(wait));
        }
        self.store.reserve(&[ThrottleKey::mail_email(email)]).await
    }

    /// Forgets what no longer matters; call it now and then.
    pub async fn prune(&self) {
        match self.store.prune().await {
            Ok(forgotten) => tracing::debug!(forgotten, "pruned throttle keys"),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "cannot prune throttle keys"),
        }
    }
}

/// A unit taken from each of some budgets for one password or code check, before the check.
/// Settle it when the check is done: a wrong guess keeps the units spent, anything else gives
/// them back. Dropped unsettled, it keeps them spent, as a failure would.
#[must_use = "settle it once the password or code is checked, or a right one counts as a failure"]
pub struct Reservation {
    store: Arc<dyn ThrottleStore>,
    keys: Vec<ThrottleKey>,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation").finish_non_exhaustive()
    }
}

impl Reservation {
    /// Ends the reservation: the units stay spent if `failed` (the password or code was
    /// wrong), and are given back otherwise (it was right, or was never checked). A refund
    /// that fails is logged, not answered: it costs the account a unit, never the caller its
    /// answer.
    pub async fn settle(self, failed: bool) {
        if failed {
            return;
        }
        if let Err(err) = self.store.refund(&self.keys).await {
            tracing::warn!(error = format!("{err:#}"), "cannot refund throttle keys");
        }
    }
}

/// A check refused because a budget has run out: answer 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    wait: Duration,
}

impl Throttled {
    /// The `Retry-After` header: whole seconds to wait, rounded up.
    pub fn retry_after(self) -> u64 {
        retry_after_seconds(self.wait)
    }

    /// The `{"detail": ...}` body of the 429 at the account's endpoints.
    pub fn detail(self) -> Json<ErrorBody> {
        detail("too many failed attempts; try again later")
    }

    /// The 429 answer of an operation whose answers include one.
    pub fn answer<R: TooManyAttempts>(self) -> R {
        R::too_many_attempts(self.detail(), self.retry_after())
    }
}

/// The answers of an operation that checks a password or a code and so may answer 429: its
/// `ApiResponse` enum has a variant
/// `#[oai(status = 429)] TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64)`
/// (documented as "Too many wrong passwords or codes for this account or from this address;
/// retry after `Retry-After` seconds.") and implements this by returning it.
pub trait TooManyAttempts {
    fn too_many_attempts(body: Json<ErrorBody>, retry_after: u64) -> Self;
}

/// Whole seconds to wait, rounded up, for `Retry-After`.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throttle allowing 2 failures per username and per address a minute.
    fn strict() -> Throttle {
        let limit = Limit {
            max: 2,
            window: Duration::from_secs(60),
        };
        let config = ThrottleConfig {
            login_failures_per_username: limit,
            login_failures_per_address: limit,
            registrations_per_address: limit,
            mail_requests_per_address: limit,
            mail_requests_per_email: limit,
        };
        Throttle::new(Arc::new(warden_adapters::MemoryThrottle::new(
            &config.rates(),
        )))
    }

    fn ann() -> User {
        User {
            id: warden_domain::accounts::UserId::new(1),
            email: warden_domain::accounts::EmailAddress::new("Ann@Example.com").unwrap(),
            created_at: chrono::Utc::now(),
            is_active: true,
            is_admin: false,
            email_verified: true,
        }
    }

    #[tokio::test]
    async fn an_account_check_spends_the_accounts_login_budget_only_when_wrong() {
        let throttle = strict();
        let home = Some(IpAddr::from([192, 0, 2, 1]));
        let ann = ann();
        let guard = |right: bool| {
            throttle.guard_account_check(&ann, home, |wrong: &bool| *wrong, async move {
                if right { Ok(()) } else { Err(true) }
            })
        };
        // Right passwords give their units back, however many.
        for _ in 0..5 {
            assert_eq!(guard(true).await.unwrap(), Ok(Ok(())));
        }
        // Wrong ones keep them: two, and the budget is spent, for logins of that email too.
        for _ in 0..2 {
            assert_eq!(guard(false).await.unwrap(), Ok(Err(true)));
        }
        let throttled = guard(true).await.unwrap().unwrap_err();
        assert!((1..=30).contains(&throttled.retry_after()), "{throttled:?}");
        assert_eq!(
            throttled.detail().0.detail,
            "too many failed attempts; try again later"
        );
        let away = Some(IpAddr::from([198, 51, 100, 1]));
        assert!(
            throttle
                .reserve_login(" ann@example.COM", away)
                .await
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
    }
}
