//! [`ApiKeyAuth`]: the API-key [`Authenticator`], and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderMap, HeaderName};
use tollgate_core::{
    AuthError, AuthLayer, Authenticator, CredentialDigest, CredentialSource, Principal,
};
use tracing::Instrument;

use crate::cache::{CacheConfig, Entry, KeyCache};
use crate::stats::{Counters, Stats, bump};
use crate::{KeyVerifier, Verdict};

/// The header API keys are read from by default.
pub const DEFAULT_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// The longest key accepted by default, in bytes (Unkey's limit).
pub const DEFAULT_MAX_LEN: usize = 512;

/// An [`AuthLayer`] that authenticates API keys.
pub type ApiKeyLayer<V> = AuthLayer<ApiKeyAuth<V>>;

/// Authenticates API keys: reads the key, checks it locally (length, charset, prefix), then
/// asks the cache or, on a miss, the [`KeyVerifier`].
///
/// Cheap to clone; clones share the cache and the counters. Build one with
/// [`ApiKeyAuth::builder`]; see the crate docs for an example.
pub struct ApiKeyAuth<V> {
    inner: Arc<Inner<V>>,
    bypass_cache: bool,
}

struct Inner<V> {
    verifier: V,
    source: CredentialSource,
    header: HeaderName,
    accepts_bearer: bool,
    prefix: Option<Box<str>>,
    cache: Option<KeyCache>,
    retry_after: Duration,
    counters: Counters,
}

impl<V> Clone for ApiKeyAuth<V> {
    fn clone(&self) -> Self {
        ApiKeyAuth {
            inner: self.inner.clone(),
            bypass_cache: self.bypass_cache,
        }
    }
}

impl<V> fmt::Debug for ApiKeyAuth<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyAuth")
            .field("header", &self.inner.header)
            .field("accepts_bearer", &self.inner.accepts_bearer)
            .field("cache", &self.inner.cache.as_ref().map(|c| &c.config))
            .field("bypass_cache", &self.bypass_cache)
            .finish_non_exhaustive()
    }
}

impl<V: KeyVerifier> ApiKeyAuth<V> {
    /// Starts building an authenticator that asks `verifier`.
    pub fn builder(verifier: V) -> ApiKeyAuthBuilder<V> {
        ApiKeyAuthBuilder {
            verifier,
            header: DEFAULT_HEADER,
            accepts_bearer: false,
            prefix: None,
            max_len: DEFAULT_MAX_LEN,
            cache: Some(CacheConfig::default()),
            retry_after: Duration::from_secs(5),
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
            inner: self.inner.clone(),
            bypass_cache: true,
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// Forgets what is cached about `key` (a revocation hook, e.g. from a webhook).
    pub async fn invalidate(&self, key: &str) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate(&CredentialDigest::of(key)).await;
        }
    }

    /// Forgets everything cached.
    pub fn invalidate_all(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate_all();
        }
    }

    /// How many verdicts are cached now (approximate; for tests and memory estimates).
    pub async fn cached_entries(&self) -> u64 {
        match &self.inner.cache {
            Some(cache) => {
                cache.verdicts.run_pending_tasks().await;
                cache.verdicts.entry_count()
            }
            None => 0,
        }
    }
}

impl<V: KeyVerifier> Inner<V> {
    fn unavailable(&self) -> AuthError {
        AuthError::unavailable(
            "the API key could not be verified right now",
            self.retry_after,
        )
    }

    /// One call to the key service, turned into a cache entry.
    async fn fetch(&self, key: &str, hash: CredentialDigest) -> Result<Entry, crate::VerifyError> {
        bump(&self.counters.upstream_calls);
        // One span per upstream call (never per cache hit), with the key id once known.
        let span = tracing::debug_span!("api_key_verification", key_id = tracing::field::Empty);
        let verdict = match self.verifier.verify(key).instrument(span.clone()).await {
            Ok(verdict) => verdict,
            Err(e) => {
                self.counters.error(e.kind());
                tracing::warn!(parent: &span, error = %e, "API key verification failed upstream");
                return Err(e);
            }
        };
        self.counters.outcome(&verdict);
        let outcome = match verdict {
            Verdict::Valid(info) => {
                let principal = info.into_principal();
                span.record("key_id", principal.subject());
                tracing::debug!(parent: &span, key_id = principal.subject(), "API key verified");
                Ok(principal)
            }
            Verdict::Invalid(denial) => {
                tracing::debug!(parent: &span, code = denial.code(), "API key refused");
                Err(Arc::new(denial.to_error()))
            }
        };
        let entry = Entry { outcome };
        if let Some(cache) = &self.cache {
            cache.mark_fresh(hash).await;
            cache.remember_good(hash, &entry).await;
        }
        Ok(entry)
    }
}

