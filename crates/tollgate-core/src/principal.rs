//! [`Principal`]: the verified identity that a tollgate layer puts in the request extensions.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

use crate::{Binding, Scopes};

/// Which kind of credential proved a [`Principal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    /// An API key checked by a key-verification service or a static key list.
    ApiKey,
    /// A bearer JWT checked against an issuer's keys.
    Jwt,
    /// An opaque access token judged by its issuer's introspection endpoint (RFC 7662).
    OpaqueToken,
    /// A credential of the application's own [`Authenticator`](crate::Authenticator),
    /// named by it (for example `"mtls"`).
    Other(&'static str),
}

/// The verified identity behind a request: who (`subject`), proved how (`kind`), by whom
/// (`issuer`), until when (`expires_at`), allowed to do what (`scopes`), and the verified data
/// itself (`data`: the JWT claims, or the API key's metadata).
///
/// Cheap to clone (one `Arc`). Never holds the credential itself, so its `Debug` output is
/// safe to log. Round-trips through serde, so a shared verdict cache can store one.
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
    binding: Option<Binding>,
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
            binding: None,
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

    /// The issuer as shared by the authenticator, to keep without a copy.
    pub(crate) fn shared_issuer(&self) -> Option<&Arc<str>> {
        self.0.issuer.as_ref()
    }

    /// When the credential stops being valid, where known.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.0.expires_at
    }

    /// The scopes it grants.
    pub fn scopes(&self) -> &Scopes {
        &self.0.scopes
    }

    /// What the token is bound to, for a sender-constrained token (DPoP, RFC 9449, or a
    /// client certificate, RFC 8705) whose request proved the binding; `None` for a bearer
    /// credential.
    pub fn binding(&self) -> Option<&Binding> {
        self.0.binding.as_ref()
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
            .field("binding", &self.0.binding)
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

    /// Marks the credential sender-constrained (default: a bearer credential). The
    /// authenticator must refuse a request that does not prove `binding`.
    pub fn binding(mut self, binding: Binding) -> Self {
        self.0.binding = Some(binding);
        self
    }

    /// Finishes the principal.
    pub fn build(self) -> Principal {
        Principal(Arc::new(self.0))
    }
}

impl CredentialKind {
    /// A short name: `api_key`, `jwt`, `opaque_token`, or the name of an `Other` kind.
    pub fn name(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "api_key",
            CredentialKind::Jwt => "jwt",
            CredentialKind::OpaqueToken => "opaque_token",
            CredentialKind::Other(name) => name,
        }
    }

    /// The kind named `name` ([`name`](Self::name)'s inverse). Names of `Other` kinds are
    /// interned once each, up to a small bound (they come from a program's own
    /// authenticators, so there are few); past it, `Other("other")`.
    pub fn from_name(name: &str) -> Self {
        match name {
            "api_key" => CredentialKind::ApiKey,
            "jwt" => CredentialKind::Jwt,
            "opaque_token" => CredentialKind::OpaqueToken,
            other => CredentialKind::Other(intern(other)),
        }
    }
}

fn intern(name: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    const MAX_NAMES: usize = 64;
    let Ok(mut names) = NAMES.lock() else {
        return "other";
    };
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(known) = names.get(name) {
        return known;
    }
    if names.len() >= MAX_NAMES || name.len() > 64 {
        return "other";
    }
    let leaked: &'static str = Box::leak(name.into());
    names.insert(leaked);
    leaked
}

/// The serialized form of a [`Principal`].
#[derive(serde::Serialize, serde::Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    subject: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    issuer: Option<std::borrow::Cow<'a, str>>,
    /// Milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(default)]
    scopes: Scopes,
    #[serde(default)]
    data: Value,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    jkt: Option<std::borrow::Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        rename = "x5t#S256",
        skip_serializing_if = "Option::is_none"
    )]
    x5t_s256: Option<std::borrow::Cow<'a, str>>,
}

impl serde::Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let p = &self.0;
        Wire {
            subject: (&*p.subject).into(),
            kind: p.kind.name().into(),
            issuer: p.issuer.as_deref().map(Into::into),
            expires_at: p.expires_at.map(|at| {
                at.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }),
            scopes: p.scopes.clone(),
            data: p.data.clone(),
            jkt: p
                .binding
                .as_ref()
                .and_then(Binding::dpop_thumbprint)
                .map(Into::into),
            x5t_s256: p
                .binding
                .as_ref()
                .and_then(Binding::certificate_thumbprint)
                .map(Into::into),
        }
        .serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Principal {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        let mut builder = Principal::builder(&*wire.subject, CredentialKind::from_name(&wire.kind))
            .scopes(wire.scopes)
            .data(wire.data);
        if let Some(issuer) = wire.issuer {
            builder = builder.issuer(&*issuer);
        }
        if let Some(jkt) = wire.jkt {
            builder = builder.binding(Binding::Dpop { jkt: jkt.into() });
        } else if let Some(x5t_s256) = wire.x5t_s256 {
            builder = builder.binding(Binding::Certificate {
                x5t_s256: x5t_s256.into(),
            });
        }
        if let Some(ms) = wire.expires_at {
            let at = std::time::UNIX_EPOCH
                .checked_add(std::time::Duration::from_millis(ms))
                .ok_or_else(|| serde::de::Error::custom("expires_at out of range"))?;
            builder = builder.expires_at(at);
        }
        Ok(builder.build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_serde() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let p = Principal::builder("key_1", CredentialKind::Other("mtls"))
            .issuer("https://idp")
            .expires_at(at)
            .scopes(Scopes::from(["b", "a"]))
            .data(serde_json::json!({"plan": "pro"}))
            .binding(Binding::Dpop {
                jkt: "thumb".into(),
            })
            .build();
        let json = serde_json::to_string(&p).unwrap();
        let back: Principal = serde_json::from_str(&json).unwrap();
        assert_eq!(back.subject(), "key_1");
        assert_eq!(back.kind(), CredentialKind::Other("mtls"));
        assert_eq!(back.issuer(), Some("https://idp"));
        assert_eq!(back.expires_at(), Some(at));
        assert_eq!(back.scopes(), p.scopes());
        assert_eq!(back.data(), p.data());
        assert_eq!(back.binding(), p.binding());
    }
}
