//! The brute-force budgets' contract, run against the in-memory throttle (SQLite's) and the one
//! shared in PostgreSQL through the same test bodies; then what only sharing gives: two
//! instances on one database count against the same budgets.

use std::sync::Arc;
use std::time::Duration;

use warden_adapters::testing::TestDb;
use warden_adapters::{Backend, MemoryThrottle, Store, StoreOptions};
use warden_domain::throttle::{Rate, Rates, ThrottleKey, ThrottleStore};

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

type Throttle = Arc<dyn ThrottleStore>;

/// What the test bodies take: a maker of throttles for the rates they ask for.
type Throttles = Box<dyn Fn(Rates) -> Throttle + Send + Sync>;

warden_adapters::on_both_databases!(
    crate::with_throttles =>
    a_username_runs_out_after_max_reservations_and_only_that_username,
    the_longest_wait_of_the_keys_is_the_answer,
    a_kind_without_a_rate_is_never_counted,
    a_refused_reservation_takes_nothing_from_any_key,
    racing_reservations_never_overdraw_a_key_nor_leak_units_of_the_others,
    a_refund_gives_back_one_unit_and_never_more_than_was_taken,
    racing_refunds_give_back_exactly_what_was_taken,
    a_unit_comes_back_after_one_interval,
    pruning_forgets_only_keys_whose_budget_is_whole,
);

/// For `on_both_databases!`: runs `test` on the throttle an instance on `backend` uses, built
/// for the rates the body asks for: SQLite's in memory, PostgreSQL's shared in the database.
async fn with_throttles<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Throttles) -> Fut,
    Fut: Future<Output = ()>,
{
    match backend {
        Backend::Sqlite => test(Box::new(|rates| Arc::new(MemoryThrottle::new(&rates)))).await,
        Backend::Postgres => {
            let db = TestDb::new(backend).await;
            let store = db.store();
            test(Box::new(move |rates| {
                Arc::new(store.shared_throttle(rates).unwrap())
            }))
            .await;
        }
    }
}

const MINUTE: Duration = Duration::from_secs(60);

fn address(last: u8) -> ThrottleKey {
    ThrottleKey::login_address(Some(std::net::IpAddr::from([192, 0, 2, last])))
}

async fn a_username_runs_out_after_max_reservations_and_only_that_username(
    throttle: impl Fn(Rates) -> Throttle,
) {
    let throttle = throttle(rates(3, 3 * MINUTE));
    let ann = [ThrottleKey::login_username("ann@example.com")];
    for _ in 0..3 {
        assert_eq!(throttle.reserve(&ann).await.unwrap(), None);
    }
    let wait = throttle
        .reserve(&[ThrottleKey::login_username(" ANN@example.com")])
        .await
        .unwrap()
        .expect("the fourth attempt must wait");
    assert!(
        wait > Duration::from_secs(55) && wait <= MINUTE,
        "one unit comes back in a minute, not {wait:?}"
    );
    // Refused attempts take nothing: the wait does not grow.
    for _ in 0..5 {
        let again = throttle.reserve(&ann).await.unwrap().unwrap();
        assert!(again <= wait, "{again:?} after {wait:?}");
    }
    let bob = [ThrottleKey::login_username("bob@example.com")];
    assert_eq!(throttle.reserve(&bob).await.unwrap(), None);
    // The same subject under another kind is another budget.
    assert_eq!(
        throttle
            .reserve(&[ThrottleKey::registration(None)])
            .await
            .unwrap(),
        None
    );
}

async fn the_longest_wait_of_the_keys_is_the_answer(throttle: impl Fn(Rates) -> Throttle) {
    let throttle = throttle(Rates {
        login_username: Rate::new(1, MINUTE),
        login_address: Rate::new(1, 10 * MINUTE),
        ..Rates::default()
    });
    let username = ThrottleKey::login_username("ann@example.com");
    let both = [username.clone(), address(1)];
    assert_eq!(throttle.reserve(&both).await.unwrap(), None);
    let wait = throttle.reserve(&both).await.unwrap().unwrap();
    assert!(wait > 9 * MINUTE, "{wait:?}");
    let one = throttle.reserve(&[username]).await.unwrap().unwrap();
    assert!(one <= MINUTE, "{one:?}");
}

