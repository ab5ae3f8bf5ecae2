//! The command line: `create-admin`, `--help`, `check-config` and settings that cannot work.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use warden_app::testing::MailCatcher;

use crate::support::*;

/// Runs `warden create-admin --email EMAIL` in `dir` with `stdin` piped in.
fn create_admin(dir: &Path, email: &str, stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(dir)
        .env_clear()
        .args(["create-admin", "--email", email])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn create_admin_reads_the_password_from_stdin_and_promotes_existing_accounts() {
    let dir = tempfile::tempdir().unwrap();

    let (ok, stdout, stderr) = create_admin(dir.path(), "root@example.com", "correct horse\n");
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "created admin account 1");
    assert!(
        !stderr.contains("correct horse"),
        "the password reached the log"
    );
    let (ok, stdout, _) = create_admin(dir.path(), "ROOT@example.com", "");
    assert!(ok);
    assert_eq!(stdout.trim(), "account 1 is already an active admin");

    let mut warden = Warden::start(dir.path(), &[]);
    let (status, _, body) = warden.request(
        "POST",
        "/login",
        &[FORM],
        "username=root@example.com&password=correct horse",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["scope"],
        "profile posts:read posts:write admin tokens:introspect"
    );
    let (status, _, _) = warden.request(
        "POST",
        "/users",
        &[JSON],
        r#"{"email":"bob@example.com","password":"correct horse"}"#,
    );
    assert_eq!(status, 201);
    assert!(warden.terminate().success());

    let (ok, stdout, _) = create_admin(dir.path(), "bob@example.com", "");
    assert!(ok);
    assert_eq!(stdout.trim(), "made account 2 an active admin");

    let (ok, _, stderr) = create_admin(dir.path(), "not an email", "correct horse\n");
    assert!(!ok && stderr.contains("error"), "{stderr}");
    let (ok, _, stderr) = create_admin(dir.path(), "eve@example.com", "short\n");
    assert!(!ok && stderr.contains("at least 8 bytes"), "{stderr}");
}

#[test]
fn help_never_prints_a_secret_from_the_environment_or_dotenv() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "JWT_SECRET=a-dotenv-signing-key-of-more-than-32-bytes\n",
    )
    .unwrap();
    for help in ["--help", "-h"] {
        let output = Command::new(env!("CARGO_BIN_EXE_warden"))
            .current_dir(dir.path())
            .env_clear()
            .env("DATABASE_URL", "postgres://u:secret@h/db")
            .arg(help)
            .output()
            .unwrap();
        assert!(output.status.success());
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(printed.contains("DATABASE_URL"), "{printed}");
        for leak in [
            "u:secret@",
            "secret@h",
            "postgres://u",
            "a-dotenv-signing-key",
        ] {
            assert!(
                !printed.contains(leak),
                "{help} printed {leak:?}:\n{printed}"
            );
        }
    }
}

#[test]
fn check_config_says_what_is_wrong_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run(dir.path(), &[], &["check-config"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("configuration ok"), "{stdout}");
    assert!(stdout.contains("will be created"), "{stdout}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "check-config created files"
    );

    let stderr = refused(
        dir.path(),
        &[("JWT_SECRET", "too-short")],
        &["check-config"],
        "at least 32 bytes",
    );
    assert!(!stderr.contains("too-short"), "the secret was printed");

    let unreachable = [
        (
            "DATABASE_URL",
            "postgres://warden:hunter2@127.0.0.1:1/warden",
        ),
        ("JWT_SECRET", "a-check-config-secret-of-more-than-32-bytes"),
    ];
    let stderr = refused(
        dir.path(),
        &unreachable,
        &["check-config"],
        "cannot connect to PostgreSQL",
    );
    assert!(
        !stderr.contains("hunter2"),
        "the database password was printed"
    );

    refused(
        dir.path(),
        &[("CORS_ALLOWED_ORIGINS", "app.example.com")],
        &["check-config"],
        "is not an origin",
    );
}

#[test]
fn help_shows_examples() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, _) = run(dir.path(), &[], &["--help"]);
    assert!(ok);
    for example in [
        "warden migrate",
        "warden serve --no-migrate",
        "warden check-config",
    ] {
        assert!(stdout.contains(example), "{stdout}");
    }
}

#[test]
fn email_settings_that_cannot_work_refuse_to_start_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let serve = [("WARDEN_ADDR", "127.0.0.1:0")];
    let require = [serve[0], ("REQUIRE_VERIFIED_EMAIL", "true")];
    refused(
        dir.path(),
        &require,
        &[],
        "REQUIRE_VERIFIED_EMAIL=true needs SMTP_URL",
    );

    let no_sender = [
        serve[0],
        (
            "SMTP_URL",
            "smtps://warden:hunter22-secret@mail.example.com",
        ),
    ];
    let stderr = refused(dir.path(), &no_sender, &[], "MAIL_FROM");
    assert!(
        !stderr.contains("hunter22"),
        "the SMTP password reached the log"
    );

    let from = ("MAIL_FROM", "Warden <no-reply@example.com>");
    let root_without_url = [serve[0], ("SMTP_ROOT_CERT", "/etc/hostname")];
    refused(
        dir.path(),
        &root_without_url,
        &[],
        "SMTP_ROOT_CERT is set but SMTP_URL is not",
    );
    let missing_root = [
        no_sender[1],
        from,
        ("SMTP_ROOT_CERT", "/nonexistent/ca.pem"),
    ];
    let stderr = refused(
        dir.path(),
        &missing_root,
        &["check-config"],
        "cannot read SMTP_ROOT_CERT /nonexistent/ca.pem",
    );
    assert!(!stderr.contains("hunter22"), "{stderr}");
}

/// `check-config` reaches the mail server, and reports one it cannot reach without refusing:
/// `serve` would start, and mail would wait in the outbox.
#[tokio::test(flavor = "multi_thread")]
async fn check_config_says_whether_the_mail_server_answers() {
    let dir = tempfile::tempdir().unwrap();
    let catcher = MailCatcher::start().await;
    let from = ("MAIL_FROM", "Warden <no-reply@example.com>");
    let (ok, stdout, stderr) = run(
        dir.path(),
        &[("SMTP_URL", &catcher.url()), from],
        &["check-config"],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("email: on; the mail server (SMTP_URL) answered"),
        "{stdout}"
    );

    // The discard port, where nobody listens.
    let down = ("SMTP_URL", "smtp://warden:hunter22-secret@127.0.0.1:9");
    let (ok, stdout, stderr) = run(dir.path(), &[down, from], &["check-config"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("the mail server (SMTP_URL) cannot be reached now"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter22") && !stderr.contains("hunter22"));
}
