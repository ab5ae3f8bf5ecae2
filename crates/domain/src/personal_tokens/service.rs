//! Personal access tokens (contract section 13): create, list and revoke one's own.

use std::sync::Arc;

use chrono::Utc;

use crate::{
    accounts::{Password, PasswordCheck, UserRepository},
    crypto::{PasswordHasher, SecretCodec},
    error::Unknown,
    events::SecurityEventKind,
    personal_tokens::{
        NewPersonalToken, PERSONAL_TOKEN_PREFIX, PersonalToken, PersonalTokenId,
        PersonalTokenLifetime, PersonalTokenName, PersonalTokenPage, PersonalTokenRepository,
    },
    scope::Scopes,
    sessions::Principal,
};

#[derive(Debug, thiserror::Error)]
pub enum CreateTokenError {
    /// The current password given is wrong: a stolen access token cannot mint a token that
    /// outlives it.
    #[error("Incorrect password")]
    IncorrectPassword,
    /// No scope, or one the account may not hold.
    #[error("scopes: {0}")]
    InvalidScope(String),
    /// The account holds as many live tokens as it may (`MAX_PERSONAL_TOKENS`).
    #[error("an account holds at most {0} personal access tokens: revoke one first")]
    TooMany(u32),
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum RevokeTokenError {
    /// Unknown, revoked or another user's: the answer does not tell which.
    #[error("personal access token not found")]
    NotFound,
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// A token just made: as stored, and the secret, which is shown only now.
#[derive(Debug)]
pub struct CreatedToken {
    pub token: PersonalToken,
    pub secret: secrecy::SecretString,
}

/// What a new token is to be.
#[derive(Debug)]
pub struct TokenRequest {
    pub name: PersonalTokenName,
    /// The `scopes` field as sent, space-separated names.
    pub scopes: String,
    pub lifetime: PersonalTokenLifetime,
    /// The account's current password.
    pub current_password: Password,
}

/// What [`PersonalTokenService`] drives.
#[derive(Clone)]
pub struct PersonalTokenPorts {
    pub tokens: Arc<dyn PersonalTokenRepository>,
    pub users: Arc<dyn UserRepository>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub secrets: Arc<dyn SecretCodec>,
}

crate::opaque_debug!(PersonalTokenPorts);

#[derive(Clone)]
pub struct PersonalTokenService {
    ports: PersonalTokenPorts,
    password: PasswordCheck,
    /// `MAX_PERSONAL_TOKENS`: how many live tokens an account may hold.
    max_tokens: u32,
}

/// How many live personal tokens an account holds by default (`MAX_PERSONAL_TOKENS`).
pub const DEFAULT_MAX_PERSONAL_TOKENS: u32 = 50;

crate::opaque_debug!(PersonalTokenService);

impl PersonalTokenService {
    pub fn new(ports: PersonalTokenPorts) -> Self {
        Self {
            password: PasswordCheck::new(ports.users.clone(), ports.hasher.clone()),
            ports,
            max_tokens: DEFAULT_MAX_PERSONAL_TOKENS,
        }
    }

    /// Holds each account to `max` live tokens (at least 1): creating one more is refused.
    #[must_use]
    pub fn holding_tokens(mut self, max: u32) -> Self {
        self.max_tokens = max.max(1);
        self
    }

    /// A new token of the caller's, given the current password, with a non-empty subset of the
    /// scopes the account may hold. The secret is `wdn_pat_` and 256 random bits; only its hash
    /// is stored. The scopes are checked first: a request that could never succeed costs no
    /// password hash.
    pub async fn create(
        &self,
        caller: &Principal,
        request: TokenRequest,
    ) -> Result<CreatedToken, CreateTokenError> {
        let scopes = Scopes::parse(&request.scopes)
            .map_err(|err| CreateTokenError::InvalidScope(err.to_string()))?;
        if scopes.is_empty() {
            return Err(CreateTokenError::InvalidScope(
                "at least one is needed".into(),
            ));
        }
        let allowed = Scopes::allowed_for(caller.user.is_admin);
        if scopes.intersection(allowed) != scopes {
            return Err(CreateTokenError::InvalidScope(format!(
                "{scopes} is more than this account may hold ({allowed})"
            )));
        }
        if !self
            .password
            .matches(caller.user.id, &request.current_password)
            .await?
        {
            return Err(CreateTokenError::IncorrectPassword);
        }
        let (random, _) = self.ports.secrets.generate();
        let secret = format!("{PERSONAL_TOKEN_PREFIX}{random}");
        let now = Utc::now();
        let event = caller.event(SecurityEventKind::PersonalTokenCreated);
        let token = self
            .ports
            .tokens
            .create_personal_token(
                &NewPersonalToken {
                    user_id: caller.user.id,
                    name: request.name,
                    scopes,
                    hash: self.ports.secrets.hash(&secret),
                    created_at: now,
                    expires_at: now + request.lifetime.as_delta(),
                },
                self.max_tokens,
                &[event],
            )
            .await?
            .ok_or(CreateTokenError::TooMany(self.max_tokens))?;
        Ok(CreatedToken {
            token,
            secret: secret.into(),
        })
    }

    /// One page of the caller's live tokens, newest first.
    pub async fn list(
        &self,
        caller: &Principal,
        page: PersonalTokenPage,
    ) -> Result<Vec<PersonalToken>, Unknown> {
        Ok(self
            .ports
            .tokens
            .list_personal_tokens(caller.user.id, Utc::now(), page)
            .await?)
    }

    /// Revokes one of the caller's tokens: it fails at once.
    pub async fn revoke(
        &self,
        caller: &Principal,
        id: PersonalTokenId,
    ) -> Result<(), RevokeTokenError> {
        let event = caller.event(SecurityEventKind::PersonalTokenRevoked);
        if self
            .ports
            .tokens
            .revoke_personal_token(caller.user.id, id, event.at, &[event])
            .await?
        {
            Ok(())
        } else {
            Err(RevokeTokenError::NotFound)
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::{
        accounts::MockUserRepository,
        crypto::{MockPasswordHasher, MockSecretCodec},
        personal_tokens::MockPersonalTokenRepository,
    };
    use crate::{
        accounts::{EmailAddress, PasswordHash, User, UserCredentials, UserId},
        crypto::SecretHash,
        events::RequestOrigin,
        sessions::SessionId,
    };

    fn caller(is_admin: bool) -> Principal {
        Principal {
            user: User {
                id: UserId::new(1),
                email: EmailAddress::new("ann@example.com").unwrap(),
                created_at: Utc::now(),
                is_active: true,
                is_admin,
                email_verified: false,
            },
            credential: crate::sessions::Credential::Session(SessionId::random()),
            scopes: Scopes::allowed_for(is_admin),
            origin: RequestOrigin::default(),
        }
    }

    fn codec() -> MockSecretCodec {
        let mut codec = MockSecretCodec::new();
        codec
            .expect_generate()
            .returning(|| ("random".into(), SecretHash::new("unused".into())));
        codec
            .expect_hash()
            .returning(|secret| SecretHash::new(format!("hash-of-{secret}")));
        codec
    }

    fn request(scopes: &str) -> TokenRequest {
        TokenRequest {
            name: PersonalTokenName::new("ci".into()).unwrap(),
            scopes: scopes.into(),
            lifetime: PersonalTokenLifetime::days(30).unwrap(),
            current_password: Password::candidate("right password".into()).unwrap(),
        }
    }

    /// Ports whose password check takes only `right password`.
    fn service(tokens: MockPersonalTokenRepository) -> PersonalTokenService {
        let mut users = MockUserRepository::new();
        users.expect_find_credentials_by_id().returning(|id| {
            Ok(Some(UserCredentials {
                user: User {
                    id,
                    email: EmailAddress::new("ann@example.com").unwrap(),
                    created_at: Utc::now(),
                    is_active: true,
                    is_admin: false,
                    email_verified: false,
                },
                password_hash: PasswordHash::new("$hash".into()),
            }))
        });
        let mut hasher = MockPasswordHasher::new();
        hasher
            .expect_verify_password()
            .returning(|candidate, _| Ok(candidate.expose() == "right password"));
        PersonalTokenService::new(PersonalTokenPorts {
            tokens: Arc::new(tokens),
            users: Arc::new(users),
            hasher: Arc::new(hasher),
            secrets: Arc::new(codec()),
        })
    }

    #[tokio::test]
    async fn a_token_is_stored_as_the_hash_of_its_prefixed_secret_and_recorded() {
        let mut tokens = MockPersonalTokenRepository::new();
        tokens
            .expect_create_personal_token()
            .withf(|new, max, events| {
                *max == DEFAULT_MAX_PERSONAL_TOKENS
                    && new.hash.as_str() == "hash-of-wdn_pat_random"
                    && new.scopes == Scopes::parse("posts:read").unwrap()
                    && new.expires_at - new.created_at == chrono::TimeDelta::days(30)
                    && matches!(events, [event]
                        if event.kind == SecurityEventKind::PersonalTokenCreated)
            })
            .times(1)
            .returning(|new, _, _| {
                Ok(Some(PersonalToken {
                    id: PersonalTokenId::new(7),
                    user_id: new.user_id,
                    name: new.name.clone(),
                    scopes: new.scopes,
                    created_at: new.created_at,
                    expires_at: new.expires_at,
                    last_used_at: None,
                    revoked_at: None,
                }))
            });
        let service = service(tokens);

        let created = service
            .create(&caller(false), request("posts:read"))
            .await
            .unwrap();

        assert_eq!(created.secret.expose_secret(), "wdn_pat_random");
        assert_eq!(created.token.id, PersonalTokenId::new(7));
    }

    #[tokio::test]
    async fn a_stolen_access_token_cannot_mint_a_token_without_the_password() {
        let mut tokens = MockPersonalTokenRepository::new();
        tokens.expect_create_personal_token().never();
        let request = TokenRequest {
            current_password: Password::candidate("a guess".into()).unwrap(),
            ..request("posts:read")
        };

        let err = service(tokens)
            .create(&caller(false), request)
            .await
            .unwrap_err();

        assert!(
            matches!(err, CreateTokenError::IncorrectPassword),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn scopes_must_be_a_non_empty_subset_of_what_the_account_may_hold() {
        let mut tokens = MockPersonalTokenRepository::new();
        tokens.expect_create_personal_token().never();
        let service = service(tokens);
        for scopes in ["", "admin", "profile tokens:introspect", "sudo"] {
            let err = service
                .create(&caller(false), request(scopes))
                .await
                .unwrap_err();
            assert!(
                matches!(err, CreateTokenError::InvalidScope(_)),
                "{scopes}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_token_past_the_accounts_cap_is_refused() {
        let mut tokens = MockPersonalTokenRepository::new();
        tokens
            .expect_create_personal_token()
            .withf(|_, max, _| *max == 3)
            .times(1)
            .returning(|_, _, _| Ok(None));
        let service = service(tokens).holding_tokens(3);

        let err = service
            .create(&caller(false), request("posts:read"))
            .await
            .unwrap_err();

        assert!(matches!(err, CreateTokenError::TooMany(3)), "{err:?}");
    }
}
