//! [`RedisStore`]: verdicts shared by a fleet of replicas, and revocations told to all of
//! them.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use fred::clients::{Client, SubscriberClient, WithOptions};
use fred::prelude::{
    ClientLike, Config, EventInterface, KeysInterface, Options, PubsubInterface, ReconnectPolicy,
};
use fred::types::Builder;
use fred::types::scan::Scanner;
use futures_util::StreamExt;
use tollgate_core::CredentialDigest;
use tollgate_core::telemetry::{Counter, Family, Gauge, Lazy};
use tollgate_upstream::{Breaker, BreakerPolicy, LocalVerdicts, Meters, VerdictStore};

use crate::seal::Seal;

/// Why a [`RedisStore`] could not be built. Redis being down is not one of them: the store
/// connects in the background and, until it can, every request is served as without it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The URL is not a Redis URL (`redis://`, `redis-cluster://`, `redis-sentinel://`).
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

/// A Redis command's error.
pub(crate) type RedisError = fred::error::Error;

/// The commands' client, with the options of one command.
pub(crate) type Redis = WithOptions<Client>;

pub(crate) struct Inner {
    /// Commands (one multiplexed connection per server).
    redis: Client,
    /// The revocation channel's own connection.
    subscriber: SubscriberClient,
    pub(crate) seal: Seal,
    /// Prefix of every key: `{<namespace>}:` (the braces put all of the fleet's keys in one
    /// Redis Cluster slot, so that MGET and SCAN see them together).
    pub(crate) prefix: String,
    /// Prefix of every verdict's key: `{<namespace>}:v:`.
    keys: String,
    /// The revocation channel: `{<namespace>}:revoked`.
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
    pub(crate) once: tollgate_core::MemoryReplayStore,
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
            .field(
                "namespace",
                &self.inner.prefix.trim_matches(['{', '}', ':']),
            )
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
    /// Starts building a store on the Redis at `url`:
    ///
    /// - one server: `redis://[[user]:password@]host:port[/db]`;
    /// - a Redis Cluster: `redis-cluster://[[user]:password@]host:port?node=host2:port2&node=…`
    ///   (any nodes: the others are found from them, and slot moves are followed);
    /// - behind Sentinel: `redis-sentinel://[[user]:password@]sentinel1:port/db?sentinelServiceName=mymaster&node=sentinel2:port`
    ///   (the sentinels: the client asks them for the primary, and again after a failover).
    ///
    /// TLS (`rediss://`) is not built in: put the replicas and Redis on a private network.
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
        command: impl AsyncFnOnce(&Redis) -> Result<T, RedisError>,
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
        command: impl AsyncFnOnce(&Redis) -> Result<T, RedisError>,
    ) -> Result<T, bool> {
        let redis = self.inner.commands(timeout);
        let start = Instant::now();
        let answer = tokio::time::timeout(timeout, command(&redis)).await;
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
    pub(crate) async fn publish_sealed(
        &self,
        redis: &Redis,
        body: &[u8],
    ) -> Result<(), RedisError> {
        let message = self.inner.seal.seal_message(&self.inner.channel, body);
        redis.publish(self.inner.channel.as_str(), message).await
    }

    async fn publish(&self, message: &'static str, body: &[u8]) {
        let published = self
            .send("PUBLISH", self.inner.timeout, async |redis| {
                self.publish_sealed(redis, body).await
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
        let config = Config::from_url(&self.url).map_err(|_| url_error())?;
        let connect_within = self.timeout.max(Duration::from_millis(250));
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = connect_within;
                // Cluster topology and sentinel queries, on (re)connection only.
                c.internal_command_timeout = connect_within.max(Duration::from_secs(1));
                // Bounded: a command the connection cannot take fails at once.
                c.max_command_buffer_len = 10_000;
            })
            // Reconnects forever, from 50 ms to 2 s apart; resubscribing is `listen`'s.
            .set_policy(ReconnectPolicy::new_exponential(0, 50, 2_000, 2));
        let redis = builder.build().map_err(|_| url_error())?;
        let subscriber = builder.build_subscriber_client().map_err(|_| url_error())?;
        // Events first: a connection made before `listen` runs must not go unseen.
        let events = Events {
            errors: subscriber.error_rx(),
            reconnects: subscriber.reconnect_rx(),
            messages: subscriber.message_rx(),
        };
        redis.connect();
        subscriber.connect();
        let store = RedisStore {
            inner: Arc::new(Inner {
                redis,
                subscriber,
                seal: Seal::new(&secret),
                prefix: format!("{{{}}}:", self.namespace),
                keys: format!("{{{}}}:v:", self.namespace),
                channel: format!("{{{}}}:revoked", self.namespace),
                timeout: self.timeout,
                breaker: Breaker::new("Redis", self.breaker),
                locals: Mutex::new(Vec::new()),
                listening: AtomicBool::new(false),
                once: tollgate_core::MemoryReplayStore::new(),
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
        tokio::spawn(listen(Arc::downgrade(&store.inner), events));
        Ok(store)
    }
}

/// A TTL as Redis's `PX`, at least 1 ms.
pub(crate) fn px(ttl: Duration) -> fred::prelude::Expiration {
    fred::prelude::Expiration::PX(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1))
}

/// The URL without its password, for an error message: no user info, and no query (where
/// a Sentinel's password may be).
fn redact(url: &str) -> String {
    let url = url.split_once('?').map_or(url, |(before, _)| before);
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_in_an_error_names_no_password() {
        let url =
            "redis-sentinel://u:hunter2@s1:26379/0?sentinelServiceName=m&sentinelPassword=hunter3";
        assert_eq!(redact(url), "redis-sentinel://…@s1:26379/0");
        assert_eq!(redact("redis://r:6379"), "redis://r:6379");
    }
}

/// The keys that match `pattern`, a page at a time (SCAN: the server is not blocked, and a
/// key present throughout is seen at least once; in a cluster, on the node of the pattern's
/// slot).
pub(crate) fn scan(
    redis: &Redis,
    pattern: &str,
) -> impl futures_util::Stream<Item = Result<Vec<String>, RedisError>> + use<> {
    // A page dropped asks for the next one.
    Client::scan(redis, pattern.to_owned(), Some(1000), None).map(|page| {
        let keys = page?.take_results().unwrap_or_default();
        Ok(keys
            .iter()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect())
    })
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
                redis.get::<Option<Vec<u8>>, _>(key.as_str()).await
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
        let ttl = px(ttl);
        self.ask("SET", async |redis| {
            redis
                .set::<(), _, _>(key.as_str(), value, Some(ttl), None, false)
                .await
        })
        .await;
    }

    async fn invalidate(&self, digest: &CredentialDigest) {
        let key = self.key(digest);
        let _ = self
            .send("DEL", self.inner.timeout, async |redis| {
                redis.del::<(), _>(key.as_str()).await
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
                let mut pages = std::pin::pin!(scan(redis, &pattern));
                while let Some(keys) = pages.next().await {
                    let keys = keys?;
                    if !keys.is_empty() {
                        redis.unlink::<(), _>(keys).await?;
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

    /// The client for commands that each wait at most `timeout` (fred drops one that timed
    /// out unwritten: queued, it could land after a revocation) and are written once.
    pub(crate) fn commands(&self, timeout: Duration) -> Redis {
        self.redis.with_options(&Options {
            timeout: Some(timeout),
            max_attempts: Some(1),
            ..Options::default()
        })
    }

    /// Reads the stored revocations (after a subscription: nothing published since is lost).
    async fn resync(&self) {
        #[cfg(feature = "jwt")]
        match self
            .load_revocations(&self.commands(self.timeout.max(Duration::from_secs(1))))
            .await
        {
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

/// What the subscriber's connection reports.
struct Events {
    /// A connection lost (or a failed attempt).
    errors: tokio::sync::broadcast::Receiver<(RedisError, Option<fred::prelude::Server>)>,
    /// A connection made, or made again.
    reconnects: tokio::sync::broadcast::Receiver<fred::prelude::Server>,
    messages: tokio::sync::broadcast::Receiver<fred::types::Message>,
}

/// Subscribes to the revocation channel whenever the subscriber connects (the client
/// reconnects by itself, following a cluster's slots or a sentinel's failover), and applies
/// what arrives. Ends when the store is dropped.
async fn listen(store: Weak<Inner>, mut events: Events) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        tokio::select! {
            reconnected = events.reconnects.recv() => {
                if matches!(reconnected, Err(RecvError::Closed)) { return; }
                let Some(inner) = store.upgrade() else { return };
                inner.subscribe().await;
            }
            // fred reports a connection's end, or a failed attempt, as an error.
            error = events.errors.recv() => {
                if matches!(error, Err(RecvError::Closed)) { return; }
                let Some(inner) = store.upgrade() else { return };
                inner.disconnected();
            }
            message = events.messages.recv() => {
                let Some(inner) = store.upgrade() else { return };
                match message {
                    Ok(message) => apply(&inner, &message).await,
                    // Revocations were dropped unread: what is local may be stale.
                    Err(RecvError::Lagged(_)) => {
                        inner.resync().await;
                        inner.set_listening(true);
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }
    }
}

impl Inner {
    /// Subscribes (again) after a connection, a few tries (a lost connection brings another
    /// call); then the local verdicts are dropped and the revocations read again.
    async fn subscribe(&self) {
        let mut wait = Duration::from_millis(50);
        for _ in 0..8 {
            if self
                .subscriber
                .subscribe(self.channel.as_str())
                .await
                .is_ok()
            {
                // Listening once the mirror is read: what arrives meanwhile waits.
                self.resync().await;
                self.set_listening(true);
                return;
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }

    /// Revocations published while this replica is away are lost: what it holds locally can
    /// no longer be proven current.
    fn disconnected(&self) {
        if !self.listening.load(Ordering::Relaxed) {
            return;
        }
        self.set_listening(false);
        self.fleet.disconnections.with(
            "tollgate_fleet_disconnections_total",
            Vec::new,
            Counter::increment,
        );
        #[cfg(feature = "jwt")]
        let _ = self.out_of_sync_since.compare_exchange(
            0,
            crate::seal::to_millis(std::time::SystemTime::now()),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        tracing::warn!(
            "lost the connection to Redis: local verdicts are served until it is back, then dropped"
        );
    }
}

/// A message on the revocation channel.
async fn apply(inner: &Inner, message: &fred::types::Message) {
    if &*message.channel != inner.channel.as_str() {
        return;
    }
    let Some(payload) = message.value.as_bytes() else {
        return;
    };
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
