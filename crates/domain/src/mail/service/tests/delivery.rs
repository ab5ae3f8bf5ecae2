//! The outbox's delivery: what becomes of a mail the worker takes.

use super::*;

fn queued(attempts: u32) -> QueuedMail {
    QueuedMail {
        id: MailId::new(3),
        mail: OutgoingMail {
            kind: MailKind::PasswordReset,
            to: email("ann@example.com"),
            token: Some(MailToken::new("secret".into())),
        },
        attempts,
    }
}

fn delivery(outbox: MockMailRepository, sender: MockMailSender) -> MailDelivery {
    MailDelivery::new(
        DeliveryPorts {
            outbox: Arc::new(outbox),
            sender: Arc::new(sender),
        },
        MailRetry {
            max_attempts: 3,
            first_delay: TimeDelta::seconds(10),
        },
    )
}

fn failing_sender() -> MockMailSender {
    let mut sender = MockMailSender::new();
    sender
        .expect_send()
        .returning(|_| Err(anyhow::anyhow!("connection refused")));
    sender
}

#[tokio::test]
async fn a_sent_mail_leaves_the_outbox() {
    let mut outbox = MockMailRepository::new();
    outbox
        .expect_claim_mail()
        .withf(|now, lease| *lease - *now == MailDelivery::LEASE)
        .times(1)
        .returning(|_, _| Ok(Some(queued(1))));
    outbox
        .expect_remove_mail()
        .withf(|id| *id == MailId::new(3))
        .times(1)
        .returning(|_| Ok(()));
    let mut sender = MockMailSender::new();
    sender.expect_send().times(1).returning(|_| Ok(()));

    let delivered = delivery(outbox, sender)
        .deliver_next()
        .await
        .unwrap()
        .unwrap();

    assert!(matches!(delivered.outcome, DeliveryOutcome::Sent));
}

#[tokio::test]
async fn a_failed_mail_is_retried_after_a_growing_delay() {
    let mut outbox = MockMailRepository::new();
    outbox
        .expect_claim_mail()
        .returning(|_, _| Ok(Some(queued(2))));
    let before = Utc::now();
    outbox
        .expect_retry_mail()
        .withf(move |id, at| {
            *id == MailId::new(3)
                && *at - before >= TimeDelta::seconds(20)
                && *at - before < TimeDelta::seconds(21)
        })
        .times(1)
        .returning(|_, _| Ok(()));

    let delivered = delivery(outbox, failing_sender())
        .deliver_next()
        .await
        .unwrap()
        .unwrap();

    assert!(matches!(
        delivered.outcome,
        DeliveryOutcome::Retry { delay, .. } if delay == TimeDelta::seconds(20)
    ));
}

#[tokio::test]
async fn the_last_failure_gives_up_and_removes_the_mail() {
    let mut outbox = MockMailRepository::new();
    outbox
        .expect_claim_mail()
        .returning(|_, _| Ok(Some(queued(3))));
    outbox.expect_remove_mail().times(1).returning(|_| Ok(()));
    outbox.expect_retry_mail().with(always(), always()).never();

    let delivered = delivery(outbox, failing_sender())
        .deliver_next()
        .await
        .unwrap()
        .unwrap();

    assert!(matches!(delivered.outcome, DeliveryOutcome::GaveUp { .. }));
}

#[tokio::test]
async fn an_empty_outbox_sends_nothing() {
    let mut outbox = MockMailRepository::new();
    outbox.expect_claim_mail().returning(|_, _| Ok(None));

    let delivered = delivery(outbox, MockMailSender::new())
        .deliver_next()
        .await
        .unwrap();

    assert!(delivered.is_none());
}
