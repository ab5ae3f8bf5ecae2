//! Secrets Warden hands out and later recognises (refresh tokens, `mfa_token`s, mailed tokens,
//! personal access tokens): 256 random bits, base64url-encoded, for the client; SHA-256 of that,
//! for the database.
//!
//! A fast hash is right here, where a password needs argon2: a password is guessable, so its
//! hash must make every guess expensive; such a secret is 256 random bits, which no number of
//! fast guesses will find. The hash only keeps a database leak from handing out live secrets.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use warden_domain::crypto::{SecretCodec, SecretHash};

#[derive(Debug, Clone, Copy, Default)]
pub struct Sha256Secrets;

impl SecretCodec for Sha256Secrets {
    fn generate(&self) -> (String, SecretHash) {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        let secret = URL_SAFE_NO_PAD.encode(secret);
        let hash = self.hash(&secret);
        (secret, hash)
    }

    fn hash(&self, presented: &str) -> SecretHash {
        SecretHash::new(URL_SAFE_NO_PAD.encode(Sha256::digest(presented.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_stored_only_as_their_hash() {
        let codec = Sha256Secrets;
        let (first, first_hash) = codec.generate();
        let (second, _) = codec.generate();

        assert_eq!(first.len(), 43, "256 bits in base64url");
        assert_ne!(first, second);
        assert_ne!(first_hash.as_str(), first);
        assert_eq!(codec.hash(&first), first_hash);
        assert_ne!(codec.hash(&second), first_hash);
    }
}
