//! [`MailSender`] over SMTP (lettre), with messages rendered from the templates in
//! `templates/mail` (minijinja): a text part and an HTML part, each with the token and, when
//! `PUBLIC_URL` is set, a link carrying it.
//!
//! The link puts the token in the URL's fragment (`#token=...`), which browsers never send to a
//! server: it stays out of access logs and `Referer` headers. The front end at `PUBLIC_URL`
//! serves the pages (`/reset-password`, `/verify-email`, `/confirm-email-change`) and posts the
//! token to the API.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use minijinja::{Environment, context};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use secrecy::{ExposeSecret, SecretString};
use warden_domain::mail::{EmailTokenLifetimes, MailKind, MailSender, MailToken, OutgoingMail};

/// Where and how mail is sent.
#[derive(Debug)]
pub struct SmtpConfig {
    /// `smtps://` (TLS), `smtp://...?tls=required` (STARTTLS), `smtp://...?tls=opportunistic`,
    /// or plain `smtp://` for a local catcher; with `user:password@` when the server wants a
    /// login.
    pub url: SecretString,
    /// `SMTP_ROOT_CERT`'s contents: PEM certificates to trust for the server's TLS instead of
    /// the system's roots, for a relay with a private certificate authority.
    pub root_certificates: Option<Vec<u8>>,
    /// `MAIL_FROM`: `Warden <no-reply@example.com>` or a bare address.
    pub from: String,
    /// `PUBLIC_URL`, for links.
    pub public_url: Option<String>,
    /// How long each exchange with the server may take.
    pub timeout: Duration,
    /// For telling the reader how long a token lasts.
    pub lifetimes: EmailTokenLifetimes,
}

/// Sends mail through one SMTP server.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: Option<String>,
    lifetimes: EmailTokenLifetimes,
    templates: Environment<'static>,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// The templates, `<kind>.txt` and `<kind>.html`; HTML is escaped by minijinja.
const TEMPLATES: [(&str, &str); 8] = [
    (
        "password_reset.txt",
        include_str!("../templates/mail/password_reset.txt"),
    ),
    (
        "password_reset.html",
        include_str!("../templates/mail/password_reset.html"),
    ),
    (
        "email_verification.txt",
        include_str!("../templates/mail/email_verification.txt"),
    ),
    (
        "email_verification.html",
        include_str!("../templates/mail/email_verification.html"),
    ),
    (
        "email_change.txt",
        include_str!("../templates/mail/email_change.txt"),
    ),
    (
        "email_change.html",
        include_str!("../templates/mail/email_change.html"),
    ),
    (
        "email_change_notice.txt",
        include_str!("../templates/mail/email_change_notice.txt"),
    ),
    (
        "email_change_notice.html",
        include_str!("../templates/mail/email_change_notice.html"),
    ),
];

