//! [`VerdictCache`]: the one engine for credentials an upstream judges (API keys, opaque
//! tokens): moka keyed by the credential's digest, one upstream call per credential however
//! many requests miss at once, TTLs capped by the credential's own expiry, a bounded cache of
//! refusals, stale-while-revalidate, serve-stale-on-error, and an optional second-level
//! [`VerdictStore`] shared by a fleet.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use moka::future::Cache;
use tollgate_core::telemetry::Lazy;
use tollgate_core::{AuthError, CredentialDigest, CredentialKind, ErrorKind, Principal};

use crate::UpstreamError;

/// Asks an upstream to judge a credential: the key service behind an API key, the
/// introspection endpoint behind an opaque token, or your own.
///
/// Answer `Ok(Ok(principal))` when the credential is valid, `Ok(Err(refusal))` when it was
/// judged and refused (cached for the negative TTL), and `Err` only when it could not be
/// judged (the upstream is down, slow or answered nonsense): the request then gets a 503,
/// never a 401, and nothing is cached. The credential must never appear in an error.
pub trait RemoteVerifier: Send + Sync + 'static {
    /// Judges `credential`.
    fn verify(
        &self,
        credential: &str,
    ) -> impl Future<Output = Result<Result<Principal, AuthError>, UpstreamError>> + Send;
}

/// How verdicts are cached. Every setting has a safe default, named on its method; a policy
/// made by [`disabled`](Self::disabled) stays disabled whatever else is set.
///
/// ```
/// use std::time::Duration;
/// use tollgate_upstream::CachePolicy;
///
/// let policy = CachePolicy::default()
///     .ttl(Duration::from_secs(30))
///     .serve_stale_on_error(Duration::from_secs(300));
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    enabled: bool,
    ttl: Duration,
    negative_ttl: Duration,
    max_entries: u64,
    max_refusals: u64,
    fresh_for: Option<Duration>,
    stale_grace: Option<Duration>,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            enabled: true,
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(10),
            max_entries: 100_000,
            max_refusals: 10_000,
            fresh_for: None,
            stale_grace: None,
        }
    }
}

impl CachePolicy {
    /// No cache: every request asks the upstream.
    pub fn disabled() -> Self {
        CachePolicy {
            enabled: false,
            ..Self::default()
        }
    }

    /// How long a valid verdict is cached (default: 60 s), and never past the credential's
    /// own expiry. A revoked credential keeps working for up to this long unless it is
    /// invalidated.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long a refusal is cached (default: 10 s), and never past a rate limit's reset,
    /// so a flood of bad credentials costs one call per credential per period.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// The most valid verdicts cached (default: 100 000); the least useful are evicted.
    pub fn max_entries(mut self, max: u64) -> Self {
        self.max_entries = max;
        self
    }

    /// The most refusals cached (default: 10 000), apart from the valid verdicts, so a
    /// flood of made-up credentials never evicts good ones.
    pub fn max_refusals(mut self, max: u64) -> Self {
        self.max_refusals = max;
        self
    }

    /// Stale-while-revalidate (default: off): a valid verdict older than `fresh_for` (and
    /// younger than the TTL) is still served, while one background call per credential
    /// refreshes it.
    pub fn stale_while_revalidate(mut self, fresh_for: Duration) -> Self {
        self.fresh_for = Some(fresh_for);
        self
    }

    /// Serve-stale-on-error (default: off): while the upstream is down, a credential that
    /// was *valid* is still accepted for up to `grace` past its TTL (never past its own
    /// expiry). This opens a revocation window: a credential revoked during an outage keeps
    /// working for up to `ttl + grace`. Refusals are never served stale.
    pub fn serve_stale_on_error(mut self, grace: Duration) -> Self {
        self.stale_grace = Some(grace);
        self
    }

