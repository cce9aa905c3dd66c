//! [`RequireScopesLayer`]: a tower-level scope check for any service (axum routes, tonic,
//! plain hyper), behind an [`AuthLayer`](crate::AuthLayer).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::{AuthError, AuthSettings, Principal, ScopeMatch, Scopes};

/// Rejects requests whose [`Principal`] does not grant the needed scopes: 403
/// `insufficient_scope` naming them, or 401 when no principal is there at all. Matching
/// follows the [`ScopePolicy`](crate::ScopePolicy) of the `AuthLayer` in front.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use tower::{ServiceBuilder, ServiceExt};
/// use tollgate_core::{CredentialKind, Principal, RequireScopesLayer, Scopes};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = ServiceBuilder::new()
///     .layer(RequireScopesLayer::all(["orders:read", "orders:write"]))
///     .service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(Bytes::new())) });
///
/// let mut req = Request::new(());
/// req.extensions_mut().insert(
///     Principal::builder("svc", CredentialKind::ApiKey)
///         .scopes(Scopes::from(["orders:read"]))
///         .build(),
/// );
/// let res = service.oneshot(req).await.unwrap();
/// assert_eq!(res.status(), 403);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RequireScopesLayer {
    needed: Scopes,
    mode: ScopeMatch,
}

impl RequireScopesLayer {
    /// Every scope in `scopes` is required.
    pub fn all<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        RequireScopesLayer {
            needed: scopes.into_iter().collect(),
            mode: ScopeMatch::All,
        }
    }

    /// Any one scope in `scopes` is enough.
    pub fn any<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        RequireScopesLayer {
            needed: scopes.into_iter().collect(),
            mode: ScopeMatch::Any,
        }
    }
}

impl<S> Layer<S> for RequireScopesLayer {
    type Service = RequireScopes<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopes {
            inner,
            needed: self.needed.clone(),
            mode: self.mode,
        }
    }
}

/// The service made by [`RequireScopesLayer`].
#[derive(Debug, Clone)]
pub struct RequireScopes<S> {
    inner: S,
    needed: Scopes,
    mode: ScopeMatch,
}

/// Checks `needed` against the principal in `extensions`, with the policy in force there.
/// Shared by every scope check, the axum extractors included.
pub fn check_scopes<'e>(
    extensions: &'e http::Extensions,
    needed: &Scopes,
    mode: ScopeMatch,
) -> Result<&'e Principal, AuthError> {
    let principal = extensions
        .get::<Principal>()
        .ok_or_else(AuthError::missing_credential)?;
    AuthSettings::of(extensions)
        .scope_policy()
        .check(principal.scopes(), needed, mode)?;
    Ok(principal)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopes<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        match check_scopes(req.extensions(), &self.needed, self.mode) {
            Ok(_) => ResponseFuture::Inner {
                future: self.inner.call(req),
            },
            Err(e) => ResponseFuture::Rejected {
                response: Some(
                    AuthSettings::of(req.extensions())
                        .render(&e)
                        .map(ResBody::from),
                ),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequireScopes`].
    #[project = Proj]
    pub enum ResponseFuture<F, B> {
        /// The inner service is answering.
        Inner { #[pin] future: F },
        /// The scope check failed.
        Rejected { response: Option<Response<B>> },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Proj::Inner { future } => future.poll(cx),
            Proj::Rejected { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => panic!("ResponseFuture polled after completion"),
            },
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
