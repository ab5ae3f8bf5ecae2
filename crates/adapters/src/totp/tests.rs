use chrono::TimeZone;

use super::*;

fn secrets() -> TotpSecrets {
    TotpSecrets::new(b"a second-factor key of more than 32 bytes").unwrap()
}

/// RFC 6238 appendix B's SHA-1 secret.
fn rfc_secret() -> TotpSecret {
    TotpSecret::new(b"12345678901234567890".to_vec())
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).unwrap()
}

#[test]
fn codes_match_the_rfc_6238_test_vectors_with_one_step_of_skew() {
    let codec = secrets();
    // Appendix B: 94287082 at 59 s, 07081804 at 1111111109 s (the last six digits of each).
    assert_eq!(
        codec.matching_step(&rfc_secret(), "287082", at(59)),
        Some(1)
    );
    assert_eq!(
        codec.matching_step(&rfc_secret(), "081804", at(1_111_111_109)),
        Some(1_111_111_109 / 30)
    );
    // One step either way, and no further.
    assert_eq!(
        codec.matching_step(&rfc_secret(), "287082", at(89)),
        Some(1)
    );
    assert_eq!(codec.matching_step(&rfc_secret(), "287082", at(5)), Some(1));
    assert_eq!(codec.matching_step(&rfc_secret(), "287082", at(120)), None);
    assert_eq!(codec.matching_step(&rfc_secret(), "287083", at(59)), None);
    assert_eq!(codec.matching_step(&rfc_secret(), "28708", at(59)), None);
}

#[test]
fn a_sealed_secret_opens_only_with_its_key_and_hides_the_secret() {
    let codec = secrets();
    let secret = codec.generate_secret();
    assert_eq!(secret.expose().len(), 20);
    let sealed = codec.seal(&secret).unwrap();
    let again = codec.seal(&secret).unwrap();
    assert_ne!(sealed, again, "a fresh nonce each time");
    assert_eq!(codec.open(&sealed).unwrap().expose(), secret.expose());
    let base32 = codec.enrolment(&secret, "ann@example.com").unwrap().secret;
    assert!(!sealed.as_str().contains(&base32));

    let other = TotpSecrets::new(b"another key of more than thirty-two bytes").unwrap();
    assert!(other.open(&sealed).is_err());
    assert!(
        codec
            .open(&SealedTotpSecret::new("v1.AAAA".into()))
            .is_err()
    );
    assert!(codec.open(&SealedTotpSecret::new("plain".into())).is_err());
    assert!(TotpSecrets::new(b"too short").is_err());
}

#[test]
fn the_enrolment_names_warden_and_the_account_and_draws_the_uri() {
    let enrolment = secrets()
        .enrolment(&rfc_secret(), "ann@example.com")
        .unwrap();
    assert_eq!(enrolment.secret, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert!(
        enrolment
            .otpauth_uri
            .starts_with("otpauth://totp/Warden:ann%40example.com?"),
        "{}",
        enrolment.otpauth_uri
    );
    assert!(
        enrolment
            .otpauth_uri
            .contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
    );
    assert!(enrolment.otpauth_uri.contains("issuer=Warden"));
    assert!(enrolment.qr_svg.contains("<svg"), "{}", enrolment.qr_svg);
}

#[test]
fn recovery_codes_are_ten_random_80_bit_codes_hashed_however_they_are_typed() {
    let codec = secrets();
    let set = codec.generate_recovery_codes();
    assert_eq!(set.codes.len(), 10);
    assert_eq!(set.hashes.len(), 10);
    let first = &set.codes[0];
    assert_eq!(first.len(), 24, "{first}");
    assert_eq!(first.matches('-').count(), 4, "{first}");
    assert_ne!(set.codes[0], set.codes[1]);
    assert_eq!(codec.hash_recovery_code(first), set.hashes[0]);
    let typed = format!(" {} ", first.to_uppercase().replace('-', " "));
    assert_eq!(codec.hash_recovery_code(&typed), set.hashes[0]);
    assert_ne!(codec.hash_recovery_code(&set.codes[1]), set.hashes[0]);
}
