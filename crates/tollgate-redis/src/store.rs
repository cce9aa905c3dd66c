//! [`RedisStore`]: verdicts shared by a fleet of replicas, and revocations told to all of
//! them.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tollgate_core::CredentialDigest;
use tollgate_core::telemetry::{Counter, Family, Gauge, Lazy};
use tollgate_upstream::{Breaker, BreakerPolicy, LocalVerdicts, Meters, VerdictStore};

use crate::seal::Seal;

/// Why a [`RedisStore`] could not be built. Redis being down is not one of them: the store
/// connects in the background and, until it can, every request is served as without it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The URL is not a Redis URL this build can use (`redis://` or `redis+unix://`).
    #[error("not a Redis URL: {0}")]
    Url(String),
    /// No secret, or one shorter than 32 bytes.
    #[error("a secret of at least 32 bytes is required (RedisStore::builder(..).secret(..))")]
    Secret,
}

/// Verdicts of API keys and introspected tokens shared by every replica through one Redis, and
/// revocations told to all of them.
///
/// - A local miss asks Redis before the key service; a verdict from the key service is
///   written there for as long as the local cache would keep it (never past the credential's
///   expiry), so a key used on ten replicas costs one verification.
/// - `invalidate(key)` / `invalidate_all()` on any replica deletes the shared entry and
///   publishes the revocation: every replica drops its local entry. A replica that loses its
///   connection keeps serving its local verdicts meanwhile (as without Redis) and drops them
///   all once subscribed again, since it may have missed revocations.
/// - Keys are an HMAC of the credential's digest under your secret, values are sealed with
///   it: a dump reveals no credential, and an entry written by anyone without the secret (or
///   copied from another key, or replayed after its expiry) is never trusted.
/// - Redis is a cache and a messenger, never the reason a request fails: each command waits
///   at most [`timeout`](RedisStoreBuilder::timeout), a breaker stops asking while Redis is
///   known to be down, and the client reconnects and resubscribes by itself.
///
/// One store serves several engines: pass clones to `ApiKeyAuth::builder(..).store(..)` and
/// `Introspection::builder(..).store(..)`.
///
/// ```no_run
/// use tollgate_redis::RedisStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::builder("redis://redis.internal:6379")
///     .secret(std::env::var("TOLLGATE_REDIS_SECRET")?)
///     .build()?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) redis: ConnectionManager,
    pub(crate) seal: Seal,
    /// Prefix of every key: `<namespace>:`.
    pub(crate) prefix: String,
    /// Prefix of every verdict's key: `<namespace>:v:`.
    keys: String,
    /// The revocation channel: `<namespace>:revoked`.
    channel: String,
    pub(crate) timeout: Duration,
    breaker: Breaker,
    /// The local verdicts of the engines built with this store.
    locals: Mutex<Vec<Weak<dyn LocalVerdicts>>>,
    /// Subscribed to the revocation channel, as last heard.
    listening: AtomicBool,
    /// Redis as an upstream: commands by result, their duration, the breaker.
    meters: Meters,
    /// The fleet's own: messages, the subscription, the revocation mirror.
    pub(crate) fleet: FleetMeters,
    /// One-time values, while Redis cannot be asked.
    pub(crate) once: moka::future::Cache<CredentialDigest, Duration>,
    /// The mirror of the fleet's JWT revocations.
    #[cfg(feature = "jwt")]
    pub(crate) revoked: arc_swap::ArcSwap<crate::revocation::Revoked>,
    /// The verified-token caches of the `JwtAuth`s using the revocation list.
    #[cfg(feature = "jwt")]
    pub(crate) token_caches: Mutex<Vec<Weak<dyn tollgate_jwt::VerifiedTokens>>>,
    #[cfg(feature = "jwt")]
    /// Since when (ms since the epoch) the mirror may have missed revocations; 0 when in
    /// sync.
    pub(crate) out_of_sync_since: std::sync::atomic::AtomicU64,
    #[cfg(feature = "jwt")]
    /// How long a subject's revocation is kept: the longest life of its tokens.
    pub(crate) max_token_lifetime: Duration,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("namespace", &self.inner.prefix.trim_end_matches(':'))
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RedisStore`]; see [`RedisStore::builder`].
#[must_use]
pub struct RedisStoreBuilder {
    url: String,
    secret: Option<Vec<u8>>,
    namespace: String,
    timeout: Duration,
    breaker: BreakerPolicy,
    #[cfg(feature = "jwt")]
    max_token_lifetime: Duration,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password, and the secret is one.
        f.debug_struct("RedisStoreBuilder")
            .field("namespace", &self.namespace)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The default wait for one Redis command: a local miss pays it at most once, and the key
/// service is asked next.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

impl RedisStore {
    /// Starts building a store on the Redis at `url` (`redis://[:password@]host:port[/db]`,
    /// `rediss://` for TLS is not built in: put the replicas and Redis on a private network).
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.into(),
            secret: None,
            namespace: "tollgate".into(),
            timeout: DEFAULT_TIMEOUT,
            breaker: BreakerPolicy::default(),
            #[cfg(feature = "jwt")]
            max_token_lifetime: Duration::from_secs(24 * 3600),
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Whether this replica hears revocations now: subscribed, and not disconnected since.
    /// For a readiness check; while it is `false`, revocations published elsewhere are
    /// missed, which is why a replica drops every local verdict once it listens again.
    pub fn is_listening(&self) -> bool {
        self.inner.listening.load(Ordering::Relaxed)
    }

    fn key(&self, digest: &CredentialDigest) -> String {
        format!("{}{}", self.inner.keys, self.inner.seal.key_id(digest))
    }

    /// Runs `command` against Redis within the timeout, unless the breaker says Redis is
    /// down; `None` for every failure (logged), which callers treat as a miss.
    pub(crate) async fn ask<T>(
        &self,
        what: &'static str,
        command: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let Ok(permit) = self.inner.breaker.permit() else {
            self.inner.meters.request("unavailable", None);
            return None;
        };
        let answer = self.send(what, self.inner.timeout, command).await;
        let changed = match &answer {
            Ok(_) => permit.succeeded(),
            Err(timed_out) => permit.failed(*timed_out),
        };
        if changed {
            let open = answer.is_err();
            self.inner.meters.breaker(open);
            match open {
                true => tracing::warn!("Redis is down: requests are served without it"),
                false => tracing::info!("Redis answers again"),
            }
        }
        answer.ok()
    }

    /// Runs `command` within `timeout`, past the breaker (revocations, rare and worth a try
    /// whatever the breaker remembers, use it directly). `Err(timed out)` on a failure,
    /// logged; counted either way.
    pub(crate) async fn send<T>(
        &self,
        what: &'static str,
        timeout: Duration,
        command: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    ) -> Result<T, bool> {
        let mut redis = self.inner.redis.clone();
        let start = Instant::now();
        let answer = tokio::time::timeout(timeout, command(&mut redis)).await;
        let took = Some(start.elapsed());
        match answer {
            Ok(Ok(value)) => {
                self.inner.meters.request("ok", took);
                Ok(value)
            }
            Ok(Err(e)) => {
                self.inner.meters.request("error", took);
                // Debug: the breaker's state changes are what is worth a warning.
                tracing::debug!(command = what, error = %e, "Redis failed; served without it");
                Err(false)
            }
            Err(_) => {
                self.inner.meters.request("timeout", took);
                tracing::debug!(
                    command = what,
                    ?timeout,
                    "Redis timed out; served without it"
                );
                Err(true)
            }
        }
    }

    /// Publishes `body` to the replicas, sealed.
    pub(crate) async fn publish_sealed(&self, body: &[u8]) -> redis::RedisResult<()> {
        let message = self.inner.seal.seal_message(&self.inner.channel, body);
        let mut redis = self.inner.redis.clone();
        redis.publish(&self.inner.channel, message).await
    }

    async fn publish(&self, message: &'static str, body: &[u8]) {
        let published = self
            .send("PUBLISH", self.inner.timeout, async |_| {
                self.publish_sealed(body).await
            })
            .await;
        if published.is_ok() {
            self.inner.fleet.message(message, "sent");
        } else {
            tracing::error!(
                "a revocation could not be published: other replicas keep their local verdicts until these expire"
            );
        }
    }
}

