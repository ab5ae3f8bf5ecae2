//! The token endpoint's form, parsed by OAuth2's rules rather than by poem's `Form<T>`: a
//! repeated field, a value that is not UTF-8 and a wrong content type are all `invalid_request`
//! (400, RFC 6749 body), an empty value counts as absent (section 3.1), and unknown fields are
//! ignored. Its OpenAPI description comes from [`TokenRequestForm`].

use std::collections::HashMap;
use std::marker::PhantomData;

use percent_encoding::percent_decode;
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, Object};

use super::{LoginResponse, OAuthErrorBody};

/// The largest form accepted, as for every other body.
const MAX_FORM_BYTES: usize = 64 * 1024;
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// What an OAuth2 form endpoint accepts: its fields, and a type that describes them in the
/// OpenAPI document (the endpoint parses the form itself; see the module's doc).
pub trait FormSchema: Type + Send + Sync + 'static {
    /// The fields the endpoint knows. Only these are checked for repetition: unknown ones are
    /// ignored altogether (RFC 6749 section 3.2).
    const FIELDS: &'static [&'static str];
}

/// An OAuth2 token request, `application/x-www-form-urlencoded`.
#[derive(Debug, Object)]
#[oai(rename = "TokenRequest")]
pub struct TokenRequestForm {
    /// `password` (the default when absent), `refresh_token`, or
    /// `urn:warden:params:oauth:grant-type:mfa-otp` (the second step of a login with a second
    /// factor).
    grant_type: Option<String>,
    /// Password grant: the account's email.
    username: Option<String>,
    /// Password grant: the account's password, at most 1024 bytes.
    #[oai(validator(max_length = 1024))]
    password: Option<String>,
    /// Refresh grant: the refresh token of the last answer. It is spent by this request;
    /// presenting it again ends the session.
    refresh_token: Option<String>,
    /// Space-separated scopes to request: `profile`, `posts:read`, `posts:write`, `admin`.
    /// Password grant: absent means every scope the account may hold; scopes it may not hold
    /// are dropped. Refresh grant: absent means the scopes of the login; more is `invalid_scope`.
    scope: Option<String>,
    /// The client asking (1 to 64 visible ASCII characters), recorded in the session and in
    /// every access token of the login (`client_id` claim); `warden` when absent.
    client_id: Option<String>,
    /// Accepted and ignored.
    client_secret: Option<String>,
    /// A TOTP code (6 digits) or a recovery code. Password grant: for an account with a second
    /// factor, logs in in one step (without it the answer is `mfa_required`). `mfa-otp` grant:
    /// required.
    otp: Option<String>,
    /// `mfa-otp` grant: the `mfa_token` of the `mfa_required` answer.
    mfa_token: Option<String>,
}

impl FormSchema for TokenRequestForm {
    const FIELDS: &'static [&'static str] = &[
        "grant_type",
        "username",
        "password",
        "scope",
        "refresh_token",
        "client_id",
        "client_secret",
        "otp",
        "mfa_token",
    ];
}

/// The fields of an OAuth2 form, parsed by OAuth2's rules; `S` names and describes them.
pub struct OAuthForm<S>(HashMap<String, String>, PhantomData<S>);

impl<S> std::fmt::Debug for OAuthForm<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values hold passwords and tokens.
        f.debug_struct("OAuthForm").finish_non_exhaustive()
    }
}

/// A token request (`/login`, `/token`).
pub type TokenRequest = OAuthForm<TokenRequestForm>;

impl<S: FormSchema> OAuthForm<S> {
    pub(crate) fn parse(body: &[u8]) -> Result<Self, LoginResponse> {
        let mut fields = HashMap::new();
        let mut seen = Vec::new();
        for pair in body
            .split(|byte| *byte == b'&')
            .filter(|pair| !pair.is_empty())
        {
            let (raw_name, raw_value) = match pair.iter().position(|byte| *byte == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            let name = form_decode(raw_name)?;
            if !S::FIELDS.contains(&name.as_str()) {
                continue;
            }
            if seen.contains(&name) {
                return Err(LoginResponse::invalid_request(format!(
                    "the {name} parameter is repeated"
                )));
            }
            seen.push(name.clone());
            let value = form_decode(raw_value)?;
            if !value.is_empty() {
                fields.insert(name, value);
            }
        }
        Ok(Self(fields, PhantomData))
    }

    pub(crate) fn optional(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub(crate) fn required(&self, name: &str) -> Result<&str, LoginResponse> {
        self.optional(name)
            .ok_or_else(|| LoginResponse::BadRequest(OAuthErrorBody::missing(name)))
    }
}

/// Decodes one `application/x-www-form-urlencoded` name or value, refusing anything that does
/// not decode to UTF-8 (a lossy decoding would quietly log somebody in with another password).
fn form_decode(raw: &[u8]) -> Result<String, LoginResponse> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&byte| if byte == b'+' { b' ' } else { byte })
        .collect();
    percent_decode(&spaced)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| LoginResponse::invalid_request("the form is not valid UTF-8"))
}

impl<'a, S: FormSchema> ApiExtractor<'a> for OAuthForm<S> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        S::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: FORM_CONTENT_TYPE,
                schema: S::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let is_form = request
            .content_type()
            .and_then(|value| value.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(FORM_CONTENT_TYPE));
        if !is_form {
            return Err(LoginResponse::invalid_request(format!(
                "the content type must be {FORM_CONTENT_TYPE}"
            ))
            .into());
        }
        let bytes = body.take()?.into_bytes_limit(MAX_FORM_BYTES).await?;
        Ok(Self::parse(&bytes)?)
    }
}