    /// Whether verdicts are cached at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// How long `verdict` may be kept: a valid one the TTL (plus `grace`) capped by its
    /// expiry; a refusal the negative TTL capped by its `Retry-After`.
    fn lifetime(&self, verdict: Result<&Principal, &AuthError>, grace: Duration) -> Duration {
        match verdict {
            Ok(principal) => {
                let ttl = self.ttl + grace;
                principal
                    .expires_at()
                    .map_or(ttl, |at| ttl.min(time_left(at)))
            }
            Err(e) => e
                .retry_after()
                .map_or(self.negative_ttl, |reset| self.negative_ttl.min(reset)),
        }
    }
}

fn time_left(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now()).unwrap_or_default()
}

/// A shared second-level store of verdicts, asked on a local miss before the upstream (for
/// a fleet of replicas: see `tollgate-redis`). Keys are credential digests, values are
/// serialized verdicts that hold no credential; a store must never fail a request: an error
/// or a timeout is `None` (a miss), and a failed write is dropped.
pub trait VerdictStore: Send + Sync + 'static {
    /// The serialized verdict for `key`, if the store has one it trusts.
    fn get(&self, key: &CredentialDigest) -> impl Future<Output = Option<Vec<u8>>> + Send;
    /// Stores `value` for `key` for at most `ttl`.
    fn put(
        &self,
        key: &CredentialDigest,
        value: Vec<u8>,
        ttl: Duration,
    ) -> impl Future<Output = ()> + Send;
    /// Forgets `key`.
    fn invalidate(&self, key: &CredentialDigest) -> impl Future<Output = ()> + Send;
    /// Forgets every key.
    fn invalidate_all(&self) -> impl Future<Output = ()> + Send;
    /// Called once by each engine built with this store, with the engine's local verdicts:
    /// a store that tells replicas of a revocation (a fleet's fan-out) keeps them to forget
    /// entries there. The reference is weak: a dropped engine is simply skipped. The default
    /// keeps nothing.
    fn attach(&self, local: Weak<dyn LocalVerdicts>) {
        let _ = local;
    }
}

/// An engine's local verdicts, as a [`VerdictStore`] sees them: what a revocation published
/// by another replica makes this one forget.
pub trait LocalVerdicts: Send + Sync {
    /// Forgets what is cached here about the credential of `digest`.
    fn forget<'a>(&'a self, digest: &'a CredentialDigest) -> BoxFuture<'a, ()>;
    /// Forgets everything cached here (what a replica cannot prove is current after it
    /// missed messages).
    fn forget_all(&self);
}

/// A boxed future, for the object-safe [`LocalVerdicts`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe twin of [`VerdictStore`], so the engine needs no type parameter for it.
trait DynStore: Send + Sync {
    fn get<'a>(&'a self, key: &'a CredentialDigest) -> BoxFuture<'a, Option<Vec<u8>>>;
    fn put<'a>(&'a self, key: &'a CredentialDigest, v: Vec<u8>, ttl: Duration)
    -> BoxFuture<'a, ()>;
    fn invalidate<'a>(&'a self, key: &'a CredentialDigest) -> BoxFuture<'a, ()>;
    fn invalidate_all(&self) -> BoxFuture<'_, ()>;
    fn attach(&self, local: Weak<dyn LocalVerdicts>);
}

impl<S: VerdictStore> DynStore for S {
    fn get<'a>(&'a self, key: &'a CredentialDigest) -> BoxFuture<'a, Option<Vec<u8>>> {
        Box::pin(VerdictStore::get(self, key))
    }
    fn put<'a>(
        &'a self,
        key: &'a CredentialDigest,
        v: Vec<u8>,
        ttl: Duration,
    ) -> BoxFuture<'a, ()> {
        Box::pin(VerdictStore::put(self, key, v, ttl))
    }
    fn invalidate<'a>(&'a self, key: &'a CredentialDigest) -> BoxFuture<'a, ()> {
        Box::pin(VerdictStore::invalidate(self, key))
    }
    fn invalidate_all(&self) -> BoxFuture<'_, ()> {
        Box::pin(VerdictStore::invalidate_all(self))
    }
    fn attach(&self, local: Weak<dyn LocalVerdicts>) {
        VerdictStore::attach(self, local)
    }
}