impl RedisStoreBuilder {
    /// The secret keys and values are derived from and sealed with: at least 32 random bytes,
    /// the same on every replica (required). Changing it orphans what is stored (it expires
    /// by its TTL), nothing worse.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

    /// The prefix of every key and of the revocation channel (default: `tollgate`): one per
    /// fleet sharing a Redis.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long one command may take before the request goes on without Redis (default:
    /// 50 ms, [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// When Redis is taken for down and left alone (default: [`BreakerPolicy::default`]: a
    /// timeout, or 5 failures in a row, then one probe every 2 s).
    pub fn breaker(mut self, policy: BreakerPolicy) -> Self {
        self.breaker = policy;
        self
    }

    #[cfg(feature = "jwt")]
    /// The longest life of a JWT of your issuers (default: 24 h): a subject's revocation
    /// ([`RevocationList::revoke_subject`](crate::RevocationList)) is kept this long, after
    /// which every token it covers has expired anyway.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = lifetime;
        self
    }

    /// Finishes the store and starts listening for revocations. Needs a Tokio runtime; does
    /// not wait for Redis.
    pub fn build(self) -> Result<RedisStore, RedisStoreError> {
        let secret = self.secret.ok_or(RedisStoreError::Secret)?;
        if secret.len() < Seal::MIN_SECRET {
            return Err(RedisStoreError::Secret);
        }
        let url_error = || RedisStoreError::Url(redact(&self.url));
        let info = self
            .url
            .as_str()
            .into_connection_info()
            .map_err(|_| url_error())?;
        // RESP3: revocations arrive on the same connection as the commands, and the client
        // resubscribes after a reconnect by itself.
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client =
            redis::Client::open(info.set_redis_settings(settings)).map_err(|_| url_error())?;
        let (pushes, received) = unbounded_channel();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(pushes)
            .set_automatic_resubscription()
            .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(250))))
            .set_response_timeout(Some(self.timeout))
            .set_max_delay(Duration::from_secs(2));
        let redis =
            ConnectionManager::new_lazy_with_config(client, config).map_err(|_| url_error())?;
        let store = RedisStore {
            inner: Arc::new(Inner {
                redis,
                seal: Seal::new(&secret),
                prefix: format!("{}:", self.namespace),
                keys: format!("{}:v:", self.namespace),
                channel: format!("{}:revoked", self.namespace),
                timeout: self.timeout,
                breaker: Breaker::new("Redis", self.breaker),
                locals: Mutex::new(Vec::new()),
                listening: AtomicBool::new(false),
                once: crate::replay::local(),
                meters: Meters::new("redis", None),
                fleet: FleetMeters::new(),
                #[cfg(feature = "jwt")]
                revoked: Default::default(),
                #[cfg(feature = "jwt")]
                token_caches: Mutex::new(Vec::new()),
                #[cfg(feature = "jwt")]
                // Not read yet.
                out_of_sync_since: std::sync::atomic::AtomicU64::new(crate::seal::to_millis(std::time::SystemTime::now())),
                #[cfg(feature = "jwt")]
                max_token_lifetime: self.max_token_lifetime,
            }),
        };
        tokio::spawn(listen(Arc::downgrade(&store.inner), received));
        Ok(store)
    }
}

