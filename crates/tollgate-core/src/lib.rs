//! The core of [tollgate](https://docs.rs/tollgate): what every credential kind shares.
//!
//! - [`Principal`] and [`Scopes`]: the verified identity a layer puts in the request
//!   extensions, whatever proved it.
//! - [`Authenticator`]: the one seam every credential kind implements (API keys, JWTs, yours),
//!   and [`Or`] to put two on one route.
//! - [`AuthLayer`]: the tower layer that runs an authenticator in front of any service.
//! - [`AuthError`] and [`ErrorFormat`]: why a request was refused, and how that is answered
//!   ([`Rfc6750`] by default).
//! - [`CredentialSource`]: where a credential is read from, with the checks every crate shares,
//!   and [`CredentialDigest`], the only form in which a cache keeps one.
//! - [`RequireScopesLayer`] and [`ScopePolicy`]: scope checks for any tower service.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http::request::Parts;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tollgate_core::*;
//!
//! /// Accepts one fixed token (a stand-in for the API-key and JWT authenticators).
//! struct Fixed(CredentialSource);
//!
//! impl Authenticator for Fixed {
//!     async fn authenticate(&self, parts: &Parts) -> Result<Principal, AuthError> {
//!         match self.0.find(&parts.headers)? {
//!             None => Err(AuthError::missing_credential()),
//!             Some("let-me-in") => Ok(Principal::builder("alice", CredentialKind::Other("fixed"))
//!                 .scopes(Scopes::from(["orders:read"]))
//!                 .build()),
//!             Some(_) => Err(AuthError::invalid_token("unknown token")),
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let service = ServiceBuilder::new()
//!     .layer(AuthLayer::new(Fixed(CredentialSource::bearer())))
//!     .layer(RequireScopesLayer::all(["orders:read"]))
//!     .service_fn(|req: Request<()>| async move {
//!         let who = req.extensions().get::<Principal>().unwrap().subject().to_owned();
//!         Ok::<_, Infallible>(Response::new(Bytes::from(who)))
//!     });
//!
//! let req = Request::builder().header("authorization", "Bearer let-me-in").body(()).unwrap();
//! let res = service.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.body(), "alice");
//!
//! let req = Request::builder().header("authorization", "Bearer nope").body(()).unwrap();
//! let res = service.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), 401);
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod authenticator;
#[cfg(feature = "axum")]
mod axum;
mod credential;
mod digest;
mod error;
mod format;
mod layer;
mod principal;
mod require_scopes;
mod scopes;
mod settings;

pub use authenticator::{Authenticator, Or};
#[cfg(feature = "axum")]
pub use axum::AuthRejection;
pub use credential::{CredentialSource, DEFAULT_MAX_LEN};
pub use digest::CredentialDigest;
pub use error::{AuthError, ErrorKind};
pub use format::{ErrorFormat, Rfc6750, retry_after_value};
pub use layer::{AuthLayer, AuthService, ResponseFuture};
pub use principal::{CredentialKind, Principal, PrincipalBuilder};
pub use require_scopes::{RequireScopes, RequireScopesLayer, check_scopes};
pub use scopes::{ScopeMatch, ScopePolicy, Scopes};
pub use settings::AuthSettings;
