//! [`KeyStore`]: a remote issuer's keys, swapped atomically, refreshed in the background,
//! refetched (rate-limited, one fetch shared by every waiting request) when a token names a
//! `kid` it lacks or a known key stops verifying, and kept while the issuer is down.
//!
//! The refetch rules, so that no attacker can stall a rotation:
//! - at most one fetch per cooldown, however many made-up kids arrive;
//! - a fetch is only evidence about kids seen before it started: a kid first seen while a
//!   fetch was under way, or during the cooldown, is looked up by the first fetch the
//!   cooldown allows (scheduled then, in the background), so a rotated-in key is accepted
//!   within one cooldown of its first use;
//! - a key replaced under an unchanged `kid` heals the same way;
//! - while the issuer is down, an unknown kid is the issuer's fault (503), not the client's.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use jsonwebtoken::Algorithm;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tollgate_core::telemetry::{Gauge, Lazy};
use tollgate_upstream::{Fetched, ServerMetadata, Upstream, UpstreamError};

use crate::issuer::Refresh;
use crate::keys::{KeySet, parse_jwks};

/// The largest JWKS or discovery document read.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// One loaded key set.
pub(crate) struct Snapshot {
    pub(crate) keys: KeySet,
    /// When these keys were last fetched successfully; `None` before the first success.
    pub(crate) loaded_at: Option<Instant>,
    /// Bumped when the key material changes (a kid added or removed, or a key replaced
    /// under its kid), so verified-token cache entries made under older keys are no longer
    /// trusted.
    pub(crate) generation: u64,
}

/// What the store has done, for [`JwtAuth::stats`](crate::JwtAuth::stats), and exported
/// (feature `metrics`) by issuer: `tollgate_jwks_loads_total{result}`,
/// `tollgate_jwks_refetches_total{result}`, `tollgate_jwks_last_success_timestamp_seconds`
/// and `tollgate_jwks_keys`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) fetches: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) refetches: AtomicU64,
    pub(crate) cooldown_refusals: AtomicU64,
    /// Loads that succeeded, failed; refetches started, refused by the cooldown.
    exported: [Lazy; 4],
    last_success: Lazy<Gauge>,
    keys: Lazy<Gauge>,
}

#[derive(Clone, Copy)]
enum Event {
    Loaded,
    LoadFailed,
    Refetch,
    CooldownRefusal,
}

impl KeyStore {
    fn count(&self, event: Event) {
        let (counter, name, result) = match event {
            Event::Loaded => (&self.counters.fetches, "tollgate_jwks_loads_total", "ok"),
            Event::LoadFailed => (
                &self.counters.failures,
                "tollgate_jwks_loads_total",
                "failed",
            ),
            Event::Refetch => (
                &self.counters.refetches,
                "tollgate_jwks_refetches_total",
                "started",
            ),
            Event::CooldownRefusal => (
                &self.counters.cooldown_refusals,
                "tollgate_jwks_refetches_total",
                "cooldown",
            ),
        };
        counter.fetch_add(1, Relaxed);
        if matches!(event, Event::LoadFailed) {
            // `fetches` counts every load, the failed ones too.
            self.counters.fetches.fetch_add(1, Relaxed);
        }
        let labels = || {
            vec![
                ("issuer", self.issuer.clone()),
                ("result", result.to_owned()),
            ]
        };
        self.counters.exported[event as usize].with(name, labels, |c| c.increment());
    }

    /// Exports the key set just loaded: when, and how many keys.
    fn loaded(&self, keys: usize) {
        let labels = || vec![("issuer", self.issuer.clone())];
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let name = "tollgate_jwks_last_success_timestamp_seconds";
        self.counters
            .last_success
            .with(name, labels, |g| g.set(now));
        self.counters
            .keys
            .with("tollgate_jwks_keys", labels, |g| g.set(keys as f64));
    }
}

/// Where the JWKS is.
enum JwksLocation {
    Fixed(String),
    /// Found by discovery; `None` until then, and again when the URL starts failing.
    Discovered(Mutex<Option<String>>),
}

