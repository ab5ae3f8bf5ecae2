//! The security event log (contract section 11): what happened to an account, when and from
//! where.

mod model;
mod ports;
mod service;

pub use model::*;
pub use ports::*;
pub use service::*;
