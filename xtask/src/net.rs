//! Loopback ports for the servers the checks start.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A loopback port free right now (the OS picks it), for a server about to be started on it.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts connections on the loopback `port`; false if nothing has
/// within `within`.
pub(crate) fn listening_within(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}
