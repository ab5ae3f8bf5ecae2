//! Personal access tokens (contract section 13): long-lived, named, scoped tokens a user makes
//! for scripts.

mod model;
mod ports;
mod service;

pub use model::*;
pub use ports::*;
pub use service::*;
