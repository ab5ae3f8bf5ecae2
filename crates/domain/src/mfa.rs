//! Second factors (contract section 10): TOTP enrolment, recovery codes, and the challenge a
//! password login answers with when a factor is on.

mod model;
mod ports;
mod service;

pub use model::*;
pub use ports::*;
pub use service::*;
