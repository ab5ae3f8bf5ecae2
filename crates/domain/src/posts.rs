//! Posts and votes (contract section 8): the resource an access token's owner writes.

mod model;
mod ports;
mod service;

pub use model::*;
pub use ports::*;
pub use service::*;
