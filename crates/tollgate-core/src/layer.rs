//! [`AuthLayer`] and [`AuthService`]: authenticate every request with an [`Authenticator`]
//! before the inner service sees it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::CACHE_CONTROL;
use http::{HeaderValue, Method, Request, Response, header};
use tower_layer::Layer;
use tower_service::Service;

use tracing::Instrument;

use crate::decision::{self, Decisions, Outcome};
use crate::settings::{Refused, SettingsHandle};
use crate::{
    AuthBody, AuthError, AuthSettings, Authenticator, CredentialSource, ErrorFormat, RefusalLog,
    ScopePolicy,
};

/// A tower layer that authenticates requests with an [`Authenticator`].
///
/// On success the [`Principal`](crate::Principal) goes into the request extensions, the
/// credential is marked sensitive (or stripped), and the inner service is called. On failure
/// the error is answered in the configured [`ErrorFormat`], with the authenticator's
/// challenges, and the inner service is never called. A request whose credential no
/// authenticator takes (a bearer token on an API-key route) is refused as `invalid_token`.
///
/// Works with any `Service<http::Request<B>, Response = http::Response<R>>`: responses come
/// back as `Response<`[`AuthBody`]`<R>>` (the inner body untouched, or a refusal's), which
/// axum, hyper and tonic all serve.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{ServiceBuilder, ServiceExt};
/// use tollgate_core::{AuthError, AuthLayer, Authenticator, CredentialSource, Principal};
/// # struct Nobody;
/// # impl Authenticator for Nobody {
/// #     async fn authenticate(&self, _: &http::request::Parts) -> Result<Option<Principal>, AuthError> {
/// #         Ok(None)
/// #     }
/// #     fn credential_source(&self) -> CredentialSource { CredentialSource::bearer() }
/// # }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = ServiceBuilder::new()
///     .layer(AuthLayer::new(Nobody).realm("orders"))
///     .service_fn(|_req: Request<()>| async {
///         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("secret"))))
///     });
/// let res = service.oneshot(Request::new(())).await.unwrap();
/// assert_eq!(res.status(), 401);
/// assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="orders""#);
/// # }
/// ```
pub struct AuthLayer<A> {
    authenticator: Arc<A>,
    source: CredentialSource,
    options: Options,
    settings: AuthSettings,
    refusal_log: RefusalLog,
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
    source: CredentialSource,
    options: Options,
    settings: Arc<AuthSettings>,
    /// Whether the code behind needs the settings in the request (see `AuthSettings`).
    insert_settings: bool,
    decisions: Decisions,
}

