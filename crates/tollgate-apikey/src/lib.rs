//! API-key authentication for tower and axum, in the Stripe/Unkey style: opaque keys,
//! verified by a key service, the verdict cached in-process.
//!
//! - [`ApiKeyAuth`] ([`ApiKeyLayer`] as a layer): reads the key (`x-api-key` by default, or
//!   any [`CredentialSource`](tollgate_core::CredentialSource)), refuses malformed ones
//!   locally, and asks the verdict cache, then the verifier. A JWT-shaped bearer token is left
//!   to the next authenticator.
//! - Verifiers ([`KeyVerifier`]): [`UnkeyVerifier`] (Unkey v2), [`JsonVerifier`] (a small
//!   protocol for your own service), [`StaticKeys`] (hashes in memory), or your own. Remote
//!   ones go through tollgate's fetch path: no redirects, capped reads, a circuit breaker.
//! - The cache ([`CachePolicy`], tollgate-upstream's verdict engine): keyed by the key's
//!   SHA-256, never the key; one upstream call per key however many requests miss at once;
//!   valid verdicts for 60 s (never past the key's expiry), refusals for 10 s; optional
//!   stale-while-revalidate, serve-stale-on-error and a shared store.
//! - Failing closed: a key service that is down, slow or answers nonsense gives 503 with
//!   `Retry-After`, never 200 and never 401, and at once while it is known to be down.
//!   [`Stats`] counts what happened.
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use tollgate_apikey::{ApiKeyAuth, CachePolicy, UnkeyVerifier};
//!
//! # async fn run() {
//! let auth = ApiKeyAuth::builder(UnkeyVerifier::new(std::env::var("UNKEY_ROOT_KEY").unwrap()))
//!     .prefix("sk_live_")
//!     .cache(CachePolicy::default().ttl(Duration::from_secs(30)))
//!     .build();
//! let app: Router = Router::new()
//!     .route("/orders", get(|| async { "orders" }))
//!     .layer(auth.clone().layer());
//! // Later, in a revocation webhook: auth.invalidate(&revoked_key).await;
//! # }
//! ```
//!
//! Memory: each cached verdict costs the 32-byte hash, the entry and moka's bookkeeping, plus
//! the principal (key id, scopes, metadata); `BENCHMARKS.md` has the measured figure.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod auth;
mod json;
mod static_keys;
mod unkey;
mod verifier;

pub use auth::{ApiKeyAuth, ApiKeyAuthBuilder, ApiKeyLayer, DEFAULT_HEADER, DEFAULT_MAX_KEY_LEN};
pub use json::JsonVerifier;
pub use static_keys::StaticKeys;
pub use tollgate_upstream::{
    BreakerPolicy, CachePolicy, DEFAULT_TIMEOUT, Outcomes, Stats, UpstreamError, UpstreamErrors,
    VerdictStore,
};
pub use unkey::{UNKEY_BASE_URL, UnkeyVerifier};
pub use verifier::{Denial, KeyInfo, KeyVerifier, Verdict};

/// Entry points for the fuzz targets under `fuzz/` (feature `fuzzing`; not a stable API).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    /// Parses an Unkey v2 answer body.
    pub fn unkey_answer(bytes: &[u8]) -> Result<crate::Verdict, crate::UpstreamError> {
        crate::unkey::parse_answer(bytes)
    }

    /// Parses a generic JSON protocol answer body.
    pub fn json_answer(bytes: &[u8]) -> Result<crate::Verdict, crate::UpstreamError> {
        crate::json::parse_answer(bytes)
    }
}
