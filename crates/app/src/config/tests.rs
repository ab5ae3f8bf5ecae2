use secrecy::ExposeSecret;

use super::*;

fn config(args: &[&str]) -> Config {
    let mut argv = vec!["warden"];
    argv.extend(args);
    Cli::try_parse_from(argv).unwrap().config
}

#[test]
fn flags_set_every_setting() {
    let config = config(&[
        "--database-url",
        "postgres://db/warden",
        "--addr",
        "0.0.0.0:9000",
        "--access-token-expire-minutes",
        "5",
    ]);
    assert_eq!(config.database_url(), "postgres://db/warden");
    assert_eq!(config.server.addr, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(config.access_token_lifetime(), Duration::from_secs(300));
}

#[test]
fn a_leeway_over_five_seconds_is_refused() {
    let argv = ["warden", "--jwt-leeway-seconds", "6"];
    assert!(Cli::try_parse_from(argv).is_err());
}

#[test]
fn postgres_without_a_secret_refuses_to_start() {
    let mut config = config(&[]);
    config.tokens.jwt_secret = None;
    config.database.url = "postgres://127.0.0.1/warden".into();
    let err = resolve_jwt_secret(&config).unwrap_err();
    assert!(err.to_string().contains("JWT_SECRET is required"), "{err}");
}

#[test]
fn a_configured_secret_is_used_as_given() {
    let mut config = config(&[]);
    config.tokens.jwt_secret = Some("s".repeat(40).into());
    let (secret, source) = resolve_jwt_secret(&config).unwrap();
    assert_eq!(secret.expose_secret(), "s".repeat(40).as_bytes());
    assert_eq!(source, SecretSource::Configured);
}

#[test]
fn with_sqlite_a_secret_is_generated_once_and_kept_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&[]);
    config.tokens.jwt_secret = None;
    config.database.url = format!("sqlite://{}", dir.path().join("w.db").display()).into();

    let (first, source) = resolve_jwt_secret(&config).unwrap();
    let path = dir.path().join("w.db.jwt-secret");
    assert_eq!(
        source,
        SecretSource::File {
            path: path.clone(),
            created: true
        }
    );
    assert_eq!(first.expose_secret().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let (second, source) = resolve_jwt_secret(&config).unwrap();
    assert_eq!(second.expose_secret(), first.expose_secret());
    assert_eq!(
        source,
        SecretSource::File {
            path,
            created: false
        }
    );
}

#[test]
fn an_in_memory_database_gets_a_fresh_secret() {
    let mut config = config(&[]);
    config.tokens.jwt_secret = None;
    config.database.url = "sqlite::memory:".into();
    let (_, source) = resolve_jwt_secret(&config).unwrap();
    assert_eq!(source, SecretSource::Ephemeral);
}

#[test]
fn a_public_url_is_an_http_url_with_a_host_kept_without_its_trailing_slash() {
    assert_eq!(
        config(&["--public-url", "https://auth.example.com/"])
            .server
            .public_url
            .as_deref(),
        Some("https://auth.example.com")
    );
    assert_eq!(
        config(&["--public-url", "http://10.0.0.7:8000/warden"])
            .server
            .public_url
            .as_deref(),
        Some("http://10.0.0.7:8000/warden")
    );
    assert_eq!(config(&[]).server.public_url, None);
    for bad in [
        "auth.example.com",
        "ftp://auth.example.com",
        "https://",
        "https://auth.example.com/?x=1",
        "https://auth.example.com/#top",
    ] {
        let argv = ["warden", "--public-url", bad];
        assert!(Cli::try_parse_from(argv).is_err(), "{bad}");
    }
}

#[test]
fn transaction_pooling_and_the_shutdown_delay_are_off_unless_set() {
    let default = config(&[]);
    assert!(!default.database.transaction_pooling);
    assert_eq!(default.server.shutdown_delay_seconds, 0);
    let set = config(&[
        "--database-transaction-pooling",
        "true",
        "--shutdown-delay-seconds",
        "5",
    ]);
    assert!(set.database.transaction_pooling);
    assert_eq!(set.server.shutdown_delay_seconds, 5);
}

#[test]
fn the_mfa_key_is_its_own_setting_or_else_the_jwt_secret() {
    let secret = "a-jwt-secret-of-more-than-thirty-two-bytes";
    let derived = config(&[
        "--database-url",
        "postgres://db/warden",
        "--jwt-secret",
        secret,
    ]);
    assert_eq!(
        resolve_mfa_key(&derived).unwrap().expose_secret(),
        secret.as_bytes()
    );
    assert_eq!(derived.accounts.event_retention_days, 90);
    assert_eq!(derived.accounts.max_sessions_per_account, 100);
    assert_eq!(derived.accounts.max_personal_tokens, 50);

    let own = config(&[
        "--database-url",
        "postgres://db/warden",
        "--jwt-secret",
        secret,
        "--mfa-encryption-key",
        "an-mfa-key-of-more-than-thirty-two-bytes",
    ]);
    assert_eq!(
        resolve_mfa_key(&own).unwrap().expose_secret(),
        b"an-mfa-key-of-more-than-thirty-two-bytes"
    );
    assert!(!format!("{own:?}").contains("an-mfa-key"), "never printed");

    // PostgreSQL with EdDSA and no JWT_SECRET: nothing to derive it from.
    let mut none = config(&["--database-url", "postgres://db/warden"]);
    none.tokens.jwt_secret = None;
    let err = resolve_mfa_key(&none).unwrap_err();
    assert!(format!("{err:#}").contains("MFA_ENCRYPTION_KEY"), "{err:#}");
}
