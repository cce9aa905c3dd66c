//! [`KeyStore`]: a remote issuer's keys, swapped atomically, refreshed in the background,
//! refetched (once, rate-limited) for an unknown `kid`, kept while the issuer is down.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::issuer::Refresh;
use crate::keys::{KeySet, parse_jwks};

/// The largest JWKS or discovery document read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// How many made-up kids are remembered between two refreshes.
const MAX_UNKNOWN_KIDS: usize = 10_000;

/// One loaded key set.
pub(crate) struct Snapshot {
    pub(crate) keys: KeySet,
    /// When these keys were last fetched successfully; `None` before the first success.
    pub(crate) loaded_at: Option<Instant>,
    /// Bumped when the set of kids changes, so verified-token cache entries made under older
    /// keys are no longer trusted.
    pub(crate) generation: u64,
}

/// What the store has done, for [`JwtAuth::stats`](crate::JwtAuth::stats).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) fetches: AtomicU64,
    pub(crate) failures: AtomicU64,
}

pub(crate) struct KeyStore {
    issuer: String,
    discovery: bool,
    jwks_url: OnceLock<String>,
    client: reqwest::Client,
    algorithms: Vec<Algorithm>,
    refresh: Refresh,
    pub(crate) current: ArcSwap<Snapshot>,
    /// Unknown-kid refetches: moka's single flight runs one load for all the requests that
    /// ask at once, and the entry living for the cooldown is the rate limit. No lock of ours
    /// is held while the load runs; requests with known kids never come here.
    refetches: moka::future::Cache<(), ()>,
    unknown_kids: Mutex<HashSet<String>>,
    pub(crate) counters: Counters,
    task: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
}

impl KeyStore {
    pub(crate) fn new(
        issuer: &str,
        jwks_url: Option<String>,
        client: reqwest::Client,
        algorithms: Vec<Algorithm>,
        refresh: Refresh,
    ) -> Arc<Self> {
        let url = OnceLock::new();
        let discovery = jwks_url.is_none();
        let cooldown = refresh.cooldown;
        if let Some(u) = jwks_url {
            let _ = url.set(u);
        }
        Arc::new(KeyStore {
            issuer: issuer.to_owned(),
            discovery,
            jwks_url: url,
            client,
            algorithms,
            refresh,
            current: ArcSwap::from_pointee(Snapshot {
                keys: KeySet::default(),
                loaded_at: None,
                generation: 0,
            }),
            refetches: moka::future::Cache::builder()
                .max_capacity(1)
                .time_to_live(cooldown)
                .build(),
            unknown_kids: Mutex::new(HashSet::new()),
            counters: Counters::default(),
            task: Mutex::new(None),
        })
    }

