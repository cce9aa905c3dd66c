//! [`KeyVerifier`]: asks whoever knows the keys whether one is valid, and the answer types.

use std::future::Future;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tollgate_core::{AuthError, CredentialKind, ErrorKind, Principal, Scopes};
use tollgate_upstream::UpstreamError;

/// Verifies an API key: Unkey ([`UnkeyVerifier`](crate::UnkeyVerifier)), your own JSON
/// service ([`JsonVerifier`](crate::JsonVerifier)), a static list
/// ([`StaticKeys`](crate::StaticKeys)), or your own implementation (a database lookup).
///
/// Answer `Ok` with a [`Verdict`] whenever the key was judged, valid or not; answer `Err` only
/// when it could not be judged (the service is down, slow, or answered nonsense): tollgate then
/// fails closed with 503, never 401. The key must never appear in an error.
///
/// ```
/// use tollgate_apikey::{Denial, KeyInfo, KeyVerifier, UpstreamError, Verdict};
///
/// struct Database;
///
/// impl KeyVerifier for Database {
///     async fn verify(&self, key: &str) -> Result<Verdict, UpstreamError> {
///         // look the key's hash up in your own store...
///         if key == "sk_test_known" {
///             Ok(Verdict::Valid(KeyInfo::new("key_1").scopes(["orders:read"])))
///         } else {
///             Ok(Verdict::Invalid(Denial::NotFound))
///         }
///     }
/// }
/// ```
pub trait KeyVerifier: Send + Sync + 'static {
    /// Judges `key`.
    fn verify(&self, key: &str) -> impl Future<Output = Result<Verdict, UpstreamError>> + Send;
}

/// What a key service said about a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The key is valid.
    Valid(KeyInfo),
    /// The key is not valid, or not usable now.
    Invalid(Denial),
}

/// Why a key was refused. Unkey's codes, plus `Other` for codes this version does not know
/// (treated as invalid, as Unkey's spec asks).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// No such key: 401 `invalid_token`.
    NotFound,
    /// The key is disabled: 401 `invalid_token`.
    Disabled,
    /// The key has expired: 401 `invalid_token`.
    Expired,
    /// The key may not be used from here (an IP allowlist): 403.
    Forbidden,
    /// The key lacks the permissions asked for: 403 `insufficient_scope`.
    InsufficientPermissions,
    /// The key is over its rate limit: 429, `Retry-After` until `reset` when known.
    RateLimited {
        /// When the limit resets.
        reset: Option<SystemTime>,
    },
    /// The key has no credits left: 429 without `Retry-After` (credits are refilled by
    /// whoever owns the key, on no schedule a key service reports).
    UsageExceeded,
    /// A code this version does not know: 401 `invalid_token`.
    Other(String),
}

impl Denial {
    /// The code as Unkey spells it, for logs and counters.
    pub fn code(&self) -> &str {
        match self {
            Denial::NotFound => "NOT_FOUND",
            Denial::Disabled => "DISABLED",
            Denial::Expired => "EXPIRED",
            Denial::Forbidden => "FORBIDDEN",
            Denial::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            Denial::RateLimited { .. } => "RATE_LIMITED",
            Denial::UsageExceeded => "USAGE_EXCEEDED",
            Denial::Other(code) => code,
        }
    }

    /// Reads an Unkey-style code (`NOT_FOUND`, ...); `reset` is used for `RATE_LIMITED`.
    pub fn from_code(code: &str, reset: Option<SystemTime>) -> Denial {
        match code {
            "NOT_FOUND" => Denial::NotFound,
            "DISABLED" => Denial::Disabled,
            "EXPIRED" => Denial::Expired,
            "FORBIDDEN" => Denial::Forbidden,
            "INSUFFICIENT_PERMISSIONS" => Denial::InsufficientPermissions,
            "RATE_LIMITED" => Denial::RateLimited { reset },
            "USAGE_EXCEEDED" => Denial::UsageExceeded,
            other => Denial::Other(other.chars().take(64).collect()),
        }
    }

    /// The error the client gets.
    pub(crate) fn to_error(&self) -> AuthError {
        match self {
            Denial::NotFound | Denial::Other(_) => {
                AuthError::invalid_token("the API key is not valid")
            }
            Denial::Disabled => AuthError::invalid_token("the API key is disabled"),
            Denial::Expired => AuthError::invalid_token("the API key has expired"),
            Denial::Forbidden => AuthError::new(
                ErrorKind::InsufficientScope,
                "the API key may not be used from here",
            ),
            Denial::InsufficientPermissions => AuthError::new(
                ErrorKind::InsufficientScope,
                "the API key lacks the permissions this request needs",
            ),
            Denial::RateLimited { reset } => AuthError::rate_limited(
                "the API key is over its rate limit",
                reset.map(|r| {
                    r.duration_since(SystemTime::now())
                        .unwrap_or(Duration::ZERO)
                }),
            ),
            Denial::UsageExceeded => AuthError::rate_limited("the API key has no usage left", None),
        }
    }
}

/// What a valid key is: its id, owner, scopes, metadata and expiry. Becomes the
/// [`Principal`]: subject = `key_id`, data = the metadata (an object gets `owner` added when
/// known; a non-object metadata with an owner becomes `{"owner": ..., "meta": ...}`).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyInfo {
    key_id: String,
    owner: Option<String>,
    scopes: Scopes,
    meta: Value,
    expires_at: Option<SystemTime>,
}

impl KeyInfo {
    /// A valid key with id `key_id` (never the key itself), no scopes, no metadata.
    pub fn new(key_id: impl Into<String>) -> Self {
        KeyInfo {
            key_id: key_id.into(),
            owner: None,
            scopes: Scopes::empty(),
            meta: Value::Null,
            expires_at: None,
        }
    }

    /// Sets who owns the key (a customer or identity id).
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Sets the scopes the key grants.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.scopes = scopes.into_iter().collect();
        self
    }

    /// Sets the key's metadata (any JSON).
    pub fn meta(mut self, meta: Value) -> Self {
        self.meta = meta;
        self
    }

    /// Sets when the key expires; a cached answer never outlives it.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// The key's id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// When the key expires, if it does.
    pub fn expiry(&self) -> Option<SystemTime> {
        self.expires_at
    }

    pub(crate) fn into_principal(self) -> Principal {
        // The data is the key's own metadata, plus `owner` when known; nothing is added for a
        // key with neither, which keeps a cached entry small.
        let data = match (self.meta, self.owner) {
            (meta, None) => meta,
            (Value::Object(mut map), Some(owner)) => {
                map.insert("owner".into(), Value::String(owner));
                Value::Object(map)
            }
            (Value::Null, Some(owner)) => serde_json::json!({ "owner": owner }),
            (meta, Some(owner)) => serde_json::json!({ "owner": owner, "meta": meta }),
        };
        let mut builder = Principal::builder(self.key_id, CredentialKind::ApiKey)
            .scopes(self.scopes)
            .data(data);
        if let Some(at) = self.expires_at {
            builder = builder.expires_at(at);
        }
        builder.build()
    }
}
