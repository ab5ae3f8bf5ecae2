//! Sessions (contract sections 2, 6 and 7): one per password login, its refresh tokens, and the
//! [`AuthService`] that logs in, refreshes, logs out and turns an access token (or a personal
//! access token) into a [`Principal`].

mod model;
mod ports;
mod principal;
mod service;

pub use model::*;
pub use ports::*;
pub use principal::{Credential, LoginPrincipal, Principal};
pub use service::*;
