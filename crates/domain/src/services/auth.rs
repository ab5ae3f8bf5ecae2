//! Logging in with a password, and finding out who a bearer token belongs to (the
//! `get_current_user` of the FastAPI design).

use std::sync::Arc;

use chrono::{TimeDelta, Utc};

use crate::ports::{PasswordHasher, SessionRepository, TokenIssuer, TokenVerifier, UserRepository};
use crate::{
    AccessGrant, EmailAddress, NewSession, Password, Scope, Scopes, SessionId, UnknownScopeError,
    User,
};

/// A password grant (RFC 6749 section 4.3) as the token endpoint received it.
#[derive(Debug)]
pub struct PasswordLogin {
    /// The `username` field, which is the account's email. It is parsed here, not by the caller,
    /// so that a malformed address is refused exactly like an unknown one.
    pub username: String,
    pub password: Password,
    /// The `scope` field, if the client sent one.
    pub scope: Option<String>,
}

/// What a successful login hands back to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub access_token: String,
    pub expires_in: std::time::Duration,
    pub scopes: Scopes,
    pub session_id: SessionId,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown email, wrong password or disabled account. Deliberately one variant: the answer
    /// must not tell an attacker which it was.
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error(transparent)]
    InvalidScope(#[from] UnknownScopeError),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// The authenticated caller of a protected operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: User,
    pub session_id: SessionId,
    pub scopes: Scopes,
}

impl Principal {
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(scope)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthenticateError {
    /// The token is not valid, or no longer is: its session ended or its user is gone or
    /// disabled. The reason is for logs only.
    #[error("invalid token: {reason}")]
    InvalidToken { reason: String },
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl AuthenticateError {
    fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidToken {
            reason: reason.into(),
        }
    }
}

/// Login and token authentication.
#[derive(Clone)]
pub struct AuthService {
    users: Arc<dyn UserRepository>,
    sessions: Arc<dyn SessionRepository>,
    hasher: Arc<dyn PasswordHasher>,
    issuer: Arc<dyn TokenIssuer>,
    verifier: Arc<dyn TokenVerifier>,
    session_lifetime: TimeDelta,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("session_lifetime", &self.session_lifetime)
            .finish_non_exhaustive()
    }
}

impl AuthService {
    pub fn new(
        users: Arc<dyn UserRepository>,
        sessions: Arc<dyn SessionRepository>,
        hasher: Arc<dyn PasswordHasher>,
        issuer: Arc<dyn TokenIssuer>,
        verifier: Arc<dyn TokenVerifier>,
        session_lifetime: TimeDelta,
    ) -> Self {
        Self {
            users,
            sessions,
            hasher,
            issuer,
            verifier,
            session_lifetime,
        }
    }

    /// The password grant: checks the credentials, opens a session and issues an access token
    /// with the scopes the account may hold (all of them, or those requested).
    pub async fn login(&self, login: PasswordLogin) -> Result<TokenGrant, LoginError> {
        // An unknown scope name is a malformed request, refused before any expensive work.
        let requested = login.scope.as_deref().map(Scopes::parse).transpose()?;
        let user = self
            .check_credentials(&login.username, &login.password)
            .await?;

        let allowed = Scopes::allowed_for(user.is_admin);
        let scopes = requested.map_or(allowed, |requested| requested.intersection(allowed));

        let now = Utc::now();
        let session = self
            .sessions
            .create(&NewSession {
                id: SessionId::random(),
                user_id: user.id,
                created_at: now,
                expires_at: now + self.session_lifetime,
            })
            .await?;
        let issued = self
            .issuer
            .issue(&AccessGrant {
                user_id: user.id,
                session_id: session.id,
                scopes,
            })
            .await?;
        Ok(TokenGrant {
            access_token: issued.token,
            expires_in: issued.expires_in,
            scopes,
            session_id: session.id,
        })
    }

