//! Pruning what ended (contract section 5, "Account safety"): sessions that ended or expired
//! (with their refresh tokens), refresh tokens that were spent or expired, and personal tokens
//! that were revoked or expired, before the retention's cutoff. For the
//! [`SessionRepository`](warden_domain::sessions::SessionRepository) and
//! [`PersonalTokenRepository`](warden_domain::personal_tokens::PersonalTokenRepository) implementations;
//! the [`SecurityEventRepository`](warden_domain::events::SecurityEventRepository) deletes old
//! events in the same batches.

use chrono::{DateTime, Utc};

use super::macros::on_writer;
use super::{DbResultExt, Store, stored_time};

/// How many rows one statement deletes: each batch is a short transaction, well inside the
/// statement timeout, however far behind the pruning is.
const DELETE_BATCH: i64 = 5_000;

/// Deletes the sessions that ended or expired before `cutoff` (their refresh tokens go with
/// them: the foreign key cascades), then the refresh tokens of live sessions that were spent
/// (every refresh leaves one) or expired before it. Returns how many rows it deleted.
pub(super) async fn delete_ended_sessions(
    store: &Store,
    cutoff: DateTime<Utc>,
) -> anyhow::Result<u64> {
    const SESSIONS: &str = "DELETE FROM sessions WHERE id IN \
         (SELECT id FROM sessions WHERE revoked_at < $1 OR expires_at < $1 LIMIT $2)";
    const REFRESH_TOKENS: &str = "DELETE FROM refresh_tokens WHERE token_hash IN \
         (SELECT token_hash FROM refresh_tokens \
          WHERE spent_at < $1 OR expires_at < $1 LIMIT $2)";
    Ok(delete_in_batches(store, SESSIONS, cutoff, ENDED).await?
        + delete_in_batches(store, REFRESH_TOKENS, cutoff, ENDED).await?)
}

/// Deletes the personal tokens that were revoked or expired before `cutoff`. Returns how many.
pub(super) async fn delete_ended_personal_tokens(
    store: &Store,
    cutoff: DateTime<Utc>,
) -> anyhow::Result<u64> {
    const SQL: &str = "DELETE FROM personal_tokens WHERE id IN \
         (SELECT id FROM personal_tokens WHERE revoked_at < $1 OR expires_at < $1 LIMIT $2)";
    delete_in_batches(store, SQL, cutoff, ENDED).await
}

/// The context of a failure to delete what ended.
const ENDED: &str = "cannot delete what ended";

/// Runs `sql` (a `DELETE` of at most `$2` rows from before `$1`) until it deletes fewer than a
/// batch. Returns how many rows it deleted; a failure is reported with `context`. Times compare
/// as text on SQLite in time order (see `stored_time`).
pub(super) async fn delete_in_batches(
    store: &Store,
    sql: &'static str,
    cutoff: DateTime<Utc>,
    context: &'static str,
) -> anyhow::Result<u64> {
    let cutoff = stored_time(cutoff);
    let mut deleted = 0;
    loop {
        let batch = on_writer!(store, |pool| {
            sqlx::query(sql)
                .bind(cutoff)
                .bind(DELETE_BATCH)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .db_context(context)?;
        deleted += batch;
        if batch < u64::try_from(DELETE_BATCH).unwrap_or(u64::MAX) {
            return Ok(deleted);
        }
    }
}