/// The state of fetches, locked only to read or change it, never across a fetch.
#[derive(Default)]
struct Fetches {
    in_flight: bool,
    /// When the last refetch (one a request caused) started.
    last_start: Option<Instant>,
    /// A fetch is scheduled for the end of the cooldown.
    scheduled: bool,
    /// The last completed fetch failed, and when to try again.
    down: Option<Duration>,
}

/// What asking for fresh keys gave.
pub(crate) enum Refetch {
    /// A fetch completed (successfully) since the request asked; `joined` when it had
    /// started before, and so says nothing of kids first seen after its start.
    Done { joined: bool },
    /// No fetch is allowed yet; one is scheduled for the end of the cooldown.
    CoolingDown,
    /// The issuer is down: try again after this long.
    IssuerDown(Duration),
}

pub(crate) struct KeyStore {
    issuer: String,
    jwks: JwksLocation,
    upstream: Upstream,
    algorithms: Vec<Algorithm>,
    refresh: Refresh,
    pub(crate) current: ArcSwap<Snapshot>,
    fetches: Mutex<Fetches>,
    /// Completed fetches, counted: what waiting requests watch.
    completed: watch::Sender<u64>,
    me: Weak<KeyStore>,
    pub(crate) counters: Counters,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl KeyStore {
    pub(crate) fn new(
        issuer: &str,
        jwks_url: Option<String>,
        upstream: Upstream,
        algorithms: Vec<Algorithm>,
        refresh: Refresh,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| KeyStore {
            issuer: issuer.to_owned(),
            jwks: match jwks_url {
                Some(url) => JwksLocation::Fixed(url),
                None => JwksLocation::Discovered(Mutex::new(None)),
            },
            upstream: upstream.max_body(MAX_DOCUMENT_BYTES),
            algorithms,
            refresh,
            current: ArcSwap::from_pointee(Snapshot {
                keys: KeySet::default(),
                loaded_at: None,
                generation: 0,
            }),
            fetches: Mutex::default(),
            completed: watch::Sender::new(0),
            me: me.clone(),
            counters: Counters::default(),
            task: Mutex::new(None),
        })
    }

    fn fetches(&self) -> MutexGuard<'_, Fetches> {
        self.fetches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the keys may be used: loaded once, and not older than the max staleness.
    pub(crate) fn usable(&self, snapshot: &Snapshot) -> bool {
        snapshot
            .loaded_at
            .is_some_and(|at| at.elapsed() <= self.refresh.max_staleness)
    }

    /// When a 503 should tell clients to come back: the breaker's remaining open time, or
    /// the retry interval.
    pub(crate) fn retry_after(&self) -> Duration {
        self.fetches()
            .down
            .unwrap_or(self.refresh.retry.min(self.refresh.cooldown))
    }

    /// Whether the keys were loaded longer than one cooldown ago, so a fetch for a key that
    /// stopped verifying is worth it.
    pub(crate) fn older_than_cooldown(&self, snapshot: &Snapshot) -> bool {
        snapshot
            .loaded_at
            .is_some_and(|at| at.elapsed() >= self.refresh.cooldown)
    }

    /// How many fetches have completed: read before a snapshot, so that [`refetch`]
    /// knows whether one completed since.
    ///
    /// [`refetch`]: Self::refetch
    pub(crate) fn fetches_completed(&self) -> u64 {
        *self.completed.borrow()
    }

    /// Fresh keys for a request that found none that fits in the snapshot it read after
    /// `seen` fetches had completed: a fetch completed since, or the one under way, or one
    /// started now if the cooldown allows; else one is scheduled for the end of the
    /// cooldown.
    pub(crate) async fn refetch(&self, seen: u64) -> Refetch {
        let mut completed = self.completed.subscribe();
        if *completed.borrow_and_update() != seen {
            return self.after_fetch(true);
        }
        let joined = {
            let mut fetches = self.fetches();
            if *self.completed.borrow() != seen {
                // Completed between the two reads: its keys are there to look at.
                true
            } else if fetches.in_flight {
                true
            } else if let Some(wait) = self.cooldown_left(&fetches) {
                self.count(Event::CooldownRefusal);
                self.schedule(&mut fetches, wait);
                return match fetches.down {
                    Some(after) => Refetch::IssuerDown(after),
                    None => Refetch::CoolingDown,
                };
            } else {
                self.count(Event::Refetch);
                self.start(&mut fetches);
                false
            }
        };
        // The fetch runs in a task of its own: a request that gives up waiting does not
        // cancel it, and no lock is held while it runs.
        let in_flight = self.fetches().in_flight;
        if in_flight && completed.changed().await.is_err() {
            return Refetch::IssuerDown(self.retry_after());
        }
        self.after_fetch(joined)
    }