/// Any [`VerdictStore`], its type erased, cheap to clone: one store shared by several
/// engines (API keys and introspection on one Redis), or held by a builder until its engine
/// is made.
#[derive(Clone)]
pub struct SharedStore(Arc<dyn DynStore>);

impl SharedStore {
    /// `store`, shared.
    pub fn new(store: impl VerdictStore) -> Self {
        SharedStore(Arc::new(store))
    }
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore").finish_non_exhaustive()
    }
}

impl VerdictStore for SharedStore {
    async fn get(&self, key: &CredentialDigest) -> Option<Vec<u8>> {
        self.0.get(key).await
    }
    async fn put(&self, key: &CredentialDigest, value: Vec<u8>, ttl: Duration) {
        self.0.put(key, value, ttl).await
    }
    async fn invalidate(&self, key: &CredentialDigest) {
        self.0.invalidate(key).await
    }
    async fn invalidate_all(&self) {
        self.0.invalidate_all().await
    }
    fn attach(&self, local: Weak<dyn LocalVerdicts>) {
        self.0.attach(local)
    }
}

/// A verdict as a [`VerdictStore`] holds it.
#[derive(serde::Serialize, serde::Deserialize)]
enum Stored {
    #[serde(rename = "valid")]
    Valid(Principal),
    #[serde(rename = "refused")]
    Refused(AuthError),
}

/// What the engine has done, for dashboards and alerts: read with
/// [`VerdictCache::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Valid verdicts served from the cache.
    pub hits: u64,
    /// Refusals served from the cache.
    pub negative_hits: u64,
    /// Requests that found no cached verdict.
    pub misses: u64,
    /// Verdicts served stale: during stale-while-revalidate, or from the grace period
    /// while the upstream was down.
    pub stale_served: u64,
    /// Verdicts found in the second-level store.
    pub store_hits: u64,
    /// Calls made to the upstream (not counting those an open breaker refused at once).
    pub upstream_calls: u64,
    /// Failed calls, by kind.
    pub upstream_errors: UpstreamErrors,
    /// Verdicts from the upstream, by outcome.
    pub outcomes: Outcomes,
    /// Credentials refused before any call (a wrong prefix, say).
    pub rejected_locally: u64,
}

/// Failed upstream calls, by kind ([`UpstreamError::kind`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamErrors {
    /// No answer in time.
    pub timeout: u64,
    /// No connection.
    pub connect: u64,
    /// A status that is not an answer.
    pub status: u64,
    /// A redirect (never followed).
    pub redirect: u64,
    /// An unreadable or oversized answer.
    pub malformed: u64,
    /// Refused at once: the upstream was known to be down.
    pub unavailable: u64,
    /// Anything else.
    pub other: u64,
}

/// Verdicts from the upstream, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcomes {
    /// Valid.
    pub valid: u64,
    /// Refused as not valid (unknown, disabled, expired, revoked): 401.
    pub invalid: u64,
    /// Valid but not allowed here: 403.
    pub forbidden: u64,
    /// Over a rate limit or quota: 429.
    pub limited: u64,
}

/// What the engine counts: each kept for [`Stats`] and exported as
/// `tollgate_verdict_cache_total{kind, result}` (feature `metrics`).
#[derive(Debug, Clone, Copy)]
enum Event {
    Hit,
    NegativeHit,
    Miss,
    Stale,
    StoreHit,
    RejectedLocally,
    UpstreamCall,
}

impl Event {
    /// The `result` label; `None` for what is counted elsewhere (upstream calls, by the
    /// upstream's own metrics).
    fn label(self) -> Option<&'static str> {
        Some(match self {
            Event::Hit => "hit",
            Event::NegativeHit => "negative_hit",
            Event::Miss => "miss",
            Event::Stale => "stale",
            Event::StoreHit => "store_hit",
            Event::RejectedLocally => "rejected_locally",
            Event::UpstreamCall => return None,
        })
    }
}

