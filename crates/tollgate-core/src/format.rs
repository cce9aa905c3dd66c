//! How an [`AuthError`] becomes a response body: the [`ErrorFormat`] seam, its default
//! [`Rfc6750`], and [`JsonEnvelope`] for an API's own JSON errors.

use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response};

use crate::AuthError;

/// Shapes the body of a refusal. Set one on the [`AuthLayer`](crate::AuthLayer) to answer in
/// your API's own error envelope; every tollgate refusal behind that layer (the layer itself,
/// scope layers, axum extractors) uses it.
///
/// A format shapes the body and may set headers; the layer then sets the status
/// ([`AuthError::status`], whatever the format says) and keeps the standard headers the
/// format did not set itself: `WWW-Authenticate` (the authenticator's challenges),
/// `Retry-After` (429 and 503), and `Content-Type` (`application/json` for a body that looks
/// like JSON, `text/plain` otherwise). Closures `Fn(&AuthError) -> Response<Bytes>` are
/// formats; for the common case, a JSON envelope, use [`JsonEnvelope`].
///
/// ```
/// use bytes::Bytes;
/// use http::Response;
/// use tollgate_core::{AuthError, ErrorFormat};
///
/// let plain = |err: &AuthError| Response::new(Bytes::from(err.description().to_owned()));
/// let res = plain.render(&AuthError::invalid_token("expired"));
/// assert_eq!(res.body(), "expired");
/// ```
pub trait ErrorFormat: Send + Sync + 'static {
    /// The response for `error`: its body, and any header the format sets itself.
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

/// The default format: the JSON body of RFC 6749 §5.2 / RFC 6750 §3,
/// `{"error": "...", "error_description": "..."}`, with the error codes of
/// [`ErrorKind::code`](crate::ErrorKind::code). The layer adds the challenge:
///
/// - no credential: `401`, `WWW-Authenticate: Bearer realm="api"` (no error code);
/// - bad credential: `401`, `Bearer realm="api", error="invalid_token", error_description="…"`;
/// - malformed request: `400`, `error="invalid_request"`;
/// - missing scope: `403`, `error="insufficient_scope", scope="a b"`;
/// - rate limited: `429` with `Retry-After`; verifier unreachable: `503` with `Retry-After`.
///
/// ```
/// use tollgate_core::{AuthError, ErrorFormat, Rfc6750};
///
/// let res = Rfc6750.render(&AuthError::invalid_token("the token has expired"));
/// assert_eq!(
///     res.body(),
///     r#"{"error":"invalid_token","error_description":"the token has expired"}"#
/// );
/// assert_eq!(res.headers()["content-type"], "application/json");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Rfc6750;

impl ErrorFormat for Rfc6750 {
    fn render(&self, error: &AuthError) -> Response<Bytes> {
        JsonEnvelope::new(|error: &AuthError| {
            serde_json::json!({
                "error": error.kind().code(),
                "error_description": error.description(),
            })
        })
        .render(error)
    }
}

/// A JSON error envelope from a closure: the body is the closure's value, `Content-Type` is
/// `application/json`, and the layer adds the status and standard headers as for any format.
///
/// ```
/// use tollgate_core::{AuthError, AuthLayer, ErrorFormat, JsonEnvelope};
///
/// let envelope = JsonEnvelope::new(|err: &AuthError| serde_json::json!({
///     "problem": { "code": err.kind().code(), "detail": err.description() }
/// }));
/// let res = envelope.render(&AuthError::invalid_token("expired"));
/// assert_eq!(res.body(), r#"{"problem":{"code":"invalid_token","detail":"expired"}}"#);
/// ```
#[derive(Clone)]
pub struct JsonEnvelope<F>(F);

impl<F> JsonEnvelope<F>
where
    F: Fn(&AuthError) -> serde_json::Value + Send + Sync + 'static,
{
    /// An envelope made by `f`.
    pub fn new(f: F) -> Self {
        JsonEnvelope(f)
    }
}

impl<F> ErrorFormat for JsonEnvelope<F>
where
    F: Fn(&AuthError) -> serde_json::Value + Send + Sync + 'static,
{
    fn render(&self, error: &AuthError) -> Response<Bytes> {
        let body = serde_json::to_vec(&(self.0)(error)).unwrap_or_default();
        let mut res = Response::new(Bytes::from(body));
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res
    }
}

impl<F> std::fmt::Debug for JsonEnvelope<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonEnvelope").finish_non_exhaustive()
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
pub fn retry_after_value(after: Duration) -> HeaderValue {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}
