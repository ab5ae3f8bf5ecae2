//! Accounts (contract sections 3, 4 and 9): who may sign in, with which password and email, and
//! the admin operations on other people's accounts.

mod admin;
mod model;
mod ports;
mod service;

pub use admin::*;
pub use model::*;
pub use ports::*;
pub use service::*;