#[derive(Debug, Default)]
struct Counters {
    /// The `kind` label: the credential kind's name.
    kind: &'static str,
    events: [(AtomicU64, Lazy); 7],
    errors: [AtomicU64; 7],
    outcomes: [AtomicU64; 4],
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Counters {
    fn count(&self, event: Event) {
        let (count, exported) = &self.events[event as usize];
        bump(count);
        if let Some(result) = event.label() {
            let labels = || vec![("kind", self.kind.into()), ("result", result.into())];
            exported.with("tollgate_verdict_cache_total", labels, |c| c.increment());
        }
    }

    fn error(&self, e: &UpstreamError) {
        let i = match e.kind() {
            "timeout" => 0,
            "connect" => 1,
            "status" => 2,
            "redirect" => 3,
            "malformed" => 4,
            "unavailable" => 5,
            _ => 6,
        };
        bump(&self.errors[i]);
    }

    fn outcome(&self, verdict: &Result<Principal, AuthError>) {
        let i = match verdict {
            Ok(_) => 0,
            Err(e) => match e.kind() {
                ErrorKind::InsufficientScope => 2,
                ErrorKind::RateLimited => 3,
                _ => 1,
            },
        };
        bump(&self.outcomes[i]);
    }

    fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Relaxed);
        let event = |e: Event| get(&self.events[e as usize].0);
        Stats {
            hits: event(Event::Hit),
            negative_hits: event(Event::NegativeHit),
            misses: event(Event::Miss),
            stale_served: event(Event::Stale),
            store_hits: event(Event::StoreHit),
            upstream_calls: event(Event::UpstreamCall),
            rejected_locally: event(Event::RejectedLocally),
            upstream_errors: UpstreamErrors {
                timeout: get(&self.errors[0]),
                connect: get(&self.errors[1]),
                status: get(&self.errors[2]),
                redirect: get(&self.errors[3]),
                malformed: get(&self.errors[4]),
                unavailable: get(&self.errors[5]),
                other: get(&self.errors[6]),
            },
            outcomes: Outcomes {
                valid: get(&self.outcomes[0]),
                invalid: get(&self.outcomes[1]),
                forbidden: get(&self.outcomes[2]),
                limited: get(&self.outcomes[3]),
            },
        }
    }
}

/// Entry lifetimes computed by moka from the verdict (and not stored in each entry).
struct Lifetime {
    policy: CachePolicy,
    grace: Duration,
}

impl Expiry<CredentialDigest, Principal> for Lifetime {
    fn expire_after_create(
        &self,
        _: &CredentialDigest,
        p: &Principal,
        _: Instant,
    ) -> Option<Duration> {
        Some(self.policy.lifetime(Ok(p), self.grace))
    }

    fn expire_after_update(
        &self,
        _: &CredentialDigest,
        p: &Principal,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.policy.lifetime(Ok(p), self.grace))
    }
}

impl Expiry<CredentialDigest, Arc<AuthError>> for Lifetime {
    fn expire_after_create(
        &self,
        _: &CredentialDigest,
        e: &Arc<AuthError>,
        _: Instant,
    ) -> Option<Duration> {
        Some(self.policy.lifetime(Err(e), Duration::ZERO))
    }

    fn expire_after_update(
        &self,
        _: &CredentialDigest,
        e: &Arc<AuthError>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.policy.lifetime(Err(e), Duration::ZERO))
    }
}

/// The local caches of a policy that caches.
struct Local {
    valid: Cache<CredentialDigest, Principal>,
    refused: Cache<CredentialDigest, Arc<AuthError>>,
    /// Valid principals kept `ttl + grace`, served only while the upstream is down.
    last_good: Option<Cache<CredentialDigest, Principal>>,
    /// With stale-while-revalidate: a marker per credential that lives `fresh_for` after
    /// each fetch; a verdict whose marker is gone is served while it is revalidated.
    fresh: Option<Cache<CredentialDigest, ()>>,
    /// Credentials with a background revalidation under way. Locked only to insert or remove.
    revalidating: Mutex<HashSet<CredentialDigest>>,
}

