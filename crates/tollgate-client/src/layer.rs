//! [`ClientAuthLayer`]: adds a credential to every outgoing request of a tower HTTP client
//! (`reqwest::Client`, hyper-util's client, any `Service<http::Request<B>>`).

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::TokenSource;
use crate::dpop::{DPOP, DPOP_NONCE};

/// The error type of [`ClientAuthService`]: the inner client's error, or a
/// [`TokenError`](crate::TokenError) (downcast it) when no token could be had.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone)]
enum Credential {
    Token {
        source: TokenSource,
        audience: Option<Arc<str>>,
        scope: Option<Arc<str>>,
    },
    ApiKey {
        header: HeaderName,
        value: HeaderValue,
    },
}

/// Adds a credential to outgoing requests: a client-credentials bearer token, or a static API
/// key.
///
/// With tokens: a request is never sent without one (a token failure fails the request with a
/// [`TokenError`](crate::TokenError)); a `401` answer with `error="invalid_token"` makes it
/// fetch a new token and send the request once more, when the request can be replayed.
///
/// Over a tonic `Channel` (feature `tonic`), every gRPC call gets the token; a gRPC refusal
/// comes back as an HTTP 200 with `grpc-status`, and a call is never replayed, so there is no
/// refresh-and-retry there.
///
/// ```no_run
/// use tower::{ServiceBuilder, ServiceExt};
/// use tollgate_client::{ClientAuthLayer, ClientCredentials, TokenSource};
///
/// # async fn run() -> Result<(), tollgate_client::BoxError> {
/// let tokens = TokenSource::new(
///     ClientCredentials::new("orders-service")
///         .secret_basic(std::env::var("CLIENT_SECRET")?)
///         .discover("https://login.example.com"),
/// );
/// let client = ServiceBuilder::new()
///     .layer(ClientAuthLayer::token(tokens).audience("https://billing.internal").scope("invoices:read"))
///     .service(reqwest::Client::new());
/// let request = reqwest::Request::new(reqwest::Method::GET, "https://billing.internal/invoices".parse()?);
/// let response: reqwest::Response = client.oneshot(request).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientAuthLayer {
    credential: Credential,
}

impl fmt::Debug for ClientAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.credential {
            Credential::Token {
                audience, scope, ..
            } => f
                .debug_struct("ClientAuthLayer")
                .field("audience", audience)
                .field("scope", scope)
                .finish_non_exhaustive(),
            Credential::ApiKey { header, .. } => f
                .debug_struct("ClientAuthLayer")
                .field("api_key_header", header)
                .finish_non_exhaustive(),
        }
    }
}

impl ClientAuthLayer {
    /// Bearer tokens from `source` (no audience and no scope unless set).
    pub fn token(source: TokenSource) -> Self {
        ClientAuthLayer {
            credential: Credential::Token {
                source,
                audience: None,
                scope: None,
            },
        }
    }

    /// A static API key in `header` (kept out of `Debug`, marked sensitive).
    pub fn api_key(header: HeaderName, mut value: HeaderValue) -> Self {
        value.set_sensitive(true);
        ClientAuthLayer {
            credential: Credential::ApiKey { header, value },
        }
    }

    /// The audience (or resource) tokens are requested for (default: none).
    pub fn audience(mut self, audience: impl AsRef<str>) -> Self {
        if let Credential::Token { audience: a, .. } = &mut self.credential {
            *a = Some(audience.as_ref().into());
        }
        self
    }

    /// The scopes tokens are requested with, space-separated (default: none).
    pub fn scope(mut self, scope: impl AsRef<str>) -> Self {
        if let Credential::Token { scope: s, .. } = &mut self.credential {
            *s = Some(scope.as_ref().into());
        }
        self
    }
}

impl<S> Layer<S> for ClientAuthLayer {
    type Service = ClientAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientAuthService {
            inner,
            credential: self.credential.clone(),
        }
    }
}

/// The service made by [`ClientAuthLayer`].
#[derive(Clone)]
pub struct ClientAuthService<S> {
    inner: S,
    credential: Credential,
}

impl<S> fmt::Debug for ClientAuthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuthService").finish_non_exhaustive()
    }
}

/// An outgoing request the layer can add a header to and, when possible, replay.
pub trait OutgoingRequest: Sized {
    /// The headers.
    fn headers_mut(&mut self) -> &mut HeaderMap;
    /// The method (a DPoP proof's `htm`).
    fn method(&self) -> &Method;
    /// The absolute URL (a DPoP proof's `htu`, and the server whose nonce it carries).
    fn url(&self) -> String;
    /// A copy to send again, or `None` when the body cannot be replayed (a stream).
    fn try_clone(&self) -> Option<Self>;
}

/// A response the layer can read the status and challenge of.
pub trait IncomingResponse {
    /// The status.
    fn status(&self) -> StatusCode;
    /// The headers.
    fn headers(&self) -> &HeaderMap;
}

/// Request bodies that can be sent twice.
pub trait ReplayBody: Sized {
    /// A copy, or `None` if this body cannot be replayed.
    fn replay(&self) -> Option<Self>;
}

