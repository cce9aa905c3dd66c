//! The verdict cache: moka, keyed by the SHA-256 of the key, one upstream call per key at a
//! time, optional stale-while-revalidate and serve-stale-on-error.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use moka::future::Cache;
use tollgate_core::{AuthError, CredentialDigest, Principal};

/// A cached verdict: the principal, or the error the client gets (behind an `Arc`, which
/// keeps every entry, valid ones included, small). How long it lives is computed from it when
/// it is stored (see [`Lifetime`]), and how fresh it is is kept apart (`KeyCache::fresh`),
/// so an entry is one pointer and a tag.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) outcome: Result<Principal, Arc<AuthError>>,
}

impl Entry {
    /// The verdict as the authenticator answers it.
    pub(crate) fn result(self) -> Result<Principal, AuthError> {
        self.outcome.map_err(|e| (*e).clone())
    }
}

/// How long an entry lives: valid verdicts `ttl` (plus `grace` in the serve-stale cache),
/// never past the key's expiry; refusals `negative_ttl`, never past a rate limit's reset.
/// Renewed when an entry is replaced.
struct Lifetime {
    ttl: Duration,
    negative_ttl: Duration,
    grace: Duration,
}

impl Lifetime {
    fn of(&self, entry: &Entry) -> Duration {
        let left = |at: SystemTime| at.duration_since(SystemTime::now()).unwrap_or_default();
        match &entry.outcome {
            Ok(principal) => {
                let ttl = self.ttl + self.grace;
                principal.expires_at().map_or(ttl, |at| ttl.min(left(at)))
            }
            Err(e) => e
                .retry_after()
                .map_or(self.negative_ttl, |reset| self.negative_ttl.min(reset)),
        }
    }
}

impl Expiry<CredentialDigest, Entry> for Lifetime {
    fn expire_after_create(
        &self,
        _: &CredentialDigest,
        entry: &Entry,
        _: Instant,
    ) -> Option<Duration> {
        Some(self.of(entry))
    }

    fn expire_after_update(
        &self,
        _: &CredentialDigest,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.of(entry))
    }
}

/// Cache settings; see the builder methods of [`ApiKeyAuthBuilder`](crate::ApiKeyAuthBuilder).
#[derive(Debug, Clone)]
pub(crate) struct CacheConfig {
    pub(crate) ttl: Duration,
    pub(crate) negative_ttl: Duration,
    pub(crate) max_entries: u64,
    pub(crate) fresh_for: Option<Duration>,
    pub(crate) stale_grace: Option<Duration>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(10),
            max_entries: 100_000,
            fresh_for: None,
            stale_grace: None,
        }
    }
}

pub(crate) struct KeyCache {
    pub(crate) config: CacheConfig,
    pub(crate) verdicts: Cache<CredentialDigest, Entry>,
    /// Valid principals kept `ttl + grace`, served only while the key service is down.
    pub(crate) last_good: Option<Cache<CredentialDigest, Entry>>,
    /// With stale-while-revalidate: a marker per key that lives `fresh_for` after each fetch;
    /// a verdict whose marker is gone is served while it is revalidated.
    fresh: Option<Cache<CredentialDigest, ()>>,
    /// Keys with a background revalidation under way (stale-while-revalidate), so that a hot
    /// key starts one, not one per request. Locked only to insert or remove.
    pub(crate) revalidating: Mutex<HashSet<CredentialDigest>>,
}

impl KeyCache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        let build = |grace| {
            Cache::builder()
                .max_capacity(config.max_entries)
                .expire_after(Lifetime {
                    ttl: config.ttl,
                    negative_ttl: config.negative_ttl,
                    grace,
                })
                .build()
        };
        KeyCache {
            verdicts: build(Duration::ZERO),
            last_good: config.stale_grace.map(build),
            fresh: config.fresh_for.map(|fresh_for| {
                Cache::builder()
                    .max_capacity(config.max_entries)
                    .time_to_live(fresh_for)
                    .build()
            }),
            revalidating: Mutex::new(HashSet::new()),
            config,
        }
    }

    /// Whether the verdict for `hash` is older than `fresh_for` and should be revalidated
    /// in the background (never without stale-while-revalidate).
    pub(crate) fn wants_revalidation(&self, hash: &CredentialDigest) -> bool {
        self.fresh
            .as_ref()
            .is_some_and(|fresh| !fresh.contains_key(hash))
    }

    /// Notes that the verdict for `hash` was just fetched.
    pub(crate) async fn mark_fresh(&self, hash: CredentialDigest) {
        if let Some(fresh) = &self.fresh {
            fresh.insert(hash, ()).await;
        }
    }

    /// Marks `hash` as being revalidated; `false` if it already was.
    pub(crate) fn start_revalidation(&self, hash: CredentialDigest) -> bool {
        self.revalidating
            .lock()
            .map(|mut set| set.insert(hash))
            .unwrap_or(false)
    }

    pub(crate) fn end_revalidation(&self, hash: &CredentialDigest) {
        if let Ok(mut set) = self.revalidating.lock() {
            set.remove(hash);
        }
    }

    /// Remembers a valid principal for the serve-stale-on-error grace period.
    pub(crate) async fn remember_good(&self, hash: CredentialDigest, entry: &Entry) {
        if let (Some(last_good), Ok(_)) = (&self.last_good, &entry.outcome) {
            last_good.insert(hash, entry.clone()).await;
        }
    }

    /// A valid principal from the grace period, if there is one.
    pub(crate) async fn stale(&self, hash: &CredentialDigest) -> Option<Principal> {
        self.last_good.as_ref()?.get(hash).await?.outcome.ok()
    }

    pub(crate) async fn invalidate(&self, hash: &CredentialDigest) {
        self.verdicts.invalidate(hash).await;
        if let Some(fresh) = &self.fresh {
            fresh.invalidate(hash).await;
        }
        if let Some(last_good) = &self.last_good {
            last_good.invalidate(hash).await;
        }
    }

    pub(crate) fn invalidate_all(&self) {
        self.verdicts.invalidate_all();
        if let Some(fresh) = &self.fresh {
            fresh.invalidate_all();
        }
        if let Some(last_good) = &self.last_good {
            last_good.invalidate_all();
        }
    }
}