impl Local {
    fn new(policy: &CachePolicy) -> Self {
        let valid = |grace| {
            Cache::builder()
                .max_capacity(policy.max_entries)
                .expire_after(Lifetime {
                    policy: policy.clone(),
                    grace,
                })
                .build()
        };
        Local {
            valid: valid(Duration::ZERO),
            refused: Cache::builder()
                .max_capacity(policy.max_refusals)
                .expire_after(Lifetime {
                    policy: policy.clone(),
                    grace: Duration::ZERO,
                })
                .build(),
            last_good: policy.stale_grace.map(valid),
            fresh: policy.fresh_for.map(|fresh_for| {
                Cache::builder()
                    .max_capacity(policy.max_entries)
                    .time_to_live(fresh_for)
                    .build()
            }),
            revalidating: Mutex::new(HashSet::new()),
        }
    }

    async fn forget(&self, digest: &CredentialDigest) {
        self.valid.invalidate(digest).await;
        self.refused.invalidate(digest).await;
        if let Some(fresh) = &self.fresh {
            fresh.invalidate(digest).await;
        }
        if let Some(last_good) = &self.last_good {
            last_good.invalidate(digest).await;
        }
    }

    fn forget_all(&self) {
        self.valid.invalidate_all();
        self.refused.invalidate_all();
        if let Some(fresh) = &self.fresh {
            fresh.invalidate_all();
        }
        if let Some(last_good) = &self.last_good {
            last_good.invalidate_all();
        }
    }
}

impl LocalVerdicts for Local {
    fn forget<'a>(&'a self, digest: &'a CredentialDigest) -> BoxFuture<'a, ()> {
        Box::pin(Local::forget(self, digest))
    }

    fn forget_all(&self) {
        Local::forget_all(self)
    }
}

/// Why a miss has no principal: a refusal (shared by every request waiting on the call), or
/// an upstream failure.
enum Failure {
    Refused(AuthError),
    Upstream(UpstreamError),
}

/// The verdict engine: see the module docs. Cheap to clone; clones share the caches, the
/// store and the counters.
///
/// ```
/// use tollgate_core::{AuthError, CredentialKind, Principal};
/// use tollgate_upstream::{CachePolicy, RemoteVerifier, UpstreamError, VerdictCache};
///
/// struct Sessions;
///
/// impl RemoteVerifier for Sessions {
///     async fn verify(&self, token: &str) -> Result<Result<Principal, AuthError>, UpstreamError> {
///         Ok(match token {
///             "s3ss10n" => Ok(Principal::builder("user-1", CredentialKind::Other("session")).build()),
///             _ => Err(AuthError::invalid_token("no such session")),
///         })
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let sessions = VerdictCache::new(Sessions, CachePolicy::default());
/// assert_eq!(sessions.verdict("s3ss10n").await.unwrap().subject(), "user-1");
/// assert!(sessions.verdict("nope").await.is_err());
/// assert_eq!(sessions.verdict("s3ss10n").await.unwrap().subject(), "user-1");
/// assert_eq!((sessions.stats().hits, sessions.stats().upstream_calls), (1, 2));
/// # }
/// ```
pub struct VerdictCache<V> {
    inner: Arc<Engine<V>>,
}

impl<V> Clone for VerdictCache<V> {
    fn clone(&self) -> Self {
        VerdictCache {
            inner: self.inner.clone(),
        }
    }
}

struct Engine<V> {
    verifier: V,
    policy: CachePolicy,
    local: Option<Arc<Local>>,
    store: Option<Arc<dyn DynStore>>,
    retry_after: Duration,
    /// What the credentials are, for messages and the `kind` label.
    kind: Option<CredentialKind>,
    counters: Counters,
}

impl<V> std::fmt::Debug for VerdictCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerdictCache")
            .field("policy", &self.inner.policy)
            .field("store", &self.inner.store.is_some())
            .finish_non_exhaustive()
    }
}

