//! The security event log as its readers see it (contract section 11): a user's own events, every
//! account's for admins, and the retention that cuts both.

use std::sync::Arc;

use chrono::Utc;

use crate::{
    accounts::UserId,
    error::Unknown,
    events::{
        EventId, EventQuery, EventRetention, SecurityEvent, SecurityEventKind,
        SecurityEventRepository,
    },
    sessions::Principal,
};

/// Reading and pruning the event log.
/// What [`EventService`] drives.
#[derive(Clone)]
pub struct EventPorts {
    pub events: Arc<dyn SecurityEventRepository>,
}

crate::opaque_debug!(EventPorts);

#[derive(Clone)]
pub struct EventService {
    ports: EventPorts,
    retention: EventRetention,
}

crate::opaque_debug!(EventService { retention });

/// Which page of events to read: those older than event `before` when given, at most `limit`.
pub type EventPage = crate::paging::KeysetPage<EventId>;

impl EventService {
    pub fn new(ports: EventPorts, retention: EventRetention) -> Self {
        Self { ports, retention }
    }

    /// The caller's own events, newest first, within the retention.
    pub async fn own_events(
        &self,
        caller: &Principal,
        page: EventPage,
    ) -> Result<Vec<SecurityEvent>, Unknown> {
        self.list(Some(caller.user.id), None, page).await
    }

    /// Every account's events (or one account's, or one kind's), newest first, within the
    /// retention.
    pub async fn all_events(
        &self,
        user_id: Option<UserId>,
        kind: Option<SecurityEventKind>,
        page: EventPage,
    ) -> Result<Vec<SecurityEvent>, Unknown> {
        self.list(user_id, kind, page).await
    }

    async fn list(
        &self,
        user_id: Option<UserId>,
        kind: Option<SecurityEventKind>,
        page: EventPage,
    ) -> Result<Vec<SecurityEvent>, Unknown> {
        // The cut is applied when reading too, so that an event past the retention is never
        // shown, however long ago the last pruning ran.
        let query = EventQuery {
            user_id,
            kind,
            before: page.before,
            limit: page.limit,
            since: self.retention.cutoff_at(Utc::now()),
        };
        Ok(self.ports.events.list_events(&query).await?)
    }

    /// Deletes the events past the retention. Returns how many.
    ///
    /// # Errors
    ///
    /// The storage failed.
    pub async fn prune(&self) -> anyhow::Result<u64> {
        self.ports
            .events
            .delete_events_before(self.retention.cutoff_at(Utc::now()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::events::{EventLimit, MockSecurityEventRepository};

    #[tokio::test]
    async fn listing_never_reaches_past_the_retention() {
        let mut events = MockSecurityEventRepository::new();
        events
            .expect_list_events()
            .withf(|query| {
                let age = Utc::now() - query.since;
                query.user_id == Some(UserId::new(7))
                    && query.before == Some(EventId::new(40))
                    && age >= TimeDelta::days(30)
                    && age < TimeDelta::days(30) + TimeDelta::seconds(5)
            })
            .times(1)
            .returning(|_| Ok(Vec::new()));
        let service = EventService::new(
            EventPorts {
                events: Arc::new(events),
            },
            EventRetention::days(30),
        );
        let page = EventPage {
            before: Some(EventId::new(40)),
            limit: EventLimit::DEFAULT,
        };
        let listed = service
            .all_events(Some(UserId::new(7)), None, page)
            .await
            .unwrap();
        assert!(listed.is_empty());
    }

    #[tokio::test]
    async fn pruning_deletes_what_is_older_than_the_retention() {
        let mut events = MockSecurityEventRepository::new();
        events
            .expect_delete_events_before()
            .withf(|cutoff| {
                let age = Utc::now() - *cutoff;
                age >= TimeDelta::days(90) && age < TimeDelta::days(90) + TimeDelta::seconds(5)
            })
            .times(1)
            .returning(|_| Ok(3));
        let service = EventService::new(
            EventPorts {
                events: Arc::new(events),
            },
            EventRetention::days(90),
        );
        assert_eq!(service.prune().await.unwrap(), 3);
    }
}
