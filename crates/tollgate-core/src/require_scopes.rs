//! [`RequireScopesLayer`]: a tower-level scope check for any service (axum routes, tonic,
//! plain hyper), behind an [`AuthLayer`](crate::AuthLayer).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::{AuthBody, AuthError, AuthSettings, Principal, ScopeMatch, Scopes};

/// Rejects requests whose [`Principal`] does not grant the needed scopes: 403
/// `insufficient_scope` naming them, or 401 when no principal is there at all. Matching
/// follows the [`ScopePolicy`](crate::ScopePolicy) of the `AuthLayer` in front.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use tower::{ServiceBuilder, ServiceExt};
/// use tollgate_core::{CredentialKind, Principal, RequireScopesLayer, Scopes, scopes};
///
/// scopes! { OrdersAdmin = "orders:read", "orders:write"; }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = ServiceBuilder::new()
///     .layer(RequireScopesLayer::all(OrdersAdmin))
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
    rules: Rules,
}

/// What a request needs: the same for every request, or by its path.
#[derive(Debug, Clone)]
enum Rules {
    Every(Need),
    ByPath {
        paths: Arc<HashMap<Box<str>, Need>>,
        otherwise: Option<Need>,
    },
}

/// Scopes, and whether all or any of them.
#[derive(Debug, Clone)]
struct Need(Scopes, ScopeMatch);

impl RequireScopesLayer {
    /// Every scope of `scopes` is required: a [`scopes!`](crate::scopes) type, or any
    /// [`Scopes`] (`["a", "b"]` converts).
    pub fn all(scopes: impl Into<Scopes>) -> Self {
        RequireScopesLayer {
            rules: Rules::Every(Need(scopes.into(), ScopeMatch::All)),
        }
    }

    /// Any one scope of `scopes` is enough.
    pub fn any(scopes: impl Into<Scopes>) -> Self {
        RequireScopesLayer {
            rules: Rules::Every(Need(scopes.into(), ScopeMatch::Any)),
        }
    }

    /// Scopes by request path, for services whose methods are paths, such as gRPC's
    /// `/package.Service/Method`: add each with [`path`](Self::path) or
    /// [`path_any`](Self::path_any). A path with no rule is refused (403), unless
    /// [`otherwise`](Self::otherwise) says what it needs: a method added later is never open
    /// by mistake.
    ///
    /// ```
    /// use tollgate_core::{RequireScopesLayer, Scopes, scopes};
    ///
    /// scopes! { OrdersRead = "orders:read"; OrdersWrite = "orders:write"; }
    ///
    /// let layer = RequireScopesLayer::by_path()
    ///     .path("/orders.v1.Orders/List", OrdersRead)
    ///     .path("/orders.v1.Orders/Create", OrdersWrite)
    ///     .otherwise(Scopes::empty()); // any other method: authenticated is enough
    /// # let _ = layer;
    /// ```
    pub fn by_path() -> Self {
        RequireScopesLayer {
            rules: Rules::ByPath {
                paths: Arc::default(),
                otherwise: None,
            },
        }
    }

    fn with_path(mut self, path: &str, need: Need) -> Self {
        if let Rules::Every(_) = self.rules {
            self = Self::by_path();
        }
        if let Rules::ByPath { paths, .. } = &mut self.rules {
            Arc::make_mut(paths).insert(path.into(), need);
        }
        self
    }

    /// Requests to `path` need every scope of `scopes` (turns a layer made by
    /// [`all`](Self::all)/[`any`](Self::any) into one by path).
    pub fn path(self, path: &str, scopes: impl Into<Scopes>) -> Self {
        self.with_path(path, Need(scopes.into(), ScopeMatch::All))
    }

    /// Requests to `path` need one scope of `scopes`.
    pub fn path_any(self, path: &str, scopes: impl Into<Scopes>) -> Self {
        self.with_path(path, Need(scopes.into(), ScopeMatch::Any))
    }

    /// What requests to a path with no rule need (default: they are refused); `Scopes::empty()`
    /// lets any authenticated request through.
    pub fn otherwise(mut self, scopes: impl Into<Scopes>) -> Self {
        if let Rules::Every(_) = self.rules {
            self = Self::by_path();
        }
        if let Rules::ByPath { otherwise, .. } = &mut self.rules {
            *otherwise = Some(Need(scopes.into(), ScopeMatch::All));
        }
        self
    }
}

impl Rules {
    /// What a request to `path` needs, or `None` when no rule covers it.
    fn for_path(&self, path: &str) -> Option<&Need> {
        match self {
            Rules::Every(need) => Some(need),
            Rules::ByPath { paths, otherwise } => paths.get(path).or(otherwise.as_ref()),
        }
    }
}

impl<S> Layer<S> for RequireScopesLayer {
    type Service = RequireScopesService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopesService {
            inner,
            rules: self.rules.clone(),
        }
    }
}

/// The service made by [`RequireScopesLayer`].
#[derive(Debug, Clone)]
pub struct RequireScopesService<S> {
    inner: S,
    rules: Rules,
}

/// Checks `needed` against the principal in `extensions`, with the policy in force there.
/// Shared by every scope check, the axum extractors included.
pub(crate) fn check_scopes<'e>(
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopesService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<AuthBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let checked = match self.rules.for_path(req.uri().path()) {
            Some(Need(needed, mode)) => check_scopes(req.extensions(), needed, *mode),
            None => match req.extensions().get::<Principal>() {
                None => Err(AuthError::missing_credential()),
                Some(_) => Err(AuthError::new(
                    crate::ErrorKind::InsufficientScope,
                    "no scope rule covers this request",
                )),
            },
        };
        match checked {
            Ok(_) => ResponseFuture {
                state: State::Inner {
                    future: self.inner.call(req),
                },
            },
            Err(e) => ResponseFuture {
                state: State::Rejected {
                    response: Some(
                        AuthSettings::of(req.extensions())
                            .render_behind(&e, req.headers())
                            .map(AuthBody::refusal),
                    ),
                },
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequireScopesService`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = Proj]
    enum State<F, B> {
        Inner { #[pin] future: F },
        Rejected { response: Option<Response<AuthBody<B>>> },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<AuthBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            Proj::Inner { future } => future.poll(cx).map_ok(|res| res.map(AuthBody::inner)),
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