    fn after_fetch(&self, joined: bool) -> Refetch {
        match self.fetches().down {
            Some(after) => Refetch::IssuerDown(after),
            None => Refetch::Done { joined },
        }
    }

    /// After a joined fetch that did not have what a request needed: make sure the first
    /// fetch the cooldown allows looks again.
    pub(crate) fn look_again(&self) {
        let mut fetches = self.fetches();
        let wait = self.cooldown_left(&fetches).unwrap_or_default();
        self.schedule(&mut fetches, wait);
    }

    fn cooldown_left(&self, fetches: &Fetches) -> Option<Duration> {
        let since = fetches.last_start?.elapsed();
        (since < self.refresh.cooldown).then(|| self.refresh.cooldown - since)
    }

    /// Marks a refetch started and runs it in the background.
    fn start(&self, fetches: &mut Fetches) {
        fetches.in_flight = true;
        fetches.last_start = Some(Instant::now());
        let Some(store) = self.me.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            // Failures are logged and counted by `load`, and seen by the waiters.
            let _ = store.load().await;
        });
    }

    /// Schedules one fetch `after` from now (at most one is pending). When it is due, a
    /// fetch under way covers it; one that a request started meanwhile (the task may run late
    /// on a busy runtime) moves it to the end of that fetch's cooldown, so there is never more
    /// than one fetch per cooldown and a kid seen since is still looked up.
    fn schedule(&self, fetches: &mut Fetches, after: Duration) {
        if fetches.scheduled {
            return;
        }
        fetches.scheduled = true;
        let me = self.me.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let Some(store) = me.upgrade() else { return };
            let mut fetches = store.fetches();
            fetches.scheduled = false;
            if fetches.in_flight {
                return;
            }
            match store.cooldown_left(&fetches) {
                Some(wait) => store.schedule(&mut fetches, wait),
                None => store.start(&mut fetches),
            }
        });
    }

    /// Fetches the key set once and swaps it in; the result carries the `max-age` the
    /// server gave. Ends the fetch under way and wakes whoever waits for it.
    async fn load(&self) -> Result<Option<Duration>, String> {
        let result = self.fetch_and_swap().await;
        self.count(match result {
            Ok(_) => Event::Loaded,
            Err(_) => Event::LoadFailed,
        });
        let was_down = {
            let mut fetches = self.fetches();
            fetches.in_flight = false;
            let was_down = fetches.down.is_some();
            fetches.down = match &result {
                Ok(_) => None,
                Err(e) => Some(
                    e.retry_after()
                        .unwrap_or(self.refresh.retry.min(self.refresh.cooldown)),
                ),
            };
            was_down
        };
        self.completed.send_modify(|n| *n += 1);
        match &result {
            Err(e) => {
                // One warning when the issuer goes down, not one per retry.
                if was_down {
                    tracing::debug!(issuer = %self.issuer, error = %e, "JWKS fetch failed again");
                } else {
                    tracing::warn!(issuer = %self.issuer, error = %e, "JWKS fetch failed; keeping the last good keys");
                }
            }
            Ok(_) if was_down => tracing::info!(issuer = %self.issuer, "JWKS fetched again"),
            Ok(_) => {}
        }
        result.map_err(|e| e.to_string())
    }

    async fn fetch_and_swap(&self) -> Result<Option<Duration>, LoadError> {
        let url = self.jwks_url().await?;
        let fetched = match self.get_jwks(&url).await {
            // A provider that moved its JWKS: discovery is asked again, once.
            Err(LoadError::Upstream(UpstreamError::Status(404 | 410)))
                if matches!(self.jwks, JwksLocation::Discovered(_)) =>
            {
                self.forget_jwks_url();
                let url = self.jwks_url().await?;
                self.get_jwks(&url).await?
            }
            other => other?,
        };
        let max_age = fetched
            .headers
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let keys = parse_jwks(&fetched.body, &self.algorithms).map_err(LoadError::Keys)?;
        let previous = self.current.load();
        let changed = !keys.same_keys(&previous.keys);
        let generation = previous.generation + u64::from(changed);
        tracing::debug!(issuer = %self.issuer, keys = keys.len(), changed, "JWKS loaded");
        self.loaded(keys.len());
        self.current.store(Arc::new(Snapshot {
            keys,
            loaded_at: Some(Instant::now()),
            generation,
        }));
        Ok(max_age)
    }

    async fn get_jwks(&self, url: &str) -> Result<Fetched, LoadError> {
        Ok(self
            .upstream
            .send(self.upstream.get(url), Fetched::success)
            .await?)
    }

    async fn jwks_url(&self) -> Result<String, LoadError> {
        let slot = match &self.jwks {
            JwksLocation::Fixed(url) => return Ok(url.clone()),
            JwksLocation::Discovered(slot) => slot,
        };
        if let Some(url) = lock(slot).clone() {
            return Ok(url);
        }
        let meta = ServerMetadata::discover(&self.upstream, &self.issuer)
            .await
            .map_err(|e| LoadError::Discovery(e.to_string()))?;
        let url = meta
            .jwks_uri
            .ok_or_else(|| LoadError::Discovery("the discovery document has no jwks_uri".into()))?;
        *lock(slot) = Some(url.clone());
        Ok(url)
    }

    fn forget_jwks_url(&self) {
        if let JwksLocation::Discovered(slot) = &self.jwks {
            *lock(slot) = None;
        }
    }

    /// After a load: when to refresh next.
    fn next_delay(&self, outcome: &Result<Option<Duration>, String>) -> Duration {
        match outcome {
            Ok(Some(max_age)) => (*max_age).clamp(self.refresh.min, self.refresh.max),
            Ok(None) => self.refresh.interval,
            Err(_) => self.refresh.retry.min(self.refresh.interval),
        }
    }

    /// A load for the background refresh: joins the fetch under way if there is one.
    async fn refresh_now(&self) -> Result<Option<Duration>, String> {
        let mut completed = self.completed.subscribe();
        completed.borrow_and_update();
        let start = {
            let mut fetches = self.fetches();
            // The background refresh does not count against the refetch cooldown (it is not
            // something a request can cause).
            let start = !fetches.in_flight;
            fetches.in_flight |= start;
            start
        };
        if start {
            return self.load().await;
        }
        let _ = completed.changed().await;
        match self.fetches().down {
            Some(_) => Err("the fetch under way failed".into()),
            None => Ok(None),
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
                let outcome = store.refresh_now().await;
                delay = store.next_delay(&outcome);
            }
        });
        *lock(&self.task) = Some(task);
    }

    /// The first load, at build time; returns when to refresh next.
    pub(crate) async fn first_load(&self) -> (Result<(), String>, Duration) {
        if self.refresh.lazy {
            return (Ok(()), Duration::ZERO);
        }
        let outcome = self.refresh_now().await;
        let delay = self.next_delay(&outcome);
        (outcome.map(|_| ()), delay)
    }

    /// Whether discovery is used (for messages).
    pub(crate) fn uses_discovery(&self) -> bool {
        matches!(self.jwks, JwksLocation::Discovered(_))
    }
}

/// Why a load failed.
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    #[error("discovery failed: {0}")]
    Discovery(String),
    #[error("{0}")]
    Keys(String),
}

impl LoadError {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            LoadError::Upstream(e) => e.retry_after(),
            _ => None,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Drop for KeyStore {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.task).take() {
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
