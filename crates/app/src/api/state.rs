//! The composition root: the one place that builds every adapter from the settings and hands
//! each service its ports. Handlers reach the services through [`AppState`], extracted as
//! `Data<&AppState>`.

use std::sync::Arc;
use std::time::Duration;

use warden_adapters::{JwtTokens, Sha256Secrets, Store};
use warden_domain::{
    accounts::{
        AdminPorts, AdminService, ChangeEmailError, EmailAddress, Password, RegisterError, User,
        UserPorts, UserService,
    },
    crypto::SecretCodec,
    events::{EventPorts, EventService},
    mail::{DeliveryPorts, EmailPorts, EmailService, MailDelivery},
    mfa::{MfaPorts, MfaService},
    personal_tokens::{PersonalTokenPorts, PersonalTokenService},
    posts::{PostPorts, PostService},
    retention::{RetentionPorts, RetentionService},
    sessions::{AuthPorts, AuthService, Principal},
};

use crate::api::origin::TrustedProxies;
use crate::config::Config;
use crate::cors::CorsOrigins;
use crate::throttle::Throttle;

/// Everything a request handler may need.
#[derive(Debug, Clone)]
pub struct AppState {
    pub auth: AuthService,
    pub users: UserService,
    pub posts: PostService,
    pub admin: AdminService,
    pub events: EventService,
    pub mfa: MfaService,
    pub personal_tokens: PersonalTokenService,
    /// Pruning ended sessions, refresh tokens and personal tokens.
    pub retention: RetentionService,
    /// The token keys, for publishing the public ones.
    pub tokens: Arc<JwtTokens>,
    pub throttle: Arc<Throttle>,
    /// The trusted-proxy rule that [`ClientOrigin`](super::origin::ClientOrigin) applies.
    pub proxies: TrustedProxies,
    /// Registration and email change, through a mailbox or not: chosen here, once.
    pub account_flows: AccountFlows,
    pub store: Store,
    /// Whether `/metrics` is served with the API (no `METRICS_ADDR`), or on its own address.
    pub metrics_with_api: bool,
    /// The origins CORS allows; none turns it off.
    pub cors: Arc<CorsOrigins>,
    /// Set once shutdown begins: `/health/ready` then answers 503.
    pub draining: Arc<Draining>,
    /// `PUBLIC_URL`: the base of the metadata's endpoint URLs.
    pub public_url: Option<String>,
    /// Email: the account flows that go through a mailbox, and the outbox's delivery. `None`
    /// when mail is off (no `SMTP_URL`).
    pub email: Option<Email>,
    /// `HTTP_BODY_TIMEOUT_SECONDS`: how long after its head a request's body may take to arrive.
    pub body_timeout: Duration,
}

/// What email needs, when it is on.
#[derive(Debug, Clone)]
pub struct Email {
    pub flows: EmailService,
    pub delivery: MailDelivery,
}

/// Which registration and email-change flows run, decided when the app is wired: with email
/// on, registration mails a verification link and an email change waits for the new address
/// to confirm; with it off, both are done at once.
#[derive(Debug, Clone)]
pub enum AccountFlows {
    Mailed(EmailService),
    Direct(UserService),
}

impl AccountFlows {
    /// Whether the flows send mail, and so spend the mail-request budgets.
    pub fn sends_mail(&self) -> bool {
        matches!(self, Self::Mailed(_))
    }

    /// Registers an account.
    ///
    /// # Errors
    ///
    /// As the flow's `register`.
    pub async fn register(
        &self,
        email: EmailAddress,
        password: Password,
    ) -> Result<User, RegisterError> {
        match self {
            Self::Mailed(flows) => flows.register(email, password).await,
            Self::Direct(users) => users.register(email, password).await,
        }
    }

    /// Changes the caller's email: at once (the changed account), or once the new address
    /// confirms (`None`).
    ///
    /// # Errors
    ///
    /// As the flow's email change.
    pub async fn change_email(
        &self,
        caller: &Principal,
        current: &Password,
        email: &EmailAddress,
    ) -> Result<Option<User>, ChangeEmailError> {
        match self {
            Self::Mailed(flows) => flows
                .request_email_change(caller, current, email)
                .await
                .map(|()| None),
            Self::Direct(users) => users.change_email(caller, current, email).await.map(Some),
        }
    }
}

