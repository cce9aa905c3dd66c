//! How an [`AuthError`] becomes a response: the [`ErrorFormat`] seam and its default,
//! [`Rfc6750`].

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response};

use crate::AuthError;

/// Turns an [`AuthError`] into a response. Set one on the
/// [`AuthLayer`](crate::AuthLayer) to answer in your API's own error envelope; every tollgate
/// rejection behind that layer (the layer itself, scope layers, axum extractors) uses it.
///
/// The status must stay [`AuthError::status`]: that is where tollgate decides it. Closures
/// `Fn(&AuthError) -> Response<Bytes>` implement this trait.
///
/// ```
/// use bytes::Bytes;
/// use http::Response;
/// use tollgate_core::{AuthError, ErrorFormat, Rfc6750};
///
/// let rfc = Rfc6750::new().realm("orders");
/// let envelope = move |err: &AuthError| {
///     let mut res = Response::new(Bytes::from(format!(r#"{{"problem":"{}"}}"#, err.kind().code())));
///     *res.status_mut() = err.status();
///     if let Some(challenge) = rfc.challenge(err) {
///         res.headers_mut().insert(http::header::WWW_AUTHENTICATE, challenge);
///     }
///     res
/// };
/// let res = envelope.render(&AuthError::invalid_token("expired"));
/// assert_eq!(res.status(), 401);
/// assert_eq!(res.body(), &Bytes::from_static(br#"{"problem":"invalid_token"}"#));
/// ```
pub trait ErrorFormat: Send + Sync + 'static {
    /// The response for `error`.
    fn render(&self, error: &AuthError) -> Response<Bytes>;
}

impl<F> ErrorFormat for F
where
    F: Fn(&AuthError) -> Response<Bytes> + Send + Sync + 'static,
{
    fn render(&self, error: &AuthError) -> Response<Bytes> {
        self(error)
    }
}

/// The default format: RFC 6750 §3 challenges and a small JSON body
/// `{"error": "...", "error_description": "..."}`.
///
/// - no credential: `401`, `WWW-Authenticate: Bearer realm="api"` (no error code);
/// - bad credential: `401`, `Bearer realm="api", error="invalid_token", error_description="…"`;
/// - malformed request: `400`, `error="invalid_request"`;
/// - missing scope: `403`, `error="insufficient_scope", scope="a b"`;
/// - rate limited: `429` with `Retry-After`; verifier unreachable: `503` with `Retry-After`.
///
/// ```
/// use tollgate_core::{AuthError, ErrorFormat, Rfc6750, Scopes};
///
/// let res = Rfc6750::new().render(&AuthError::insufficient_scope(Scopes::from(["orders:write"])));
/// assert_eq!(res.status(), 403);
/// assert_eq!(
///     res.headers()["www-authenticate"],
///     r#"Bearer realm="api", error="insufficient_scope", error_description="the credential does not grant the scope this request needs", scope="orders:write""#
/// );
/// ```
#[derive(Debug, Clone)]
pub struct Rfc6750 {
    realm: Box<str>,
    resource_metadata: Option<Box<str>>,
}

impl Default for Rfc6750 {
    fn default() -> Self {
        Rfc6750 {
            realm: "api".into(),
            resource_metadata: None,
        }
    }
}

impl Rfc6750 {
    /// The default: realm `"api"`, no resource metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the `realm` of the challenge (default: `"api"`).
    pub fn realm(mut self, realm: impl Into<Box<str>>) -> Self {
        self.realm = realm.into();
        self
    }

    /// Adds `resource_metadata="<url>"` to every challenge (RFC 9728 §5.1; default: none).
    pub fn resource_metadata(mut self, url: impl Into<Box<str>>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// The `WWW-Authenticate` value for `error`, or `None` for errors that are not challenges
    /// (rate limits and outages). Useful to custom formats that keep RFC 6750 headers.
    pub fn challenge(&self, error: &AuthError) -> Option<HeaderValue> {
        if error.status() != 401 && error.status() != 403 && error.status() != 400 {
            return None;
        }
        let mut out = String::with_capacity(96);
        out.push_str("Bearer realm=");
        push_quoted(&mut out, &self.realm);
        if let Some(code) = error.kind().challenge_code() {
            out.push_str(", error=");
            push_quoted(&mut out, code);
            out.push_str(", error_description=");
            push_quoted(&mut out, error.description());
        }
        if let Some(scope) = error.scope() {
            out.push_str(", scope=");
            push_quoted(&mut out, &scope.to_string());
        }
        if let Some(url) = &self.resource_metadata {
            out.push_str(", resource_metadata=");
            push_quoted(&mut out, url);
        }
        HeaderValue::from_str(&out).ok()
    }
}

impl ErrorFormat for Rfc6750 {
    fn render(&self, error: &AuthError) -> Response<Bytes> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: &'static str,
            error_description: &'a str,
        }
        let body = serde_json::to_vec(&Body {
            error: error.kind().code(),
            error_description: error.description(),
        })
        .unwrap_or_default();
        let mut res = Response::new(Bytes::from(body));
        *res.status_mut() = error.status();
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(challenge) = self.challenge(error) {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        if let Some(after) = error.retry_after() {
            headers.insert(RETRY_AFTER, retry_after_value(after));
        }
        res
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
pub fn retry_after_value(after: Duration) -> HeaderValue {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}

/// Appends `value` as an RFC 9110 quoted-string. Characters RFC 6750 §3 does not allow in
/// auth-param values (`"`, `\`, controls, non-ASCII) are dropped rather than escaped, so the
/// result is valid under both grammars.
fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    out.extend(
        value
            .chars()
            .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\'),
    );
    out.push('"');
}