    /// Whether the keys may be used: loaded once, and not older than the max staleness.
    pub(crate) fn usable(&self, snapshot: &Snapshot) -> bool {
        snapshot
            .loaded_at
            .is_some_and(|at| at.elapsed() <= self.refresh.max_staleness)
    }

    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>), String> {
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| format!("request failed: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status().as_u16()));
        }
        let max_age = response
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading failed: {}", e.without_url()))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err("document too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }

    /// Finds the JWKS URL by discovery (OIDC, then RFC 8414), checking `issuer` exactly.
    async fn discover(&self) -> Result<String, String> {
        let base = self.issuer.trim_end_matches('/');
        let mut last_error = String::new();
        for well_known in ["openid-configuration", "oauth-authorization-server"] {
            let url = format!("{base}/.well-known/{well_known}");
            let doc = match self.get(&url).await {
                Ok((body, _)) => body,
                Err(e) => {
                    last_error = e;
                    continue;
                }
            };
            let meta: Metadata = serde_json::from_slice(&doc)
                .map_err(|_| "the discovery document is not valid".to_owned())?;
            if meta.issuer != self.issuer {
                return Err("the discovery document names another issuer".into());
            }
            return Ok(meta.jwks_uri);
        }
        Err(format!("discovery failed: {last_error}"))
    }

    /// Fetches the key set once and swaps it in; returns the `max-age` the server gave.
    pub(crate) async fn load(&self) -> Result<Option<Duration>, String> {
        self.counters.fetches.fetch_add(1, Relaxed);
        let result = self.fetch().await;
        match &result {
            Ok(_) => {
                if let Ok(mut kids) = self.unknown_kids.lock() {
                    kids.clear();
                }
            }
            Err(e) => {
                self.counters.failures.fetch_add(1, Relaxed);
                tracing::warn!(issuer = %self.issuer, error = %e, "JWKS fetch failed; keeping the last good keys");
            }
        }
        result
    }

    async fn fetch(&self) -> Result<Option<Duration>, String> {
        let url = match self.jwks_url.get() {
            Some(url) => url.clone(),
            None => {
                let url = self.discover().await?;
                self.jwks_url.get_or_init(|| url).clone()
            }
        };
        let (body, max_age) = self.get(&url).await?;
        let keys = parse_jwks(&body, &self.algorithms)?;
        let previous = self.current.load();
        let changed =
            keys.len() != previous.keys.len() || keys.kids().any(|kid| !previous.keys.has_kid(kid));
        let generation = previous.generation + u64::from(changed);
        tracing::debug!(issuer = %self.issuer, keys = keys.len(), changed, "JWKS loaded");
        self.current.store(Arc::new(Snapshot {
            keys,
            loaded_at: Some(Instant::now()),
            generation,
        }));
        Ok(max_age)
    }

    /// After a load: when to refresh next.
    fn next_delay(&self, outcome: &Result<Option<Duration>, String>) -> Duration {
        match outcome {
            Ok(Some(max_age)) => (*max_age).clamp(self.refresh.min, self.refresh.max),
            Ok(None) => self.refresh.interval,
            Err(_) => self.refresh.retry.min(self.refresh.interval),
        }
    }

    /// Starts the background refresh. It holds only a weak reference between runs, and the
    /// store aborts it when dropped, so it ends with the last layer clone.
    pub(crate) fn spawn_refresh(self: &Arc<Self>, first: Duration) {
        let weak = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut delay = first;
            loop {
                tokio::time::sleep(delay).await;
                let Some(store) = weak.upgrade() else { break };
                let outcome = store.load().await;
                delay = store.next_delay(&outcome);
            }
        });
        if let Ok(mut slot) = self.task.lock() {
            *slot = Some(task);
        }
    }

    /// The first load, at build time; returns when to refresh next.
    pub(crate) async fn first_load(&self) -> (Result<(), String>, Duration) {
        if self.refresh.lazy {
            return (Ok(()), Duration::ZERO);
        }
        let outcome = self.load().await;
        let delay = self.next_delay(&outcome);
        (outcome.map(|_| ()), delay)
    }

    /// For a `kid` not in the key set: one refetch shared by all waiting requests, at most
    /// once per cooldown; a kid still unknown afterwards is remembered until the next
    /// refresh, so made-up kids cost no further fetches. Returns whether the kid is known now.
    pub(crate) async fn refetch_for(&self, kid: &str) -> bool {
        if self.is_remembered_unknown(kid) {
            return false;
        }
        self.refetches
            .get_with((), async {
                // Failures are logged and counted by `load`; the cooldown applies either way.
                let _ = self.load().await;
            })
            .await;
        let known = self.current.load().keys.has_kid(kid);
        if !known {
            self.remember_unknown(kid);
        }
        known
    }

    fn is_remembered_unknown(&self, kid: &str) -> bool {
        self.unknown_kids
            .lock()
            .map(|kids| kids.contains(kid))
            .unwrap_or(false)
    }

    fn remember_unknown(&self, kid: &str) {
        if let Ok(mut kids) = self.unknown_kids.lock()
            && kids.len() < MAX_UNKNOWN_KIDS
        {
            kids.insert(kid.chars().take(256).collect());
        }
    }

    /// Whether discovery is used (for messages).
    pub(crate) fn uses_discovery(&self) -> bool {
        self.discovery
    }
}

impl Drop for KeyStore {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.task.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
    }
}

/// `max-age` from a `Cache-Control` value (RFC 9111 §5.2.2.1); `no-store`/`no-cache` give
/// zero (then clamped to the minimum interval).
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').map(str::trim).find_map(|directive| {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        let secs = lower.strip_prefix("max-age=")?.trim_matches('"');
        secs.parse::<u64>().ok().map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_max_age() {
        assert_eq!(
            max_age("public, max-age=120"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(max_age("max-age=\"30\""), Some(Duration::from_secs(30)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }
}
