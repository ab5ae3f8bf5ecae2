//! The text model's promise, as properties: whatever a text newtype accepts is stored and read
//! back byte for byte on SQLite and on PostgreSQL, and a search for it finds it. Strings are
//! drawn from every Unicode plane, weighted towards the characters that databases, JSON and the
//! text model treat specially.

use std::cell::Cell;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use warden_adapters::Backend;
use warden_adapters::testing::TestDb;
use warden_domain::{
    accounts::{EmailAddress, NewUser, PasswordHash, SaveUserError, UserId, UserRepository},
    posts::{Page, PostContent, PostDraft, PostQuery, PostRepository, PostTitle, SearchTerm},
};

/// Characters worth trying more often than chance would.
const SPECIAL: &[char] = &[
    '\0',
    '\t',
    '\n',
    '\r',
    '\u{1b}',
    '\u{7f}',
    '\u{85}',
    '\u{a0}',
    '\u{200b}',
    '\u{200d}',
    '\u{200e}',
    '\u{202e}',
    '\u{2066}',
    '\u{feff}',
    '\u{fffd}',
    '\u{ffff}',
    '\u{10ffff}',
    '%',
    '_',
    '\\',
    '"',
    '\'',
    ';',
    'ß',
    'İ',
    'Σ',
    'ǅ',
    'é',
    '\u{301}',
    '👩',
    '\u{1f3fd}',
    'A',
    'a',
    ' ',
];

fn text(max: usize) -> impl Strategy<Value = String> {
    let char = prop_oneof![
        // Every plane, without proptest's own preference for control characters.
        6 => proptest::char::range(' ', char::MAX),
        1 => any::<char>(),
        1 => proptest::sample::select(SPECIAL),
        3 => proptest::char::range('a', 'z'),
    ];
    proptest::collection::vec(char, 1..max).prop_map(String::from_iter)
}

/// Local parts of addresses: mostly ordinary, so that many are valid, with every plane and the
/// special characters mixed in.
fn local_part() -> impl Strategy<Value = String> {
    let char = prop_oneof![
        8 => proptest::char::range('a', 'z'),
        2 => proptest::char::range(' ', char::MAX),
        1 => proptest::sample::select(SPECIAL),
    ];
    proptest::collection::vec(char, 1..16).prop_map(String::from_iter)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn posts_round_trip(backend: Backend) {
    let rt = runtime();
    let db = rt.block_on(TestDb::new(backend));
    let store = db.store();
    let owner = rt
        .block_on(store.create_user(&NewUser {
            email: EmailAddress::new("owner@example.com").unwrap(),
            password_hash: PasswordHash::new("$argon2id$not-a-real-hash".into()),
            is_admin: false,
            email_verified: false,
        }))
        .unwrap()
        .id;
    let accepted = Cell::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    runner
        .run(&(text(24), text(60)), |(title, content)| {
            let (Ok(title), Ok(content)) = (PostTitle::new(title), PostContent::new(content))
            else {
                return Ok(());
            };
            accepted.set(accepted.get() + 1);
            let draft = PostDraft {
                title,
                content,
                published: true,
            };
            let created = rt.block_on(store.create_post(owner, &draft)).unwrap();
            let found = rt.block_on(store.find_post(created.id)).unwrap().unwrap();
            prop_assert_eq!(
                found.title.as_str().as_bytes(),
                draft.title.as_str().as_bytes()
            );
            prop_assert_eq!(
                found.content.as_str().as_bytes(),
                draft.content.as_str().as_bytes()
            );
            // Searching a title finds its post, whatever the title holds.
            let search = SearchTerm::new(draft.title.as_str()).unwrap();
            let query = PostQuery {
                viewer: UserId::new(owner.get()),
                search,
                page: Page::new(100, 0).unwrap(),
            };
            let listed = rt.block_on(store.list_posts(&query)).unwrap();
            prop_assert!(
                listed.posts.iter().any(|post| post.id == created.id),
                "a search for {:?} did not find it",
                draft.title.as_str()
            );
            Ok(())
        })
        .unwrap();
    assert!(
        accepted.get() > 32,
        "only {} cases were accepted",
        accepted.get()
    );
}

fn emails_round_trip(backend: Backend) {
    let rt = runtime();
    let db = rt.block_on(TestDb::new(backend));
    let store = db.store();
    let accepted = Cell::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    runner
        .run(&local_part(), |local| {
            let Ok(email) = EmailAddress::new(&format!("{local}@example.com")) else {
                return Ok(());
            };
            let new_user = NewUser {
                email: email.clone(),
                password_hash: PasswordHash::new("$argon2id$not-a-real-hash".into()),
                is_admin: false,
                email_verified: false,
            };
            match rt.block_on(store.create_user(&new_user)) {
                Ok(_) => {}
                // An earlier case with the same address but for case.
                Err(SaveUserError::Duplicate { .. }) => return Ok(()),
                Err(err) => panic!("{email:?} could not be stored: {err:#}"),
            }
            accepted.set(accepted.get() + 1);
            let found = rt
                .block_on(store.find_credentials_by_email(&email))
                .unwrap()
                .unwrap();
            prop_assert_eq!(
                found.user.email.as_str().as_bytes(),
                email.as_str().as_bytes()
            );
            Ok(())
        })
        .unwrap();
    assert!(
        accepted.get() > 16,
        "only {} cases were accepted",
        accepted.get()
    );
}

#[test]
fn accepted_post_text_round_trips_on_sqlite() {
    posts_round_trip(Backend::Sqlite);
}

#[test]
fn accepted_post_text_round_trips_on_postgres() {
    posts_round_trip(Backend::Postgres);
}

#[test]
fn accepted_emails_round_trip_on_sqlite() {
    emails_round_trip(Backend::Sqlite);
}

#[test]
fn accepted_emails_round_trip_on_postgres() {
    emails_round_trip(Backend::Postgres);
}
