//! Opaque access tokens for tower and axum: RFC 7662 token introspection, cached like API
//! keys.
//!
//! - [`Introspection`] ([`IntrospectionLayer`] as a layer): reads `Authorization: Bearer`
//!   (or any [`CredentialSource`](tollgate_core::CredentialSource)), leaves JWT-shaped tokens
//!   to the JWT authenticator, and asks the issuer's introspection endpoint (configured, or
//!   discovered with the exact-issuer check) with `token` and `token_type_hint=access_token`,
//!   authenticated as the resource server by tollgate-client's
//!   [`ClientCredentials`] (`client_secret_basic`,
//!   `client_secret_post`, `private_key_jwt`) or a bearer token.
//! - The answer ([`AudiencePolicy`] and the rules on [`IntrospectionBuilder`]): `active` must
//!   be `true`, `exp` in the future, `iss` the issuer when present, `aud` a configured
//!   audience as the policy says; then the same [`ClaimRule`](tollgate_jwt::ClaimRule)s and
//!   [`ScopeMapping`](tollgate_jwt::ScopeMapping) as for JWTs. The principal's subject is
//!   `sub` (else `client_id`), its data the whole answer (`Claims<T>` reads it).
//! - Cached on tollgate's verdict engine ([`CachePolicy`]):
//!   by the token's SHA-256, valid verdicts for at most `min(ttl, exp − now)`, refusals briefly
//!   and bounded in number, one request per token however many requests miss at once,
//!   stale-on-error and the circuit breaker as for API keys.
//! - Failing closed: an answer that is not JSON, too large, a redirect, a timeout, a 4xx/5xx
//!   (our own credentials refused included) is a 503 with `Retry-After`, never 401, never 200.
//!
//! Signed introspection responses (RFC 9701, `application/token-introspection+jwt`) are not
//! supported: the answer is trusted for the TLS connection it came over.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tollgate_client::ClientCredentials;
//! use tollgate_introspect::Introspection;
//!
//! # async fn run() -> Result<(), tollgate_introspect::BuildError> {
//! let tokens = Introspection::builder("https://login.example.com")
//!     .client_credentials(ClientCredentials::new("orders-api").secret_basic("s3cret"))
//!     .audience("orders-api")
//!     .build()
//!     .await?;
//! let app: Router = Router::new()
//!     .route("/orders", get(|| async { "orders" }))
//!     .layer(tokens.layer());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod answer;
mod auth;
mod endpoint;

pub use answer::AudiencePolicy;
pub use auth::{
    BuildError, DEFAULT_MAX_TOKEN_LEN, DEFAULT_TIMEOUT, Introspection, IntrospectionBuilder,
    IntrospectionLayer,
};
pub use tollgate_client::ClientCredentials;
pub use tollgate_upstream::{BreakerPolicy, CachePolicy, Stats, UpstreamError};
