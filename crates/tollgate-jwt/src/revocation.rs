//! [`Revocations`]: tokens refused before their `exp`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;

use tollgate_core::{AuthError, Principal};

/// A verified token, as a revocation list is asked about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationQuery<'a> {
    /// The token's `iss` (a configured issuer).
    pub issuer: &'a str,
    /// Its `sub`.
    pub subject: &'a str,
    /// Its `jti`, if it has one.
    pub jti: Option<&'a str>,
    /// Its `iat` (seconds since the epoch), if it has one.
    pub issued_at: Option<u64>,
}

impl<'a> RevocationQuery<'a> {
    /// The query for a principal made from a JWT.
    pub fn of(principal: &'a Principal) -> Self {
        let claims = principal.data();
        RevocationQuery {
            issuer: principal.issuer().unwrap_or_default(),
            subject: principal.subject(),
            jti: claims.get("jti").and_then(|v| v.as_str()),
            issued_at: claims.get("iat").and_then(|v| v.as_u64()),
        }
    }
}

/// Tokens revoked before their `exp`, by `jti` or by subject, asked after every
/// verification, verified-token cache hits included: a revocation takes effect on the next
/// request. It runs on every request, so it answers from memory (`tollgate-redis` mirrors a
/// fleet-wide list locally).
///
/// `Err` refuses the token: [`AuthError::invalid_token`] for a revoked one,
/// [`AuthError::unavailable`] when the list cannot be trusted right now and it says so.
///
/// ```
/// use std::collections::HashSet;
/// use tollgate_core::AuthError;
/// use tollgate_jwt::{RevocationQuery, Revocations};
///
/// /// Token ids revoked for good, from a file read at start.
/// struct Denylist(HashSet<String>);
///
/// impl Revocations for Denylist {
///     fn check(&self, token: RevocationQuery<'_>) -> Result<(), AuthError> {
///         match token.jti {
///             Some(jti) if self.0.contains(jti) => Err(AuthError::invalid_token("the token was revoked")),
///             _ => Ok(()),
///         }
///     }
/// }
/// // JwtAuth::builder().revocations(Denylist(..))
/// ```
pub trait Revocations: Send + Sync + 'static {
    /// Whether `token` may still be used.
    fn check(&self, token: RevocationQuery<'_>) -> Result<(), AuthError>;

    /// Called once by a `JwtAuth` with a verified-token cache, with that cache: a list that
    /// learns of revocations (from other replicas) keeps it to drop the revoked tokens it
    /// holds, which [`check`](Self::check) refuses anyway. The reference is weak; the default
    /// keeps nothing.
    fn attach(&self, cache: Weak<dyn VerifiedTokens>) {
        let _ = cache;
    }
}

/// A predicate over verified tokens, for [`VerifiedTokens::purge`].
pub type TokenFilter<'a> = &'a (dyn Fn(RevocationQuery<'_>) -> bool + Send + Sync);

/// A `JwtAuth`'s verified-token cache, as a [`Revocations`] list sees it.
pub trait VerifiedTokens: Send + Sync {
    /// Drops every cached token `revoked` holds true for.
    fn purge<'a>(
        &'a self,
        revoked: TokenFilter<'a>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}
