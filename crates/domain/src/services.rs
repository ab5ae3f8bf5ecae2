//! Services: the use cases the app drives. Each operation has its own error enum: the business
//! outcomes a caller must handle, plus `Unknown` for everything that is nobody's fault but ours.

pub mod admin;
pub mod auth;
pub mod events;
pub mod mail;
pub mod mfa;
pub mod posts;
pub mod retention;
pub mod tokens;
pub mod users;

pub use admin::{AdminService, EndSessionsError, ListUsersError, PromoteError, UpdateUserError};
pub use auth::{
    AuthPorts, AuthService, AuthenticateError, DEFAULT_MAX_SESSIONS, EndSessionError,
    IntrospectError, Lifetimes, LoginError, LogoutError, MfaLogin, PasswordLogin, Principal,
    RefreshError, RefreshLogin, SessionsError, TokenGrant,
};
pub use events::{EventPage, EventService, ListEventsError};
pub use mail::{
    ConfirmTokenError, Delivery, DeliveryOutcome, EmailPorts, EmailService, MailDelivery,
    ResendVerificationError, ResetRequestError,
};
pub use mfa::{
    ChangeMfaError, ConfirmTotpError, MfaPorts, MfaService, MfaStatusError, ResetMfaError,
    SecondFactor, StartTotpError,
};
pub use posts::{
    ChangePostError, CreatePostError, GetPostError, ListPostsError, PostService, VoteError,
};
pub use retention::RetentionService;
pub use tokens::{
    CreateTokenError, CreatedToken, DEFAULT_MAX_PERSONAL_TOKENS, ListTokensError,
    PersonalTokenService, RevokeTokenError, TokenRequest,
};
pub use users::{
    ChangeEmailError, ChangePasswordError, DeleteAccountError, FindUserError, GetUserError,
    PasswordCheck, RegisterError, UserService,
};
