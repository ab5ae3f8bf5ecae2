//! Brute-force budgets: what is counted, under which key, and at what rate.
//!
//! The counting itself is behind [`ThrottleStore`](crate::throttle::ThrottleStore): in memory for
//! one instance, in PostgreSQL when several instances share a database. Both follow GCRA (the
//! generic cell rate algorithm): a key may spend `max` events at once, then one more every
//! `window / max`. A key has run out when its next event would go over that; it then waits
//! until one unit comes back.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// How many events a key is let through: `max` at once, then one more every `window / max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    max: NonZeroU32,
    window: Duration,
}

impl Rate {
    /// A rate of `max` per `window`; `None` (no limit) when `max` is zero or `window` is so short
    /// that one unit would come back in less than a nanosecond.
    pub fn new(max: u32, window: Duration) -> Option<Self> {
        let max = NonZeroU32::new(max)?;
        (window / max.get() > Duration::ZERO).then_some(Self { max, window })
    }

    pub fn max(self) -> NonZeroU32 {
        self.max
    }

    pub fn window(self) -> Duration {
        self.window
    }

    /// How long one unit takes to come back: `window / max`.
    pub fn interval(self) -> Duration {
        self.window / self.max.get()
    }

    /// How far a key's theoretical arrival time may run ahead of now while the key still has a
    /// unit left: `(max - 1)` intervals.
    fn tolerance(self) -> Duration {
        self.interval() * (self.max.get() - 1)
    }

    /// How long a key whose theoretical arrival time runs `ahead` of now must wait for a unit,
    /// or `None` if it has one. Each counted event moves the arrival time one interval further
    /// ahead of `max(now, arrival)`.
    pub fn wait(self, ahead: Duration) -> Option<Duration> {
        ahead
            .checked_sub(self.tolerance())
            .filter(|wait| !wait.is_zero())
    }
}

/// What a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThrottleKind {
    /// Failed logins per submitted username.
    LoginUsername,
    /// Failed logins per client address.
    LoginAddress,
    /// Registrations per client address.
    Registration,
    /// Password reset and verification mail requests per client address.
    MailAddress,
    /// Password reset and verification mail requests per email address.
    MailEmail,
}

impl ThrottleKind {
    pub const ALL: [Self; 5] = [
        Self::LoginUsername,
        Self::LoginAddress,
        Self::Registration,
        Self::MailAddress,
        Self::MailEmail,
    ];

    /// The kind's name, as in the `warden_throttled_total` metric and in stored keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginUsername => "login_username",
            Self::LoginAddress => "login_address",
            Self::Registration => "registration",
            Self::MailAddress => "mail_address",
            Self::MailEmail => "mail_email",
        }
    }
}

/// The rate of each kind; `None` turns that budget off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rates {
    pub login_username: Option<Rate>,
    pub login_address: Option<Rate>,
    pub registration: Option<Rate>,
    pub mail_address: Option<Rate>,
    pub mail_email: Option<Rate>,
}

impl Rates {
    pub fn of(&self, kind: ThrottleKind) -> Option<Rate> {
        match kind {
            ThrottleKind::LoginUsername => self.login_username,
            ThrottleKind::LoginAddress => self.login_address,
            ThrottleKind::Registration => self.registration,
            ThrottleKind::MailAddress => self.mail_address,
            ThrottleKind::MailEmail => self.mail_email,
        }
    }
}

/// One budget: a kind and whom it counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ThrottleKey {
    pub kind: ThrottleKind,
    /// The username as submitted, trimmed and lower-cased (whether or not such an account
    /// exists, so that a refusal tells nothing), or the client address.
    pub subject: String,
}

impl ThrottleKey {
    /// Failed logins for the username a client submitted.
    pub fn login_username(username: &str) -> Self {
        Self {
            kind: ThrottleKind::LoginUsername,
            subject: username.trim().to_lowercase(),
        }
    }

    /// Failed logins from `address` (`None`, unknown, is one shared key).
    pub fn login_address(address: Option<IpAddr>) -> Self {
        Self {
            kind: ThrottleKind::LoginAddress,
            subject: address_subject(address),
        }
    }

    /// Registrations from `address`.
    pub fn registration(address: Option<IpAddr>) -> Self {
        Self {
            kind: ThrottleKind::Registration,
            subject: address_subject(address),
        }
    }

    /// Mail requests (password reset, verification) from `address`.
    pub fn mail_address(address: Option<IpAddr>) -> Self {
        Self {
            kind: ThrottleKind::MailAddress,
            subject: address_subject(address),
        }
    }

    /// Mail requests for `email`, trimmed and lower-cased (whether or not an account has it).
    pub fn mail_email(email: &str) -> Self {
        Self {
            kind: ThrottleKind::MailEmail,
            subject: email.trim().to_lowercase(),
        }
    }
}

fn address_subject(address: Option<IpAddr>) -> String {
    address.map_or_else(|| "unknown".to_owned(), |address| address.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_lets_max_through_then_one_per_interval() {
        let rate = Rate::new(5, Duration::from_secs(300)).unwrap();
        assert_eq!(rate.interval(), Duration::from_secs(60));
        // After k events at once the arrival time runs k intervals ahead.
        for spent in 0..5 {
            assert_eq!(rate.wait(rate.interval() * spent), None, "after {spent}");
        }
        assert_eq!(
            rate.wait(rate.interval() * 5),
            Some(Duration::from_secs(60))
        );
        // Past the budget (the stores reserve atomically and never get here, but the
        // arithmetic holds): the wait grows one interval per event.
        assert_eq!(
            rate.wait(rate.interval() * 7),
            Some(Duration::from_secs(180))
        );
        // Half an interval later, half an interval to go.
        assert_eq!(
            rate.wait(rate.interval() * 5 - Duration::from_secs(30)),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn zero_turns_a_rate_off() {
        assert_eq!(Rate::new(0, Duration::from_secs(60)), None);
        assert_eq!(Rate::new(5, Duration::ZERO), None);
        assert!(Rate::new(1, Duration::from_secs(1)).is_some());
    }

    #[test]
    fn usernames_are_keyed_trimmed_and_lower_cased() {
        assert_eq!(
            ThrottleKey::login_username("  Ann@Example.COM "),
            ThrottleKey::login_username("ann@example.com")
        );
        assert_eq!(ThrottleKey::login_address(None).subject, "unknown");
        assert_eq!(
            ThrottleKey::registration(Some("2001:db8::1".parse().unwrap())).subject,
            "2001:db8::1"
        );
    }
}
