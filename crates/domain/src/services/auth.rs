//! Logging in with a password, and finding out who a bearer token belongs to (the
//! `get_current_user` of the FastAPI design).

use std::sync::Arc;

use chrono::{TimeDelta, Utc};

use crate::ports::{
    PasswordHasher, RefreshTokenCodec, SessionRepository, TokenIssuer, TokenVerifier,
    UserRepository,
};
use crate::{
    AccessGrant, EmailAddress, NewRefreshToken, NewSession, Password, Rotation, Scope, Scopes,
    Session, SessionId, UnknownScopeError, User,
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

/// What a successful login or refresh hands back to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub access_token: String,
    pub expires_in: std::time::Duration,
    /// The refresh token to use next; the one presented (if any) is spent.
    pub refresh_token: String,
    pub scopes: Scopes,
    pub session_id: SessionId,
}

/// A refresh grant (RFC 6749 section 6) as the token endpoint received it.
#[derive(Debug)]
pub struct RefreshLogin {
    pub refresh_token: String,
    /// The `scope` field, if the client sent one: at most the scopes of the original login.
    pub scope: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Unknown, expired or revoked refresh token, or its user is disabled or gone.
    #[error("the refresh token is invalid, expired or revoked")]
    InvalidGrant,
    /// The token had been spent already, so it was stolen or the client raced itself; the
    /// session is now ended. To the client this is [`RefreshError::InvalidGrant`] too.
    #[error("the refresh token is invalid, expired or revoked")]
    Replayed(SessionId),
    /// An unknown scope, or one the original login was not granted.
    #[error("{0}")]
    InvalidScope(String),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown email, wrong password or disabled account. Deliberately one variant: the answer
    /// must not tell an attacker which it was.
    #[error("incorrect username or password")]
    InvalidCredentials,
    #[error(transparent)]
    InvalidScope(#[from] UnknownScopeError),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Refuses `requested` scopes beyond what a login was `granted` (RFC 6749 section 6).
fn exceeding(requested: Scopes, granted: Scopes) -> Result<(), RefreshError> {
    if requested.intersection(granted) == requested {
        Ok(())
    } else {
        Err(RefreshError::InvalidScope(format!(
            "{requested} exceeds the scopes of the original login ({granted})"
        )))
    }
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
    refresh_tokens: Arc<dyn RefreshTokenCodec>,
    lifetimes: Lifetimes,
}

/// How long logins last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// A session ends this long after its login, however it is refreshed.
    pub session: TimeDelta,
    /// A refresh token must be used within this long.
    pub refresh_token: TimeDelta,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("lifetimes", &self.lifetimes)
            .finish_non_exhaustive()
    }
}

/// The outbound ports the auth service drives.
#[derive(Clone)]
pub struct AuthPorts {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub issuer: Arc<dyn TokenIssuer>,
    pub verifier: Arc<dyn TokenVerifier>,
    pub refresh_tokens: Arc<dyn RefreshTokenCodec>,
}

impl std::fmt::Debug for AuthPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthPorts").finish_non_exhaustive()
    }
}

