//! Warden's business rules: entities, validated newtypes, the ports the outside world plugs into,
//! and the services (use cases) built on them.
//!
//! Nothing here does I/O or knows about HTTP, SQL, argon2 or JWT. The crate is grouped by
//! concern: each module holds one concern's entities (`model`), the ports its storage plugs into
//! (`ports`) and its service, and re-exports them, so callers name the concern
//! (`warden_domain::posts::PostService`). [`crypto`] holds the ports every concern shares
//! (password hashing, secrets, access tokens, TOTP); [`error`] the failures they share.
//! Adapters implement the ports; the `warden` app drives the services. That keeps every rule
//! (who may log in, which scopes a token gets, when a token stops working) testable with mocks.

/// `Debug` for a type that shows only the fields named, if any (ports are trait objects; some
/// fields are secrets): `Name { field: .., .. }`.
macro_rules! opaque_debug {
    ($type:ident $({ $($field:ident),* })?) => {
        impl std::fmt::Debug for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($type))
                    $($(.field(stringify!($field), &self.$field))*)?
                    .finish_non_exhaustive()
            }
        }
    };
}
pub(crate) use opaque_debug;

pub mod accounts;
pub mod crypto;
pub mod error;
pub mod events;
pub mod mail;
pub mod mfa;
pub mod paging;
pub mod personal_tokens;
pub mod posts;
pub mod retention;
pub mod scope;
pub mod sessions;
pub mod text;
pub mod throttle;
