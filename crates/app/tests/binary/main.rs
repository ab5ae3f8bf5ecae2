//! Black-box tests of the `warden` binary: started as an operator would start it, spoken to over
//! TCP, stopped with SIGTERM.
//!
//! One test binary, a module per concern.

mod cli;
mod connections;
mod shutdown;
mod startup;
mod support;