impl SmtpMailer {
    /// A mailer for `config`. Connects to nothing yet: each send opens its own connection.
    ///
    /// # Errors
    ///
    /// The URL, the root certificates or the sender's address is malformed, or root
    /// certificates are given for a URL without TLS (the error never shows the URL, which may
    /// hold a password).
    pub fn new(config: SmtpConfig) -> anyhow::Result<Self> {
        let url = config.url.expose_secret();
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|err| {
                anyhow::anyhow!(
                    "SMTP_URL is not a valid smtp:// or smtps:// URL ({})",
                    err.to_string().replace(url, "...")
                )
            })?
            .timeout(Some(config.timeout));
        if let Some(pem) = &config.root_certificates {
            transport = transport.tls(tls_trusting(url, pem)?);
        }
        let transport = transport.build();
        let from = config
            .from
            .parse::<Mailbox>()
            .with_context(|| format!("MAIL_FROM {:?} is not an email address", config.from))?;
        let mut templates = Environment::new();
        for (name, source) in TEMPLATES {
            templates
                .add_template(name, source)
                .with_context(|| format!("mail template {name} is invalid"))?;
        }
        Ok(Self {
            transport,
            from,
            public_url: config.public_url,
            lifetimes: config.lifetimes,
            templates,
        })
    }

    /// Reaches the mail server as a send would (TLS and login included) and says `NOOP`.
    ///
    /// # Errors
    ///
    /// The server cannot be reached, refused the TLS or the login, or did not answer.
    pub async fn check_connection(&self) -> anyhow::Result<()> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => bail!("the mail server did not answer NOOP"),
            Err(err) => bail!("{err}"),
        }
    }

    /// `mail` as a message: subject, text and HTML.
    ///
    /// # Errors
    ///
    /// A template failed to render, or the recipient is not a valid mailbox for lettre.
    pub fn message(&self, mail: &OutgoingMail) -> anyhow::Result<Message> {
        let (subject, page) = match mail.kind {
            MailKind::PasswordReset => ("Reset your Warden password", "reset-password"),
            MailKind::EmailVerification => ("Verify your email address", "verify-email"),
            MailKind::EmailChange => ("Confirm your new email address", "confirm-email-change"),
            MailKind::EmailChangeNotice => ("Your email address is being changed", ""),
        };
        let token = mail.token.as_ref().map(MailToken::expose);
        let link = match (&self.public_url, token) {
            (Some(base), Some(token)) => Some(format!("{base}/{page}#token={token}")),
            _ => None,
        };
        let values = context! {
            to => mail.to.as_str(),
            token => token,
            link => link,
            minutes => self.lifetimes.password_reset.num_minutes(),
            hours => self.lifetimes.verification.num_hours(),
        };
        let render = |extension: &str| {
            let name = format!("{}.{extension}", mail.kind.as_str());
            self.templates
                .get_template(&name)
                .and_then(|template| template.render(&values))
                .with_context(|| format!("cannot render mail template {name}"))
        };
        // An address, not a mailbox: a mailbox's text may carry a display name, which an
        // account's address never does.
        let to = mail
            .to
            .as_str()
            .parse::<lettre::Address>()
            .map(|address| Mailbox::new(None, address))
            .context("the recipient is not an address lettre accepts")?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .multipart(MultiPart::alternative_plain_html(
                render("txt")?,
                render("html")?,
            ))
            .context("cannot build a mail")
    }
}

#[async_trait]
impl MailSender for SmtpMailer {
    async fn send(&self, mail: &OutgoingMail) -> anyhow::Result<()> {
        let message = self.message(mail)?;
        // lettre's errors name the server's answer or the connection's failure, never the body.
        // Their text already holds their sources, which a chain would print again.
        self.transport
            .send(message)
            .await
            .map_err(|err| anyhow::anyhow!("the mail server did not take the mail: {err}"))?;
        Ok(())
    }
}

/// The TLS of `url` (already checked by lettre) with `pem`'s certificates as its only roots.
fn tls_trusting(url: &str, pem: &[u8]) -> anyhow::Result<Tls> {
    let url = url::Url::parse(url).context("SMTP_URL is not a valid URL")?;
    let mode = url
        .query_pairs()
        .find_map(|(name, value)| (name == "tls").then_some(value));
    let tls: fn(TlsParameters) -> Tls = match (url.scheme(), mode.as_deref()) {
        ("smtps", _) => Tls::Wrapper,
        ("smtp", Some("required")) => Tls::Required,
        ("smtp", Some("opportunistic")) => Tls::Opportunistic,
        _ => bail!(
            "SMTP_ROOT_CERT is set but SMTP_URL uses no TLS: use smtps:// or \
             smtp://...?tls=required"
        ),
    };
    let host = url.host_str().context("SMTP_URL has no host")?;
    let mut parameters =
        TlsParameters::builder(host.to_owned()).certificate_store(CertificateStore::None);
    let mut roots = 0;
    for certificate in CertificateDer::pem_slice_iter(pem) {
        let certificate = certificate.context("SMTP_ROOT_CERT is not a valid PEM file")?;
        parameters = parameters.add_root_certificate(Certificate::from_der(certificate.to_vec())?);
        roots += 1;
    }
    ensure!(roots > 0, "SMTP_ROOT_CERT holds no PEM certificate");
    let parameters = parameters
        .build_rustls()
        .context("SMTP_ROOT_CERT holds a certificate that cannot be a root")?;
    Ok(tls(parameters))
}

#[cfg(test)]
mod tests {
    use warden_domain::accounts::EmailAddress;

    use super::*;

    fn config(url: &str, root_certificates: Option<&[u8]>) -> SmtpConfig {
        SmtpConfig {
            url: SecretString::from(url),
            root_certificates: root_certificates.map(<[u8]>::to_vec),
            from: "Warden <no-reply@example.com>".to_owned(),
            public_url: None,
            timeout: Duration::from_secs(5),
            lifetimes: EmailTokenLifetimes::default(),
        }
    }