async fn a_kind_without_a_rate_is_never_counted(throttle: impl Fn(Rates) -> Throttle) {
    let throttle = throttle(Rates {
        login_username: Rate::new(1, MINUTE),
        ..Rates::default()
    });
    for _ in 0..10 {
        assert_eq!(throttle.reserve(&[address(1)]).await.unwrap(), None);
        throttle.refund(&[address(2)]).await.unwrap();
    }
    // Nor does it stand in the way of a key that has a rate.
    let ann = ThrottleKey::login_username("ann");
    assert_eq!(
        throttle.reserve(&[address(1), ann.clone()]).await.unwrap(),
        None
    );
    assert!(throttle.reserve(&[ann]).await.unwrap().is_some());
}

async fn a_refused_reservation_takes_nothing_from_any_key(throttle: impl Fn(Rates) -> Throttle) {
    let throttle = throttle(Rates {
        login_username: Rate::new(1, MINUTE),
        login_address: Rate::new(3, 3 * MINUTE),
        ..Rates::default()
    });
    let ann = ThrottleKey::login_username("ann");
    assert_eq!(
        throttle.reserve(&[ann.clone(), address(1)]).await.unwrap(),
        None
    );
    // Ann has run out: whichever order the keys come in, the address keeps its two units.
    assert!(
        throttle
            .reserve(&[ann.clone(), address(1)])
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        throttle
            .reserve(&[address(1), ann])
            .await
            .unwrap()
            .is_some()
    );
    for _ in 0..2 {
        assert_eq!(throttle.reserve(&[address(1)]).await.unwrap(), None);
    }
    assert!(throttle.reserve(&[address(1)]).await.unwrap().is_some());
}

async fn racing_reservations_never_overdraw_a_key_nor_leak_units_of_the_others(
    throttle: impl Fn(Rates) -> Throttle,
) {
    let throttle = throttle(Rates {
        login_username: Rate::new(5, 5 * MINUTE),
        login_address: Rate::new(10, 10 * MINUTE),
        ..Rates::default()
    });
    let keys = [ThrottleKey::login_username("ann"), address(1)];
    let attempts = (0..40).map(|_| {
        let (throttle, keys) = (Arc::clone(&throttle), keys.clone());
        tokio::spawn(async move { throttle.reserve(&keys).await.unwrap() })
    });
    let mut admitted = 0;
    for attempt in attempts {
        admitted += usize::from(attempt.await.unwrap().is_none());
    }
    assert_eq!(admitted, 5);
    // The 35 refused took nothing from the address: it has exactly five units left.
    for _ in 0..5 {
        assert_eq!(throttle.reserve(&[address(1)]).await.unwrap(), None);
    }
    assert!(throttle.reserve(&[address(1)]).await.unwrap().is_some());
}

async fn a_refund_gives_back_one_unit_and_never_more_than_was_taken(
    throttle: impl Fn(Rates) -> Throttle,
) {
    let throttle = throttle(rates(2, 2 * MINUTE));
    let ann = [ThrottleKey::login_username("ann")];
    assert_eq!(throttle.reserve(&ann).await.unwrap(), None);
    assert_eq!(throttle.reserve(&ann).await.unwrap(), None);
    assert!(throttle.reserve(&ann).await.unwrap().is_some());
    throttle.refund(&ann).await.unwrap();
    assert_eq!(throttle.reserve(&ann).await.unwrap(), None, "refunded");
    assert!(throttle.reserve(&ann).await.unwrap().is_some());

    // Refunds of a whole key leave it whole, not richer.
    let bob = [ThrottleKey::login_username("bob")];
    throttle.refund(&bob).await.unwrap();
    throttle.refund(&bob).await.unwrap();
    assert_eq!(throttle.reserve(&bob).await.unwrap(), None);
    assert_eq!(throttle.reserve(&bob).await.unwrap(), None);
    assert!(throttle.reserve(&bob).await.unwrap().is_some());
}