    /// The account these credentials belong to, if they are right and the account is active.
    /// Every refusal costs one password verification, so that its timing tells nothing.
    async fn check_credentials(
        &self,
        username: &str,
        password: &Password,
    ) -> Result<User, LoginError> {
        let credentials = match EmailAddress::new(username) {
            Ok(email) => self.users.find_credentials_by_email(&email).await?,
            Err(_) => None,
        };
        let Some(credentials) = credentials else {
            self.hasher.verify_dummy(password).await?;
            return Err(LoginError::InvalidCredentials);
        };
        let matches = self
            .hasher
            .verify(password, &credentials.password_hash)
            .await?;
        if matches && credentials.user.is_active {
            Ok(credentials.user)
        } else {
            Err(LoginError::InvalidCredentials)
        }
    }

    /// The caller behind a bearer token: the token must be valid, its session active, and its
    /// user existing and active.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthenticateError> {
        let claims = self
            .verifier
            .verify(token)
            .await
            .map_err(|err| AuthenticateError::invalid(err.reason))?;

        let session = self
            .sessions
            .find(claims.session_id)
            .await?
            .ok_or_else(|| AuthenticateError::invalid("unknown session"))?;
        if session.user_id != claims.user_id {
            return Err(AuthenticateError::invalid("session of another user"));
        }
        if !session.is_active_at(Utc::now()) {
            return Err(AuthenticateError::invalid("session ended"));
        }

