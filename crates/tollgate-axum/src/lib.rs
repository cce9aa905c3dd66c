//! axum extractors for tollgate: read the [`Principal`] that a tollgate layer proved, check its
//! scopes in the handler signature, and get JWT claims as your own type.
//!
//! | extractor | gives | refuses with |
//! |---|---|---|
//! | [`Principal`] | the principal | 401 when no layer authenticated the request |
//! | `Option<Principal>` | the principal, or `None` behind an optional layer | never |
//! | [`RequireScopes<S>`] | the principal, holding **every** scope of `S` | 401, or 403 `insufficient_scope` |
//! | [`RequireAnyScope<S>`] | the principal, holding **one** scope of `S` | 401, or 403 `insufficient_scope` |
//! | [`Claims<T>`] | the verified claims (or key metadata) as `T: Deserialize` | 401 |
//!
//! Scope sets are declared once with [`scopes!`] and read naturally in a signature. Matching
//! follows the [`ScopePolicy`](tollgate_core::ScopePolicy) of the layer in front (exact by
//! default), and every rejection is answered in that layer's error format. Extractors only
//! read the request extensions, so several of them in one handler all see the principal.
//!
//! The whole pattern, from the layer to the handlers (here with a static API-key list; a
//! `JwtAuth`, or `api_keys.or(jwt)`, fits the same place):
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use tollgate_apikey::{ApiKeyAuth, KeyInfo, StaticKeys};
//! use tollgate_axum::{Claims, Principal, RequireAnyScope, RequireScopes, scopes};
//! use tollgate_core::{AuthLayer, ScopePolicy};
//!
//! scopes! {
//!     /// Placing orders.
//!     pub OrdersWrite = "orders:write";
//!     /// Reading orders, or administering everything.
//!     pub OrdersRead = "orders:read", "admin";
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct KeyMeta { tenant: String }
//!
//! async fn create(RequireScopes(who, ..): RequireScopes<OrdersWrite>) -> String {
//!     format!("created by {}", who.subject())
//! }
//!
//! async fn list(_: RequireAnyScope<OrdersRead>, Claims(meta): Claims<KeyMeta>) -> String {
//!     format!("orders of {}", meta.tenant)
//! }
//!
//! async fn me(principal: Option<Principal>) -> String {
//!     principal.map_or("anonymous".into(), |p| p.subject().to_owned())
//! }
//!
//! let keys = StaticKeys::new().key(
//!     "sk_test_123",
//!     KeyInfo::new("ci").scopes(["orders:*"]).meta(serde_json::json!({"tenant": "acme"})),
//! );
//! let auth = ApiKeyAuth::builder(keys).build();
//! let app: Router = Router::new()
//!     .route("/orders", post(create).get(list))
//!     .route("/me", get(me))
//!     // Optional: `/me` answers anonymous callers; the scope extractors still answer 401
//!     // without a credential, and 403 when a scope is missing. `orders:*` grants
//!     // `orders:write` under the hierarchical policy.
//!     .layer(AuthLayer::new(auth).optional().scope_policy(ScopePolicy::hierarchical(':')));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use http::request::Parts;
use serde::de::DeserializeOwned;
use tollgate_core::{AuthError, ScopeMatch, Scopes, check_scopes};

pub use tollgate_core::{AuthRejection, Principal};

#[doc(hidden)]
pub mod __private {
    pub use tollgate_core::Scopes;
}

/// A set of scopes named by a type, for [`RequireScopes`] and [`RequireAnyScope`].
/// Declare one with [`scopes!`], or implement it by hand.
pub trait ScopeSet: Send + Sync + 'static {
    /// The scopes, built once.
    fn scopes() -> &'static Scopes;
}

/// Declares [`ScopeSet`] types, one per line: `Name = "scope", "scope", ...;`.
///
/// ```
/// tollgate_axum::scopes! {
///     pub OrdersWrite = "orders:write";
///     pub(crate) Reporting = "reports:read", "reports:export";
/// }
/// use tollgate_axum::ScopeSet;
/// assert!(Reporting::scopes().contains("reports:export"));
/// ```
#[macro_export]
macro_rules! scopes {
    ($($(#[$meta:meta])* $vis:vis $name:ident = $($scope:literal),+ $(,)?;)+) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default)]
        $vis struct $name;

        impl $crate::ScopeSet for $name {
            fn scopes() -> &'static $crate::__private::Scopes {
                static SCOPES: ::std::sync::LazyLock<$crate::__private::Scopes> =
                    ::std::sync::LazyLock::new(|| $crate::__private::Scopes::from([$($scope),+]));
                &SCOPES
            }
        }
    )+};
}

/// Requires **every** scope of `S`; yields the [`Principal`].
///
/// 401 when the request was not authenticated, 403 with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` when a scope is missing.
/// See the [crate docs](crate) for an example.
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
