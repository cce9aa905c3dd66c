//! [`Authenticator`], the one seam every credential kind implements; [`Or`], which puts two
//! of them on one route; [`BoxAuthenticator`], for setups chosen at run time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::request::Parts;

use crate::{AuthError, Challenge, CredentialSource, Principal};

/// Proves who sent a request, from its head.
///
/// `authenticate` says one of three things:
///
/// - `Ok(Some(principal))`: authenticated;
/// - `Ok(None)`: the request carries **no credential of this kind** (nothing where this
///   authenticator looks, or something that is not its kind, such as a JWT in the
///   `Authorization` header an API-key authenticator also reads). [`Or`] then asks the
///   next authenticator; alone, the layer answers 401, and lets the request through in its
///   optional mode only when it carries no credential at all;
/// - `Err(error)`: refused, with the reason (a bad credential, or an outage: see
///   [`AuthError`]). [`Or`] never asks another authenticator about a refused credential.
///
/// It also declares where it reads its credential ([`credential_source`]: the layer marks
/// the credential sensitive and strips it from there) and which challenges a 401 names
/// ([`challenges`]: by default, those of its source).
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
///     async fn authenticate(&self, parts: &Parts) -> Result<Option<Principal>, AuthError> {
///         let Some(subject) = self.source.find(parts)? else {
///             return Ok(None);
///         };
///         Ok(Some(
///             Principal::builder(subject.as_str(), CredentialKind::Other("mtls"))
///                 .scopes(Scopes::from(["internal"]))
///                 .build(),
///         ))
///     }
///
///     fn credential_source(&self) -> CredentialSource {
///         self.source.clone()
///     }
/// }
/// # let _ = ProxyCertificate { source: CredentialSource::header(http::HeaderName::from_static("x-client-cert-subject")) };
/// ```
///
/// [`credential_source`]: Authenticator::credential_source
/// [`challenges`]: Authenticator::challenges
pub trait Authenticator: Send + Sync + 'static {
    /// Verifies the credential in `parts`.
    fn authenticate(
        &self,
        parts: &Parts,
    ) -> impl Future<Output = Result<Option<Principal>, AuthError>> + Send;

    /// Where this authenticator reads its credential. Read once, when the layer is built.
    fn credential_source(&self) -> CredentialSource;

    /// The challenges a 401 or 403 names (RFC 9110 §11.6.1). Read once, when the layer is
    /// built. The default derives them from [`credential_source`](Self::credential_source).
    fn challenges(&self) -> Vec<Challenge> {
        self.credential_source().challenges()
    }

    /// Puts `other` beside this authenticator: a request is handled by the first of the two
    /// that finds a credential of its kind, and refused by it if that credential is bad (the
    /// other one is never tried on it).
    fn or<B: Authenticator>(self, other: B) -> Or<Self, B>
    where
        Self: Sized,
    {
        Or(self, other)
    }

    /// This authenticator behind a pointer, so that authenticators of different types can be
    /// chosen at run time (tenants from a configuration file); see [`BoxAuthenticator`].
    fn boxed(self) -> BoxAuthenticator
    where
        Self: Sized,
    {
        BoxAuthenticator(Arc::new(self))
    }
}

impl<A: Authenticator> Authenticator for Arc<A> {
    fn authenticate(
        &self,
        parts: &Parts,
    ) -> impl Future<Output = Result<Option<Principal>, AuthError>> + Send {
        (**self).authenticate(parts)
    }

    fn credential_source(&self) -> CredentialSource {
        (**self).credential_source()
    }

    fn challenges(&self) -> Vec<Challenge> {
        (**self).challenges()
    }
}

/// Two authenticators on one route; see [`Authenticator::or`].
#[derive(Debug, Clone)]
pub struct Or<A, B>(A, B);

impl<A: Authenticator, B: Authenticator> Authenticator for Or<A, B> {
    async fn authenticate(&self, parts: &Parts) -> Result<Option<Principal>, AuthError> {
        match self.0.authenticate(parts).await? {
            None => self.1.authenticate(parts).await,
            found => Ok(found),
        }
    }

    fn credential_source(&self) -> CredentialSource {
        self.0
            .credential_source()
            .union(&self.1.credential_source())
    }

    fn challenges(&self) -> Vec<Challenge> {
        let mut all = self.0.challenges();
        for challenge in self.1.challenges() {
            if !all.contains(&challenge) {
                all.push(challenge);
            }
        }
        all
    }
}

/// The future of a boxed authentication.
type BoxedOutcome<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Principal>, AuthError>> + Send + 'a>>;

/// The object-safe twin of [`Authenticator`], implemented for every authenticator.
trait DynAuthenticator: Send + Sync + 'static {
    fn authenticate_boxed<'a>(&'a self, parts: &'a Parts) -> BoxedOutcome<'a>;
    fn credential_source(&self) -> CredentialSource;
    fn challenges(&self) -> Vec<Challenge>;
}

impl<A: Authenticator> DynAuthenticator for A {
    fn authenticate_boxed<'a>(&'a self, parts: &'a Parts) -> BoxedOutcome<'a> {
        Box::pin(self.authenticate(parts))
    }

    fn credential_source(&self) -> CredentialSource {
        Authenticator::credential_source(self)
    }

    fn challenges(&self) -> Vec<Challenge> {
        Authenticator::challenges(self)
    }
}

/// Any authenticator, its type erased: for setups chosen at run time, such as one
/// authenticator per tenant read from a configuration file. Costs one allocation per request
/// for the boxed future (see `BENCHMARKS.md`). Cheap to clone.
///
/// ```
/// use tollgate_core::{AuthLayer, Authenticator, BoxAuthenticator};
/// # use tollgate_core::{AuthError, CredentialSource, Principal};
/// # struct Tenant(&'static str);
/// # impl Authenticator for Tenant {
/// #     async fn authenticate(&self, _: &http::request::Parts) -> Result<Option<Principal>, AuthError> { Ok(None) }
/// #     fn credential_source(&self) -> CredentialSource { CredentialSource::bearer() }
/// # }
///
/// let tenants = ["acme", "globex"].map(|name| Tenant(name).boxed());
/// let any_tenant: BoxAuthenticator = tenants
///     .into_iter()
///     .reduce(|a, b| a.or(b).boxed())
///     .unwrap();
/// let layer = AuthLayer::new(any_tenant);
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct BoxAuthenticator(Arc<dyn DynAuthenticator>);

impl fmt::Debug for BoxAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxAuthenticator").finish_non_exhaustive()
    }
}

impl Authenticator for BoxAuthenticator {
    async fn authenticate(&self, parts: &Parts) -> Result<Option<Principal>, AuthError> {
        self.0.authenticate_boxed(parts).await
    }

    fn credential_source(&self) -> CredentialSource {
        self.0.credential_source()
    }

    fn challenges(&self) -> Vec<Challenge> {
        self.0.challenges()
    }

    fn boxed(self) -> BoxAuthenticator {
        self
    }
}
