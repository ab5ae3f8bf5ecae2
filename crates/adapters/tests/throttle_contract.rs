//! The brute-force budgets' contract, run against the in-memory throttle (SQLite's) and the one
//! shared in PostgreSQL through the same test bodies; then what only sharing gives: two
//! instances on one database count against the same budgets.

use std::sync::Arc;
use std::time::Duration;

use warden_adapters::testing::TestDb;
use warden_adapters::{MemoryThrottle, Store, StoreOptions};
use warden_domain::ports::ThrottleStore;
use warden_domain::{Rate, Rates, ThrottleKey};

/// Every kind at `max` per `window`.
fn rates(max: u32, window: Duration) -> Rates {
    let rate = Rate::new(max, window);
    Rates {
        login_username: rate,
        login_address: rate,
        registration: rate,
        mail_address: rate,
        mail_email: rate,
    }
}

/// Runs each listed test body on each throttle, built for the rates the body asks for.
macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(|rates| std::sync::Arc::new(warden_adapters::MemoryThrottle::new(&rates))).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let db = warden_adapters::testing::TestDb::postgres().await;
                    let store = db.store();
                    super::$test(move |rates| std::sync::Arc::new(store.shared_throttle(rates).unwrap())).await;
                }
            )*
        }
    };
}

type Throttle = Arc<dyn ThrottleStore>;

contract!(
    a_username_runs_out_after_max_failures_and_only_that_username,
    the_longest_wait_of_the_keys_is_the_answer,
    a_kind_without_a_rate_is_never_counted,
    admission_counts_until_the_key_runs_out_then_counts_nothing,
    racing_admissions_never_overdraw_a_key,
    a_unit_comes_back_after_one_interval,
    pruning_forgets_only_keys_whose_budget_is_whole,
);

const MINUTE: Duration = Duration::from_secs(60);

async fn a_username_runs_out_after_max_failures_and_only_that_username(
    throttle: impl Fn(Rates) -> Throttle,
) {
    let throttle = throttle(rates(3, 3 * MINUTE));
    let ann = [ThrottleKey::login_username("ann@example.com")];
    for _ in 0..3 {
        assert_eq!(throttle.blocked_for(&ann).await.unwrap(), None);
        throttle.count(&ann).await.unwrap();
    }
    let wait = throttle
        .blocked_for(&[ThrottleKey::login_username(" ANN@example.com")])
        .await
        .unwrap()
        .expect("the fourth attempt must wait");
    assert!(
        wait > Duration::from_secs(55) && wait <= MINUTE,
        "one unit comes back in a minute, not {wait:?}"
    );
    let bob = [ThrottleKey::login_username("bob@example.com")];
    assert_eq!(throttle.blocked_for(&bob).await.unwrap(), None);
    // The same subject under another kind is another budget.
    let address = [ThrottleKey::registration(None)];
    assert_eq!(throttle.blocked_for(&address).await.unwrap(), None);
}

async fn the_longest_wait_of_the_keys_is_the_answer(throttle: impl Fn(Rates) -> Throttle) {
    let throttle = throttle(Rates {
        login_username: Rate::new(1, MINUTE),
        login_address: Rate::new(1, 10 * MINUTE),
        ..Rates::default()
    });
    let username = ThrottleKey::login_username("ann@example.com");
    let address = ThrottleKey::login_address(Some("192.0.2.1".parse().unwrap()));
    throttle
        .count(&[username.clone(), address.clone()])
        .await
        .unwrap();
    let both = throttle
        .blocked_for(&[username.clone(), address.clone()])
        .await
        .unwrap()
        .unwrap();
    assert!(both > 9 * MINUTE, "{both:?}");
    let one = throttle.blocked_for(&[username]).await.unwrap().unwrap();
    assert!(one <= MINUTE, "{one:?}");
}

async fn a_kind_without_a_rate_is_never_counted(throttle: impl Fn(Rates) -> Throttle) {
    let throttle = throttle(Rates {
        login_username: Rate::new(1, MINUTE),
        ..Rates::default()
    });
    let address = ThrottleKey::login_address(None);
    for _ in 0..10 {
        throttle
            .count(std::slice::from_ref(&address))
            .await
            .unwrap();
        let registration = ThrottleKey::registration(None);
        assert_eq!(
            throttle.count_unless_blocked(&registration).await.unwrap(),
            None
        );
    }
    assert_eq!(throttle.blocked_for(&[address]).await.unwrap(), None);
}