macro_rules! replay_by_clone {
    ($($t:ty),*) => {$(
        impl ReplayBody for $t {
            fn replay(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}

replay_by_clone!(
    (),
    String,
    Vec<u8>,
    Bytes,
    http_body_util::Full<Bytes>,
    http_body_util::Empty<Bytes>
);

/// tonic's request body is a stream: a gRPC call is sent once, never replayed.
#[cfg(feature = "tonic")]
impl ReplayBody for tonic::body::Body {
    fn replay(&self) -> Option<Self> {
        None
    }
}

impl<B: ReplayBody> OutgoingRequest for http::Request<B> {
    fn headers_mut(&mut self) -> &mut HeaderMap {
        http::Request::headers_mut(self)
    }

    fn method(&self) -> &Method {
        http::Request::method(self)
    }

    fn url(&self) -> String {
        self.uri().to_string()
    }

    fn try_clone(&self) -> Option<Self> {
        let mut copy = http::Request::new(self.body().replay()?);
        *copy.method_mut() = self.method().clone();
        *copy.uri_mut() = self.uri().clone();
        *copy.version_mut() = self.version();
        *copy.headers_mut() = self.headers().clone();
        Some(copy)
    }
}

impl OutgoingRequest for reqwest::Request {
    fn headers_mut(&mut self) -> &mut HeaderMap {
        reqwest::Request::headers_mut(self)
    }

    fn method(&self) -> &Method {
        reqwest::Request::method(self)
    }

    fn url(&self) -> String {
        reqwest::Request::url(self).to_string()
    }

    fn try_clone(&self) -> Option<Self> {
        reqwest::Request::try_clone(self)
    }
}

impl<B> IncomingResponse for http::Response<B> {
    fn status(&self) -> StatusCode {
        http::Response::status(self)
    }

    fn headers(&self) -> &HeaderMap {
        http::Response::headers(self)
    }
}

impl IncomingResponse for reqwest::Response {
    fn status(&self) -> StatusCode {
        reqwest::Response::status(self)
    }

    fn headers(&self) -> &HeaderMap {
        reqwest::Response::headers(self)
    }
}

/// Whether the downstream service says our token is bad (RFC 6750 §3.1).
fn token_refused(res: &impl IncomingResponse) -> bool {
    res.status() == StatusCode::UNAUTHORIZED
        && res
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("invalid_token")))
}

/// Whether the answer is a `401 use_dpop_nonce` with the nonce the next proof must carry
/// (RFC 9449 §9).
fn nonce_requested(res: &impl IncomingResponse) -> bool {
    res.status() == StatusCode::UNAUTHORIZED
        && res.headers().contains_key(&DPOP_NONCE)
        && res
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains("use_dpop_nonce")))
}

impl Credential {
    /// Puts the credential on `req`: the token (with a fresh DPoP proof for this request
    /// when it is bound), or the API key.
    async fn apply<R: OutgoingRequest>(&self, req: &mut R) -> Result<(), BoxError> {
        match self {
            Credential::Token {
                source,
                audience,
                scope,
            } => {
                let token = source
                    .access_token(audience.as_ref(), scope.as_ref())
                    .await?;
                if token.bound
                    && let Some(key) = source.dpop_key()
                {
                    let url = req.url();
                    let proof =
                        key.proof_header(req.method().as_str(), &url, Some(token.token()))?;
                    req.headers_mut().insert(DPOP, proof);
                }
                req.headers_mut().insert(AUTHORIZATION, token.value);
            }
            Credential::ApiKey { header, value } => {
                req.headers_mut().insert(header.clone(), value.clone());
            }
        }
        Ok(())
    }
}

impl<S, R> Service<R> for ClientAuthService<S>
where
    R: OutgoingRequest + Send + 'static,
    S: Service<R> + Clone + Send + 'static,
    S::Response: IncomingResponse + Send,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: R) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let credential = self.credential.clone();
        Box::pin(async move {
            credential.apply(&mut req).await?;
            let replay = match &credential {
                Credential::Token { .. } => req.try_clone(),
                Credential::ApiKey { .. } => None,
            };
            let res = inner.call(req).await.map_err(Into::into)?;
            let (
                Some(mut again),
                Credential::Token {
                    source,
                    audience,
                    scope,
                },
            ) = (replay, &credential)
            else {
                return Ok(res);
            };
            if let Some(key) = source.dpop_key()
                && let Some(nonce) = res.headers().get(&DPOP_NONCE)
            {
                // Kept for the next proof to this server, whatever the answer.
                key.remember_nonce(&again.url(), nonce);
            }
            if nonce_requested(&res) {
                tracing::debug!("downstream asked for a DPoP nonce; retrying once with it");
            } else if token_refused(&res) {
                tracing::debug!(
                    "downstream refused the token; fetching a new one and retrying once"
                );
                source.invalidate(audience.as_ref(), scope.as_ref()).await;
            } else {
                return Ok(res);
            }
            credential.apply(&mut again).await?;
            poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            inner.call(again).await.map_err(Into::into)
        })
    }
}
