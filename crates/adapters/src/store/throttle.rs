//! Brute-force budgets in PostgreSQL, shared by every instance on the database.
//!
//! Each statement is atomic on its own: the row lock of an upsert orders racing instances, so
//! there is no read-modify-write race, and the database's clock is the one clock every instance
//! agrees on. A login costs one indexed read (are its keys blocked?), and a failed one a
//! single upsert of its two keys; the table is unlogged, so a failed-login flood writes no WAL.

use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use warden_domain::ports::ThrottleStore;
use warden_domain::{Rate, Rates, ThrottleKey};

use sqlx::PgPool;

use super::{DbResultExt, Pool, Store};

/// Brute-force budgets kept in PostgreSQL ([`Store::shared_throttle`]).
#[derive(Debug, Clone)]
pub struct SharedThrottle {
    pool: PgPool,
    transaction_pooling: bool,
    rates: Rates,
}

impl Store {
    /// The brute-force budgets of `rates`, kept in this database so that every instance on it
    /// counts against the same ones; `None` on SQLite, whose single instance keeps them in
    /// memory.
    pub fn shared_throttle(&self, rates: Rates) -> Option<SharedThrottle> {
        match &self.pool {
            Pool::Postgres {
                pool,
                transaction_pooling,
            } => Some(SharedThrottle {
                pool: pool.clone(),
                transaction_pooling: *transaction_pooling,
                rates,
            }),
            Pool::Sqlite { .. } => None,
        }
    }
}

/// A key as stored: SHA-256 of its kind and subject.
fn key_hash(key: &ThrottleKey) -> Vec<u8> {
    let mut digest = Sha256::new();
    digest.update(key.kind.as_str().as_bytes());
    digest.update([0]);
    digest.update(key.subject.as_bytes());
    digest.finalize().to_vec()
}

impl SharedThrottle {
    /// The keys that have a rate, with their stored hash, without repeats.
    fn rated<'a>(&self, keys: &'a [ThrottleKey]) -> Vec<(Vec<u8>, Rate, &'a ThrottleKey)> {
        let mut rated: Vec<_> = keys
            .iter()
            .filter_map(|key| Some((key_hash(key), self.rates.of(key.kind)?, key)))
            .collect();
        // One order for every caller, so that racing upserts lock rows alike and never deadlock.
        rated.sort_by(|a, b| a.0.cmp(&b.0));
        rated.dedup_by(|a, b| a.0 == b.0);
        rated
    }
}

#[async_trait]
impl ThrottleStore for SharedThrottle {
    #[tracing::instrument(skip_all, err)]
    async fn blocked_for(&self, keys: &[ThrottleKey]) -> anyhow::Result<Option<Duration>> {
        const SQL: &str = "SELECT key_hash, EXTRACT(EPOCH FROM tat - now())::float8 \
                           FROM throttle_keys WHERE key_hash = ANY($1) AND tat > now()";
        let rated = self.rated(keys);
        if rated.is_empty() {
            return Ok(None);
        }
        let hashes: Vec<&[u8]> = rated.iter().map(|(hash, ..)| hash.as_slice()).collect();
        let rows: Vec<(Vec<u8>, f64)> =
            on_postgres!(&self.pool, self.transaction_pooling, |pool| {
                sqlx::query_as(SQL).bind(&hashes).fetch_all(pool).await
            })
            .db_context("cannot read throttle keys")?;
        Ok(rows
            .iter()
            .filter_map(|(hash, ahead)| {
                let (_, rate, _) = rated.iter().find(|(rated, ..)| rated == hash)?;
                rate.wait(Duration::try_from_secs_f64(*ahead).ok()?)
            })
            .max())
    }

    #[tracing::instrument(skip_all, err)]
    async fn count(&self, keys: &[ThrottleKey]) -> anyhow::Result<()> {
        // EXCLUDED.tat - now() is the key's interval.
        const SQL: &str = "INSERT INTO throttle_keys AS t (key_hash, tat) \
                           SELECT k, now() + make_interval(secs => s) \
                           FROM unnest($1::bytea[], $2::float8[]) AS u(k, s) \
                           ON CONFLICT (key_hash) DO UPDATE \
                           SET tat = GREATEST(t.tat, now()) + (EXCLUDED.tat - now())";
        let rated = self.rated(keys);
        if rated.is_empty() {
            return Ok(());
        }
        let hashes: Vec<&[u8]> = rated.iter().map(|(hash, ..)| hash.as_slice()).collect();
        let intervals: Vec<f64> = rated
            .iter()
            .map(|(_, rate, _)| rate.interval().as_secs_f64())
            .collect();
        on_postgres!(&self.pool, self.transaction_pooling, |pool| {
            sqlx::query(SQL)
                .bind(&hashes)
                .bind(&intervals)
                .execute(pool)
                .await
        })
        .db_context("cannot count throttle keys")?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn count_unless_blocked(&self, key: &ThrottleKey) -> anyhow::Result<Option<Duration>> {
        // The WHERE is the check: a key that runs more than (max - 1) intervals ahead has run
        // out, and is left as it is.
        const ADMIT: &str = "INSERT INTO throttle_keys AS t (key_hash, tat) \
                             VALUES ($1, now() + make_interval(secs => $2)) \
                             ON CONFLICT (key_hash) DO UPDATE \
                             SET tat = GREATEST(t.tat, now()) + make_interval(secs => $2) \
                             WHERE t.tat - now() <= make_interval(secs => $3) \
                             RETURNING 1";
        const AHEAD: &str = "SELECT EXTRACT(EPOCH FROM tat - now())::float8 \
                             FROM throttle_keys WHERE key_hash = $1";
        let Some(rate) = self.rates.of(key.kind) else {
            return Ok(None);
        };
        let hash = key_hash(key);
        let interval = rate.interval().as_secs_f64();
        let tolerance = interval * f64::from(rate.max().get() - 1);
        let admitted: Option<i32> = on_postgres!(&self.pool, self.transaction_pooling, |pool| {
            sqlx::query_scalar(ADMIT)
                .bind(&hash)
                .bind(interval)
                .bind(tolerance)
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot count a throttle key")?;
        if admitted.is_some() {
            return Ok(None);
        }
        let ahead: Option<f64> = on_postgres!(&self.pool, self.transaction_pooling, |pool| {
            sqlx::query_scalar(AHEAD)
                .bind(&hash)
                .fetch_optional(pool)
                .await
        })
        .db_context("cannot read a throttle key")?;
        // A unit may have come back between the two statements: still refused, briefly.
        let wait = ahead
            .and_then(|ahead| Duration::try_from_secs_f64(ahead).ok())
            .and_then(|ahead| rate.wait(ahead));
        Ok(Some(wait.unwrap_or(Duration::from_millis(1))))
    }

    #[tracing::instrument(skip_all, err)]
    async fn prune(&self) -> anyhow::Result<u64> {
        const SQL: &str = "DELETE FROM throttle_keys WHERE tat <= now()";
        let done = on_postgres!(&self.pool, self.transaction_pooling, |pool| sqlx::query(
            SQL
        )
        .execute(pool)
        .await)
        .db_context("cannot prune throttle keys")?;
        Ok(done.rows_affected())
    }
}
