//! Brute-force budgets (contract section 5): which guesses are counted, at what rate, and the
//! store that counts them.

mod model;
mod ports;

pub use model::*;
pub use ports::*;
