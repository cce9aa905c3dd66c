//! The core of [tollgate](https://docs.rs/tollgate): what every credential kind shares.
//!
//! - [`Authenticator`]: the one seam every credential kind implements (API keys, JWTs, yours):
//!   no credential of its kind, authenticated, or refused. [`Or`] puts two on one route,
//!   [`BoxAuthenticator`] erases the type for setups chosen at run time.
//! - [`AuthLayer`]: the tower layer that runs an authenticator in front of any service, and
//!   [`AuthBody`], the body of its responses.
//! - [`Principal`] and [`Scopes`]: the verified identity a layer puts in the request
//!   extensions, whatever proved it; [`Binding`]: the key a sender-constrained token is
//!   bound to (DPoP, client certificate); [`ClientCertificate`] and [`CertificateSource`]:
//!   a request's TLS client certificate, from its own connection or a trusted proxy.
//! - [`AuthError`]: why a request was refused, and the one place its status is decided;
//!   [`Challenge`]: what a 401 asks for; [`ErrorFormat`]: how the body looks ([`Rfc6750`] by
//!   default, [`JsonEnvelope`] for your own).
//! - [`CredentialSource`]: where a credential is read from, with the checks every crate
//!   shares, and [`CredentialDigest`], the only form in which a cache keeps one.
//! - [`ScopeSet`] / [`scopes!`], [`RequireScopesLayer`] and [`ScopePolicy`]: scope checks for
//!   any tower service; with the `axum` feature, the extractors [`RequireScopes`],
//!   [`RequireAnyScope`], [`Claims`] and `Principal` itself ([`extract`]).
//! - [`ResourceMetadata`]: the protected-resource metadata of RFC 9728, served at its
//!   well-known path, that every 401 can point to (`AuthLayer::resource_metadata`).
//! - [`ReplayStore`]: one-time values (a proof's `jti`) refused when seen again, and
//!   [`MemoryReplayStore`], one process's, which never forgets a value before its time.
//! - [`telemetry`]: what tollgate counts, through the `metrics` facade (feature `metrics`),
//!   and [`RefusalLog`]: how the layer logs refusals. Each authentication runs in a
//!   `tollgate.authenticate` span.
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http::request::Parts;
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tollgate_core::{
//!     AuthError, AuthLayer, Authenticator, CredentialKind, CredentialSource, Principal,
//!     RequireScopesLayer, Scopes, scopes,
//! };
//!
//! scopes! { OrdersRead = "orders:read"; }
//!
//! /// Accepts one fixed token (a stand-in for the API-key and JWT authenticators).
//! struct Fixed(CredentialSource);
//!
//! impl Authenticator for Fixed {
//!     async fn authenticate(&self, parts: &Parts) -> Result<Option<Principal>, AuthError> {
//!         match self.0.find(parts)?.as_deref() {
//!             None => Ok(None),
//!             Some("let-me-in") => Ok(Some(
//!                 Principal::builder("alice", CredentialKind::Other("fixed"))
//!                     .scopes(Scopes::from(["orders:read"]))
//!                     .build(),
//!             )),
//!             Some(_) => Err(AuthError::invalid_token("unknown token")),
//!         }
//!     }
//!
//!     fn credential_source(&self) -> CredentialSource {
//!         self.0.clone()
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let service = ServiceBuilder::new()
//!     .layer(AuthLayer::new(Fixed(CredentialSource::bearer())))
//!     .layer(RequireScopesLayer::all(OrdersRead))
//!     .service_fn(|req: Request<()>| async move {
//!         let who = req.extensions().get::<Principal>().unwrap().subject().to_owned();
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(who))))
//!     });
//!
//! let req = Request::builder().header("authorization", "Bearer let-me-in").body(()).unwrap();
//! let res = service.clone().oneshot(req).await.unwrap();
//! assert_eq!(res.status(), 200);
//!
//! let req = Request::builder().header("authorization", "Bearer nope").body(()).unwrap();
//! let res = service.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), 401);
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod authenticator;
mod binding;
mod body;
mod challenge;
mod client_certificate;
mod credential;
mod decision;
mod digest;
mod error;
#[cfg(feature = "axum")]
pub mod extract;
mod format;
pub mod layer;
mod principal;
mod replay;
pub mod require_scopes;
mod resource_metadata;
mod scopes;
mod settings;
pub mod telemetry;

pub use authenticator::{Authenticator, BoxAuthenticator, Or};
pub use binding::Binding;
pub use body::AuthBody;
pub use challenge::Challenge;
pub use client_certificate::{CertificateSource, ClientCertificate};
pub use credential::{
    Credential, CredentialSource, DEFAULT_MAX_CREDENTIAL_LEN, Via, is_jwt_shaped,
};
pub use decision::RefusalLog;
pub use digest::CredentialDigest;
pub use error::{AuthError, ErrorKind};
#[cfg(feature = "axum")]
pub use extract::{AuthRejection, Claims, RequireAnyScope, RequireScopes};
pub use format::{ErrorFormat, GrpcStatus, JsonEnvelope, Rfc6750, retry_after_value};
pub use layer::{AuthLayer, AuthService};
pub use principal::{CredentialKind, Principal, PrincipalBuilder};
pub use replay::{DEFAULT_REPLAY_CAPACITY, MemoryReplayStore, Remembered, ReplayStore};
pub use require_scopes::{RequireScopesLayer, RequireScopesService};
pub use resource_metadata::{
    ResourceMetadata, ResourceMetadataBuilder, ResourceMetadataError, ResourceMetadataService,
};
pub use scopes::{ScopeMatch, ScopePolicy, ScopeSet, Scopes};
pub use settings::AuthSettings;
