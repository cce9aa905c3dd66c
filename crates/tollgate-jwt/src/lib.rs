//! Bearer-JWT authentication for tower and axum.
//!
//! - [`JwtAuth`] ([`JwtLayer`] as a layer): verifies `Authorization: Bearer` tokens with
//!   `jsonwebtoken`, for one or several [`Issuer`]s chosen by `iss`.
//! - Keys: a JWKS URL, OIDC / RFC 8414 discovery, or [`LocalKeys`]; prepared once when
//!   loaded (with aws-lc-rs, parsed once too, where jsonwebtoken would parse a key for every
//!   signature), swapped atomically, refreshed in the background (honoring `Cache-Control`),
//!   refetched once (rate-limited, single flight) for an unknown `kid`, kept while the issuer
//!   is down up to a maximum staleness, then 503. Unusable JWKs are skipped, not fatal.
//! - Validation (RFC 8725, RFC 9068): algorithm allowlist and per-key algorithm binding (no
//!   `none`, no HMAC-with-a-public-key); `jku`/`x5u`/`jwk`/`x5c` never fetched or trusted;
//!   `crit` refused; `exp` required, `nbf`, `iat` not in the future, leeway; `iss` exact,
//!   `aud` required; optional `typ`; required claims; duplicate JSON members refused; a size
//!   cap before any decoding.
//! - Into the [`Principal`](tollgate_core::Principal): scopes from `scope`/`scp` or any claim
//!   path ([`ScopeMapping`]), the claims as its data (use `Claims<T>` in axum for your type).
//! - [`ClaimRule`]s: which tokens an issuer is accepted for (equals, one of, glob, contains;
//!   all/any), for workload identity tokens such as GitHub Actions'.
//! - [`Dpop`]: sender-constrained tokens (RFC 9449), per issuer off, allowed or required:
//!   the proof of each `Authorization: DPoP` request checked against the token's `cnf.jkt`,
//!   replays refused (locally or fleet-wide), optional server nonces; a bound token is never
//!   accepted as a bearer token.
//! - [`Mtls`]: certificate-bound tokens (RFC 8705), per issuer off, allowed or required:
//!   the token's `cnf.x5t#S256` checked against the request's client certificate, from the
//!   service's own TLS connection or a trusted proxy's header.
//! - An opt-in verified-token cache, and [`Revocations`]: tokens refused before their `exp`
//!   (by `jti` or subject), asked on cached tokens too.
//!
//! What `jsonwebtoken` alone would not do, and this crate does: check `nbf` by default,
//! check `iat`, `typ` and `crit`, require `iss` and `aud`, and honor a JWK's `use`,
//! `key_ops` and `alg`.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use tollgate_jwt::{Issuer, JwtAuth};
//!
//! # async fn run() -> Result<(), tollgate_jwt::BuildError> {
//! let auth = JwtAuth::builder()
//!     .issuer(Issuer::discover("https://login.example.com").audience("orders-api"))
//!     .build()
//!     .await?;
//! let app: Router = Router::new()
//!     .route("/orders", get(|| async { "orders" }))
//!     .layer(auth.layer());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod auth;
mod cache;
mod claims;
mod crypto;
mod dpop;
mod error;
mod issuer;
mod keys;
mod mtls;
mod revocation;
mod scopes;
mod store;
mod token;

pub use auth::{
    DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_TOKEN_LEN, JwtAuth, JwtAuthBuilder, JwtLayer, JwtStats,
};
pub use claims::ClaimRule;
pub use dpop::{DEFAULT_DPOP_ALGORITHMS, Dpop, InvalidDpop};
pub use error::BuildError;
pub use issuer::{DEFAULT_ALGORITHMS, Issuer, LocalKeys};
pub use jsonwebtoken::Algorithm;
pub use mtls::Mtls;
pub use revocation::{RevocationQuery, Revocations, TokenFilter, VerifiedTokens};
pub use scopes::ScopeMapping;

/// The signature path alone, for the Wycheproof conformance test (feature `conformance`; not
/// a stable API): the vectors' payloads are not claim sets, so everything but the claims is
/// checked, by the same code the authenticator runs.
#[cfg(feature = "conformance")]
#[doc(hidden)]
pub mod __conformance {
    use crate::keys::KeySet;

    /// Whether `token` is a compact JWS whose header passes tollgate's rules and whose
    /// signature the key for it among those of the JWK Set `jwks` verifies, the set loaded as
    /// a fetched JWKS is (`remote`) or as configured keys are
    /// ([`LocalKeys::jwks`](crate::LocalKeys::jwks), where HMAC secrets may be). `Err` when
    /// the set itself is refused.
    pub fn verifies(jwks: &str, remote: bool, token: &str) -> Result<bool, String> {
        let keys = if remote {
            crate::keys::parse_jwks(jwks.as_bytes(), crate::DEFAULT_ALGORITHMS)?
        } else {
            let keys = crate::LocalKeys::new()
                .jwks(jwks)
                .map_err(|e| e.to_string())?;
            KeySet::new(keys.into_keys())
        };
        let Ok(signed) = crate::token::Signed::<crate::token::Header>::parse(token) else {
            return Ok(false);
        };
        let Ok(alg) = signed.header.algorithm() else {
            return Ok(false);
        };
        // An issuer's allowlist: the defaults, plus HMAC for configured secrets.
        let hmac = alg.family() == jsonwebtoken::AlgorithmFamily::Hmac;
        if !crate::DEFAULT_ALGORITHMS.contains(&alg) && (remote || !hmac) {
            return Ok(false);
        }
        let kid = signed.header.kid.as_deref();
        Ok(crate::auth::signature_valid(
            &keys,
            kid,
            alg,
            signed.message,
            signed.signature,
        ))
    }

    /// Whether the public JWK `jwk`, prepared for `alg` as a fetched JWKS key is, verifies
    /// `signature` (base64url) of the raw `message`: the signature vectors' messages are
    /// not JWS signing inputs. `Err` when the key is refused.
    pub fn verifies_signature(
        jwk: &str,
        alg: jsonwebtoken::Algorithm,
        message: &[u8],
        signature: &str,
    ) -> Result<bool, String> {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(jwk).map_err(|e| e.to_string())?;
        let key = crate::keys::prepare(&jwk, &[alg]).map_err(|e| e.to_string())?;
        Ok(key.verifies(alg, message, signature.as_bytes()))
    }
}
