//! axum extractors (feature `axum`): read the [`Principal`] a tollgate layer proved, check its
//! scopes in the handler signature, and get its verified data as your own type.
//!
//! | extractor | gives | refuses with |
//! |---|---|---|
//! | [`Principal`] | the principal | 401 when no layer authenticated the request |
//! | `Option<Principal>` | the principal, or `None` behind an optional layer | never |
//! | [`RequireScopes<S>`] | the principal, holding **every** scope of `S` | 401, or 403 `insufficient_scope` |
//! | [`RequireAnyScope<S>`] | the principal, holding **one** scope of `S` | 401, or 403 `insufficient_scope` |
//! | [`Claims<T>`] | the verified claims (or key metadata) as `T: Deserialize` | 401 |
//!
//! Scope sets are declared once with [`scopes!`](crate::scopes), the same types the tower
//! [`RequireScopesLayer`](crate::RequireScopesLayer) takes. Matching follows the
//! [`ScopePolicy`](crate::ScopePolicy) of the layer in front (exact by default), and every
//! rejection ([`AuthRejection`]) is answered in that layer's error format and challenges.
//! Extractors only read the request extensions, so several in one handler all see the
//! principal.

use std::convert::Infallible;
use std::marker::PhantomData;

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::require_scopes::check_scopes;
use crate::{AuthError, AuthSettings, Principal, ScopeMatch, ScopeSet};

/// Why a tollgate extractor refused a request: the [`AuthError`], already rendered in the
/// error format of the layer in front (RFC 6750 by default).
#[derive(Debug)]
pub struct AuthRejection {
    error: AuthError,
    // Boxed: rejections travel in `Result`s, and a response is large.
    response: Box<http::Response<Bytes>>,
}

impl AuthRejection {
    fn new(error: AuthError, parts: &Parts) -> Self {
        let response =
            Box::new(AuthSettings::of(&parts.extensions).render_behind(&error, &parts.headers));
        AuthRejection { error, response }
    }

    /// The error.
    pub fn error(&self) -> &AuthError {
        &self.error
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        self.response.map(Body::from)
    }
}

/// The authenticated principal; 401 when no tollgate layer authenticated the request.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Principal>() {
            Some(principal) => Ok(principal.clone()),
            None => Err(AuthRejection::new(AuthError::missing_credential(), parts)),
        }
    }
}

/// `Option<Principal>`, for routes behind an optional layer: `None` when no credential was
/// sent (a bad credential never gets this far).
impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}

/// Requires **every** scope of `S`; yields the [`Principal`].
///
/// 401 when the request was not authenticated, 403 with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` when a scope is missing.
///
/// ```
/// use axum::{Router, routing::post};
/// use tollgate_core::{AuthLayer, RequireScopes, scopes};
/// # use tollgate_core::{AuthError, Authenticator, CredentialSource, Principal};
/// # struct Keys;
/// # impl Authenticator for Keys {
/// #     async fn authenticate(&self, _: &http::request::Parts) -> Result<Option<Principal>, AuthError> { Ok(None) }
/// #     fn credential_source(&self) -> CredentialSource { CredentialSource::bearer() }
/// # }
///
/// scopes! { OrdersWrite = "orders:write"; }
///
/// async fn create(RequireScopes(who, ..): RequireScopes<OrdersWrite>) -> String {
///     format!("created by {}", who.subject())
/// }
///
/// let app: Router = Router::new().route("/orders", post(create)).layer(AuthLayer::new(Keys));
/// ```
pub struct RequireScopes<S: ScopeSet>(pub Principal, pub PhantomData<S>);

/// Requires **one** scope of `S` at least; yields the [`Principal`].
/// Refuses like [`RequireScopes`].
pub struct RequireAnyScope<S: ScopeSet>(pub Principal, pub PhantomData<S>);

fn require<S: ScopeSet>(parts: &Parts, mode: ScopeMatch) -> Result<Principal, AuthRejection> {
    check_scopes(&parts.extensions, S::scopes(), mode)
        .cloned()
        .map_err(|e| AuthRejection::new(e, parts))
}

impl<S: ScopeSet, St: Send + Sync> FromRequestParts<St> for RequireScopes<S> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        require::<S>(parts, ScopeMatch::All).map(|p| RequireScopes(p, PhantomData))
    }
}

impl<S: ScopeSet, St: Send + Sync> FromRequestParts<St> for RequireAnyScope<S> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        require::<S>(parts, ScopeMatch::Any).map(|p| RequireAnyScope(p, PhantomData))
    }
}

impl<S: ScopeSet> std::ops::Deref for RequireScopes<S> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<S: ScopeSet> std::ops::Deref for RequireAnyScope<S> {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

/// The verified data of the principal (JWT claims, or an API key's metadata) as your own
/// type. 401 when the request was not authenticated, 401 `invalid_token` when the data does
/// not have the shape `T` needs.
#[derive(Debug, Clone)]
pub struct Claims<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequestParts<St> for Claims<T> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        let Some(principal) = parts.extensions.get::<Principal>() else {
            return Err(AuthRejection::new(AuthError::missing_credential(), parts));
        };
        T::deserialize(principal.data()).map(Claims).map_err(|_| {
            AuthRejection::new(
                AuthError::invalid_token("the credential lacks claims this route needs"),
                parts,
            )
        })
    }
}
