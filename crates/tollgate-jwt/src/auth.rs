//! [`JwtAuth`]: the bearer-JWT [`Authenticator`], and its builder.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::request::Parts;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use tollgate_core::{
    AuthError, AuthLayer, Authenticator, CredentialKind, CredentialSource, Principal,
};

use crate::cache::VerifiedCache;
use crate::issuer::Source;
use crate::keys::KeySet;
use crate::store::KeyStore;
use crate::token::Parsed;
use crate::{BuildError, Issuer};

/// The longest token accepted by default, in bytes.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// The default timeout of the default HTTP client (JWKS and discovery fetches).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// An [`AuthLayer`] that authenticates bearer JWTs.
pub type JwtLayer = AuthLayer<JwtAuth>;

/// Authenticates `Authorization: Bearer` JWTs from one or several [`Issuer`]s.
///
/// Per request: the size cap, one parse of header and claims, the issuer chosen by `iss`,
/// the key chosen by `kid` from an atomically swapped key set (never waiting on a fetch
/// unless the `kid` is unknown), the signature checked by `jsonwebtoken`, then the claims.
/// Cheap to clone; the background refresh stops when the last clone is dropped.
#[derive(Clone)]
pub struct JwtAuth {
    inner: Arc<Inner>,
}

struct Inner {
    issuers: HashMap<String, Runtime>,
    source: CredentialSource,
    cache: Option<VerifiedCache>,
}

/// An issuer with its keys.
struct Runtime {
    config: Issuer,
    /// The `iss`, shared by every principal of this issuer.
    iss: Arc<str>,
    keys: Keys,
}

enum Keys {
    Local(KeySet),
    Remote(Arc<KeyStore>),
}

/// What the JWT layer has done, read with [`JwtAuth::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwtStats {
    /// JWKS (and discovery) loads attempted, all issuers together.
    pub jwks_fetches: u64,
    /// Loads that failed (the last good keys were kept).
    pub jwks_failures: u64,
    /// Tokens answered from the verified-token cache.
    pub cache_hits: u64,
}

