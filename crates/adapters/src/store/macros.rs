//! The macros every repository module runs its SQL through. Each is compiled once per
//! database: sqlx's SQLite and PostgreSQL types share no trait that would let one function
//! take either pool (or a pooler's connection), so the code is written once and the macro
//! expands it in each arm of a `match` on the store's [`Pool`](super::Pool).
//!
//! - [`on_pool!`]: a read, on any connection.
//! - [`on_writer!`]: a single write statement, on the writer.
//! - [`write_transaction!`]: a change of more than one statement, and the security events that
//!   record it (see [`RecordingTransaction`]). This is the one way a change and its events are
//!   written together.
//!
//! They are imported by path (`use super::macros::{on_pool, ...}`), so the order in which
//! modules are declared does not matter. Macros that shape one module's queries stay in it.

use sqlx::Database;
use warden_domain::events::NewSecurityEvent;

/// Runs the same read-only code against whichever database the store holds. The body is
/// compiled once per database, with `$pool` bound to the pool to read from, and evaluates to a
/// `Result<_, sqlx::Error>`. Behind a transaction pooler, see [`on_postgres!`].
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        $crate::store::macros::on_either!($store, readers, |$pool| $body)
    };
}

/// As [`on_pool!`], for code that writes: on SQLite, the single writer connection.
macro_rules! on_writer {
    ($store:expr, |$pool:ident| $body:expr) => {
        $crate::store::macros::on_either!($store, writer, |$pool| $body)
    };
}

/// [`on_pool!`] and [`on_writer!`]: `$body` on SQLite's `$sqlite` pool (`readers` or
/// `writer`), or on PostgreSQL's one pool through [`on_postgres!`].
macro_rules! on_either {
    ($store:expr, $sqlite:ident, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite { $sqlite: $pool, .. } => $body,
            $crate::store::Pool::Postgres {
                pool,
                transaction_pooling,
            } => $crate::store::macros::on_postgres!(pool, *transaction_pooling, |$pool| $body),
        }
    };
}

/// Runs `$body` on PostgreSQL's `$pg` pool: directly, or, behind a transaction pooler, in a
/// transaction of its own with `$pool` bound to its connection. The body must then use `$pool`
/// once (a transaction it begins is a savepoint).
macro_rules! on_postgres {
    ($pg:expr, $transaction_pooling:expr, |$pool:ident| $body:expr) => {
        if $transaction_pooling {
            $crate::store::macros::in_pooled_transaction!($pg, |$pool| $body)
        } else {
            let $pool = $pg;
            $body
        }
    };
}

/// Runs `$body` in a transaction begun with [`POOLED_BEGIN`](super::POOLED_BEGIN), committed
/// if the body succeeds.
macro_rules! in_pooled_transaction {
    ($pg:expr, |$pool:ident| $body:expr) => {
        match $pg.begin_with($crate::store::POOLED_BEGIN).await {
            Err(err) => Err(err),
            Ok(mut tx) => {
                let result = {
                    let $pool = &mut *tx;
                    $body
                };
                match result {
                    Ok(value) => tx.commit().await.map(|()| value),
                    // Dropping the transaction rolls it back.
                    Err(err) => Err(err),
                }
            }
        }
    };
}

/// Runs a change in one transaction on the writer, with the security events that record it.
///
/// `$body` runs in an async block whose error type is `sqlx::Error` (so `?` works in it), with
/// `$tx` bound to a [`RecordingTransaction`]: `&mut *$tx` is the connection to run statements
/// on, and `$tx.record(events)` marks events to write with the change. When the body ends, the
/// recorded events are inserted and the transaction commits; a body that returns early
/// (`return Ok(value)`), or fails, rolls everything back, events included. Once committed, the
/// events are logged ([`log_events`](super::events::log_events)). Evaluates to the body's value
/// as a `Result<_, sqlx::Error>`.
///
/// ```ignore
/// let changed = write_transaction!(self, |tx| {
///     let changed = sqlx::query(SQL).bind(id).execute(&mut *tx).await?.rows_affected();
///     tx.record_if(changed > 0, events);
///     changed
/// })
/// .db_context("cannot change it")?;
/// ```
macro_rules! write_transaction {
    ($store:expr, |$tx:ident| $body:expr) => {{
        // What the committed transaction recorded, for the log; nothing unless it committed.
        let mut committed = Vec::new();
        let done = $crate::store::macros::on_writer!($store, |pool| {
            async {
                let mut $tx = $crate::store::macros::RecordingTransaction::new(
                    sqlx::Acquire::begin(pool).await?,
                );
                let value = $body;
                let (mut tx, events) = $tx.into_parts();
                for event in &events {
                    sqlx::query($crate::store::events::INSERT_EVENT)
                        .bind(event.user_id.get())
                        .bind(event.kind.as_str())
                        .bind($crate::store::stored_time(event.at))
                        .bind(event.context.ip_address.map(|ip| ip.to_string()))
                        .bind(event.context.user_agent.as_deref())
                        .bind(
                            event
                                .context
                                .session_id
                                .map(warden_domain::sessions::SessionId::as_uuid),
                        )
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                committed = events;
                Ok::<_, sqlx::Error>(value)
            }
            .await
        });
        if done.is_ok() {
            $crate::store::events::log_events(&committed);
        }
        done
    }};
}

pub(crate) use {
    in_pooled_transaction, on_either, on_pool, on_postgres, on_writer, write_transaction,
};

/// The transaction of a [`write_transaction!`]: the connection to run the change on (through
/// `Deref`), and the security events that record it, written when it commits.
pub(crate) struct RecordingTransaction<'c, DB: Database> {
    tx: sqlx::Transaction<'c, DB>,
    events: Vec<NewSecurityEvent>,
}

impl<'c, DB: Database> RecordingTransaction<'c, DB> {
    pub(crate) fn new(tx: sqlx::Transaction<'c, DB>) -> Self {
        Self {
            tx,
            events: Vec::new(),
        }
    }

    /// Writes `events` with the change, in this order after any recorded before, if it
    /// commits.
    pub(crate) fn record(&mut self, events: &[NewSecurityEvent]) {
        self.events.extend_from_slice(events);
    }

    /// Writes `events` as [`record`](Self::record) does, if the change `happened`: for a
    /// change that may find nothing to change, and is recorded only when it does.
    pub(crate) fn record_if(&mut self, happened: bool, events: &[NewSecurityEvent]) {
        if happened {
            self.record(events);
        }
    }

    /// Ends the transaction now, undoing the change: nothing recorded is written.
    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }

    pub(crate) fn into_parts(self) -> (sqlx::Transaction<'c, DB>, Vec<NewSecurityEvent>) {
        (self.tx, self.events)
    }
}

impl<DB: Database> std::ops::Deref for RecordingTransaction<'_, DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: Database> std::ops::DerefMut for RecordingTransaction<'_, DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}