/// Whether the server is shutting down. From the moment it is, readiness fails, so that load
/// balancers take the instance out while it still serves, and responses close their connection.
#[derive(Debug, Default)]
pub struct Draining(std::sync::atomic::AtomicBool);

impl Draining {
    pub fn begin(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl AppState {
    /// Builds every adapter `config` asks for on `store`, and the services on them.
    ///
    /// # Errors
    ///
    /// A setting cannot be used (keys that do not parse, a mail server URL that does not).
    pub fn new(store: Store, config: &Config) -> anyhow::Result<Self> {
        // Before anything is counted.
        crate::metrics::handle();
        let (tokens, key_source) = config.access_tokens()?;
        key_source.log();
        let tokens = Arc::new(tokens);
        let hasher = Arc::new(config.passwords.hasher()?);
        let repository = Arc::new(store.clone());
        // Refresh tokens, `mfa_token`s, mailed and personal tokens: one codec for every secret.
        let secrets: Arc<dyn SecretCodec> = Arc::new(Sha256Secrets);
        let totp = Arc::new(config.totp_codec()?);
        let auth = AuthService::new(
            AuthPorts {
                users: repository.clone(),
                sessions: repository.clone(),
                hasher: hasher.clone(),
                issuer: tokens.clone(),
                verifier: tokens.clone(),
                secrets: secrets.clone(),
                events: repository.clone(),
                mfa: repository.clone(),
                totp: totp.clone(),
                personal_tokens: repository.clone(),
            },
            config.tokens.lifetimes(),
        )
        .requiring_verified_email(config.mail.require_verified_email)
        .holding_sessions(config.accounts.max_sessions_per_account);
        let retention = config.accounts.event_retention();
        let email = config.mailer()?.map(|mailer| Email {
            flows: EmailService::new(
                EmailPorts {
                    users: repository.clone(),
                    mail: repository.clone(),
                    hasher: hasher.clone(),
                    secrets: secrets.clone(),
                },
                config.mail.lifetimes(),
            ),
            delivery: MailDelivery::new(
                DeliveryPorts {
                    outbox: repository.clone(),
                    sender: Arc::new(mailer),
                },
                config.mail.retry(),
            ),
        });
        let users = UserService::new(UserPorts {
            users: repository.clone(),
            sessions: repository.clone(),
            hasher: hasher.clone(),
        });
        let account_flows = match &email {
            Some(email) => AccountFlows::Mailed(email.flows.clone()),
            None => AccountFlows::Direct(users.clone()),
        };
        Ok(Self {
            auth,
            users,
            personal_tokens: PersonalTokenService::new(PersonalTokenPorts {
                tokens: repository.clone(),
                users: repository.clone(),
                hasher: hasher.clone(),
                secrets,
            })
            .holding_tokens(config.accounts.max_personal_tokens),
            mfa: MfaService::new(MfaPorts {
                users: repository.clone(),
                hasher,
                mfa: repository.clone(),
                codec: totp,
            }),
            posts: PostService::new(PostPorts {
                posts: repository.clone(),
                votes: repository.clone(),
            }),
            admin: AdminService::new(AdminPorts {
                users: repository.clone(),
                sessions: repository.clone(),
            }),
            retention: RetentionService::new(
                RetentionPorts {
                    sessions: repository.clone(),
                    tokens: repository.clone(),
                },
                retention,
            ),
            events: EventService::new(EventPorts { events: repository }, retention),
            tokens,
            throttle: Arc::new(Throttle::for_store(&store, &config.throttle())),
            proxies: TrustedProxies::new(config.throttling.trusted_proxy_hops),
            account_flows,
            store,
            metrics_with_api: config.server.metrics_addr.is_none(),
            cors: Arc::new(config.server.cors_origins()?),
            draining: Arc::default(),
            public_url: config.server.public_url.clone(),
            email,
            body_timeout: config.server.body_timeout(),
        })
    }
}