/// The URL without its password, for an error message.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The keys that match a pattern, a page at a time (SCAN: the server is not blocked, and a
/// key present throughout is seen at least once).
pub(crate) struct Scan<'p> {
    pattern: &'p str,
    /// `None` once the server said the scan is over.
    cursor: Option<u64>,
}

impl<'p> Scan<'p> {
    pub(crate) fn new(pattern: &'p str) -> Self {
        Scan {
            pattern,
            cursor: Some(0),
        }
    }

    /// The next page (possibly empty), or `None` when done.
    pub(crate) async fn next(
        &mut self,
        redis: &mut ConnectionManager,
    ) -> redis::RedisResult<Option<Vec<String>>> {
        let Some(cursor) = self.cursor else {
            return Ok(None);
        };
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(self.pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await?;
        self.cursor = (next != 0).then_some(next);
        Ok(Some(keys))
    }
}

/// How long `invalidate_all` may take to delete the shared entries.
const INVALIDATE_ALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What a revocation message says.
const ALL: &[u8] = b"all";
const ONE: &[u8] = b"one:";
#[cfg(feature = "jwt")]
/// A JWT revocation: `rev:<key>\n<sealed value>`.
pub(crate) const REVOCATION: &[u8] = b"rev:";

impl VerdictStore for RedisStore {
    async fn get(&self, digest: &CredentialDigest) -> Option<Vec<u8>> {
        let key = self.key(digest);
        let value = self
            .ask("GET", async |redis| {
                redis.get::<_, Option<Vec<u8>>>(&key).await
            })
            .await??;
        let verdict = self.inner.seal.open(&key, &value);
        if verdict.is_none() {
            tracing::warn!("a Redis entry not sealed with this fleet's secret was ignored");
        }
        verdict
    }