impl<V: KeyVerifier> ApiKeyAuth<V> {
    async fn through_cache(&self, cache: &KeyCache, key: &str) -> Result<Principal, AuthError> {
        let inner = &self.inner;
        let hash = CredentialDigest::of(key);
        if let Some(entry) = cache.verdicts.get(&hash).await {
            bump(&inner.counters.hits);
            if cache.wants_revalidation(&hash) {
                bump(&inner.counters.stale_served);
                self.revalidate(hash, key);
            }
            return entry.result();
        }
        // The miss path's future is several KB (moka's single flight around the verifier
        // call); boxing it keeps the future of every hit small, so it is cheap to create
        // and move.
        Box::pin(self.miss(cache, key, hash)).await
    }

    /// A cache miss: one call to the key service per key at a time, or a stale verdict.
    async fn miss(
        &self,
        cache: &KeyCache,
        key: &str,
        hash: CredentialDigest,
    ) -> Result<Principal, AuthError> {
        let inner = &self.inner;
        bump(&inner.counters.misses);
        // Concurrent misses on one key wait for a single call (moka's single flight).
        match cache
            .verdicts
            .try_get_with(hash, inner.fetch(key, hash))
            .await
        {
            Ok(entry) => entry.result(),
            Err(_) => match cache.stale(&hash).await {
                Some(principal) => {
                    bump(&inner.counters.stale_served);
                    tracing::warn!(
                        key_id = principal.subject(),
                        "key service down: serving a stale verdict"
                    );
                    Ok(principal)
                }
                None => Err(inner.unavailable()),
            },
        }
    }

    /// Asks the key service without looking in the cache (no cache, or
    /// [`bypass_cache`](Self::bypass_cache)); the answer is still stored.
    async fn uncached(&self, cache: Option<&KeyCache>, key: &str) -> Result<Principal, AuthError> {
        let hash = CredentialDigest::of(key);
        let entry = self
            .inner
            .fetch(key, hash)
            .await
            .map_err(|_| self.inner.unavailable())?;
        if let Some(cache) = cache {
            cache.verdicts.insert(hash, entry.clone()).await;
        }
        entry.result()
    }

    /// Refreshes `hash` in the background, one task per key at a time.
    fn revalidate(&self, hash: CredentialDigest, key: &str) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(cache) = &self.inner.cache else {
            return;
        };
        if !cache.start_revalidation(hash) {
            return;
        }
        let auth = self.clone();
        let key = key.to_owned();
        runtime.spawn(async move {
            let inner = &auth.inner;
            let Some(cache) = &inner.cache else { return };
            if let Ok(entry) = inner.fetch(&key, hash).await {
                cache.verdicts.insert(hash, entry).await;
            }
            cache.end_revalidation(&hash);
        });
    }

    /// Keys checked without a call: a configured prefix must match.
    fn precheck<'k>(&self, headers: &HeaderMap, key: &'k str) -> Result<&'k str, AuthError> {
        let Some(prefix) = &self.inner.prefix else {
            return Ok(key);
        };
        if key.starts_with(&**prefix) {
            return Ok(key);
        }
        if self.inner.accepts_bearer && !headers.contains_key(&self.inner.header) {
            // A bearer token without our prefix is another authenticator's (a JWT).
            return Err(AuthError::missing_credential());
        }
        bump(&self.inner.counters.rejected_locally);
        Err(AuthError::invalid_token("the API key is not valid"))
    }
}

