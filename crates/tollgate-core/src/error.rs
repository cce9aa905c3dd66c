//! [`AuthError`]: why a request was not authenticated, and the one place that decides its
//! HTTP status.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::{CredentialKind, Scopes};

/// What went wrong, in the terms of RFC 6750 §3.1 plus the two outcomes that are not the
/// client's fault or not about its credential (rate limits and outages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No credential at all: 401 with a bare challenge (RFC 6750 §3: no error code).
    MissingCredential,
    /// The request is malformed (two `Authorization` headers, a credential sent two ways,
    /// a bearer token outside the token68 charset): 400 `invalid_request`.
    InvalidRequest,
    /// The credential is present but not valid (unknown, expired, bad signature...):
    /// 401 `invalid_token`.
    InvalidToken,
    /// The credential is valid but does not carry the scopes the route needs:
    /// 403 `insufficient_scope`.
    InsufficientScope,
    /// The `DPoP` proof of a sender-constrained request is missing, malformed, replayed or
    /// for another request: 401 `invalid_dpop_proof` (RFC 9449 §7.1).
    InvalidDpopProof,
    /// The `DPoP` proof lacks the server's current nonce: 401 `use_dpop_nonce`, with a fresh
    /// nonce in the `DPoP-Nonce` header (RFC 9449 §8).
    UseDpopNonce,
    /// The credential is valid but over its rate limit or usage quota: 429.
    RateLimited,
    /// The service that verifies credentials (key service, IdP) could not be asked, or gave
    /// an answer that makes no sense: 503. Never the client's fault, so never a 401.
    Unavailable,
}

impl ErrorKind {
    /// The HTTP status for this kind. This is the only place a status is decided.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::MissingCredential
            | ErrorKind::InvalidToken
            | ErrorKind::InvalidDpopProof
            | ErrorKind::UseDpopNonce => StatusCode::UNAUTHORIZED,
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::InsufficientScope => StatusCode::FORBIDDEN,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The gRPC status code for this kind (gRPC's own status, carried in `grpc-status` of an
    /// HTTP 200): 16 `UNAUTHENTICATED` for a missing, malformed or bad credential, 7
    /// `PERMISSION_DENIED` for a missing scope, 8 `RESOURCE_EXHAUSTED` for a rate limit,
    /// 14 `UNAVAILABLE` for an outage. Decided here, beside the HTTP status.
    pub fn grpc_code(self) -> u16 {
        match self {
            ErrorKind::MissingCredential
            | ErrorKind::InvalidRequest
            | ErrorKind::InvalidToken
            | ErrorKind::InvalidDpopProof
            | ErrorKind::UseDpopNonce => 16,
            ErrorKind::InsufficientScope => 7,
            ErrorKind::RateLimited => 8,
            ErrorKind::Unavailable => 14,
        }
    }

    /// The RFC 6750 error code for the `WWW-Authenticate` challenge, if this kind has one.
    /// A missing credential has none (RFC 6750 §3), and neither have rate limits and outages,
    /// which are not challenges.
    pub fn challenge_code(self) -> Option<&'static str> {
        match self {
            ErrorKind::InvalidRequest => Some("invalid_request"),
            ErrorKind::InvalidToken => Some("invalid_token"),
            ErrorKind::InsufficientScope => Some("insufficient_scope"),
            ErrorKind::InvalidDpopProof => Some("invalid_dpop_proof"),
            ErrorKind::UseDpopNonce => Some("use_dpop_nonce"),
            ErrorKind::MissingCredential | ErrorKind::RateLimited | ErrorKind::Unavailable => None,
        }
    }

    /// The machine-readable code used in the JSON body (`"error"`).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::MissingCredential => "unauthorized",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unavailable => "temporarily_unavailable",
            other => other.challenge_code().unwrap_or("unauthorized"),
        }
    }

    /// The kind whose [`code`](Self::code) is `code`.
    pub fn from_code(code: &str) -> Option<Self> {
        [
            ErrorKind::MissingCredential,
            ErrorKind::InvalidRequest,
            ErrorKind::InvalidToken,
            ErrorKind::InsufficientScope,
            ErrorKind::InvalidDpopProof,
            ErrorKind::UseDpopNonce,
            ErrorKind::RateLimited,
            ErrorKind::Unavailable,
        ]
        .into_iter()
        .find(|kind| kind.code() == code)
    }
}

impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ErrorKind::from_code(&code).ok_or_else(|| serde::de::Error::custom("unknown error kind"))
    }
}

/// Why a request was not authenticated or not authorized.
///
/// Built only from fixed descriptions chosen by tollgate or by the code that rejects: a
/// credential is never part of an `AuthError`, so rendering or logging one cannot leak it.
/// Round-trips through serde (a shared verdict cache stores refusals).
///
/// ```
/// use tollgate_core::{AuthError, ErrorKind};
/// use http::StatusCode;
///
/// let err = AuthError::invalid_token("the token has expired");
/// assert_eq!(err.kind(), ErrorKind::InvalidToken);
/// assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(err.to_string(), "invalid_token: the token has expired");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{}: {}", .kind.code(), .description)]
pub struct AuthError {
    kind: ErrorKind,
    description: Cow<'static, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<Scopes>,
    /// Who refused, and the response headers the refusal owes the client: set on the way
    /// out, so not stored with a cached refusal. Boxed together: every
    /// `Result<Principal, AuthError>` is moved through the layer, and inline they made each
    /// move a `memcpy`.
    #[serde(skip)]
    extra: Option<Box<Extra>>,
}

