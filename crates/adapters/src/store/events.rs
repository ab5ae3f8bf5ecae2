//! [`SecurityEventRepository`]: the security event log. Events that record a change are
//! written by the method that makes it, in its transaction, through
//! [`write_transaction!`](super::macros::write_transaction); this module reads them, writes
//! those that stand alone (the same way), and deletes old ones.

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use warden_domain::{
    accounts::UserId,
    events::{
        EventContext, EventId, EventQuery, NewSecurityEvent, SecurityEvent, SecurityEventKind,
        SecurityEventRepository,
    },
    sessions::SessionId,
};

use super::macros::{on_pool, write_transaction};
use super::{DbResultExt, Store, stored_time};

/// Inserts one security event: see [`write_transaction!`](super::macros::write_transaction).
pub(super) const INSERT_EVENT: &str = "INSERT INTO security_events \
     (user_id, type, at, ip_address, user_agent, session_id) VALUES ($1, $2, $3, $4, $5, $6)";

/// Writes each of `events` to the log as one structured line, once it is stored: operators
/// follow the event log in their log pipeline (contract section 11).
pub(super) fn log_events(events: &[NewSecurityEvent]) {
    for event in events {
        tracing::info!(
            target: "warden::security_event",
            event = event.kind.as_str(),
            user_id = event.user_id.get(),
            ip_address = event.context.ip_address.map(|ip| ip.to_string()),
            user_agent = event.context.user_agent.as_deref(),
            session_id = event.context.session_id.map(|id| id.to_string()),
            "security event"
        );
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    user_id: i64,
    #[sqlx(rename = "type")]
    kind: String,
    at: DateTime<Utc>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    session_id: Option<Uuid>,
}

impl TryFrom<EventRow> for SecurityEvent {
    type Error = anyhow::Error;

    fn try_from(row: EventRow) -> anyhow::Result<Self> {
        let invalid = |what: &str| format!("event {} has an invalid stored {what}", row.id);
        Ok(SecurityEvent {
            id: EventId::new(row.id),
            user_id: UserId::new(row.user_id),
            kind: SecurityEventKind::parse(&row.kind).with_context(|| invalid("type"))?,
            at: row.at,
            context: EventContext {
                ip_address: row
                    .ip_address
                    .as_deref()
                    .map(str::parse)
                    .transpose()
                    .with_context(|| invalid("ip_address"))?,
                user_agent: row.user_agent,
                session_id: row.session_id.map(SessionId::from_uuid),
            },
        })
    }
}

#[async_trait]
impl SecurityEventRepository for Store {
    #[tracing::instrument(skip_all, err)]
    async fn record_events(&self, events: &[NewSecurityEvent]) -> anyhow::Result<()> {
        write_transaction!(self, |tx| tx.record(events))
            .db_context("cannot record security events")?;
        Ok(())
    }

    fn record_events_detached(&self, events: Vec<NewSecurityEvent>) {
        let store = self.clone();
        tokio::spawn(async move {
            if let Err(err) = store.record_events(&events).await {
                tracing::warn!(error = format!("{err:#}"), "cannot record security events");
            }
        });
    }

    #[tracing::instrument(skip(self), err)]
    async fn list_events(&self, query: &EventQuery) -> anyhow::Result<Vec<SecurityEvent>> {
        // Times compare as text on SQLite in time order (see `stored_time`).
        const SQL: &str = "SELECT id, user_id, type, at, ip_address, user_agent, session_id \
                           FROM security_events \
                           WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR type = $2) \
                             AND ($3 IS NULL OR id < $3) AND at >= $4 \
                           ORDER BY id DESC LIMIT $5";
        let rows = on_pool!(self, |pool| {
            sqlx::query_as::<_, EventRow>(SQL)
                .bind(query.user_id.map(UserId::get))
                .bind(query.kind.map(SecurityEventKind::as_str))
                .bind(query.before.map(EventId::get))
                .bind(stored_time(query.since))
                .bind(i64::from(query.limit.get()))
                .fetch_all(pool)
                .await
        })
        .db_context("cannot list security events")?;
        rows.into_iter().map(SecurityEvent::try_from).collect()
    }

    #[tracing::instrument(skip(self), err)]
    async fn delete_events_before(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        const SQL: &str = "DELETE FROM security_events WHERE id IN \
                           (SELECT id FROM security_events WHERE at < $1 LIMIT $2)";
        super::retention::delete_in_batches(self, SQL, cutoff, "cannot delete old security events")
            .await
    }
}
