//! [`Principal`]: the verified identity that a tollgate layer puts in the request extensions.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use crate::Scopes;

/// Which kind of credential proved a [`Principal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    /// An API key checked by a key-verification service or a static key list.
    ApiKey,
    /// A bearer JWT checked against an issuer's keys.
    Jwt,
    /// A credential of the application's own [`Authenticator`](crate::Authenticator),
    /// named by it (for example `"mtls"`).
    Other(&'static str),
}

/// The verified identity behind a request: who (`subject`), proved how (`kind`), by whom
/// (`issuer`), until when (`expires_at`), allowed to do what (`scopes`), and the verified data
/// itself (`data`: the JWT claims, or the API key's metadata).
///
/// Cheap to clone (one `Arc`). Never holds the credential itself, so its `Debug` output is
/// safe to log.
///
/// ```
/// use tollgate_core::{CredentialKind, Principal, Scopes};
///
/// let principal = Principal::builder("key_123", CredentialKind::ApiKey)
///     .scopes(Scopes::from(["orders:read"]))
///     .data(serde_json::json!({"plan": "pro"}))
///     .build();
/// assert_eq!(principal.subject(), "key_123");
/// assert!(principal.scopes().contains("orders:read"));
/// assert_eq!(principal.data()["plan"], "pro");
/// ```
#[derive(Clone)]
pub struct Principal(Arc<Inner>);

struct Inner {
    subject: Box<str>,
    kind: CredentialKind,
    issuer: Option<Arc<str>>,
    expires_at: Option<SystemTime>,
    scopes: Scopes,
    data: Value,
}

impl Principal {
    /// Starts a principal for `subject` (the JWT `sub`, or the key's id).
    pub fn builder(subject: impl Into<Box<str>>, kind: CredentialKind) -> PrincipalBuilder {
        PrincipalBuilder(Inner {
            subject: subject.into(),
            kind,
            issuer: None,
            expires_at: None,
            scopes: Scopes::empty(),
            data: Value::Null,
        })
    }

    /// Who the credential belongs to.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// Which kind of credential proved it.
    pub fn kind(&self) -> CredentialKind {
        self.0.kind
    }

    /// Who vouched for it (the JWT `iss`), where known.
    pub fn issuer(&self) -> Option<&str> {
        self.0.issuer.as_deref()
    }

    /// When the credential stops being valid, where known.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.0.expires_at
    }

    /// The scopes it grants.
    pub fn scopes(&self) -> &Scopes {
        &self.0.scopes
    }

    /// The verified data: JWT claims, or the key's metadata (`Value::Null` when none).
    pub fn data(&self) -> &Value {
        &self.0.data
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.0.subject)
            .field("kind", &self.0.kind)
            .field("issuer", &self.0.issuer)
            .field("expires_at", &self.0.expires_at)
            .field("scopes", &self.0.scopes)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Principal`]; see [`Principal::builder`].
#[must_use]
pub struct PrincipalBuilder(Inner);

impl PrincipalBuilder {
    /// Sets the issuer (default: none). An `Arc<str>` is shared, not copied: authenticators
    /// that make many principals for one issuer pass the same one.
    pub fn issuer(mut self, issuer: impl Into<Arc<str>>) -> Self {
        self.0.issuer = Some(issuer.into());
        self
    }

    /// Sets when the credential expires (default: unknown).
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.0.expires_at = Some(at);
        self
    }

    /// Sets the granted scopes (default: none).
    pub fn scopes(mut self, scopes: Scopes) -> Self {
        self.0.scopes = scopes;
        self
    }

    /// Sets the verified data (default: `null`).
    pub fn data(mut self, data: Value) -> Self {
        self.0.data = data;
        self
    }

    /// Finishes the principal.
    pub fn build(self) -> Principal {
        Principal(Arc::new(self.0))
    }
}
