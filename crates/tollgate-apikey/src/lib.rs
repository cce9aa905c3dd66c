//! API-key authentication for tower and axum, in the Stripe/Unkey style: opaque keys,
//! verified by a key service, the verdict cached in-process.
//!
//! - [`ApiKeyAuth`] ([`ApiKeyLayer`] as a layer): reads the key (`x-api-key` by default,
//!   optionally `Authorization: Bearer`), refuses malformed ones locally, and asks the cache,
//!   then the verifier.
//! - Verifiers ([`KeyVerifier`]): [`UnkeyVerifier`] (Unkey v2), [`JsonVerifier`] (a small
//!   protocol for your own service), [`StaticKeys`] (hashes in memory), or your own.
//! - The cache (moka): keyed by the key's SHA-256, never the key; one upstream call per key
//!   however many requests miss at once; valid verdicts for 60 s (never past the key's
//!   expiry), refusals for 10 s; optional stale-while-revalidate and serve-stale-on-error.
//! - Failing closed: a key service that is down, slow or answers nonsense gives 503 with
//!   `Retry-After`, never 200 and never 401. [`Stats`] counts what happened.
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use tollgate_apikey::{ApiKeyAuth, UnkeyVerifier};
//!
//! # async fn run() {
//! let auth = ApiKeyAuth::builder(UnkeyVerifier::new(std::env::var("UNKEY_ROOT_KEY").unwrap()))
//!     .prefix("sk_live_")
//!     .cache_ttl(Duration::from_secs(30))
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
mod cache;
mod json;
mod static_keys;
mod stats;
mod unkey;
mod upstream;
mod verifier;

pub use auth::{ApiKeyAuth, ApiKeyAuthBuilder, ApiKeyLayer, DEFAULT_HEADER, DEFAULT_MAX_LEN};
pub use json::JsonVerifier;
pub use static_keys::StaticKeys;
pub use stats::{Outcomes, Stats, UpstreamErrors};
pub use unkey::{UNKEY_BASE_URL, UnkeyVerifier};
pub use upstream::DEFAULT_TIMEOUT;
pub use verifier::{Denial, KeyInfo, KeyVerifier, Verdict, VerifyError};

/// Entry points for the fuzz targets under `fuzz/` (feature `fuzzing`; not a stable API).
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    /// Parses an Unkey v2 answer body.
    pub fn unkey_answer(bytes: &[u8]) -> Result<crate::Verdict, crate::VerifyError> {
        crate::unkey::parse_answer(bytes)
    }

    /// Parses a generic JSON protocol answer body.
    pub fn json_answer(bytes: &[u8]) -> Result<crate::Verdict, crate::VerifyError> {
        crate::json::parse_answer(bytes)
    }
}
