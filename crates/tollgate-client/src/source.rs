//! [`TokenSource`]: tokens cached per (audience, scope) until shortly before they expire,
//! refreshed ahead of expiry in the background, one request at a time per key.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

use crate::DpopKey;
use crate::token::AccessToken;
use crate::{ClientCredentials, TokenError};

type Key = (Option<Arc<str>>, Option<Arc<str>>);

#[derive(Clone)]
struct Cached {
    token: AccessToken,
    fetched: Instant,
    /// How long the token is used: its lifetime less the skew.
    usable_for: Duration,
}

struct UsableFor;

impl Expiry<Key, Cached> for UsableFor {
    fn expire_after_create(&self, _: &Key, value: &Cached, _: Instant) -> Option<Duration> {
        Some(value.usable_for)
    }

    fn expire_after_update(
        &self,
        _: &Key,
        value: &Cached,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.usable_for)
    }
}

/// Client-credentials tokens for a [`ClientCredentials`] client, cached per (audience, scope).
///
/// A token is used until `expires_in` minus the skew (default 30 s); once three quarters of
/// that time have passed, the next use starts one background refresh while the current token
/// keeps being used. Concurrent requests for a token not cached share one token request.
/// Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    client: ClientCredentials,
    skew: Duration,
    cache: Cache<Key, Cached>,
    refreshing: Mutex<HashSet<Key>>,
    requests: AtomicU64,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("client", &self.inner.client)
            .field("skew", &self.inner.skew)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// Tokens for `client`, with a 30 s skew.
    pub fn new(client: ClientCredentials) -> Self {
        Self::with_skew(client, Duration::from_secs(30))
    }

    /// Tokens for `client`, each dropped `skew` before it expires.
    pub fn with_skew(client: ClientCredentials, skew: Duration) -> Self {
        TokenSource {
            inner: Arc::new(Inner {
                client,
                skew,
                cache: Cache::builder()
                    .max_capacity(1024)
                    .expire_after(UsableFor)
                    .build(),
                refreshing: Mutex::new(HashSet::new()),
                requests: AtomicU64::new(0),
            }),
        }
    }

    /// How many token requests were made so far.
    pub fn token_requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// The token for (`audience`, `scope`).
    pub(crate) async fn access_token(
        &self,
        audience: Option<&Arc<str>>,
        scope: Option<&Arc<str>>,
    ) -> Result<AccessToken, TokenError> {
        let key: Key = (audience.cloned(), scope.cloned());
        if let Some(cached) = self.inner.cache.get(&key).await {
            if cached.fetched.elapsed() >= cached.usable_for * 3 / 4 {
                self.refresh_in_background(key);
            }
            return Ok(cached.token);
        }
        let fetch = self.inner.fetch(&key);
        self.inner
            .cache
            .try_get_with(key.clone(), fetch)
            .await
            .map(|c| c.token)
            .map_err(|e| (*e).clone())
    }

    /// The DPoP key bound tokens are sent with.
    pub(crate) fn dpop_key(&self) -> Option<&DpopKey> {
        self.inner.client.dpop.as_ref()
    }

    /// Forgets the token for (`audience`, `scope`), so the next use fetches a new one.
    pub(crate) async fn invalidate(&self, audience: Option<&Arc<str>>, scope: Option<&Arc<str>>) {
        self.inner
            .cache
            .invalidate(&(audience.cloned(), scope.cloned()))
            .await;
    }

    fn refresh_in_background(&self, key: Key) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self
            .inner
            .refreshing
            .lock()
            .is_ok_and(|mut set| set.insert(key.clone()))
        {
            return;
        }
        let inner = self.inner.clone();
        runtime.spawn(async move {
            if let Ok(fresh) = inner.fetch(&key).await {
                inner.cache.insert(key.clone(), fresh).await;
            }
            if let Ok(mut set) = inner.refreshing.lock() {
                set.remove(&key);
            }
        });
    }
}

impl Inner {
    async fn fetch(&self, key: &Key) -> Result<Cached, TokenError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let token = self
            .client
            .request(key.0.as_deref(), key.1.as_deref())
            .await?;
        let usable_for = if token.lifetime > self.skew * 2 {
            token.lifetime - self.skew
        } else {
            token.lifetime / 2
        };
        tracing::debug!(audience = key.0.as_deref(), lifetime = ?token.lifetime, "client-credentials token obtained");
        Ok(Cached {
            token,
            fetched: Instant::now(),
            usable_for,
        })
    }
}