/// The default `Retry-After` of a 503 when the upstream gives no better one.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

impl<V: RemoteVerifier> VerdictCache<V> {
    /// An engine asking `verifier`, caching by `policy`, with no store.
    pub fn new(verifier: V, policy: CachePolicy) -> Self {
        Self::builder(verifier).policy(policy).build()
    }

    /// Starts building an engine asking `verifier`.
    pub fn builder(verifier: V) -> VerdictCacheBuilder<V> {
        VerdictCacheBuilder {
            verifier,
            policy: CachePolicy::default(),
            store: None,
            retry_after: DEFAULT_RETRY_AFTER,
            kind: None,
        }
    }

    /// The verifier.
    pub fn verifier(&self) -> &V {
        &self.inner.verifier
    }

    /// The verdict on `credential`: from the cache, the store, or one upstream call shared
    /// by every request that misses at once.
    pub async fn verdict(&self, credential: &str) -> Result<Principal, AuthError> {
        let Some(local) = &self.inner.local else {
            return self.verdict_uncached(credential).await;
        };
        let digest = CredentialDigest::of(credential);
        if let Some(principal) = local.valid.get(&digest).await {
            self.inner.counters.count(Event::Hit);
            if local
                .fresh
                .as_ref()
                .is_some_and(|fresh| !fresh.contains_key(&digest))
            {
                self.inner.counters.count(Event::Stale);
                self.revalidate(local, digest, credential);
            }
            return Ok(principal);
        }
        // The miss path's future is several KB (moka's single flight around the call);
        // boxing it keeps the future of every hit small, so it is cheap to create and move.
        Box::pin(self.miss(local, credential, digest)).await
    }

    /// The verdict on `credential` from the upstream, never from a cache (the answer is
    /// still stored): for routes that must charge credits on every call.
    pub async fn verdict_uncached(&self, credential: &str) -> Result<Principal, AuthError> {
        Box::pin(self.uncached(credential)).await
    }

    /// Counts a credential refused before any call (for [`Stats::rejected_locally`]).
    pub fn rejected_locally(&self) {
        self.inner.counters.count(Event::RejectedLocally);
    }

    /// Forgets what is cached about `credential`, here and in the store (a revocation hook).
    pub async fn invalidate(&self, credential: &str) {
        let digest = CredentialDigest::of(credential);
        self.forget(&digest).await;
        if let Some(store) = &self.inner.store {
            store.invalidate(&digest).await;
        }
    }

    /// Forgets everything cached, here and in the store.
    pub async fn invalidate_all(&self) {
        self.forget_all();
        if let Some(store) = &self.inner.store {
            store.invalidate_all().await;
        }
    }

    /// Forgets `digest` locally only (what a fleet's fan-out asks of each replica).
    pub async fn forget(&self, digest: &CredentialDigest) {
        if let Some(local) = &self.inner.local {
            local.forget(digest).await;
        }
    }