    async fn put(&self, digest: &CredentialDigest, verdict: Vec<u8>, ttl: Duration) {
        let key = self.key(digest);
        let value = self.inner.seal.seal(&key, &verdict, ttl);
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.ask("SET", async |redis| {
            redis.pset_ex::<_, _, ()>(&key, value, ttl).await
        })
        .await;
    }

    async fn invalidate(&self, digest: &CredentialDigest) {
        let key = self.key(digest);
        let _ = self
            .send("DEL", self.inner.timeout, async |redis| {
                redis.del::<_, ()>(&key).await
            })
            .await;
        self.publish("invalidate", &[ONE, digest.as_bytes()].concat())
            .await;
    }

    async fn invalidate_all(&self) {
        let pattern = format!("{}*", self.inner.keys);
        // Every key of the namespace, a page at a time: an operator's action, given longer.
        let _ = self
            .send("SCAN and UNLINK", INVALIDATE_ALL_TIMEOUT, async |redis| {
                let mut scan = Scan::new(&pattern);
                while let Some(keys) = scan.next(redis).await? {
                    if !keys.is_empty() {
                        redis.unlink::<_, ()>(keys).await?;
                    }
                }
                Ok(())
            })
            .await;
        self.publish("invalidate_all", ALL).await;
    }

    fn attach(&self, local: Weak<dyn LocalVerdicts>) {
        let mut locals = self.inner.locals.lock().unwrap_or_else(|e| e.into_inner());
        locals.retain(|l| l.strong_count() > 0);
        locals.push(local);
    }
}

impl Inner {
    #[cfg(feature = "jwt")]
    /// How long the revocation mirror has been out of sync, if it is.
    pub(crate) fn out_of_sync_for(&self) -> Option<Duration> {
        match self.out_of_sync_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(
                crate::seal::to_millis(std::time::SystemTime::now()).saturating_sub(since),
            )),
        }
    }

    /// Reads the stored revocations (after a subscription: nothing published since is lost).
    async fn resync(&self) {
        #[cfg(feature = "jwt")]
        match self.load_revocations().await {
            Ok(count) => tracing::debug!(count, "JWT revocations read from Redis"),
            Err(e) => tracing::warn!(error = %e, "JWT revocations could not be read from Redis"),
        }
    }

    fn set_listening(&self, listening: bool) {
        if listening {
            // Subscribed (again): what was cached before could have been revoked while this
            // replica did not listen.
            self.forget_all();
        }
        self.listening.store(listening, Ordering::Relaxed);
        let value = if listening { 1.0 } else { 0.0 };
        let fleet = &self.fleet;
        fleet
            .listening
            .with("tollgate_fleet_listening", Vec::new, |g| g.set(value));
    }

    /// The engines still alive (cloned out, so no lock is held while they forget).
    fn locals(&self) -> Vec<Arc<dyn LocalVerdicts>> {
        let locals = self.locals.lock().unwrap_or_else(|e| e.into_inner());
        locals.iter().filter_map(Weak::upgrade).collect()
    }

    fn forget_all(&self) {
        self.locals().iter().for_each(|local| local.forget_all());
    }
}