    fn mailer(public_url: Option<&str>) -> SmtpMailer {
        SmtpMailer::new(SmtpConfig {
            public_url: public_url.map(str::to_owned),
            ..config("smtp://127.0.0.1:2525", None)
        })
        .unwrap()
    }

    /// The decoded text and HTML parts of the message for `mail`.
    fn parts(mailer: &SmtpMailer, kind: MailKind, token: Option<&str>) -> (String, String) {
        let mail = OutgoingMail {
            kind,
            to: EmailAddress::new("ann@example.com").unwrap(),
            token: token.map(|token| MailToken::new(token.to_owned())),
        };
        let raw = mailer.message(&mail).unwrap().formatted();
        let parsed = mailparse::parse_mail(&raw).unwrap();
        let part = |mime: &str| {
            parsed
                .subparts
                .iter()
                .find(|part| part.ctype.mimetype == mime)
                .unwrap_or_else(|| panic!("{kind:?} has no {mime} part"))
                .get_body()
                .unwrap()
        };
        // minijinja escapes `/` in HTML, as `&#x2f;`, which browsers read back as `/`.
        (part("text/plain"), part("text/html").replace("&#x2f;", "/"))
    }

    #[test]
    fn every_address_an_account_may_have_can_be_mailed() {
        let mailer = mailer(None);
        for raw in [
            "ann@example.com",
            "Ann.Smith+warden@Mail.Example.COM",
            "o'brien@example.ie",
            "a!#$%&*/=?^_`{|}~-@example.com",
            "ann@xn--bcher-kva.example",
            "ann@bücher.example",
        ] {
            let mail = OutgoingMail {
                kind: MailKind::EmailChangeNotice,
                to: EmailAddress::new(raw).unwrap(),
                token: None,
            };
            let message = mailer.message(&mail);
            assert!(message.is_ok(), "{raw}: {:?}", message.err());
        }
    }

    #[test]
    fn every_kind_renders_with_its_token_in_both_parts() {
        let mailer = mailer(Some("https://app.example.com"));
        let token = "tok-123_ABC-a-token-long-enough-to-wrap-lines-xyz";
        for kind in MailKind::ALL {
            let with_token = (kind != MailKind::EmailChangeNotice).then_some(token);
            let (text, html) = parts(&mailer, kind, with_token);
            for part in [&text, &html] {
                assert!(part.contains("ann@example.com"), "{kind:?}: {part}");
                if with_token.is_some() {
                    // The token, and the link that carries it.
                    assert_eq!(part.matches(token).count(), 2, "{kind:?}: {part}");
                    assert!(
                        part.contains("https://app.example.com/"),
                        "{kind:?}: {part}"
                    );
                    assert!(
                        part.contains(&format!("#token={token}")),
                        "{kind:?}: {part}"
                    );
                } else {
                    assert!(!part.contains("token"), "{kind:?}: {part}");
                }
            }
        }
    }

    #[test]
    fn without_a_public_url_there_is_no_link() {
        let (text, html) = parts(&mailer(None), MailKind::PasswordReset, Some("tok-123_ABC"));
        for part in [text, html] {
            assert_eq!(part.matches("tok-123_ABC").count(), 1, "{part}");
            assert!(!part.contains("href"), "{part}");
            assert!(part.contains("30 minutes"), "{part}");
        }
    }

    #[test]
    fn a_malformed_url_is_refused_without_showing_it() {
        let err =
            SmtpMailer::new(config("ftp://user:hunter22@mail.example.com", None)).unwrap_err();
        assert!(!format!("{err:#}").contains("hunter22"), "{err:#}");
    }

    /// Root certificates that cannot be used are refused at start, not at the first send.
    /// (`cargo xtask tls` checks that good ones are trusted, against real TLS servers.)
    #[test]
    fn unusable_root_certificates_are_refused() {
        let url = "smtps://user:hunter22@mail.example.com";
        let refused = [
            (url, &b"not a certificate"[..], "holds no PEM certificate"),
            (
                url,
                b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
                "not a valid PEM file",
            ),
            (
                url,
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "cannot be a root",
            ),
            (
                "smtp://user:hunter22@mail.example.com:25",
                &b""[..],
                "SMTP_URL uses no TLS",
            ),
        ];
        for (url, pem, reason) in refused {
            let err = SmtpMailer::new(config(url, Some(pem))).unwrap_err();
            let err = format!("{err:#}");
            assert!(err.contains(reason), "{url}, {pem:?}: {err}");
            assert!(!err.contains("hunter22"), "{err}");
        }
    }
}
