//! Warden's business rules: entities, validated newtypes, the ports the outside world plugs into,
//! and the services (use cases) built on them.
//!
//! Nothing here does I/O or knows about HTTP, SQL, argon2 or JWT: adapters implement the ports in
//! [`ports`], and the `warden` app drives the services in [`services`]. That keeps every rule
//! (who may log in, which scopes a token gets, when a token stops working) testable with mocks.

pub mod event;
pub mod mail;
pub mod mfa;
pub mod personal_token;
pub mod ports;
pub mod post;
pub mod scope;
pub mod services;
pub mod session;
pub mod text;
pub mod throttle;
pub mod token;
pub mod user;

pub use event::{
    EventContext, EventId, EventLimit, EventLimitError, EventQuery, EventRetention,
    NewSecurityEvent, RequestOrigin, SecurityEvent, SecurityEventKind, UnknownEventKind,
};
pub use mail::{
    EmailToken, EmailTokenLifetimes, EmailTokenPurpose, MailId, MailKind, MailRetry, MailToken,
    NewEmailToken, OutgoingMail, QueuedMail,
};
pub use mfa::{
    MfaChallenge, RecoveryCodeHash, RecoveryCodes, SealedTotpSecret, TotpEnrolment, TotpFactor,
    TotpSecret,
};
pub use personal_token::{
    NewPersonalToken, PERSONAL_TOKEN_PREFIX, PersonalToken, PersonalTokenId, PersonalTokenLifetime,
    PersonalTokenLifetimeError, PersonalTokenName, PersonalTokenPage,
};
pub use post::{
    MAX_COUNTED_POSTS, Page, PageError, Post, PostContent, PostDraft, PostId, PostList, PostQuery,
    PostTitle, SearchTerm, TextError, VoteDirection,
};
pub use scope::{Scope, Scopes, UnknownScopeError};
pub use session::{
    AuthMethods, ClientId, ClientIdError, NewRefreshToken, NewSession, Rotation, SecretHash,
    Session, SessionId, SessionOrigin, SessionPage,
};
pub use throttle::{Rate, Rates, ThrottleKey, ThrottleKind};
pub use token::{AccessClaims, AccessGrant, InvalidTokenError, IssuedToken, TokenDetails};
pub use user::{
    EmailAddress, EmailAddressError, NewUser, Password, PasswordError, PasswordHash, User,
    UserCredentials, UserFlags, UserId,
};