impl<A> Clone for AuthLayer<A> {
    fn clone(&self) -> Self {
        AuthLayer {
            authenticator: self.authenticator.clone(),
            source: self.source.clone(),
            options: self.options,
            settings: self.settings.clone(),
            refusal_log: self.refusal_log,
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
        let mut settings = AuthSettings::defaults_with_default_format();
        settings.set_challenges(authenticator.challenges());
        AuthLayer {
            source: authenticator.credential_source(),
            authenticator: Arc::new(authenticator),
            options: Options::default(),
            settings,
            refusal_log: RefusalLog::debug(),
        }
    }

    /// The authenticator, for its own controls (an API-key cache's `stats()` or
    /// `invalidate()`, say).
    pub fn authenticator(&self) -> &A {
        &self.authenticator
    }

    /// Lets requests that carry **no** credential through, without a `Principal`
    /// (default: off, they get 401). A credential that is present but invalid, or of a kind
    /// no authenticator here takes, is still refused. Handlers then use `Option<Principal>`.
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

    /// Shapes refusal bodies with `format` instead of [`Rfc6750`](crate::Rfc6750) (default).
    /// Honored by every tollgate check behind this layer; the status and the standard
    /// headers are kept unless the format sets them (see [`ErrorFormat`]).
    pub fn error_format(mut self, format: impl ErrorFormat) -> Self {
        self.settings.set_format(Arc::new(format));
        self
    }

    /// Matches scopes by `policy` instead of exactly (default: [`ScopePolicy::exact`]).
    /// Honored by every scope check behind this layer.
    pub fn scope_policy(mut self, policy: ScopePolicy) -> Self {
        self.settings.set_scope_policy(policy);
        self
    }

    /// The `realm` of every challenge (default: `"api"`).
    pub fn realm(mut self, realm: impl Into<Box<str>>) -> Self {
        self.settings.set_realm(realm.into());
        self
    }

    /// Logs refusals as `log` says (default: [`RefusalLog::debug`], every refusal at `debug`).
    pub fn refusal_log(mut self, log: RefusalLog) -> Self {
        self.refusal_log = log;
        self
    }

    /// Adds `resource_metadata="<url>"` to every challenge (RFC 9728 §5.1; default: none),
    /// so that clients can find this resource's protected-resource metadata.
    pub fn resource_metadata(mut self, url: impl Into<Box<str>>) -> Self {
        self.settings.set_resource_metadata(url.into());
        self
    }
}

impl<A, S> Layer<S> for AuthLayer<A> {
    type Service = AuthService<A, S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            shared: Arc::new(Shared {
                authenticator: self.authenticator.clone(),
                source: self.source.clone(),
                options: self.options,
                insert_settings: self.settings.needed_behind(),
                decisions: Decisions::new(self.refusal_log),
                settings: Arc::new(self.settings.clone()),
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
    ResBody: Send + 'static,
{
    type Response = Response<AuthBody<ResBody>>;
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
                let mut private = false;
                let span = decision::span();
                // Who decided and how, counted once the inner service has answered.
                let mut decided = None;
                if !(shared.options.allow_cors_preflight && is_cors_preflight(&parts)) {
                    // Wrapped only when traced: the wrapper moves the authenticator's future,
                    // a copy of a few hundred bytes every request would pay for nothing.
                    let authenticator = &shared.authenticator;
                    let verdict = if span.is_disabled() {
                        authenticator.authenticate(&parts).await
                    } else {
                        authenticator
                            .authenticate(&parts)
                            .instrument(span.clone())
                            .await
                    };
                    let wanted = shared.decisions.wanted(&span);
                    let refusal = match verdict {
                        Ok(Some(principal)) => {
                            decision::record_key_id(&span, &principal);
                            if wanted {
                                let origin = shared.decisions.origin_of(&principal);
                                decided = Some((origin, Outcome::Authenticated));
                            }
                            private = shared.source.used_query(&parts);
                            shared
                                .source
                                .guard(&mut parts, shared.options.strip_credentials);
                            parts.extensions.insert(principal);
                            None
                        }
                        Ok(None) if shared.source.is_present(&parts) => {
                            Some(AuthError::invalid_token(
                                "the credential is not of a kind this service accepts",
                            ))
                        }
                        Ok(None) if shared.options.optional => {
                            if wanted {
                                decided =
                                    Some((shared.decisions.origin(None, None), Outcome::Anonymous));
                            }
                            None
                        }
                        Ok(None) => Some(AuthError::missing_credential()),
                        Err(e) => Some(e),
                    };
                    if let Some(e) = refusal {
                        if wanted {
                            let origin = shared.decisions.origin_of_refusal(&e);
                            shared
                                .decisions
                                .count(&span, origin, Outcome::Refused(e.kind()));
                        }
                        shared.decisions.log(&e);
                        let res = shared.settings.render(&e, &parts.headers);
                        return Ok(res.map(AuthBody::refusal));
                    }
                }
                if shared.insert_settings {
                    parts
                        .extensions
                        .insert(SettingsHandle(shared.settings.clone()));
                }
                let mut res = inner.call(Request::from_parts(parts, body)).await?;
                if let Some(refused) = res.extensions_mut().remove::<Refused>() {
                    // A refusal from behind (a scope check, an extractor): in this layer's
                    // format and challenges, counted as this request's decision.
                    if let Some((origin, _)) = decided {
                        let outcome = Outcome::Refused(refused.error.kind());
                        shared.decisions.count(&span, origin, outcome);
                    }
                    shared.decisions.log(&refused.error);
                    let res = shared.settings.render(&refused.error, &refused.headers);
                    return Ok(res.map(AuthBody::refusal));
                }
                if let Some((origin, outcome)) = decided {
                    shared.decisions.count(&span, origin, outcome);
                }
                if private && res.status().is_success() {
                    // RFC 6750 §2.3: answers to query-authenticated requests are private.
                    res.headers_mut()
                        .entry(CACHE_CONTROL)
                        .or_insert(HeaderValue::from_static("private"));
                }
                Ok(res.map(AuthBody::inner))
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

type BoxedResponse<B, E> = Pin<Box<dyn Future<Output = Result<Response<AuthBody<B>>, E>> + Send>>;

/// The response future of [`AuthService`].
pub struct ResponseFuture<B, E> {
    inner: BoxedResponse<B, E>,
}

impl<B, E> Future for ResponseFuture<B, E> {
    type Output = Result<Response<AuthBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<B, E> fmt::Debug for ResponseFuture<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