    /// Forgets everything locally only.
    pub fn forget_all(&self) {
        if let Some(local) = &self.inner.local {
            local.forget_all();
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// How many valid verdicts are cached now (approximate; for tests and memory estimates).
    pub async fn cached_entries(&self) -> u64 {
        match &self.inner.local {
            Some(local) => {
                local.valid.run_pending_tasks().await;
                local.valid.entry_count()
            }
            None => 0,
        }
    }

    async fn miss(
        &self,
        local: &Local,
        credential: &str,
        digest: CredentialDigest,
    ) -> Result<Principal, AuthError> {
        let counters = &self.inner.counters;
        if let Some(refusal) = local.refused.get(&digest).await {
            counters.count(Event::NegativeHit);
            return Err((*refusal).clone());
        }
        counters.count(Event::Miss);
        // Concurrent misses on one credential wait for a single call (moka's single flight);
        // a refusal travels to all of them as the shared error.
        let init = async {
            if let Some(verdict) = self.stored_verdict(&digest).await {
                return match verdict {
                    Ok(principal) => Ok(principal),
                    Err(refusal) => {
                        local
                            .refused
                            .insert(digest, Arc::new(refusal.clone()))
                            .await;
                        Err(Failure::Refused(refusal))
                    }
                };
            }
            match self.call(credential, Some(&digest)).await {
                Ok(Ok(principal)) => Ok(principal),
                Ok(Err(refusal)) => {
                    local
                        .refused
                        .insert(digest, Arc::new(refusal.clone()))
                        .await;
                    Err(Failure::Refused(refusal))
                }
                Err(e) => Err(Failure::Upstream(e)),
            }
        };
        match local.valid.try_get_with(digest, init).await {
            Ok(principal) => Ok(principal),
            Err(failure) => match &*failure {
                Failure::Refused(refusal) => Err(refusal.clone()),
                Failure::Upstream(e) => self.stale_or_unavailable(local, &digest, e).await,
            },
        }
    }

    /// Asks without looking in the cache (no cache, or a bypass); the answer is still stored.
    async fn uncached(&self, credential: &str) -> Result<Principal, AuthError> {
        // Without a cache or a store, nothing needs the digest.
        let digest = (self.inner.local.is_some() || self.inner.store.is_some())
            .then(|| CredentialDigest::of(credential));
        match self.call(credential, digest.as_ref()).await {
            Ok(verdict) => {
                if let (Some(local), Some(digest)) = (&self.inner.local, digest) {
                    self.store_locally(local, digest, &verdict).await;
                }
                verdict
            }
            Err(e) => Err(self.unavailable(&e)),
        }
    }

    async fn stale_or_unavailable(
        &self,
        local: &Local,
        digest: &CredentialDigest,
        e: &UpstreamError,
    ) -> Result<Principal, AuthError> {
        if let Some(last_good) = &local.last_good
            && let Some(principal) = last_good.get(digest).await
        {
            self.inner.counters.count(Event::Stale);
            tracing::debug!(
                subject = principal.subject(),
                "upstream down: serving a stale verdict"
            );
            return Ok(principal);
        }
        Err(self.unavailable(e))
    }

    fn unavailable(&self, e: &UpstreamError) -> AuthError {
        let description = match self.inner.kind {
            Some(CredentialKind::ApiKey) => "the API key could not be verified right now",
            Some(CredentialKind::OpaqueToken | CredentialKind::Jwt) => {
                "the token could not be verified right now"
            }
            _ => "the credential could not be verified right now",
        };
        AuthError::unavailable(
            description,
            e.retry_after().unwrap_or(self.inner.retry_after),
        )
    }

    /// A verdict from the second-level store, if it has one that is still good.
    async fn stored_verdict(
        &self,
        digest: &CredentialDigest,
    ) -> Option<Result<Principal, AuthError>> {
        let bytes = self.inner.store.as_ref()?.get(digest).await?;
        let verdict = match serde_json::from_slice::<Stored>(&bytes).ok()? {
            Stored::Valid(principal) => {
                // Never past the credential's own expiry, whatever the store kept.
                if principal
                    .expires_at()
                    .is_some_and(|at| at <= SystemTime::now())
                {
                    return None;
                }
                Ok(principal)
            }
            Stored::Refused(refusal) => Err(refusal),
        };
        self.inner.counters.count(Event::StoreHit);
        Some(verdict)
    }

    /// One call to the upstream, counted, and its verdict written to the store and to the
    /// serve-stale and freshness caches.
    async fn call(
        &self,
        credential: &str,
        digest: Option<&CredentialDigest>,
    ) -> Result<Result<Principal, AuthError>, UpstreamError> {
        let counters = &self.inner.counters;
        let verdict = match self.inner.verifier.verify(credential).await {
            Ok(verdict) => verdict,
            Err(e) => {
                // Refused by an open breaker: no call was made.
                if !matches!(e, UpstreamError::Unavailable { .. }) {
                    counters.count(Event::UpstreamCall);
                }
                counters.error(&e);
                return Err(e);
            }
        };
        counters.count(Event::UpstreamCall);
        counters.outcome(&verdict);
        let Some(digest) = digest else {
            return Ok(verdict);
        };
        if let Some(local) = &self.inner.local {
            if let Some(fresh) = &local.fresh {
                fresh.insert(*digest, ()).await;
            }
            if let (Some(last_good), Ok(principal)) = (&local.last_good, &verdict) {
                last_good.insert(*digest, principal.clone()).await;
            }
        }
        if let Some(store) = &self.inner.store {
            let ttl = self.inner.policy.lifetime(verdict.as_ref(), Duration::ZERO);
            let stored = match &verdict {
                Ok(principal) => Stored::Valid(principal.clone()),
                Err(refusal) => Stored::Refused(refusal.clone()),
            };
            if !ttl.is_zero()
                && let Ok(bytes) = serde_json::to_vec(&stored)
            {
                store.put(digest, bytes, ttl).await;
            }
        }
        Ok(verdict)
    }

    async fn store_locally(
        &self,
        local: &Local,
        digest: CredentialDigest,
        verdict: &Result<Principal, AuthError>,
    ) {
        match verdict {
            Ok(principal) => {
                local.refused.invalidate(&digest).await;
                local.valid.insert(digest, principal.clone()).await;
            }
            Err(refusal) => {
                local.valid.invalidate(&digest).await;
                local
                    .refused
                    .insert(digest, Arc::new(refusal.clone()))
                    .await;
            }
        }
    }

    /// Refreshes `digest` in the background, one task per credential at a time.
    fn revalidate(&self, local: &Local, digest: CredentialDigest, credential: &str) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let started = local
            .revalidating
            .lock()
            .map(|mut set| set.insert(digest))
            .unwrap_or(false);
        if !started {
            return;
        }
        let engine = self.clone();
        let credential = credential.to_owned();
        runtime.spawn(async move {
            let Some(local) = &engine.inner.local else {
                return;
            };
            if let Ok(verdict) = engine.call(&credential, Some(&digest)).await {
                engine.store_locally(local, digest, &verdict).await;
            }
            if let Ok(mut set) = local.revalidating.lock() {
                set.remove(&digest);
            }
        });
    }
}

/// Builds a [`VerdictCache`]; see [`VerdictCache::builder`].
#[must_use]
pub struct VerdictCacheBuilder<V> {
    verifier: V,
    policy: CachePolicy,
    store: Option<Arc<dyn DynStore>>,
    retry_after: Duration,
    kind: Option<CredentialKind>,
}

impl<V: RemoteVerifier> VerdictCacheBuilder<V> {
    /// How verdicts are cached locally (default: [`CachePolicy::default`]).
    pub fn policy(mut self, policy: CachePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Asks `store` on a local miss before the upstream, and writes verdicts to it (default:
    /// none).
    pub fn store(mut self, store: impl VerdictStore) -> Self {
        self.store = Some(SharedStore::new(store).0);
        self
    }

    /// The `Retry-After` of a 503 when the upstream gives none (default: 5 s).
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// The kind of credential judged (default: none): it names them in the 503's
    /// description ("the API key could not be verified right now") and is the `kind` label
    /// of the engine's metrics (`other` when unset).
    pub fn credential_kind(mut self, kind: CredentialKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Finishes the engine.
    pub fn build(self) -> VerdictCache<V> {
        let local = self
            .policy
            .enabled
            .then(|| Arc::new(Local::new(&self.policy)));
        if let (Some(store), Some(local)) = (&self.store, &local) {
            let local: Arc<dyn LocalVerdicts> = local.clone();
            store.attach(Arc::downgrade(&local));
        }
        VerdictCache {
            inner: Arc::new(Engine {
                verifier: self.verifier,
                local,
                policy: self.policy,
                store: self.store,
                retry_after: self.retry_after,
                kind: self.kind,
                counters: Counters {
                    kind: self.kind.map_or("other", CredentialKind::name),
                    ..Counters::default()
                },
            }),
        }
    }
}
