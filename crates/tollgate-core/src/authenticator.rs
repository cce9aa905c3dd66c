//! [`Authenticator`], the one seam every credential kind implements, and [`Or`], which puts
//! two of them on one route.

use std::future::Future;
use std::sync::Arc;

use http::HeaderMap;
use http::request::Parts;

use crate::{AuthError, ErrorKind, Principal};

/// Proves who sent a request, from its head.
///
/// Returns the [`Principal`] the credential proves, or why not. Return
/// [`AuthError::missing_credential`] when the request carries no credential of this kind at
/// all: that is what lets [`Or`] pick the authenticator whose credential is present, and what
/// the layer's optional mode lets through.
///
/// Implement it for a credential of your own (a session looked up in a database, a client
/// certificate forwarded by a proxy):
///
/// ```
/// use http::request::Parts;
/// use tollgate_core::{AuthError, Authenticator, CredentialKind, CredentialSource, Principal, Scopes};
///
/// struct ProxyCertificate {
///     source: CredentialSource,
/// }
///
/// impl Authenticator for ProxyCertificate {
///     async fn authenticate(&self, parts: &Parts) -> Result<Principal, AuthError> {
///         let Some(subject) = self.source.find(&parts.headers)? else {
///             return Err(AuthError::missing_credential());
///         };
///         Ok(Principal::builder(subject, CredentialKind::Other("mtls"))
///             .scopes(Scopes::from(["internal"]))
///             .build())
///     }
/// }
/// # let _ = ProxyCertificate { source: CredentialSource::header(http::HeaderName::from_static("x-client-cert-subject")) };
/// ```
pub trait Authenticator: Send + Sync + 'static {
    /// Verifies the credential in `parts`.
    fn authenticate(
        &self,
        parts: &Parts,
    ) -> impl Future<Output = Result<Principal, AuthError>> + Send;

    /// Marks the headers that carry this authenticator's credential as sensitive, and removes
    /// the credential when `strip` is set. Called by the layer once a request is
    /// authenticated, before the inner service sees it. The default does nothing.
    fn guard_credentials(&self, headers: &mut HeaderMap, strip: bool) {
        let _ = (headers, strip);
    }

    /// Puts `other` beside this authenticator: a request is handled by the first of the two
    /// whose credential it carries, and rejected by it if that credential is bad (the other
    /// one is never tried on it).
    fn or<B: Authenticator>(self, other: B) -> Or<Self, B>
    where
        Self: Sized,
    {
        Or(self, other)
    }
}

impl<A: Authenticator> Authenticator for Arc<A> {
    fn authenticate(
        &self,
        parts: &Parts,
    ) -> impl Future<Output = Result<Principal, AuthError>> + Send {
        (**self).authenticate(parts)
    }

    fn guard_credentials(&self, headers: &mut HeaderMap, strip: bool) {
        (**self).guard_credentials(headers, strip)
    }
}

/// Two authenticators on one route; see [`Authenticator::or`].
#[derive(Debug, Clone)]
pub struct Or<A, B>(A, B);

impl<A: Authenticator, B: Authenticator> Authenticator for Or<A, B> {
    async fn authenticate(&self, parts: &Parts) -> Result<Principal, AuthError> {
        match self.0.authenticate(parts).await {
            Err(e) if e.kind() == ErrorKind::MissingCredential => self.1.authenticate(parts).await,
            decided => decided,
        }
    }

    fn guard_credentials(&self, headers: &mut HeaderMap, strip: bool) {
        self.0.guard_credentials(headers, strip);
        self.1.guard_credentials(headers, strip);
    }
}