impl<V: KeyVerifier> Authenticator for ApiKeyAuth<V> {
    async fn authenticate(&self, parts: &Parts) -> Result<Principal, AuthError> {
        let Some(key) = self.inner.source.find(&parts.headers)? else {
            return Err(AuthError::missing_credential());
        };
        let key = self.precheck(&parts.headers, key)?;
        match &self.inner.cache {
            Some(cache) if !self.bypass_cache => self.through_cache(cache, key).await,
            cache => Box::pin(self.uncached(cache.as_ref(), key)).await,
        }
    }

    fn guard_credentials(&self, headers: &mut HeaderMap, strip: bool) {
        self.inner.source.guard(headers, strip);
    }
}

/// Builds an [`ApiKeyAuth`]; every setting has a safe default, named on its method.
#[must_use]
pub struct ApiKeyAuthBuilder<V> {
    verifier: V,
    header: HeaderName,
    accepts_bearer: bool,
    prefix: Option<Box<str>>,
    max_len: usize,
    cache: Option<CacheConfig>,
    retry_after: Duration,
}

impl<V: KeyVerifier> ApiKeyAuthBuilder<V> {
    /// Reads the key from `header` (default: `x-api-key`). Two copies of it are a 400.
    pub fn header(mut self, header: HeaderName) -> Self {
        self.header = header;
        self
    }

    /// Also reads the key from `Authorization: Bearer <key>` (default: off). A key sent both
    /// ways is a 400. With a [`prefix`](Self::prefix), a bearer token without it is left to
    /// the next authenticator (a JWT one, say) instead of being refused.
    pub fn also_bearer(mut self) -> Self {
        self.accepts_bearer = true;
        self
    }

    /// Requires keys to start with `prefix` (e.g. `sk_live_`; default: none). Others are
    /// refused locally, without a call.
    pub fn prefix(mut self, prefix: impl Into<Box<str>>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The longest key accepted, in bytes (default: 512). Longer ones are refused before
    /// anything else, without a call.
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    fn cache_config(&mut self) -> &mut CacheConfig {
        self.cache.get_or_insert_with(CacheConfig::default)
    }

    /// How long a valid verdict is cached (default: 60 s), and never past the key's own
    /// expiry. A revoked key keeps working for up to this long unless you call
    /// [`ApiKeyAuth::invalidate`].
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_config().ttl = ttl;
        self
    }

    /// How long a refusal (unknown, disabled, expired, forbidden, rate-limited key) is cached
    /// (default: 10 s), so a flood of bad keys costs one call per key per period.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.cache_config().negative_ttl = ttl;
        self
    }

    /// The most verdicts cached (default: 100 000); the least useful are evicted past it.
    pub fn max_entries(mut self, max_entries: u64) -> Self {
        self.cache_config().max_entries = max_entries;
        self
    }

    /// Stale-while-revalidate (default: off): a cached verdict older than `fresh_for` (and
    /// younger than the TTL) is still served, while one background call per key refreshes it.
    pub fn stale_while_revalidate(mut self, fresh_for: Duration) -> Self {
        self.cache_config().fresh_for = Some(fresh_for);
        self
    }

    /// Serve-stale-on-error (default: off): while the key service is down, a key that was
    /// *valid* is still accepted for up to `grace` past its TTL (never past its own expiry).
    ///
    /// This opens a revocation window: a key revoked during an outage keeps working for up
    /// to `ttl + grace`. Refusals are never served stale.
    pub fn serve_stale_on_error(mut self, grace: Duration) -> Self {
        self.cache_config().stale_grace = Some(grace);
        self
    }

    /// Turns the cache off: every request calls the key service (default: cache on).
    pub fn no_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// The `Retry-After` sent with a 503 when the key service is down (default: 5 s).
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Finishes the authenticator.
    pub fn build(self) -> ApiKeyAuth<V> {
        let mut source = CredentialSource::header(self.header.clone()).max_len(self.max_len);
        if self.accepts_bearer {
            source = source.also_bearer();
        }
        ApiKeyAuth {
            inner: Arc::new(Inner {
                verifier: self.verifier,
                source,
                header: self.header,
                accepts_bearer: self.accepts_bearer,
                prefix: self.prefix,
                cache: self.cache.map(KeyCache::new),
                retry_after: self.retry_after,
                counters: Counters::default(),
            }),
            bypass_cache: false,
        }
    }
}
