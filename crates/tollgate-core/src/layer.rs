//! [`AuthLayer`] and [`AuthService`]: authenticate every request with an [`Authenticator`]
//! before the inner service sees it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, header};
use tower_layer::Layer;
use tower_service::Service;

use crate::settings::SettingsHandle;
use crate::{AuthSettings, Authenticator, ErrorFormat, ErrorKind, ScopePolicy};

/// A tower layer that authenticates requests with an [`Authenticator`].
///
/// On success the [`Principal`](crate::Principal) goes into the request extensions and the
/// inner service is called. On failure the error is answered in the configured
/// [`ErrorFormat`] and the inner service is never called.
///
/// Works with any `Service<http::Request<B>, Response = http::Response<R>>` whose response
/// body can be made from [`Bytes`] (axum's `Body`, `http_body_util::Full<Bytes>`, ...).
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use tower::{ServiceBuilder, ServiceExt};
/// use tollgate_core::{AuthError, AuthLayer, Authenticator, Principal};
/// # struct Nobody;
/// # impl Authenticator for Nobody {
/// #     async fn authenticate(&self, _: &http::request::Parts) -> Result<Principal, AuthError> {
/// #         Err(AuthError::missing_credential())
/// #     }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = ServiceBuilder::new()
///     .layer(AuthLayer::new(Nobody))
///     .service_fn(|_req: Request<()>| async {
///         Ok::<_, Infallible>(Response::new(Bytes::from("secret")))
///     });
/// let res = service.oneshot(Request::new(())).await.unwrap();
/// assert_eq!(res.status(), 401);
/// assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="api""#);
/// # }
/// ```
pub struct AuthLayer<A> {
    authenticator: Arc<A>,
    options: Options,
    settings: Option<Arc<AuthSettings>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Options {
    optional: bool,
    strip_credentials: bool,
    allow_cors_preflight: bool,
}

/// What every clone of one [`AuthService`] shares.
struct Shared<A> {
    authenticator: Arc<A>,
    options: Options,
    settings: Option<Arc<AuthSettings>>,
}

impl<A> Clone for AuthLayer<A> {
    fn clone(&self) -> Self {
        AuthLayer {
            authenticator: self.authenticator.clone(),
            options: self.options,
            settings: self.settings.clone(),
        }
    }
}

impl<A> fmt::Debug for AuthLayer<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<A: Authenticator> AuthLayer<A> {
    /// Requires every request to be authenticated by `authenticator`.
    pub fn new(authenticator: A) -> Self {
        AuthLayer {
            authenticator: Arc::new(authenticator),
            options: Options::default(),
            settings: None,
        }
    }

    /// The authenticator, for its own controls (an API-key cache's `stats()` or
    /// `invalidate()`, say).
    pub fn authenticator(&self) -> &A {
        &self.authenticator
    }

    fn with_settings(mut self, f: impl FnOnce(&mut AuthSettings)) -> Self {
        let settings = self.settings.get_or_insert_with(Default::default);
        f(Arc::make_mut(settings));
        self
    }

    /// Lets requests that carry **no** credential through, without a `Principal`
    /// (default: off, they get 401). A credential that is present but invalid is still
    /// rejected. Handlers then use `Option<Principal>`.
    pub fn optional(mut self) -> Self {
        self.options.optional = true;
        self
    }

    /// Removes the credential from the request before the inner service sees it, as Kong's
    /// `hide_credentials` does (default: off; the credential header stays, marked sensitive).
    pub fn strip_credentials(mut self) -> Self {
        self.options.strip_credentials = true;
        self
    }

    /// Lets CORS preflight requests (`OPTIONS` with `Access-Control-Request-Method`) through
    /// unauthenticated, since browsers never send credentials on them (default: off).
    pub fn allow_cors_preflight(mut self) -> Self {
        self.options.allow_cors_preflight = true;
        self
    }

    /// Answers errors in `format` instead of [`Rfc6750`](crate::Rfc6750) (default). Honored
    /// by every tollgate check behind this layer.
    pub fn error_format(self, format: impl ErrorFormat) -> Self {
        let format: Arc<dyn ErrorFormat> = Arc::new(format);
        self.with_settings(|settings| settings.set_format(format))
    }

    /// Matches scopes by `policy` instead of exactly (default: [`ScopePolicy::exact`]).
    /// Honored by every scope check behind this layer.
    pub fn scope_policy(self, policy: ScopePolicy) -> Self {
        self.with_settings(|settings| settings.set_scope_policy(policy))
    }
}

impl<A, S> Layer<S> for AuthLayer<A> {
    type Service = AuthService<A, S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            shared: Arc::new(Shared {
                authenticator: self.authenticator.clone(),
                options: self.options,
                settings: self.settings.clone(),
            }),
        }
    }
}

/// The service made by [`AuthLayer`].
pub struct AuthService<A, S> {
    inner: S,
    shared: Arc<Shared<A>>,
}

impl<A, S: Clone> Clone for AuthService<A, S> {
    fn clone(&self) -> Self {
        AuthService {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<A, S: fmt::Debug> fmt::Debug for AuthService<A, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<A, S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<A, S>
where
    A: Authenticator,
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The clone is not ready; the service that was polled ready is the one we call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        // Split outside the future: a request moved in would keep its own slot in the
        // future beside the parts taken out of it.
        let (mut parts, body) = req.into_parts();
        ResponseFuture {
            inner: Box::pin(async move {
                if !(shared.options.allow_cors_preflight && is_cors_preflight(&parts)) {
                    match shared.authenticator.authenticate(&parts).await {
                        Ok(principal) => {
                            shared.authenticator.guard_credentials(
                                &mut parts.headers,
                                shared.options.strip_credentials,
                            );
                            parts.extensions.insert(principal);
                        }
                        Err(e)
                            if e.kind() == ErrorKind::MissingCredential
                                && shared.options.optional => {}
                        Err(e) => {
                            tracing::debug!(kind = ?e.kind(), reason = e.description(), "request rejected");
                            let settings = match &shared.settings {
                                Some(s) => s,
                                None => AuthSettings::of(&parts.extensions),
                            };
                            return Ok(settings.render(&e).map(ResBody::from));
                        }
                    }
                }
                if let Some(settings) = &shared.settings {
                    parts.extensions.insert(SettingsHandle(settings.clone()));
                }
                inner.call(Request::from_parts(parts, body)).await
            }),
        }
    }
}

fn is_cors_preflight(parts: &http::request::Parts) -> bool {
    parts.method == Method::OPTIONS
        && parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The response future of [`AuthService`].
pub struct ResponseFuture<B, E> {
    inner: Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>,
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<B>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
