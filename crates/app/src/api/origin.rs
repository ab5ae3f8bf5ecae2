//! Where a request comes from, as a type: [`ClientOrigin`] is extracted like any other
//! parameter of an operation, and owns the trusted-proxy rule ([`TrustedProxies`]), so that no
//! handler works the client address out for itself.

use std::net::IpAddr;

use poem::web::RemoteAddr;
use poem::{FromRequest, Request, RequestBody};
use warden_domain::events::RequestOrigin;

use super::error::ApiError;
use super::state::AppState;

/// How many proxies in front of Warden append to `X-Forwarded-For` (`TRUSTED_PROXY_HOPS`);
/// 0 believes none of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrustedProxies {
    hops: usize,
}

impl TrustedProxies {
    pub fn new(hops: usize) -> Self {
        Self { hops }
    }

    /// The client's address: the peer, or with `hops` = n > 0, the n-th address from the
    /// right of `X-Forwarded-For` (each trusted proxy appends the address it saw; what lies
    /// further left, the client could have written itself). `None` when unknown, which the
    /// throttle then counts as one shared key.
    pub fn client_address(self, req: &Request) -> Option<IpAddr> {
        let peer = match req.remote_addr() {
            RemoteAddr(poem::Addr::SocketAddr(addr)) => Some(addr.ip()),
            _ => None,
        };
        if self.hops == 0 {
            return peer;
        }
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        forwarded
            .len()
            .checked_sub(self.hops)
            .and_then(|index| forwarded[index].parse().ok())
            .or(peer)
    }

    /// Where `req` comes from: its client address, as [`TrustedProxies::client_address`] sees
    /// it, and its user agent.
    pub fn origin(self, req: &Request) -> ClientOrigin {
        let user_agent = req
            .headers()
            .get(poem::http::header::USER_AGENT)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        ClientOrigin(RequestOrigin::new(
            self.client_address(req),
            user_agent.as_deref(),
        ))
    }
}

/// Where the request comes from: its client address under the trusted-proxy rule of the
/// [`AppState`], and its user agent. Take it as a parameter of an operation; the throttle's
/// budgets are keyed by [`ClientOrigin::address`], events record [`ClientOrigin::request`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientOrigin(RequestOrigin);

impl ClientOrigin {
    /// The client's address; `None` when unknown.
    pub fn address(&self) -> Option<IpAddr> {
        self.0.ip_address
    }

    /// The origin, as the domain records it.
    pub fn request(&self) -> &RequestOrigin {
        &self.0
    }

    /// The origin, as the domain records it.
    pub fn into_request(self) -> RequestOrigin {
        self.0
    }

    /// The origin of `req`, under the trusted-proxy rule of the app state it carries.
    ///
    /// # Errors
    ///
    /// The app state is not installed: a bug, answered 500.
    pub fn of(req: &Request) -> Result<Self, ApiError> {
        let state = req
            .data::<AppState>()
            .ok_or_else(|| ApiError::from(anyhow::anyhow!("the app state is not installed")))?;
        Ok(state.proxies.origin(req))
    }
}

impl<'a> FromRequest<'a> for ClientOrigin {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        Ok(Self::of(req)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_are_believed_only_as_far_as_trusted_proxies_go() {
        let request = |xff: &str| Request::builder().header("x-forwarded-for", xff).finish();
        let untrusting = TrustedProxies::new(0);
        assert_eq!(untrusting.client_address(&request("198.51.100.7")), None);
        let one_proxy = TrustedProxies::new(1);
        assert_eq!(
            one_proxy.client_address(&request("203.0.113.9, 198.51.100.7")),
            Some("198.51.100.7".parse().unwrap())
        );
        let two_proxies = TrustedProxies::new(2);
        assert_eq!(
            two_proxies.client_address(&request("203.0.113.9, 198.51.100.7")),
            Some("203.0.113.9".parse().unwrap())
        );
        // Fewer entries than proxies: the header is not to be believed.
        assert_eq!(two_proxies.client_address(&request("198.51.100.7")), None);
    }
}