impl AuthService {
    pub fn new(ports: AuthPorts, lifetimes: Lifetimes) -> Self {
        let AuthPorts {
            users,
            sessions,
            hasher,
            issuer,
            verifier,
            refresh_tokens,
        } = ports;
        Self {
            users,
            sessions,
            hasher,
            issuer,
            verifier,
            refresh_tokens,
            lifetimes,
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
        let (refresh_token, refresh_hash) = self.refresh_tokens.generate();
        let session = self
            .sessions
            .create(
                &NewSession {
                    id: SessionId::random(),
                    user_id: user.id,
                    created_at: now,
                    expires_at: now + self.lifetimes.session,
                    scopes,
                },
                &NewRefreshToken {
                    hash: refresh_hash,
                    expires_at: now + self.lifetimes.refresh_token,
                },
            )
            .await?;
        Ok(self.grant(&user, &session, scopes, refresh_token).await?)
    }

    /// The refresh grant: spends the presented refresh token and hands out a new access token
    /// and a new refresh token for the same session. A refresh token presented after it was
    /// spent is taken for a stolen one, and the whole session is ended.
    pub async fn refresh(&self, refresh: RefreshLogin) -> Result<TokenGrant, RefreshError> {
        let requested = match refresh.scope.as_deref().map(Scopes::parse).transpose() {
            Ok(requested) => requested,
            Err(err) => return Err(RefreshError::InvalidScope(err.to_string())),
        };
        let now = Utc::now();
        let presented = self.refresh_tokens.hash(&refresh.refresh_token);
        // A request for more than the login's scopes is refused before the token is spent, so
        // that the client's token still works afterwards. (A session's scopes never change.)
        if let Some(requested) = requested
            && let Some(session) = self.sessions.find_by_refresh_token(&presented).await?
        {
            exceeding(requested, session.scopes)?;
        }
        let (refresh_token, next_hash) = self.refresh_tokens.generate();
        let next = NewRefreshToken {
            hash: next_hash,
            expires_at: now + self.lifetimes.refresh_token,
        };
        let session = match self
            .sessions
            .rotate_refresh_token(&presented, &next, now)
            .await?
        {
            Rotation::Rotated(session) => session,
            Rotation::Replayed(session_id) => {
                // RFC 9700 section 4.14.2: the server cannot tell the thief from the client, so
                // it ends the session for both.
                self.sessions.revoke(session_id, now).await?;
                return Err(RefreshError::Replayed(session_id));
            }
            Rotation::Invalid => return Err(RefreshError::InvalidGrant),
        };
        if !session.is_active_at(now) {
            return Err(RefreshError::InvalidGrant);
        }
        let user = match self.users.find_by_id(session.user_id).await? {
            Some(user) if user.is_active => user,
            _ => return Err(RefreshError::InvalidGrant),
        };
        // RFC 6749 section 6: never more than the original grant.
        let granted = session
            .scopes
            .intersection(Scopes::allowed_for(user.is_admin));
        let scopes = match requested {
            None => granted,
            Some(requested) => {
                exceeding(requested, session.scopes)?;
                requested.intersection(granted)
            }
        };
        Ok(self.grant(&user, &session, scopes, refresh_token).await?)
    }

    /// Ends the caller's session: its access and refresh tokens stop working at once.
    pub async fn logout(&self, principal: &Principal) -> Result<(), LogoutError> {
        self.sessions
            .revoke(principal.session_id, Utc::now())
            .await?;
        Ok(())
    }

    async fn grant(
        &self,
        user: &User,
        session: &Session,
        scopes: Scopes,
        refresh_token: String,
    ) -> anyhow::Result<TokenGrant> {
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
            refresh_token,
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
        // An admin who has since been demoted keeps their token but not its `admin` scope.
        let scopes = claims
            .scopes
            .intersection(Scopes::allowed_for(user.is_admin));
        Ok(Principal {
            user,
            session_id: session.id,
            scopes,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mockall::predicate::eq;

    use super::*;
    use crate::ports::{
        MockPasswordHasher, MockRefreshTokenCodec, MockSessionRepository, MockTokenIssuer,
        MockTokenVerifier, MockUserRepository,
    };
    use crate::{
        AccessClaims, InvalidTokenError, IssuedToken, PasswordHash, RefreshTokenHash,
        UserCredentials, UserId,
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

    fn session_of(user_id: UserId, revoked: bool, scopes: &str) -> Session {
        let now = Utc::now();
        Session {
            id: SessionId::random(),
            user_id,
            created_at: now,
            expires_at: now + TimeDelta::hours(1),
            revoked_at: revoked.then_some(now),
            scopes: Scopes::parse(scopes).unwrap(),
        }
    }

    /// The mocks of one test, with nothing expected of them yet but a refresh-token codec that
    /// hands out `refresh-N` with hash `hash-of-refresh-N`.
    struct Mocks {
        users: MockUserRepository,
        sessions: MockSessionRepository,
        hasher: MockPasswordHasher,
        issuer: MockTokenIssuer,
        verifier: MockTokenVerifier,
        codec: MockRefreshTokenCodec,
    }

    impl Default for Mocks {
        fn default() -> Self {
            let mut codec = MockRefreshTokenCodec::new();
            codec.expect_generate().returning(|| {
                (
                    "next-refresh".to_owned(),
                    RefreshTokenHash::new("hash-of-next-refresh".into()),
                )
            });
            codec
                .expect_hash()
                .returning(|presented| RefreshTokenHash::new(format!("hash-of-{presented}")));
            Self {
                users: MockUserRepository::new(),
                sessions: MockSessionRepository::new(),
                hasher: MockPasswordHasher::new(),
                issuer: MockTokenIssuer::new(),
                verifier: MockTokenVerifier::new(),
                codec,
            }
        }
    }

    impl Mocks {
        fn service(self) -> AuthService {
            AuthService::new(
                AuthPorts {
                    users: Arc::new(self.users),
                    sessions: Arc::new(self.sessions),
                    hasher: Arc::new(self.hasher),
                    issuer: Arc::new(self.issuer),
                    verifier: Arc::new(self.verifier),
                    refresh_tokens: Arc::new(self.codec),
                },
                Lifetimes {
                    session: TimeDelta::days(30),
                    refresh_token: TimeDelta::days(14),
                },
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

        /// Sessions are stored as given, with their first refresh token hashed, and tokens say
        /// what they were issued for.
        fn issuing(mut self) -> Self {
            self.sessions
                .expect_create()
                .withf(|new, refresh| {
                    refresh.hash.as_str() == "hash-of-next-refresh"
                        && refresh.expires_at > new.created_at + TimeDelta::days(13)
                        && new.expires_at > new.created_at + TimeDelta::days(29)
                })
                .times(1)
                .returning(|new, _| {
                    Ok(Session {
                        id: new.id,
                        user_id: new.user_id,
                        created_at: new.created_at,
                        expires_at: new.expires_at,
                        revoked_at: None,
                        scopes: new.scopes,
                    })
                });
            self.expect_issue();
            self
        }

        fn expect_issue(&mut self) {
            self.issuer.expect_issue().times(1).returning(|grant| {
                Ok(IssuedToken {
                    token: format!("token-for-{}-{}", grant.user_id, grant.scopes),
                    expires_in: Duration::from_secs(900),
                })
            });
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
    async fn login_with_the_right_password_opens_a_session_and_issues_tokens() {
        let service = Mocks::default()
            .with_ann(ann(true, false), true)
            .issuing()
            .service();

        let grant = service.login(login(EMAIL, None)).await.unwrap();

        assert_eq!(
            grant.access_token,
            "token-for-1-profile posts:read posts:write"
        );
        assert_eq!(grant.refresh_token, "next-refresh");
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

    fn refresh(scope: Option<&str>) -> RefreshLogin {
        RefreshLogin {
            refresh_token: "old-refresh".into(),
            scope: scope.map(Into::into),
        }
    }

    /// Mocks where presenting `old-refresh` rotates to `outcome`, and Ann is `user`.
    fn rotating(outcome: Rotation, user: Option<User>) -> Mocks {
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_rotate_refresh_token()
            .withf(|presented, next, _| {
                presented.as_str() == "hash-of-old-refresh"
                    && next.hash.as_str() == "hash-of-next-refresh"
            })
            .times(1)
            .returning(move |_, _, _| Ok(outcome.clone()));
        mocks
            .users
            .expect_find_by_id()
            .returning(move |_| Ok(user.clone()));
        mocks
    }

    #[tokio::test]
    async fn refreshing_rotates_the_token_and_keeps_the_sessions_scopes() {
        let session = session_of(UserId::new(1), false, "profile posts:read");
        let mut mocks = rotating(Rotation::Rotated(session.clone()), Some(ann(true, false)));
        mocks.expect_issue();
        mocks.sessions.expect_revoke().never();

        let grant = mocks.service().refresh(refresh(None)).await.unwrap();

        assert_eq!(grant.refresh_token, "next-refresh");
        assert_eq!(grant.session_id, session.id);
        assert_eq!(grant.access_token, "token-for-1-profile posts:read");
    }

    #[tokio::test]
    async fn refreshing_may_narrow_the_scopes() {
        let session = session_of(UserId::new(1), false, "profile posts:read");
        let mut mocks = rotating(Rotation::Rotated(session.clone()), Some(ann(true, false)));
        mocks
            .sessions
            .expect_find_by_refresh_token()
            .returning(move |_| Ok(Some(session.clone())));
        mocks.expect_issue();

        let grant = mocks
            .service()
            .refresh(refresh(Some("posts:read")))
            .await
            .unwrap();

        assert_eq!(grant.scopes.to_string(), "posts:read");
    }

    #[tokio::test]
    async fn asking_a_refresh_for_more_scopes_is_refused_without_spending_the_token() {
        let session = session_of(UserId::new(1), false, "profile posts:read");
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_find_by_refresh_token()
            .withf(|presented| presented.as_str() == "hash-of-old-refresh")
            .returning(move |_| Ok(Some(session.clone())));
        mocks.sessions.expect_rotate_refresh_token().never();

        let err = mocks
            .service()
            .refresh(refresh(Some("posts:write")))
            .await
            .unwrap_err();

        assert!(matches!(err, RefreshError::InvalidScope(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_replayed_refresh_token_ends_the_whole_session() {
        let stolen = SessionId::random();
        let mut mocks = rotating(Rotation::Replayed(stolen), Some(ann(true, false)));
        mocks
            .sessions
            .expect_revoke()
            .with(eq(stolen), mockall::predicate::always())
            .times(1)
            .returning(|_, _| Ok(true));
        mocks.issuer.expect_issue().never();

        let err = mocks.service().refresh(refresh(None)).await.unwrap_err();

        assert!(
            matches!(err, RefreshError::Replayed(id) if id == stolen),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn an_unknown_or_expired_refresh_token_is_an_invalid_grant() {
        let mut mocks = rotating(Rotation::Invalid, Some(ann(true, false)));
        mocks.sessions.expect_revoke().never();
        mocks.issuer.expect_issue().never();

        let err = mocks.service().refresh(refresh(None)).await.unwrap_err();

        assert!(matches!(err, RefreshError::InvalidGrant), "{err:?}");
    }

    /// Refreshing with `mocks` is refused as an invalid grant, and nothing is issued.
    async fn assert_invalid_grant(mut mocks: Mocks) {
        mocks.issuer.expect_issue().never();
        let err = mocks.service().refresh(refresh(None)).await.unwrap_err();
        assert!(matches!(err, RefreshError::InvalidGrant), "{err:?}");
    }

    #[tokio::test]
    async fn a_refresh_token_of_an_ended_session_or_a_disabled_user_is_an_invalid_grant() {
        let ended = session_of(UserId::new(1), true, "profile");
        assert_invalid_grant(rotating(Rotation::Rotated(ended), Some(ann(true, false)))).await;

        let live = session_of(UserId::new(1), false, "profile");
        let disabled = Some(ann(false, false));
        assert_invalid_grant(rotating(Rotation::Rotated(live.clone()), disabled)).await;
        assert_invalid_grant(rotating(Rotation::Rotated(live), None)).await;
    }

    #[tokio::test]
    async fn a_demoted_admin_refreshes_without_the_admin_scope() {
        let session = session_of(UserId::new(1), false, "profile admin");
        let mut mocks = rotating(Rotation::Rotated(session), Some(ann(true, false)));
        mocks.expect_issue();

        let grant = mocks.service().refresh(refresh(None)).await.unwrap();

        assert_eq!(grant.scopes.to_string(), "profile");
    }

    #[tokio::test]
    async fn logging_out_ends_the_callers_session() {
        let principal = Principal {
            user: ann(true, false),
            session_id: SessionId::random(),
            scopes: Scopes::empty(),
        };
        let mut mocks = Mocks::default();
        mocks
            .sessions
            .expect_revoke()
            .with(eq(principal.session_id), mockall::predicate::always())
            .times(1)
            .returning(|_, _| Ok(true));

        mocks.service().logout(&principal).await.unwrap();
    }

    /// Mocks where the token verifies to Ann's session `session` with `scopes`.
    fn authenticating(session: Option<Session>, user: Option<User>, scopes: &str) -> AuthService {
        let mut mocks = Mocks::default();
        let session_id = session.as_ref().map_or_else(SessionId::random, |s| s.id);
        let scopes = Scopes::parse(scopes).unwrap();
        mocks
            .verifier
            .expect_verify()
            .with(eq("the-token"))
            .returning(move |_| {
                Ok(AccessClaims {
                    user_id: UserId::new(1),
                    session_id,
                    scopes,
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
        let session = session_of(UserId::new(1), false, "profile");
        let session_id = session.id;
        let service = authenticating(Some(session), Some(ann(true, false)), "profile");

        let principal = service.authenticate("the-token").await.unwrap();

        assert_eq!(principal.user.email.as_str(), EMAIL);
        assert_eq!(principal.session_id, session_id);
        assert!(principal.has_scope(Scope::Profile));
        assert!(!principal.has_scope(Scope::PostsRead));
    }

    #[tokio::test]
    async fn a_demoted_admins_token_loses_the_admin_scope_at_once() {
        let session = session_of(UserId::new(1), false, "profile admin");
        let service = authenticating(Some(session), Some(ann(true, false)), "profile admin");

        let principal = service.authenticate("the-token").await.unwrap();

        assert!(!principal.has_scope(Scope::Admin));
        assert!(principal.has_scope(Scope::Profile));
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
        assert_invalid(authenticating(None, Some(ann(true, false)), "profile")).await;
    }

    #[tokio::test]
    async fn a_token_of_an_ended_session_is_invalid() {
        let session = session_of(UserId::new(1), true, "profile");
        assert_invalid(authenticating(
            Some(session),
            Some(ann(true, false)),
            "profile",
        ))
        .await;
    }

    #[tokio::test]
    async fn a_token_naming_another_users_session_is_invalid() {
        let session = session_of(UserId::new(2), false, "profile");
        assert_invalid(authenticating(
            Some(session),
            Some(ann(true, false)),
            "profile",
        ))
        .await;
    }

    #[tokio::test]
    async fn a_token_of_a_deleted_user_is_invalid() {
        let session = session_of(UserId::new(1), false, "profile");
        assert_invalid(authenticating(Some(session), None, "profile")).await;
    }

    #[tokio::test]
    async fn a_token_of_a_disabled_user_is_invalid() {
        let session = session_of(UserId::new(1), false, "profile");
        assert_invalid(authenticating(
            Some(session),
            Some(ann(false, false)),
            "profile",
        ))
        .await;
    }
}
