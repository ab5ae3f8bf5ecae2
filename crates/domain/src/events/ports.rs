//! What the security event log needs stored (contract section 11).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::events::{EventQuery, NewSecurityEvent, SecurityEvent};

/// Stores the security event log (contract section 11). Events that record a change are stored
/// by the method that makes the change; this port stores those that change nothing else (a
/// refused login), reads them, and forgets old ones.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SecurityEventRepository: Send + Sync + 'static {
    /// Records `events`, all or none.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient), including a user id
    /// that does not exist; then nothing is stored.
    async fn record_events(&self, events: &[NewSecurityEvent]) -> anyhow::Result<()>;

    /// Records `events` without waiting: the write happens after the call returns, and its
    /// failure is logged, not returned. For events whose write would tell an observer
    /// something by its time: a refused login of an existing account must take as long to
    /// answer as one of an unknown account, which has no log to write to.
    fn record_events_detached(&self, events: Vec<NewSecurityEvent>);

    /// The events `query` selects, newest first.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient), or a stored row that
    /// does not pass the domain's validation.
    async fn list_events(&self, query: &EventQuery) -> anyhow::Result<Vec<SecurityEvent>>;

    /// Deletes the events from before `cutoff`. Returns how many.
    ///
    /// # Errors
    ///
    /// A failure of the storage (marked [`Unavailable`](crate::error::Unavailable) when transient).
    async fn delete_events_before(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64>;
}