async fn racing_refunds_give_back_exactly_what_was_taken(throttle: impl Fn(Rates) -> Throttle) {
    let throttle = throttle(rates(5, 5 * MINUTE));
    let keys = [ThrottleKey::login_username("ann"), address(1)];
    // 40 logins at once, of which the admitted turn out right and give their units back.
    let attempts = (0..40).map(|_| {
        let (throttle, keys) = (Arc::clone(&throttle), keys.clone());
        tokio::spawn(async move {
            let admitted = throttle.reserve(&keys).await.unwrap().is_none();
            if admitted {
                throttle.refund(&keys).await.unwrap();
            }
            admitted
        })
    });
    let mut admitted = 0;
    for attempt in attempts {
        admitted += usize::from(attempt.await.unwrap());
    }
    assert!((5..=40).contains(&admitted), "{admitted}");
    // Every unit is back: five wrong guesses still fit, and no more.
    for _ in 0..5 {
        assert_eq!(throttle.reserve(&keys).await.unwrap(), None);
    }
    assert!(throttle.reserve(&keys).await.unwrap().is_some());
}

async fn a_unit_comes_back_after_one_interval(throttle: impl Fn(Rates) -> Throttle) {
    // Two per 1.2 s: one unit every 600 ms.
    let throttle = throttle(rates(2, Duration::from_millis(1200)));
    let key = [ThrottleKey::login_username("ann")];
    assert_eq!(throttle.reserve(&key).await.unwrap(), None);
    assert_eq!(throttle.reserve(&key).await.unwrap(), None);
    assert!(throttle.reserve(&key).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(650)).await;
    // The unit that came back is the only one.
    assert_eq!(throttle.reserve(&key).await.unwrap(), None);
    assert!(throttle.reserve(&key).await.unwrap().is_some());
}

async fn pruning_forgets_only_keys_whose_budget_is_whole(throttle: impl Fn(Rates) -> Throttle) {
    let throttle = throttle(Rates {
        login_username: Rate::new(1, Duration::from_secs(1)),
        login_address: Rate::new(1, 10 * MINUTE),
        ..Rates::default()
    });
    let (brief, long) = (ThrottleKey::login_username("ann"), address(1));
    assert_eq!(
        throttle
            .reserve(&[brief.clone(), long.clone()])
            .await
            .unwrap(),
        None
    );
    assert_eq!(throttle.prune().await.unwrap(), 0, "both are still counted");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(throttle.prune().await.unwrap(), 1);
    assert_eq!(throttle.reserve(&[brief]).await.unwrap(), None);
    assert!(
        throttle.reserve(&[long]).await.unwrap().is_some(),
        "pruning forgot a counted key"
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
async fn reservations_on_one_instance_count_on_the_other() {
    let (_db, one, two) = two_instances(rates(5, 5 * MINUTE)).await;
    let key = [ThrottleKey::login_username("ann@example.com")];
    for attempt in 0..5 {
        let this = if attempt % 2 == 0 { &one } else { &two };
        assert_eq!(this.reserve(&key).await.unwrap(), None);
    }
    assert!(one.reserve(&key).await.unwrap().is_some());
    assert!(two.reserve(&key).await.unwrap().is_some());
    // A refund on one instance gives the unit back on both.
    two.refund(&key).await.unwrap();
    assert_eq!(one.reserve(&key).await.unwrap(), None);
}

#[tokio::test]
async fn racing_reservations_on_two_instances_never_overdraw_a_key() {
    let (_db, one, two) = two_instances(rates(5, 5 * MINUTE)).await;
    let keys = [
        ThrottleKey::login_username("ann@example.com"),
        ThrottleKey::login_address(Some("192.0.2.1".parse().unwrap())),
    ];
    let attempts = (0..40).map(|attempt| {
        let throttle = Arc::clone(if attempt % 2 == 0 { &one } else { &two });
        let keys = keys.clone();
        tokio::spawn(async move { throttle.reserve(&keys).await.unwrap() })
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