impl fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("issuers", &self.inner.issuers.keys().collect::<Vec<_>>())
            .field("verified_token_cache", &self.inner.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// Starts building; add at least one [`Issuer`].
    pub fn builder() -> JwtAuthBuilder {
        JwtAuthBuilder {
            issuers: Vec::new(),
            client: None,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            cache: None,
            cookie: None,
        }
    }

    /// The tower layer for this authenticator (`AuthLayer::new(self)`).
    pub fn layer(self) -> JwtLayer {
        AuthLayer::new(self)
    }

    /// The counters so far.
    pub fn stats(&self) -> JwtStats {
        let mut stats = JwtStats {
            cache_hits: self
                .inner
                .cache
                .as_ref()
                .map_or(0, |c| c.hits.load(Relaxed)),
            ..JwtStats::default()
        };
        for issuer in self.inner.issuers.values() {
            if let Keys::Remote(store) = &issuer.keys {
                stats.jwks_fetches += store.counters.fetches.load(Relaxed);
                stats.jwks_failures += store.counters.failures.load(Relaxed);
            }
        }
        stats
    }

    /// Verifies `token` as the layer does, without a request (for WebSocket handshakes,
    /// message queues...).
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > self.inner.source.max_len_value() {
            return Err(AuthError::invalid_token("the credential is too long"));
        }
        self.inner.verify(token).await
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Runtime {
    /// Generation of the keys, for the verified-token cache (local keys never change).
    fn generation(&self) -> u64 {
        match &self.keys {
            Keys::Local(_) => 0,
            Keys::Remote(store) => store.current.load().generation,
        }
    }

    fn unavailable() -> AuthError {
        AuthError::unavailable(
            "the token issuer's keys are not available right now",
            Duration::from_secs(5),
        )
    }

    /// Finds a key that verifies the signature, refetching once for an unknown `kid`.
    async fn verify_signature(
        &self,
        parsed: &Parsed<'_>,
        alg: Algorithm,
    ) -> Result<u64, AuthError> {
        let check = |keys: &KeySet| {
            keys.candidates(parsed.header.kid.as_deref(), alg).any(|k| {
                jsonwebtoken::crypto::verify(
                    parsed.signature,
                    parsed.message.as_bytes(),
                    &k.key,
                    alg,
                )
                .unwrap_or(false)
            })
        };
        let bad = || AuthError::invalid_token("the token signature is not valid");
        let store = match &self.keys {
            Keys::Local(keys) => return if check(keys) { Ok(0) } else { Err(bad()) },
            Keys::Remote(store) => store,
        };
        {
            let snapshot = store.current.load();
            if !store.usable(&snapshot) {
                return Err(Self::unavailable());
            }
            let known = parsed
                .header
                .kid
                .as_deref()
                .is_none_or(|kid| snapshot.keys.has_kid(kid));
            if known {
                return if check(&snapshot.keys) {
                    Ok(snapshot.generation)
                } else {
                    Err(bad())
                };
            }
        }
        // An unknown kid: perhaps the issuer rotated. The guard above is dropped before
        // waiting, so no snapshot is held across the fetch. The fetch's future is boxed:
        // inline, its kilobytes would be part of every request's future.
        let kid = parsed.header.kid.as_deref().unwrap_or_default();
        if !Box::pin(store.refetch_for(kid)).await {
            return Err(AuthError::invalid_token(
                "the token was signed by an unknown key",
            ));
        }
        let snapshot = store.current.load();
        if check(&snapshot.keys) {
            Ok(snapshot.generation)
        } else {
            Err(bad())
        }
    }

    fn principal(&self, claims: Map<String, Value>, exp: i64) -> Principal {
        let subject = claims
            .get("sub")
            .or_else(|| claims.get("client_id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let scopes = self.config.scopes.scopes(&claims);
        let mut builder = Principal::builder(subject, CredentialKind::Jwt)
            .issuer(self.iss.clone())
            .scopes(scopes);
        if let Some(at) = u64::try_from(exp)
            .ok()
            .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
        {
            builder = builder.expires_at(at);
        }
        builder.data(Value::Object(claims)).build()
    }
}

impl Inner {
    async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if let Some(cache) = &self.cache
            && let Some(principal) = cache
                .get(token, |iss| self.issuers.get(iss).map(Runtime::generation))
                .await
        {
            return Ok(principal);
        }
        let parsed = Parsed::parse(token)?;
        let alg = parsed.algorithm()?;
        let issuer = self
            .issuers
            .get(parsed.issuer()?)
            .ok_or_else(|| AuthError::invalid_token("the token issuer is not trusted"))?;
        issuer.config.check_header(&parsed.header, alg)?;
        let generation = issuer.verify_signature(&parsed, alg).await?;
        let exp = issuer.config.check_claims(&parsed.claims, now_secs())?;
        let principal = issuer.principal(parsed.claims, exp);
        if let Some(cache) = &self.cache {
            // Boxed for the same reason as the refetch: a miss has just paid for a signature
            // check, and the hits' future stays small.
            Box::pin(cache.insert(token, &principal, generation)).await;
        }
        Ok(principal)
    }
}

impl Authenticator for JwtAuth {
    async fn authenticate(&self, parts: &Parts) -> Result<Principal, AuthError> {
        match self.inner.source.find(&parts.headers)? {
            Some(token) => self.inner.verify(token).await,
            None => Err(AuthError::missing_credential()),
        }
    }

    fn guard_credentials(&self, headers: &mut HeaderMap, strip: bool) {
        self.inner.source.guard(headers, strip);
    }
}

/// Builds a [`JwtAuth`]; every setting has a safe default, named on its method.
#[must_use]
pub struct JwtAuthBuilder {
    issuers: Vec<Issuer>,
    client: Option<reqwest::Client>,
    max_token_len: usize,
    cache: Option<(u64, Duration)>,
    cookie: Option<Box<str>>,
}

impl JwtAuthBuilder {
    /// Trusts `issuer` (several may be added; each `iss` once).
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// Uses your `reqwest` client for every JWKS and discovery fetch (custom CA, mTLS,
    /// proxy). Default: a rustls client with a 5 s timeout.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The longest token accepted, in bytes (default: 8 KiB), checked before anything is
    /// decoded.
    pub fn max_token_len(mut self, max: usize) -> Self {
        self.max_token_len = max;
        self
    }

    /// Also reads the token from the cookie `name` (default: off). A token sent both as a
    /// cookie and in `Authorization` is a 400. Cookies are sent by browsers on their own, so
    /// routes that accept one need CSRF protection.
    pub fn cookie(mut self, name: impl Into<Box<str>>) -> Self {
        self.cookie = Some(name.into());
        self
    }

    /// Caches verified tokens (default: off): up to `max_entries`, keyed by the token's
    /// SHA-256, each for at most `max_ttl` and never past the token's `exp`. A repeated token
    /// then skips the signature check.
    ///
    /// The trade-off: a token stays accepted for its cached life even if its key is removed
    /// from the JWKS, until the key set is next refreshed; any change to an issuer's set of
    /// keys invalidates that issuer's cached tokens.
    pub fn verified_token_cache(mut self, max_entries: u64, max_ttl: Duration) -> Self {
        self.cache = Some((max_entries, max_ttl));
        self
    }

    /// Fetches the keys of every remote issuer (discovery first where asked) and starts
    /// their background refresh. Fails if an issuer is misconfigured, or if a first fetch
    /// fails for an issuer that is not [`lazy`](Issuer::lazy). Needs a Tokio runtime.
    pub async fn build(self) -> Result<JwtAuth, BuildError> {
        crate::crypto::ensure_provider();
        if self.issuers.is_empty() {
            return Err(BuildError::NoIssuer);
        }
        let client = match self.client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .timeout(DEFAULT_FETCH_TIMEOUT)
                .build()
                .map_err(|_| BuildError::Client)?,
        };
        let mut issuers = HashMap::new();
        for config in self.issuers {
            config.validate()?;
            let keys = match &config.source {
                Source::Local(keys) => Keys::Local(keys.clone()),
                Source::JwksUrl(_) | Source::Discovery => {
                    let url = match &config.source {
                        Source::JwksUrl(url) => Some(url.clone()),
                        _ => None,
                    };
                    let store = KeyStore::new(
                        &config.issuer,
                        url,
                        client.clone(),
                        config.algorithms.clone(),
                        config.refresh.clone(),
                    );
                    let (outcome, next) = store.first_load().await;
                    outcome.map_err(|reason| BuildError::Fetch {
                        issuer: config.issuer.clone(),
                        discovery: store.uses_discovery(),
                        reason,
                    })?;
                    store.spawn_refresh(next);
                    Keys::Remote(store)
                }
            };
            let iss = config.issuer.clone();
            let runtime = Runtime {
                iss: iss.as_str().into(),
                config,
                keys,
            };
            if issuers.insert(iss.clone(), runtime).is_some() {
                return Err(BuildError::DuplicateIssuer(iss));
            }
        }
        Ok(JwtAuth {
            inner: Arc::new(Inner {
                issuers,
                source: match self.cookie {
                    Some(name) => CredentialSource::bearer().also_cookie(name),
                    None => CredentialSource::bearer(),
                }
                .max_len(self.max_token_len),
                cache: self
                    .cache
                    .map(|(entries, ttl)| VerifiedCache::new(entries, ttl)),
            }),
        })
    }
}
