//! [`ApiKeyAuth`]: the API-key [`Authenticator`], and its builder.

use std::fmt;
use std::time::Duration;

use http::HeaderName;
use http::request::Parts;
use tollgate_core::{
    AuthError, AuthLayer, Authenticator, CredentialKind, CredentialSource, Principal, Via,
};
use tollgate_upstream::{
    CachePolicy, RemoteVerifier, Stats, UpstreamError, VerdictCache, VerdictCacheBuilder,
    VerdictStore,
};
use tracing::Instrument;

use crate::{KeyVerifier, Verdict};

/// The header API keys are read from by default.
pub const DEFAULT_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// The longest key accepted by default, in bytes (Unkey's limit), when the credential
/// source sets no cap of its own.
pub const DEFAULT_MAX_KEY_LEN: usize = 512;

/// How long a bearer token may be before it is refused unread, whatever kind it turns out to
/// be (the cap of a key applies once it is known to be one).
const MAX_BEARER_LEN: usize = 16 * 1024;

/// An [`AuthLayer`] that authenticates API keys.
pub type ApiKeyLayer<V> = AuthLayer<ApiKeyAuth<V>>;

/// Authenticates API keys: reads the key, checks it locally (length, charset, prefix), then
/// asks the verdict cache or, on a miss, the [`KeyVerifier`].
///
/// Cheap to clone; clones share the cache and the counters. Build one with
/// [`ApiKeyAuth::builder`]; see the crate docs for an example.
pub struct ApiKeyAuth<V> {
    verdicts: VerdictCache<KeyJudge<V>>,
    source: CredentialSource,
    /// `source` with room for a bearer token that is not a key (a long RS256 JWT): its length
    /// is checked against the key cap only once it is known to be meant as a key.
    lenient: CredentialSource,
    prefix: Option<Box<str>>,
    jwt_shaped_keys: bool,
    bypass_cache: bool,
}

/// A [`KeyVerifier`] as the verdict engine asks it: one span per upstream call (never per
/// cache hit), with the key id once known.
struct KeyJudge<V>(V);

impl<V: KeyVerifier> RemoteVerifier for KeyJudge<V> {
    async fn verify(&self, key: &str) -> Result<Result<Principal, AuthError>, UpstreamError> {
        let span = tracing::debug_span!("api_key_verification", key_id = tracing::field::Empty);
        let verdict = self.0.verify(key).instrument(span.clone()).await?;
        Ok(match verdict {
            Verdict::Valid(info) => {
                span.record("key_id", info.key_id());
                tracing::debug!(parent: &span, key_id = info.key_id(), "API key verified");
                Ok(info.into_principal())
            }
            Verdict::Invalid(denial) => {
                tracing::debug!(parent: &span, code = denial.code(), "API key refused");
                Err(denial.to_error())
            }
        })
    }
}

impl<V> Clone for ApiKeyAuth<V> {
    fn clone(&self) -> Self {
        ApiKeyAuth {
            verdicts: self.verdicts.clone(),
            source: self.source.clone(),
            lenient: self.lenient.clone(),
            prefix: self.prefix.clone(),
            jwt_shaped_keys: self.jwt_shaped_keys,
            bypass_cache: self.bypass_cache,
        }
    }
}

impl<V> fmt::Debug for ApiKeyAuth<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyAuth")
            .field("source", &self.source)
            .field("verdicts", &self.verdicts)
            .field("bypass_cache", &self.bypass_cache)
            .finish_non_exhaustive()
    }
}

impl<V: KeyVerifier> ApiKeyAuth<V> {
    /// Starts building an authenticator that asks `verifier`.
    pub fn builder(verifier: V) -> ApiKeyAuthBuilder<V> {
        ApiKeyAuthBuilder {
            engine: VerdictCache::builder(KeyJudge(verifier))
                .credential_kind(CredentialKind::ApiKey),
            source: CredentialSource::header(DEFAULT_HEADER),
            prefix: None,
            jwt_shaped_keys: false,
        }
    }

    /// The tower layer for this authenticator (`AuthLayer::new(self)`).
    pub fn layer(self) -> ApiKeyLayer<V> {
        AuthLayer::new(self)
    }

