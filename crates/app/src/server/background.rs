//! What every instance does besides answering requests: pruning what expired, and sending the
//! outbox's mail.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use warden_domain::mail::{Delivery, DeliveryOutcome, MailDelivery};

use crate::api::state::AppState;

/// How often the mail worker looks at the outbox when nothing woke it: for mail queued by other
/// instances, and for retries that came due.
pub const MAIL_POLL: Duration = Duration::from_secs(2);

/// Starts the background tasks of `state`: throttle pruning every minute; pruning of events,
/// ended sessions and personal tokens, challenges and email tokens at start and then hourly;
/// and, when email is on, the mail worker.
pub fn spawn(state: &AppState) {
    let throttle = Arc::clone(&state.throttle);
    tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            throttle.prune().await;
        }
    });
    let events = state.events.clone();
    let retention = state.retention.clone();
    let mfa = state.mfa.clone();
    let email = state.email.as_ref().map(|email| email.flows.clone());
    tokio::spawn(async move {
        // Listings and checks cut at the expiry themselves, so this only bounds the tables.
        let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            log_pruned("security events", events.prune().await);
            log_pruned("ended sessions", retention.prune_sessions().await);
            log_pruned(
                "ended personal tokens",
                retention.prune_personal_tokens().await,
            );
            log_pruned("expired mfa challenges", mfa.prune().await);
            if let Some(email) = &email {
                log_pruned("expired email tokens", email.prune().await);
            }
        }
    });
    if let Some(email) = &state.email {
        spawn_mail_worker(email.delivery.clone(), state.store.mail_queued());
    }
}

fn log_pruned(what: &str, pruned: anyhow::Result<u64>) {
    match pruned {
        Ok(deleted) => tracing::debug!(deleted, "pruned {what}"),
        Err(err) => tracing::warn!(error = format!("{err:#}"), "cannot prune {what}"),
    }
}

/// Sends the outbox's mail: everything due, then again when this instance queues mail or after
/// [`MAIL_POLL`]. Requests never wait for it.
pub fn spawn_mail_worker(delivery: MailDelivery, wake: Arc<Notify>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            loop {
                match delivery.deliver_next().await {
                    Ok(Some(done)) => record(&done),
                    Ok(None) => break,
                    Err(err) => {
                        tracing::warn!(error = format!("{err:#}"), "cannot read the outbox");
                        break;
                    }
                }
            }
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(MAIL_POLL) => {}
            }
        }
    })
}

/// Logs and counts what became of a mail. The log names the mail's id and kind, never its
/// recipient or token.
fn record(done: &Delivery) {
    let kind = done.kind.as_str();
    match &done.outcome {
        DeliveryOutcome::Sent => {
            tracing::info!(mail = %done.id, kind, attempts = done.attempts, "mail sent");
            metrics::counter!("warden_mail_sent_total", "kind" => kind).increment(1);
        }
        DeliveryOutcome::Retry { delay, error } => {
            tracing::warn!(
                mail = %done.id,
                kind,
                attempts = done.attempts,
                retry_in_seconds = delay.num_seconds(),
                error = format!("{error:#}"),
                "cannot send a mail; will try again"
            );
            metrics::counter!("warden_mail_retries_total", "kind" => kind).increment(1);
        }
        DeliveryOutcome::GaveUp { error } => {
            tracing::error!(
                mail = %done.id,
                kind,
                attempts = done.attempts,
                error = format!("{error:#}"),
                "cannot send a mail; giving up"
            );
            metrics::counter!("warden_mail_failed_total", "kind" => kind).increment(1);
        }
    }
}
