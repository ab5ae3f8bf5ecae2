//! Brute-force budgets in PostgreSQL, shared by every instance on the database.
//!
//! A reservation is one short transaction: an upsert locks the keys' rows (in one order for
//! every caller, so racing reservations queue instead of deadlocking) and reads their
//! theoretical arrival times; only if every key has a unit left does an update take one from
//! each. Racing reservations, on this instance or another, therefore never overdraw a key, and
//! a refused one changes nothing. A refund is one upsert. The database's clock is the one clock
//! every instance agrees on, and the table is unlogged, so a failed-login flood writes no WAL.

use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::{Acquire as _, PgPool};
use warden_domain::throttle::{Rate, Rates, ThrottleKey, ThrottleStore};

use super::macros::on_postgres;
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
    async fn reserve(&self, keys: &[ThrottleKey]) -> anyhow::Result<Option<Duration>> {
        // A key without a row is whole: it gets one with `now()`. The no-op update of an existing
        // row locks it until the transaction ends, and returns its arrival time as committed.
        const LOCK: &str = "INSERT INTO throttle_keys AS t (key_hash, tat) \
                            SELECT k, now() FROM unnest($1::bytea[]) AS u(k) \
                            ON CONFLICT (key_hash) DO UPDATE SET tat = t.tat \
                            RETURNING t.key_hash, \
                                      EXTRACT(EPOCH FROM GREATEST(t.tat, now()) - now())::float8";
        const TAKE: &str = "UPDATE throttle_keys AS t \
                            SET tat = GREATEST(t.tat, now()) + make_interval(secs => u.s) \
                            FROM unnest($1::bytea[], $2::float8[]) AS u(k, s) \
                            WHERE t.key_hash = u.k";
        let rated = self.rated(keys);
        if rated.is_empty() {
            return Ok(None);
        }
        let hashes: Vec<&[u8]> = rated.iter().map(|(hash, ..)| hash.as_slice()).collect();
        let intervals: Vec<f64> = rated
            .iter()
            .map(|(_, rate, _)| rate.interval().as_secs_f64())
            .collect();
        let wait = on_postgres!(&self.pool, self.transaction_pooling, |pool| {
            async {
                let mut tx = pool.begin().await?;
                let rows: Vec<(Vec<u8>, f64)> = sqlx::query_as(LOCK)
                    .bind(&hashes)
                    .fetch_all(&mut *tx)
                    .await?;
                let wait = rows
                    .iter()
                    .filter_map(|(hash, ahead)| {
                        let (_, rate, _) = rated.iter().find(|(rated, ..)| rated == hash)?;
                        rate.wait(Duration::try_from_secs_f64(ahead.max(0.0)).ok()?)
                    })
                    .max();
                if wait.is_some() {
                    tx.rollback().await?;
                    return Ok(wait);
                }
                sqlx::query(TAKE)
                    .bind(&hashes)
                    .bind(&intervals)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(None)
            }
            .await
        })
        .db_context("cannot reserve throttle keys")?;
        Ok(wait)
    }

    #[tracing::instrument(skip_all, err)]
    async fn refund(&self, keys: &[ThrottleKey]) -> anyhow::Result<()> {
        // An upsert, like a reservation's, so that it locks the rows in the same order.
        // EXCLUDED.tat is now() less the key's interval; a key that has been pruned meanwhile
        // gets a row in the past, which means whole.
        const SQL: &str = "INSERT INTO throttle_keys AS t (key_hash, tat) \
                           SELECT k, now() - make_interval(secs => s) \
                           FROM unnest($1::bytea[], $2::float8[]) AS u(k, s) \
                           ON CONFLICT (key_hash) DO UPDATE \
                           SET tat = t.tat - (now() - EXCLUDED.tat)";
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
        .db_context("cannot refund throttle keys")?;
        Ok(())
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