/// The rarely set parts of an [`AuthError`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Extra {
    /// Who refused (kind and issuer), for metrics and traces.
    origin: Option<(CredentialKind, Option<Arc<str>>)>,
    /// Headers for the response (`DPoP-Nonce`).
    headers: HeaderMap,
}

impl AuthError {
    /// An error of `kind` with a human-readable description. The description must not contain
    /// the credential.
    pub fn new(kind: ErrorKind, description: impl Into<Cow<'static, str>>) -> Self {
        AuthError {
            kind,
            description: description.into(),
            retry_after: None,
            scope: None,
            extra: None,
        }
    }

    /// No credential was sent (401, bare challenge).
    pub fn missing_credential() -> Self {
        Self::new(ErrorKind::MissingCredential, "no credential was sent")
    }

    /// The request is malformed (400 `invalid_request`).
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidRequest, description)
    }

    /// The credential is not valid (401 `invalid_token`).
    pub fn invalid_token(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidToken, description)
    }

    /// The `DPoP` proof is not valid for this request (401 `invalid_dpop_proof`,
    /// RFC 9449 §7.1).
    pub fn invalid_dpop_proof(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidDpopProof, description)
    }

    /// The `DPoP` proof lacks the server's current nonce (401 `use_dpop_nonce`); `nonce`
    /// is sent in the `DPoP-Nonce` header, for the client to retry with (RFC 9449 §8).
    pub fn use_dpop_nonce(nonce: HeaderValue) -> Self {
        Self::new(
            ErrorKind::UseDpopNonce,
            "the DPoP proof must carry the nonce this server provides",
        )
        .with_header(HeaderName::from_static("dpop-nonce"), nonce)
    }

    /// The credential lacks `needed` (403 `insufficient_scope`, `scope="…"` in the challenge).
    pub fn insufficient_scope(needed: Scopes) -> Self {
        let mut err = Self::new(
            ErrorKind::InsufficientScope,
            "the credential does not grant the scope this request needs",
        );
        err.scope = Some(needed);
        err
    }

    /// Over a rate limit or quota (429); `retry_after` becomes the `Retry-After` header.
    pub fn rate_limited(
        description: impl Into<Cow<'static, str>>,
        retry_after: Option<Duration>,
    ) -> Self {
        let mut err = Self::new(ErrorKind::RateLimited, description);
        err.retry_after = retry_after;
        err
    }

    /// The verifier could not be reached or answered nonsense (503, `Retry-After`).
    pub fn unavailable(description: impl Into<Cow<'static, str>>, retry_after: Duration) -> Self {
        let mut err = Self::new(ErrorKind::Unavailable, description);
        err.retry_after = Some(retry_after);
        err
    }

    /// Adds a header to the refusal's response (set after the error format's own headers,
    /// replacing one of the same name).
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.extra
            .get_or_insert_default()
            .headers
            .insert(name, value);
        self
    }

    /// The headers added with [`with_header`](Self::with_header).
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.extra
            .as_ref()
            .map(|extra| &extra.headers)
            .filter(|headers| !headers.is_empty())
    }

    /// Sets the `Retry-After` hint.
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// Says which credential kind refused and, where it has one, the configured issuer:
    /// the labels of tollgate's decision metrics and the fields of its span. tollgate's
    /// authenticators set it; set it in yours with a configured issuer only (a label value
    /// must be bounded).
    ///
    /// ```
    /// use tollgate_core::{AuthError, CredentialKind};
    ///
    /// let err = AuthError::invalid_token("the token has expired")
    ///     .with_origin(CredentialKind::Jwt, Some("https://idp.example".into()));
    /// assert_eq!(err.credential_kind(), Some(CredentialKind::Jwt));
    /// assert_eq!(err.issuer(), Some("https://idp.example"));
    /// ```
    pub fn with_origin(mut self, kind: CredentialKind, issuer: Option<Arc<str>>) -> Self {
        self.extra.get_or_insert_default().origin = Some((kind, issuer));
        self
    }

    /// The credential kind that refused, if the authenticator said
    /// ([`with_origin`](Self::with_origin)).
    pub fn credential_kind(&self) -> Option<CredentialKind> {
        self.origin().map(|origin| origin.0)
    }

    pub(crate) fn origin(&self) -> Option<&(CredentialKind, Option<Arc<str>>)> {
        self.extra.as_ref()?.origin.as_ref()
    }

    /// The configured issuer that refused, if the authenticator said.
    pub fn issuer(&self) -> Option<&str> {
        self.origin()?.1.as_deref()
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status ([`ErrorKind::status`]).
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The human-readable description (never contains a credential).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// When the client may try again, for 429 and 503.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The scopes that were needed, for `insufficient_scope`.
    pub fn scope(&self) -> Option<&Scopes> {
        self.scope.as_ref()
    }
}
