//! argon2id password hashing.
//!
//! Parameters are OWASP's first recommendation for argon2id (19 MiB of memory, 2 passes, one
//! lane), which are also the argon2 crate's defaults. A hash takes tens of milliseconds of CPU
//! and 19 MiB of memory, so it never runs on an async worker: each one goes to tokio's blocking
//! pool, and a semaphore bounds how many run at once. That bound caps the memory a flood of
//! logins can take and leaves the workers free to answer other requests.

use std::sync::Arc;

use anyhow::{Context, anyhow};
use argon2::password_hash::phc::PasswordHash as PhcHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use async_trait::async_trait;
use tokio::sync::Semaphore;
use warden_domain::ports::PasswordHasher;
use warden_domain::{Password, PasswordHash};

/// Hashes and verifies passwords with argon2id.
#[derive(Debug, Clone)]
pub struct Argon2Hasher {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    /// A hash of a random password with the same parameters, verified against when there is no
    /// real hash to check, so that refusing an unknown account costs what a wrong password does.
    dummy_hash: Arc<str>,
}

impl Argon2Hasher {
    /// A hasher that runs at most `max_concurrent` hashes at once (at least one).
    pub fn new(max_concurrent: usize) -> anyhow::Result<Self> {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default());
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        let dummy_hash = argon2
            .hash_password(&random)
            .map_err(|err| anyhow!("cannot compute the dummy hash: {err}"))?
            .to_string();
        Ok(Self {
            argon2,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .context("the hashing semaphore is closed")?;
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || work(&argon2))
            .await
            .context("the hashing task failed")
    }

    async fn verify_phc(&self, candidate: &Password, phc: Arc<str>) -> anyhow::Result<bool> {
        let candidate = candidate.clone();
        self.run(move |argon2| {
            let hash =
                PhcHash::new(&phc).map_err(|err| anyhow!("unreadable password hash: {err}"))?;
            match argon2.verify_password(candidate.expose().as_bytes(), &hash) {
                Ok(()) => Ok(true),
                Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
                Err(err) => Err(anyhow!("cannot verify password: {err}")),
            }
        })
        .await?
    }
}

#[async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash> {
        let password = password.clone();
        let phc = self
            .run(move |argon2| {
                argon2
                    .hash_password(password.expose().as_bytes())
                    .map(|h| h.to_string())
            })
            .await?
            .map_err(|err| anyhow!("cannot hash password: {err}"))?;
        Ok(PasswordHash::new(phc))
    }

    async fn verify(&self, candidate: &Password, hash: &PasswordHash) -> anyhow::Result<bool> {
        self.verify_phc(candidate, hash.as_str().into()).await
    }

    async fn verify_dummy(&self, candidate: &Password) -> anyhow::Result<()> {
        self.verify_phc(candidate, self.dummy_hash.clone()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(raw: &str) -> Password {
        Password::candidate(raw.into()).unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let hasher = Argon2Hasher::new(2).unwrap();
        let hash = hasher.hash(&password("correct horse")).await.unwrap();

        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(!hash.as_str().contains("correct horse"));
        assert!(
            hasher
                .verify(&password("correct horse"), &hash)
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(&password("battery staple"), &hash)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn the_same_password_hashes_differently_each_time() {
        let hasher = Argon2Hasher::new(2).unwrap();
        let first = hasher.hash(&password("correct horse")).await.unwrap();
        let second = hasher.hash(&password("correct horse")).await.unwrap();
        assert_ne!(first, second);
    }

    #[tokio::test]
    async fn an_unreadable_hash_is_an_error_not_a_mismatch() {
        let hasher = Argon2Hasher::new(1).unwrap();
        let broken = PasswordHash::new("not a phc string".into());
        assert!(
            hasher
                .verify(&password("correct horse"), &broken)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_dummy_verification_succeeds_without_matching_anything() {
        let hasher = Argon2Hasher::new(1).unwrap();
        hasher
            .verify_dummy(&password("correct horse"))
            .await
            .unwrap();
    }
}
