//! What is kept of ended logins and tokens (contract section 5, "Account safety"): sessions
//! that ended or expired, refresh tokens that were spent or expired, and personal tokens that
//! were revoked or expired are deleted once they are older than `EVENT_RETENTION_DAYS`, as
//! events are (see [`EventService::prune`](crate::events::EventService::prune)). Until then they stay,
//! so that a replayed refresh token is still recognised as one, and the event log's
//! `session_id`s still name a session.

use std::sync::Arc;

use chrono::Utc;

use crate::{
    events::EventRetention, personal_tokens::PersonalTokenRepository, sessions::SessionRepository,
};

/// What [`RetentionService`] drives.
#[derive(Clone)]
pub struct RetentionPorts {
    pub sessions: Arc<dyn SessionRepository>,
    pub tokens: Arc<dyn PersonalTokenRepository>,
}

crate::opaque_debug!(RetentionPorts);

/// Pruning ended sessions, refresh tokens and personal tokens.
#[derive(Clone)]
pub struct RetentionService {
    ports: RetentionPorts,
    retention: EventRetention,
}

crate::opaque_debug!(RetentionService { retention });

impl RetentionService {
    pub fn new(ports: RetentionPorts, retention: EventRetention) -> Self {
        Self { ports, retention }
    }

    /// Deletes the sessions and refresh tokens that ended before the retention. Returns how
    /// many rows.
    ///
    /// # Errors
    ///
    /// The storage failed.
    pub async fn prune_sessions(&self) -> anyhow::Result<u64> {
        self.ports
            .sessions
            .delete_sessions_ended_before(self.retention.cutoff_at(Utc::now()))
            .await
    }

    /// Deletes the personal tokens that were revoked or expired before the retention. Returns
    /// how many.
    ///
    /// # Errors
    ///
    /// The storage failed.
    pub async fn prune_personal_tokens(&self) -> anyhow::Result<u64> {
        self.ports
            .tokens
            .delete_personal_tokens_ended_before(self.retention.cutoff_at(Utc::now()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::{personal_tokens::MockPersonalTokenRepository, sessions::MockSessionRepository};

    fn about_days_ago(cutoff: chrono::DateTime<Utc>, days: i64) -> bool {
        let age = Utc::now() - cutoff;
        age >= TimeDelta::days(days) && age < TimeDelta::days(days) + TimeDelta::seconds(5)
    }

    #[tokio::test]
    async fn pruning_deletes_what_ended_before_the_retention() {
        let mut sessions = MockSessionRepository::new();
        sessions
            .expect_delete_sessions_ended_before()
            .withf(|cutoff| about_days_ago(*cutoff, 30))
            .times(1)
            .returning(|_| Ok(4));
        let mut tokens = MockPersonalTokenRepository::new();
        tokens
            .expect_delete_personal_tokens_ended_before()
            .withf(|cutoff| about_days_ago(*cutoff, 30))
            .times(1)
            .returning(|_| Ok(2));
        let service = RetentionService::new(
            RetentionPorts {
                sessions: Arc::new(sessions),
                tokens: Arc::new(tokens),
            },
            EventRetention::days(30),
        );

        assert_eq!(service.prune_sessions().await.unwrap(), 4);
        assert_eq!(service.prune_personal_tokens().await.unwrap(), 2);
    }
}
