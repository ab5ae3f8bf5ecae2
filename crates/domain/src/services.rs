//! Services: the use cases the app drives. Each operation has its own error enum: the business
//! outcomes a caller must handle, plus `Unknown` for everything that is nobody's fault but ours.

pub mod auth;
pub mod posts;
pub mod users;

pub use auth::{AuthService, AuthenticateError, LoginError, PasswordLogin, Principal, TokenGrant};
pub use posts::{ChangePostError, GetPostError, PostService, VoteError};
pub use users::{GetUserError, RegisterError, UserService};