async fn admission_counts_until_the_key_runs_out_then_counts_nothing(
    throttle: impl Fn(Rates) -> Throttle,
) {
    let throttle = throttle(rates(2, 2 * MINUTE));
    let home = ThrottleKey::registration(Some("192.0.2.1".parse().unwrap()));
    assert_eq!(throttle.count_unless_blocked(&home).await.unwrap(), None);
    assert_eq!(throttle.count_unless_blocked(&home).await.unwrap(), None);
    let first = throttle.count_unless_blocked(&home).await.unwrap().unwrap();
    // Refused attempts spend nothing: the wait does not grow.
    for _ in 0..5 {
        let again = throttle.count_unless_blocked(&home).await.unwrap().unwrap();
        assert!(again <= first, "{again:?} after {first:?}");
    }
    assert!(
        first <= MINUTE && first > Duration::from_secs(55),
        "{first:?}"
    );
    let away = ThrottleKey::registration(Some("192.0.2.2".parse().unwrap()));
    assert_eq!(throttle.count_unless_blocked(&away).await.unwrap(), None);
}

async fn racing_admissions_never_overdraw_a_key(throttle: impl Fn(Rates) -> Throttle) {
    let throttle = throttle(rates(5, 5 * MINUTE));
    let key = ThrottleKey::registration(None);
    let attempts = (0..40).map(|_| {
        let (throttle, key) = (Arc::clone(&throttle), key.clone());
        tokio::spawn(async move { throttle.count_unless_blocked(&key).await.unwrap() })
    });
    let mut admitted = 0;
    for attempt in attempts {
        if attempt.await.unwrap().is_none() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5);
}

async fn a_unit_comes_back_after_one_interval(throttle: impl Fn(Rates) -> Throttle) {
    // Two per 1.2 s: one unit every 600 ms.
    let throttle = throttle(rates(2, Duration::from_millis(1200)));
    let key = [ThrottleKey::login_username("ann")];
    throttle.count(&key).await.unwrap();
    throttle.count(&key).await.unwrap();
    assert!(throttle.blocked_for(&key).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(throttle.blocked_for(&key).await.unwrap(), None);
    // The unit that came back is the only one.
    throttle.count(&key).await.unwrap();
    assert!(throttle.blocked_for(&key).await.unwrap().is_some());
}

async fn pruning_forgets_only_keys_whose_budget_is_whole(throttle: impl Fn(Rates) -> Throttle) {
    let throttle = throttle(Rates {
        login_username: Rate::new(1, Duration::from_secs(1)),
        login_address: Rate::new(1, 10 * MINUTE),
        ..Rates::default()
    });
    let (brief, long) = (
        ThrottleKey::login_username("ann"),
        ThrottleKey::login_address(None),
    );
    throttle
        .count(&[brief.clone(), long.clone()])
        .await
        .unwrap();
    assert_eq!(throttle.prune().await.unwrap(), 0, "both are still blocked");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    throttle.prune().await.unwrap();
    assert_eq!(throttle.blocked_for(&[brief]).await.unwrap(), None);
    assert!(
        throttle.blocked_for(&[long]).await.unwrap().is_some(),
        "pruning forgot a blocked key"
    );
}

/// Two instances: two stores (two pools) on one PostgreSQL database.
async fn two_instances(rates: Rates) -> (TestDb, Throttle, Throttle) {
    let db = TestDb::postgres().await;
    let other = Store::open(db.url(), &StoreOptions::default())
        .await
        .unwrap();
    let (one, two) = (
        db.store().shared_throttle(rates).unwrap(),
        other.shared_throttle(rates).unwrap(),
    );
    (db, Arc::new(one), Arc::new(two))
}

#[tokio::test]
async fn failures_counted_on_one_instance_block_the_other() {
    let (_db, one, two) = two_instances(rates(5, 5 * MINUTE)).await;
    let key = [ThrottleKey::login_username("ann@example.com")];
    for attempt in 0..5 {
        let (this, other) = if attempt % 2 == 0 {
            (&one, &two)
        } else {
            (&two, &one)
        };
        assert_eq!(other.blocked_for(&key).await.unwrap(), None);
        this.count(&key).await.unwrap();
    }
    assert!(one.blocked_for(&key).await.unwrap().is_some());
    assert!(two.blocked_for(&key).await.unwrap().is_some());
}

#[tokio::test]
async fn racing_admissions_on_two_instances_never_overdraw_a_key() {
    let (_db, one, two) = two_instances(rates(5, 5 * MINUTE)).await;
    let key = ThrottleKey::registration(Some("192.0.2.1".parse().unwrap()));
    let attempts = (0..40).map(|attempt| {
        let throttle = Arc::clone(if attempt % 2 == 0 { &one } else { &two });
        let key = key.clone();
        tokio::spawn(async move { throttle.count_unless_blocked(&key).await.unwrap() })
    });
    let mut admitted = 0;
    for attempt in attempts {
        admitted += usize::from(attempt.await.unwrap().is_none());
    }
    assert_eq!(admitted, 5);
}

#[tokio::test]
async fn sqlite_has_no_shared_throttle() {
    let db = TestDb::sqlite().await;
    assert!(db.store().shared_throttle(rates(1, MINUTE)).is_none());
    // What SQLite's instance uses instead.
    let _ = MemoryThrottle::new(&rates(1, MINUTE));
}