/// Subscribes to the revocation channel (until it succeeds), then applies what arrives. Ends
/// when the store is dropped.
async fn listen(store: Weak<Inner>, mut received: UnboundedReceiver<PushInfo>) {
    let mut wait = Duration::from_millis(50);
    loop {
        let Some(inner) = store.upgrade() else { return };
        let mut redis = inner.redis.clone();
        if redis.subscribe(&inner.channel).await.is_ok() {
            inner.set_listening(true);
            inner.resync().await;
            break;
        }
        drop(inner);
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
    while let Some(push) = received.recv().await {
        let Some(inner) = store.upgrade() else { return };
        match push.kind {
            // Revocations published while this replica was away are lost: what it holds
            // locally can no longer be proven current.
            PushKind::Disconnection => {
                inner.set_listening(false);
                inner.fleet.disconnections.with(
                    "tollgate_fleet_disconnections_total",
                    Vec::new,
                    Counter::increment,
                );
                #[cfg(feature = "jwt")]
                let _ = inner.out_of_sync_since.compare_exchange(
                    0,
                    crate::seal::to_millis(std::time::SystemTime::now()),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                tracing::warn!(
                    "lost the connection to Redis: local verdicts are served until it is back, then dropped"
                );
            }
            // The client's resubscription after a reconnect, confirmed.
            PushKind::Subscribe => {
                inner.set_listening(true);
                inner.resync().await;
            }
            PushKind::Message => apply(&inner, &push.data).await,
            _ => {}
        }
    }
}

/// A `message` push: `[channel, payload]`.
async fn apply(inner: &Inner, data: &[Value]) {
    let [Value::BulkString(channel), Value::BulkString(payload)] = data else {
        return;
    };
    if channel.as_slice() != inner.channel.as_bytes() {
        return;
    }
    let Some(body) = inner.seal.open_message(&inner.channel, payload) else {
        inner.fleet.message("unknown", "refused");
        tracing::warn!("a revocation not sealed with this fleet's secret was ignored");
        return;
    };
    #[cfg(feature = "jwt")]
    if let Some(revocation) = body.strip_prefix(REVOCATION) {
        inner.fleet.message("jwt_revocation", "received");
        inner.apply_revocation(revocation).await;
        return;
    }
    if body == ALL {
        inner.fleet.message("invalidate_all", "received");
        inner.forget_all();
    } else if let Some(digest) = body
        .strip_prefix(ONE)
        .and_then(|d| <[u8; 32]>::try_from(d).ok())
    {
        inner.fleet.message("invalidate", "received");
        let digest = CredentialDigest::from_bytes(digest);
        for local in inner.locals() {
            local.forget(&digest).await;
        }
    }
}

/// The fleet's metrics (feature `metrics` of tollgate-core).
#[derive(Debug)]
pub(crate) struct FleetMeters {
    /// `tollgate_fleet_messages_total{message, direction}`.
    messages: Family<(&'static str, &'static str)>,
    listening: Lazy<Gauge>,
    disconnections: Lazy<Counter>,
    /// `tollgate_jwt_revocations{kind}`: the mirror's size.
    #[cfg(feature = "jwt")]
    pub(crate) revocations: Family<&'static str, Gauge>,
}

impl FleetMeters {
    fn new() -> Self {
        FleetMeters {
            messages: Family::counters("tollgate_fleet_messages_total"),
            listening: Lazy::default(),
            disconnections: Lazy::default(),
            #[cfg(feature = "jwt")]
            revocations: Family::new("tollgate_jwt_revocations"),
        }
    }

    /// A revocation message (`invalidate`, `invalidate_all`, `jwt_revocation`) `sent`,
    /// `received`, or `refused` (not sealed with the secret).
    pub(crate) fn message(&self, message: &'static str, direction: &'static str) {
        let labels = |(message, direction): &(&'static str, &'static str)| {
            vec![
                ("message", (*message).into()),
                ("direction", (*direction).into()),
            ]
        };
        self.messages
            .with((message, direction), labels, Counter::increment);
    }
}
