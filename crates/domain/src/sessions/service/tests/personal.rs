//! Authenticating with a personal access token (contract section 13).

use super::*;
use crate::personal_tokens::{PersonalToken, PersonalTokenId, PersonalTokenName};

fn token(scopes: &str, revoked: bool, expired: bool) -> PersonalToken {
    let now = Utc::now();
    PersonalToken {
        id: PersonalTokenId::new(3),
        user_id: UserId::new(1),
        name: PersonalTokenName::new("ci".into()).unwrap(),
        scopes: Scopes::parse(scopes).unwrap(),
        created_at: now - TimeDelta::days(2),
        expires_at: if expired {
            now - TimeDelta::seconds(1)
        } else {
            now + TimeDelta::days(1)
        },
        last_used_at: Some(now),
        revoked_at: revoked.then_some(now),
    }
}

fn finding(found: PersonalToken, user: User) -> Mocks {
    let mut mocks = Mocks::default();
    mocks
        .personal_tokens
        .expect_find_personal_token()
        .withf(|hash| hash.as_str() == "hash-of-wdn_pat_secret")
        .returning(move |_| Ok(Some((found.clone(), user.clone()))));
    // Used within the minute: no write.
    mocks
        .personal_tokens
        .expect_record_personal_token_use()
        .never();
    mocks.verifier.expect_verify_access_token().never();
    mocks
}

#[tokio::test]
async fn a_live_token_authenticates_its_user_without_a_session_and_within_the_accounts_scopes() {
    // Made while an admin; the account has since been demoted.
    let mocks = finding(token("admin posts:read", false, false), ann(true, false));

    let principal = mocks
        .service()
        .authenticate("wdn_pat_secret", RequestOrigin::default())
        .await
        .unwrap();

    assert_eq!(principal.user.id, UserId::new(1));
    assert_eq!(principal.session_id(), None);
    assert_eq!(principal.scopes, Scopes::parse("posts:read").unwrap());
}

#[tokio::test]
async fn a_revoked_or_expired_token_or_one_of_a_disabled_account_is_refused() {
    for (found, user) in [
        (token("profile", true, false), ann(true, false)),
        (token("profile", false, true), ann(true, false)),
        (token("profile", false, false), ann(false, false)),
    ] {
        let err = finding(found, user)
            .service()
            .authenticate("wdn_pat_secret", RequestOrigin::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, AuthenticateError::InvalidToken { .. }),
            "{err:?}"
        );
    }
}
