//! The database as a whole: migrations and transaction pooling.

use crate::support::*;

warden_adapters::on_both_databases!(
    warden_adapters::testing::with_store => a_migrated_database_has_no_pending_migration,
);

async fn a_migrated_database_has_no_pending_migration(store: Store) {
    assert_eq!(
        store.pending_migrations().await.unwrap(),
        Vec::<String>::new()
    );
}

/// Behind a transaction pooler (here PostgreSQL itself, in the same mode), every operation still
/// works, and migrating is refused with the reason.
#[tokio::test]
async fn in_transaction_pooling_mode_operations_work_and_migrating_is_refused() {
    let db = warden_adapters::testing::TestDb::postgres().await;
    let options = warden_adapters::StoreOptions {
        transaction_pooling: true,
        ..warden_adapters::StoreOptions::default()
    };
    let store = Store::open(db.url(), &options).await.unwrap();
    let seed = Seed(&store);
    let ann = seed.user("ann").await;
    let id = seed.session(&ann, "first").await;
    assert!(matches!(
        rotate(&store, "first", "second").await,
        Rotation::Rotated(_)
    ));
    assert!(store.find_session(id).await.unwrap().is_some());
    assert_eq!(
        store.pending_migrations().await.unwrap(),
        Vec::<String>::new()
    );
    store.ping().await.unwrap();

    let err = store.migrate().await.unwrap_err();
    assert!(
        format!("{err:#}").contains("cannot run through a transaction pooler"),
        "{err:#}"
    );
}
