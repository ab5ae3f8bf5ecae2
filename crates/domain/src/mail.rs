//! Email (contract section 12): mailed tokens (verification, password reset, email change), the
//! outbox that holds each mail until it is delivered, and the mail server port.

mod model;
mod ports;
mod service;

pub use model::*;
pub use ports::*;
pub use service::*;
