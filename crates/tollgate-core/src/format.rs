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

    /// The HTTP status of the refusal: [`AuthError::status`] (the default, and the one to
    /// keep), unless the format speaks a protocol over HTTP that carries its status
    /// elsewhere, as gRPC does ([`GrpcStatus`]: 200, with `grpc-status` from
    /// [`ErrorKind::grpc_code`](crate::ErrorKind::grpc_code)).
    fn http_status(&self, error: &AuthError) -> http::StatusCode {
        error.status()
    }
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

/// Refusals as gRPC statuses (for tonic services): a trailers-only response, HTTP 200,
/// `content-type: application/grpc`, `grpc-status` from
/// [`ErrorKind::grpc_code`](crate::ErrorKind::grpc_code) (16 `UNAUTHENTICATED`, 7
/// `PERMISSION_DENIED`, 8 `RESOURCE_EXHAUSTED`, 14 `UNAVAILABLE`), and `grpc-message` the
/// error's description (and the needed scopes), percent-encoded as gRPC asks. The layer keeps
/// the RFC 6750 challenge in `www-authenticate` and `retry-after` as metadata.
///
/// ```
/// use tollgate_core::{AuthError, ErrorFormat, GrpcStatus, Scopes};
///
/// let res = GrpcStatus.render(&AuthError::insufficient_scope(Scopes::from(["orders:write"])));
/// assert_eq!(res.headers()["grpc-status"], "7");
/// assert_eq!(
///     res.headers()["grpc-message"],
///     "the credential does not grant the scope this request needs (needs: orders:write)"
/// );
/// assert_eq!(GrpcStatus.http_status(&AuthError::missing_credential()), 200);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcStatus;

impl ErrorFormat for GrpcStatus {
    fn render(&self, error: &AuthError) -> Response<Bytes> {
        let mut message = error.description().to_owned();
        if let Some(scope) = error.scope() {
            message.push_str(&format!(" (needs: {scope})"));
        }
        let mut res = Response::new(Bytes::new());
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from(error.kind().grpc_code()));
        if let Ok(value) = HeaderValue::from_str(&grpc_percent_encode(&message)) {
            headers.insert("grpc-message", value);
        }
        res
    }

    fn http_status(&self, _: &AuthError) -> http::StatusCode {
        http::StatusCode::OK
    }
}

/// gRPC's percent-encoding of `grpc-message`: visible ASCII but `%` as is, the rest `%XX`.
fn grpc_percent_encode(message: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
pub fn retry_after_value(after: Duration) -> HeaderValue {
    let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}
