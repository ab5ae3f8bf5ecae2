//! Brute-force throttling: failed logins per submitted username and per client address, and
//! registrations per client address (contract section 2).
//!
//! The budgets are counted by a [`ThrottleStore`]: in memory with SQLite, in the database with
//! PostgreSQL, so that with several instances on one database an attacker gets one budget, not
//! one per instance. A login may only be refused *before* its password is checked, and only its
//! failure is counted. Keys are the username as submitted (trimmed and lower-cased, whether or
//! not the account exists, so the answer tells nothing) and the client address.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::Request;
use poem::web::RemoteAddr;
use warden_domain::ports::ThrottleStore;
use warden_domain::{Rate, Rates, RequestOrigin, ThrottleKey};

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
    /// How many proxies in front of Warden append to `X-Forwarded-For`; 0 believes none of it.
    pub trusted_proxy_hops: usize,
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
    trusted_proxy_hops: usize,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle").finish_non_exhaustive()
    }
}

impl Throttle {
    /// A throttle counting in `store`, which enforces `config`'s rates.
    pub fn new(store: Arc<dyn ThrottleStore>, config: &ThrottleConfig) -> Self {
        Self {
            store,
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

    /// Where `req` comes from: its client address, as [`Throttle::client_address`] sees it, and
    /// its user agent.
    pub fn request_origin(&self, req: &Request) -> RequestOrigin {
        let user_agent = req
            .headers()
            .get(poem::http::header::USER_AGENT)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        RequestOrigin::new(self.client_address(req), user_agent.as_deref())
    }

    /// How long a login for `username` from `address` must wait, if either ran out of failures.
    ///
    /// # Errors
    ///
    /// The store failed (marked unavailable when transient).
    pub async fn login_blocked_for(
        &self,
        username: &str,
        address: Option<IpAddr>,
    ) -> anyhow::Result<Option<Duration>> {
        self.store.blocked_for(&login_keys(username, address)).await
    }

    /// How long a login from `address` must wait, if it ran out of failures (for a login's
    /// second step, which names no username).
    ///
    /// # Errors
    ///
    /// As [`Throttle::login_blocked_for`].
    pub async fn login_address_blocked_for(
        &self,
        address: Option<IpAddr>,
    ) -> anyhow::Result<Option<Duration>> {
        self.store
            .blocked_for(&[ThrottleKey::login_address(address)])
            .await
    }

    /// Counts a failed login.
    ///
    /// # Errors
    ///
    /// As [`Throttle::login_blocked_for`].
    pub async fn login_failed(
        &self,
        username: &str,
        address: Option<IpAddr>,
    ) -> anyhow::Result<()> {
        self.store.count(&login_keys(username, address)).await
    }

    /// Counts a registration attempt from `address`, unless it must wait; then how long.
    ///
    /// # Errors
    ///
    /// As [`Throttle::login_blocked_for`].
    pub async fn registration(&self, address: Option<IpAddr>) -> anyhow::Result<Option<Duration>> {
        self.store
            .count_unless_blocked(&ThrottleKey::registration(address))
            .await
    }

    /// Counts a mail request (password reset, verification) for `email` from `address`,
    /// unless either must wait; then how long. The address is counted first, so that one
    /// client cannot spend the budgets of many addresses.
    ///
    /// # Errors
    ///
    /// As [`Throttle::login_blocked_for`].
    pub async fn mail_request(
        &self,
        email: &str,
        address: Option<IpAddr>,
    ) -> anyhow::Result<Option<Duration>> {
        if let Some(wait) = self
            .store
            .count_unless_blocked(&ThrottleKey::mail_address(address))
            .await?
        {
            return Ok(Some(wait));
        }
        self.store
            .count_unless_blocked(&ThrottleKey::mail_email(email))
            .await
    }

    /// Forgets what no longer matters; call it now and then.
    pub async fn prune(&self) {
        match self.store.prune().await {
            Ok(forgotten) => tracing::debug!(forgotten, "pruned throttle keys"),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "cannot prune throttle keys"),
        }
    }
}

fn login_keys(username: &str, address: Option<IpAddr>) -> [ThrottleKey; 2] {
    [
        ThrottleKey::login_username(username),
        ThrottleKey::login_address(address),
    ]
}

/// Whole seconds to wait, rounded up, for `Retry-After`.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(hops: usize) -> Throttle {
        let limit = Limit {
            max: 0,
            window: Duration::from_secs(60),
        };
        let config = ThrottleConfig {
            login_failures_per_username: limit,
            login_failures_per_address: limit,
            registrations_per_address: limit,
            mail_requests_per_address: limit,
            mail_requests_per_email: limit,
            trusted_proxy_hops: hops,
        };
        Throttle::new(
            Arc::new(warden_adapters::MemoryThrottle::new(&config.rates())),
            &config,
        )
    }

    #[test]
    fn forwarded_addresses_are_believed_only_as_far_as_trusted_proxies_go() {
        let request = |xff: &str| Request::builder().header("x-forwarded-for", xff).finish();
        let untrusting = throttle(0);
        assert_eq!(untrusting.client_address(&request("198.51.100.7")), None);
        let one_proxy = throttle(1);
        assert_eq!(
            one_proxy.client_address(&request("203.0.113.9, 198.51.100.7")),
            Some("198.51.100.7".parse().unwrap())
        );
        let two_proxies = throttle(2);
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
