#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use tollgate_core::*;

/// API keys verified by a key service: [`ApiKeyAuth`](apikey::ApiKeyAuth) and its verifiers.
#[cfg(feature = "apikey")]
pub use tollgate_apikey as apikey;

/// axum extractors: [`RequireScopes`](axum::RequireScopes), [`Claims`](axum::Claims) and the
/// `Principal` extractor.
#[cfg(feature = "axum")]
pub use tollgate_axum as axum;

/// Bearer JWTs: [`JwtAuth`](jwt::JwtAuth), [`Issuer`](jwt::Issuer) and the key sources.
#[cfg(feature = "jwt")]
pub use tollgate_jwt as jwt;

/// Outbound machine-to-machine auth: [`ClientAuthLayer`](client::ClientAuthLayer) with
/// client-credentials tokens or a static API key.
#[cfg(feature = "client")]
pub use tollgate_client as client;