        let user = self
            .users
            .find_by_id(claims.user_id)
            .await?
            .ok_or_else(|| AuthenticateError::invalid("user no longer exists"))?;
        if !user.is_active {
            return Err(AuthenticateError::invalid("user is disabled"));
        }
        Ok(Principal {
            user,
            session_id: session.id,
            scopes: claims.scopes,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mockall::predicate::eq;

    use super::*;
    use crate::ports::{
        MockPasswordHasher, MockSessionRepository, MockTokenIssuer, MockTokenVerifier,
        MockUserRepository,
    };
    use crate::{
        AccessClaims, InvalidTokenError, IssuedToken, PasswordHash, Session, UserCredentials,
        UserId,
    };

    const EMAIL: &str = "ann@example.com";
    const HASH: &str = "$argon2id$ann";

    fn ann(is_active: bool, is_admin: bool) -> User {
        User {
            id: UserId::new(1),
            email: EmailAddress::new(EMAIL).unwrap(),
            created_at: Utc::now(),
            is_active,
            is_admin,
        }
    }

    fn session_of(user_id: UserId, revoked: bool) -> Session {
        let now = Utc::now();
        Session {
            id: SessionId::random(),
            user_id,
            created_at: now,
            expires_at: now + TimeDelta::hours(1),
            revoked_at: revoked.then_some(now),
        }
    }

    /// The mocks of one test, with nothing expected of them yet.
    #[derive(Default)]
    struct Mocks {
        users: MockUserRepository,
        sessions: MockSessionRepository,
        hasher: MockPasswordHasher,
        issuer: MockTokenIssuer,
        verifier: MockTokenVerifier,
    }

    impl Mocks {
        fn service(self) -> AuthService {
            AuthService::new(
                Arc::new(self.users),
                Arc::new(self.sessions),
                Arc::new(self.hasher),
                Arc::new(self.issuer),
                Arc::new(self.verifier),
                TimeDelta::days(30),
            )
        }

        /// Ann exists with `user`'s flags, and the password check answers `matches`.
        fn with_ann(mut self, user: User, matches: bool) -> Self {
            self.users
                .expect_find_credentials_by_email()
                .withf(|email| *email == EmailAddress::new(EMAIL).unwrap())
                .returning(move |_| {
                    Ok(Some(UserCredentials {
                        user: user.clone(),
                        password_hash: PasswordHash::new(HASH.into()),
                    }))
                });
            self.hasher
                .expect_verify()
                .withf(|_, hash| hash.as_str() == HASH)
                .times(1)
                .returning(move |_, _| Ok(matches));
            self
        }

        /// Sessions are stored as given and tokens say what they were issued for.
        fn issuing(mut self) -> Self {
            self.sessions.expect_create().times(1).returning(|new| {
                Ok(Session {
                    id: new.id,
                    user_id: new.user_id,
                    created_at: new.created_at,
                    expires_at: new.expires_at,
                    revoked_at: None,
                })
            });
            self.issuer.expect_issue().times(1).returning(|grant| {
                Ok(IssuedToken {
                    token: format!("token-for-{}-{}", grant.user_id, grant.scopes),
                    expires_in: Duration::from_secs(900),
                })
            });
            self
        }

        fn never_issuing(mut self) -> Self {
            self.sessions.expect_create().never();
            self.issuer.expect_issue().never();
            self
        }
    }

    fn login(username: &str, scope: Option<&str>) -> PasswordLogin {
        PasswordLogin {
            username: username.into(),
            password: Password::candidate("correct horse".into()).unwrap(),
            scope: scope.map(Into::into),
        }
    }

    #[tokio::test]
    async fn login_with_the_right_password_opens_a_session_and_issues_a_token() {
        let service = Mocks::default()
            .with_ann(ann(true, false), true)
            .issuing()
            .service();

        let grant = service.login(login(EMAIL, None)).await.unwrap();

        assert_eq!(
            grant.access_token,
            "token-for-1-profile posts:read posts:write"
        );
        assert_eq!(grant.expires_in, Duration::from_secs(900));
        assert_eq!(grant.scopes.to_string(), "profile posts:read posts:write");
    }

    #[tokio::test]
    async fn login_finds_the_account_whatever_the_case_and_spacing_of_the_email() {
        let service = Mocks::default()
            .with_ann(ann(true, false), true)
            .issuing()
            .service();

        assert!(
            service
                .login(login(" Ann@Example.com ", None))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn login_with_a_wrong_password_is_rejected() {
        let service = Mocks::default()
            .with_ann(ann(true, false), false)
            .never_issuing()
            .service();

        let err = service.login(login(EMAIL, None)).await.unwrap_err();

        assert!(matches!(err, LoginError::InvalidCredentials), "{err:?}");
    }

    #[tokio::test]
    async fn login_with_unknown_email_is_rejected_after_a_dummy_verification() {
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_find_credentials_by_email()
            .returning(|_| Ok(None));
        mocks.hasher.expect_verify().never();
        mocks
            .hasher
            .expect_verify_dummy()
            .times(1)
            .returning(|_| Ok(()));
        let service = mocks.never_issuing().service();

        let err = service.login(login(EMAIL, None)).await.unwrap_err();

        assert!(matches!(err, LoginError::InvalidCredentials), "{err:?}");
    }

    #[tokio::test]
    async fn login_with_a_malformed_email_is_rejected_like_an_unknown_one() {
        let mut mocks = Mocks::default();
        mocks.users.expect_find_credentials_by_email().never();
        mocks
            .hasher
            .expect_verify_dummy()
            .times(1)
            .returning(|_| Ok(()));
        let service = mocks.never_issuing().service();

        let err = service
            .login(login("not an email", None))
            .await
            .unwrap_err();

        assert!(matches!(err, LoginError::InvalidCredentials), "{err:?}");
    }

    #[tokio::test]
    async fn login_to_a_disabled_account_is_rejected_even_with_the_right_password() {
        let service = Mocks::default()
            .with_ann(ann(false, false), true)
            .never_issuing()
            .service();

        let err = service.login(login(EMAIL, None)).await.unwrap_err();

        assert!(matches!(err, LoginError::InvalidCredentials), "{err:?}");
    }

    #[tokio::test]
    async fn login_with_an_unknown_scope_is_rejected_before_checking_the_password() {
        let mut mocks = Mocks::default();
        mocks.users.expect_find_credentials_by_email().never();
        mocks.hasher.expect_verify().never();
        let service = mocks.never_issuing().service();

        let err = service
            .login(login(EMAIL, Some("profile sudo")))
            .await
            .unwrap_err();

        assert!(
            matches!(&err, LoginError::InvalidScope(UnknownScopeError(name)) if name == "sudo"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn login_grants_only_the_requested_scopes() {
        let service = Mocks::default()
            .with_ann(ann(true, false), true)
            .issuing()
            .service();

        let grant = service
            .login(login(EMAIL, Some("posts:read")))
            .await
            .unwrap();

        assert_eq!(grant.scopes.to_string(), "posts:read");
    }

    #[tokio::test]
    async fn login_drops_scopes_the_account_may_not_hold() {
        let service = Mocks::default()
            .with_ann(ann(true, false), true)
            .issuing()
            .service();

        let grant = service
            .login(login(EMAIL, Some("profile admin")))
            .await
            .unwrap();

        assert_eq!(grant.scopes.to_string(), "profile");
    }

    #[tokio::test]
    async fn admins_get_the_admin_scope_by_default() {
        let service = Mocks::default()
            .with_ann(ann(true, true), true)
            .issuing()
            .service();

        let grant = service.login(login(EMAIL, None)).await.unwrap();

        assert!(grant.scopes.contains(Scope::Admin));
    }

    #[tokio::test]
    async fn a_storage_failure_during_login_is_unknown_not_a_wrong_password() {
        let mut mocks = Mocks::default();
        mocks
            .users
            .expect_find_credentials_by_email()
            .returning(|_| Err(anyhow::anyhow!("connection reset")));
        let service = mocks.never_issuing().service();

        let err = service.login(login(EMAIL, None)).await.unwrap_err();

        assert!(matches!(err, LoginError::Unknown(_)), "{err:?}");
    }

    /// Mocks where the token verifies to Ann's session `session`.
    fn authenticating(session: Option<Session>, user: Option<User>) -> AuthService {
        let mut mocks = Mocks::default();
        let session_id = session.as_ref().map_or_else(SessionId::random, |s| s.id);
        mocks
            .verifier
            .expect_verify()
            .with(eq("the-token"))
            .returning(move |_| {
                Ok(AccessClaims {
                    user_id: UserId::new(1),
                    session_id,
                    scopes: Scopes::parse("profile").unwrap(),
                })
            });
        mocks
            .sessions
            .expect_find()
            .with(eq(session_id))
            .returning(move |_| Ok(session.clone()));
        mocks
            .users
            .expect_find_by_id()
            .with(eq(UserId::new(1)))
            .returning(move |_| Ok(user.clone()));
        mocks.service()
    }

    #[tokio::test]
    async fn a_valid_token_of_an_active_session_identifies_its_user() {
        let session = session_of(UserId::new(1), false);
        let session_id = session.id;
        let service = authenticating(Some(session), Some(ann(true, false)));

        let principal = service.authenticate("the-token").await.unwrap();

        assert_eq!(principal.user.email.as_str(), EMAIL);
        assert_eq!(principal.session_id, session_id);
        assert!(principal.has_scope(Scope::Profile));
        assert!(!principal.has_scope(Scope::PostsRead));
    }

    #[tokio::test]
    async fn a_token_the_verifier_refuses_is_invalid() {
        let mut mocks = Mocks::default();
        mocks
            .verifier
            .expect_verify()
            .returning(|_| Err(InvalidTokenError::new("bad signature")));
        mocks.sessions.expect_find().never();
        let service = mocks.service();

        let err = service.authenticate("forged").await.unwrap_err();

        assert!(
            matches!(&err, AuthenticateError::InvalidToken { reason } if reason == "bad signature"),
            "{err:?}"
        );
    }

    async fn assert_invalid(service: AuthService) {
        let err = service.authenticate("the-token").await.unwrap_err();
        assert!(
            matches!(err, AuthenticateError::InvalidToken { .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_token_of_an_unknown_session_is_invalid() {
        assert_invalid(authenticating(None, Some(ann(true, false)))).await;
    }

    #[tokio::test]
    async fn a_token_of_an_ended_session_is_invalid() {
        let session = session_of(UserId::new(1), true);
        assert_invalid(authenticating(Some(session), Some(ann(true, false)))).await;
    }

    #[tokio::test]
    async fn a_token_naming_another_users_session_is_invalid() {
        let session = session_of(UserId::new(2), false);
        assert_invalid(authenticating(Some(session), Some(ann(true, false)))).await;
    }

    #[tokio::test]
    async fn a_token_of_a_deleted_user_is_invalid() {
        let session = session_of(UserId::new(1), false);
        assert_invalid(authenticating(Some(session), None)).await;
    }

    #[tokio::test]
    async fn a_token_of_a_disabled_user_is_invalid() {
        let session = session_of(UserId::new(1), false);
        assert_invalid(authenticating(Some(session), Some(ann(false, false)))).await;
    }
}
