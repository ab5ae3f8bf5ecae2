//! OAuth2 scopes: what a token allows its bearer to do.

use std::fmt;

/// One permission a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read and manage your own account.
    Profile,
    /// Read posts and other users' public profiles.
    PostsRead,
    /// Create, change and delete your posts, and vote.
    PostsWrite,
    /// Administer users. Granted only to admin accounts.
    Admin,
    /// Ask `/introspect` whether other tokens are active (RFC 7662). Granted only to admin
    /// accounts.
    TokensIntrospect,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Profile,
        Scope::PostsRead,
        Scope::PostsWrite,
        Scope::Admin,
        Scope::TokensIntrospect,
    ];

    /// Whether only admin accounts may hold it.
    pub fn is_admin_only(self) -> bool {
        matches!(self, Scope::Admin | Scope::TokensIntrospect)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Profile => "profile",
            Scope::PostsRead => "posts:read",
            Scope::PostsWrite => "posts:write",
            Scope::Admin => "admin",
            Scope::TokensIntrospect => "tokens:introspect",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == raw)
    }

    /// What the scope allows, for people reading the API's documentation.
    pub fn description(self) -> &'static str {
        match self {
            Scope::Profile => "Read and manage your own account.",
            Scope::PostsRead => "Read posts and other users' public profiles.",
            Scope::PostsWrite => "Create, change and delete your posts, and vote.",
            Scope::Admin => "Administer users. Granted only to admin accounts.",
            Scope::TokensIntrospect => {
                "Check whether tokens are active at /introspect. Granted only to admin accounts."
            }
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes. Its text form is RFC 6749's: names separated by single spaces, here always in
/// the order of [`Scope::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}")]
pub struct UnknownScopeError(pub String);

impl Scopes {
    pub fn empty() -> Self {
        Self(0)
    }

    /// Every scope an account may hold: all of them for an admin, all but the admin-only ones
    /// (`admin`, `tokens:introspect`) otherwise.
    pub fn allowed_for(is_admin: bool) -> Self {
        Scope::ALL
            .into_iter()
            .filter(|scope| is_admin || !scope.is_admin_only())
            .collect()
    }

    /// Parses a space-separated list (RFC 6749 section 3.3). Repeated names are harmless; an
    /// unknown name is an error.
    pub fn parse(raw: &str) -> Result<Self, UnknownScopeError> {
        raw.split(' ')
            .filter(|name| !name.is_empty())
            .map(|name| Scope::parse(name).ok_or_else(|| UnknownScopeError(name.to_owned())))
            .collect()
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |scope| self.contains(*scope))
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        Self(iter.into_iter().fold(0, |bits, scope| bits | scope.bit()))
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, scope) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(scope.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_their_text_form() {
        let scopes = Scopes::parse("posts:write profile").unwrap();
        assert_eq!(scopes.to_string(), "profile posts:write");
        assert_eq!(Scopes::parse(&scopes.to_string()).unwrap(), scopes);
    }

    #[test]
    fn unknown_scope_names_are_an_error() {
        assert_eq!(
            Scopes::parse("profile sudo").unwrap_err(),
            UnknownScopeError("sudo".into())
        );
    }

    #[test]
    fn empty_and_repeated_names_are_harmless() {
        assert_eq!(Scopes::parse("").unwrap(), Scopes::empty());
        assert_eq!(
            Scopes::parse("profile  profile").unwrap().to_string(),
            "profile"
        );
    }

    #[test]
    fn only_admins_may_hold_the_admin_only_scopes() {
        assert_eq!(
            Scopes::allowed_for(false).to_string(),
            "profile posts:read posts:write"
        );
        assert_eq!(
            Scopes::allowed_for(true).to_string(),
            "profile posts:read posts:write admin tokens:introspect"
        );
    }
}