    /// A clone that always asks the key service and never answers from the cache (the
    /// answer is still stored), for routes where credits or rate limits must be charged on
    /// every call: `.route_layer(auth.bypass_cache().layer())`. Shares the cache and counters.
    pub fn bypass_cache(&self) -> Self {
        ApiKeyAuth {
            bypass_cache: true,
            ..self.clone()
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.verdicts.stats()
    }

    /// Forgets what is cached about `key`, here and in a shared store (a revocation hook,
    /// e.g. from a webhook).
    pub async fn invalidate(&self, key: &str) {
        self.verdicts.invalidate(key).await;
    }

    /// Forgets everything cached, here and in a shared store.
    pub async fn invalidate_all(&self) {
        self.verdicts.invalidate_all().await;
    }

    /// How many valid verdicts are cached now (approximate; for tests and memory estimates).
    pub async fn cached_entries(&self) -> u64 {
        self.verdicts.cached_entries().await
    }
}

impl<V: KeyVerifier> Authenticator for ApiKeyAuth<V> {
    async fn authenticate(&self, parts: &Parts) -> Result<Option<Principal>, AuthError> {
        let Some(key) = self.lenient.find(parts)? else {
            return Ok(None);
        };
        if key.via() == Via::Bearer {
            // A bearer token may be someone else's: a JWT, or (with a prefix) a token that
            // lacks it. Those are left to the next authenticator.
            let not_a_key = (!self.jwt_shaped_keys && key.is_jwt_shaped())
                || self.prefix.as_deref().is_some_and(|p| !key.starts_with(p));
            if not_a_key {
                return Ok(None);
            }
        }
        let verdict = if key.len() > self.source.length_limit() {
            Err(AuthError::invalid_token("the credential is too long"))
        } else if self.prefix.as_deref().is_some_and(|p| !key.starts_with(p)) {
            self.verdicts.rejected_locally();
            Err(AuthError::invalid_token("the API key is not valid"))
        } else if self.bypass_cache {
            self.verdicts.verdict_uncached(&key).await
        } else {
            self.verdicts.verdict(&key).await
        };
        match verdict {
            Ok(principal) => Ok(Some(principal)),
            Err(e) => Err(e.with_origin(CredentialKind::ApiKey, None)),
        }
    }

    fn credential_source(&self) -> CredentialSource {
        self.source.clone()
    }
}

/// Builds an [`ApiKeyAuth`]; every setting has a safe default, named on its method, and no
/// setting depends on the order of the calls.
#[must_use]
pub struct ApiKeyAuthBuilder<V> {
    engine: VerdictCacheBuilder<KeyJudge<V>>,
    source: CredentialSource,
    prefix: Option<Box<str>>,
    jwt_shaped_keys: bool,
}

impl<V: KeyVerifier> ApiKeyAuthBuilder<V> {
    /// Where keys are read, and how long they may be (default: the `x-api-key` header, 512
    /// bytes). Any source works: `CredentialSource::header(DEFAULT_HEADER).also_bearer()`
    /// for `Authorization: Bearer <key>` too, a cookie, a query parameter. A key sent two
    /// ways is a 400. A cap set on the source wins over the 512-byte default.
    pub fn credential_source(mut self, source: CredentialSource) -> Self {
        self.source = source;
        self
    }

    /// Requires keys to start with `prefix` (e.g. `sk_live_`; default: none). Others are
    /// refused locally, without a call; a bearer token without it is left to the next
    /// authenticator (a JWT one, say).
    pub fn prefix(mut self, prefix: impl Into<Box<str>>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Treats a JWT-shaped bearer token (three base64url parts, a JSON header) as an API key
    /// too (default: off). Off, such a token is left to the next authenticator, so that
    /// `api_keys.or(jwts)` sends JWTs to the JWT authenticator and never to the key service.
    /// Keys read from a key header are API keys whatever their shape.
    pub fn jwt_shaped_keys(mut self) -> Self {
        self.jwt_shaped_keys = true;
        self
    }

    /// How verdicts are cached (default: [`CachePolicy::default`]: valid keys 60 s and never
    /// past their expiry, refusals 10 s, 100 000 entries; [`CachePolicy::disabled`] for none).
    pub fn cache(mut self, policy: CachePolicy) -> Self {
        self.engine = self.engine.policy(policy);
        self
    }

    /// Shares verdicts through `store` (a fleet's Redis, say): asked on a local miss before
    /// the key service, written after each verification (default: none).
    pub fn store(mut self, store: impl VerdictStore) -> Self {
        self.engine = self.engine.store(store);
        self
    }

    /// The `Retry-After` sent with a 503 when the key service is down and gives no better
    /// one (default: 5 s; while the breaker is open, the time until its next probe).
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.engine = self.engine.retry_after(retry_after);
        self
    }

    /// Finishes the authenticator.
    pub fn build(self) -> ApiKeyAuth<V> {
        let source = self.source.max_len_if_unset(DEFAULT_MAX_KEY_LEN);
        let lenient = match source.reads_bearer() {
            true => source
                .clone()
                .max_len(source.length_limit().max(MAX_BEARER_LEN)),
            false => source.clone(),
        };
        ApiKeyAuth {
            verdicts: self.engine.build(),
            lenient,
            source,
            prefix: self.prefix,
            jwt_shaped_keys: self.jwt_shaped_keys,
            bypass_cache: false,
        }
    }
}
