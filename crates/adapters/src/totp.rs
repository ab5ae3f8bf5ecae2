//! [`TotpCodec`]: TOTP (RFC 6238) with totp-rs, the secret sealed with XChaCha20-Poly1305 for
//! storage, and recovery codes.
//!
//! The sealing key is derived (HKDF-SHA256, with a label of its own) from key material the
//! operator configures, never stored in the database: a copy of the database alone holds
//! ciphertexts it cannot open (docs/security.md). Each secret is sealed under a fresh random
//! 192-bit nonce, which XChaCha's nonce size makes safe to pick at random.
//!
//! Recovery codes carry 80 random bits, so a fast hash (SHA-256) is enough to keep a database
//! leak from handing them out, as for refresh tokens: no number of fast guesses finds 80 bits.

use anyhow::{Context, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, Generate, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Builder, Totp};
use warden_domain::{
    crypto::TotpCodec,
    mfa::{RecoveryCodeHash, RecoveryCodes, SealedTotpSecret, TotpEnrolment, TotpSecret},
};

/// The issuer authenticator apps show.
const ISSUER: &str = "Warden";
/// What the sealing key is derived for; a new label makes a new key.
const KEY_LABEL: &[u8] = b"warden totp secret sealing v1";
/// The prefix of the sealed form, naming its format.
const SEALED_PREFIX: &str = "v1.";
/// 160 bits, RFC 4226's recommendation and what authenticator apps expect.
const SECRET_BYTES: usize = 20;
/// 80 bits a recovery code.
const RECOVERY_CODE_BYTES: usize = 10;

/// TOTP secrets sealed under a key derived from the configured key material.
pub struct TotpSecrets {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for TotpSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecrets([REDACTED])")
    }
}

impl TotpSecrets {
    /// Seals with a key derived from `key_material`, at least 32 bytes.
    ///
    /// # Errors
    ///
    /// `key_material` is shorter than 32 bytes.
    pub fn new(key_material: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            key_material.len() >= 32,
            "the second-factor key material must be at least 32 bytes"
        );
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(None, key_material)
            .expand(KEY_LABEL, &mut key)
            .map_err(|_| anyhow!("cannot derive the second-factor key"))?;
        let cipher = XChaCha20Poly1305::new_from_slice(&key)
            .map_err(|_| anyhow!("cannot derive the second-factor key"))?;
        Ok(Self { cipher })
    }

    /// The RFC 6238 parameters every authenticator app reads: SHA-1, 6 digits, 30-second
    /// steps, one step of skew either way.
    fn totp(secret: &TotpSecret, account: Option<&str>) -> anyhow::Result<Totp> {
        let mut builder = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_step_duration(30)
            .with_skew(1)
            .with_secret(secret.expose().to_vec());
        if let Some(account) = account {
            // The otpauth label separates issuer and account with `:`, so the account may not
            // hold one (only a quoted local part of an email could).
            builder = builder
                .with_account_name(account.replace(':', "."))
                .with_issuer(Some(ISSUER));
        }
        builder.build().context("invalid TOTP parameters")
    }
}

impl TotpCodec for TotpSecrets {
    fn generate_secret(&self) -> TotpSecret {
        let mut secret = vec![0u8; SECRET_BYTES];
        rand::fill(secret.as_mut_slice());
        TotpSecret::new(secret)
    }

    fn seal(&self, secret: &TotpSecret) -> anyhow::Result<SealedTotpSecret> {
        let nonce = XNonce::generate();
        let ciphertext = self
            .cipher
            .encrypt(&nonce, secret.expose())
            .map_err(|_| anyhow!("cannot seal a TOTP secret"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        Ok(SealedTotpSecret::new(format!(
            "{SEALED_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(sealed)
        )))
    }

    fn open(&self, sealed: &SealedTotpSecret) -> anyhow::Result<TotpSecret> {
        let encoded = sealed
            .as_str()
            .strip_prefix(SEALED_PREFIX)
            .context("a stored TOTP secret is not in a known format")?;
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .context("a stored TOTP secret is not base64")?;
        let nonce_len = XNonce::default().len();
        anyhow::ensure!(bytes.len() > nonce_len, "a stored TOTP secret is too short");
        let (nonce, ciphertext) = bytes.split_at(nonce_len);
        let nonce = XNonce::try_from(nonce).map_err(|_| anyhow!("bad nonce"))?;
        let secret = self.cipher.decrypt(&nonce, ciphertext).map_err(|_| {
            anyhow!(
                "a stored TOTP secret cannot be opened: was it sealed with another \
                 MFA_ENCRYPTION_KEY (or JWT_SECRET)?"
            )
        })?;
        Ok(TotpSecret::new(secret))
    }

    fn enrolment(&self, secret: &TotpSecret, account: &str) -> anyhow::Result<TotpEnrolment> {
        let totp = Self::totp(secret, Some(account))?;
        let otpauth_uri = totp.to_url().context("cannot make the otpauth URI")?;
        let qr_svg = qrcode::QrCode::new(otpauth_uri.as_bytes())
            .context("cannot make the QR code")?
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .build();
        Ok(TotpEnrolment {
            secret: totp.secret().to_base32(),
            otpauth_uri,
            qr_svg,
        })
    }

    fn matching_step(&self, secret: &TotpSecret, code: &str, now: DateTime<Utc>) -> Option<i64> {
        let totp = Self::totp(secret, None).ok()?;
        let time = u64::try_from(now.timestamp()).ok()?;
        totp.check(code, time)
            .and_then(|step| i64::try_from(step).ok())
    }

    fn generate_recovery_codes(&self) -> RecoveryCodes {
        let codes: Vec<String> = (0..RecoveryCodes::COUNT)
            .map(|_| {
                let mut bytes = [0u8; RECOVERY_CODE_BYTES];
                rand::fill(&mut bytes);
                let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
                // Five groups of four, for reading off paper: 3f9a-1c2b-77de-0a41-9b3c.
                hex.as_bytes()
                    .chunks(4)
                    .map(|group| String::from_utf8_lossy(group).into_owned())
                    .collect::<Vec<_>>()
                    .join("-")
            })
            .collect();
        let hashes = codes
            .iter()
            .map(|code| self.hash_recovery_code(code))
            .collect();
        RecoveryCodes { codes, hashes }
    }

    fn hash_recovery_code(&self, code: &str) -> RecoveryCodeHash {
        let normalized: String = code
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .flat_map(char::to_lowercase)
            .collect();
        RecoveryCodeHash::new(URL_SAFE_NO_PAD.encode(Sha256::digest(normalized.as_bytes())))
    }
}

#[cfg(test)]
mod tests;
