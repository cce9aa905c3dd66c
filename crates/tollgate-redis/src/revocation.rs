//! [`RevocationList`]: JWTs revoked on every replica at once, checked from memory.
//!
//! Each revocation is a sealed Redis entry (`<namespace>:rt:` for a token, `:rs:` for a
//! subject) that lives as long as it matters, and a message on the revocation channel. Each
//! replica mirrors the entries: a snapshot once subscribed (and again after every reconnect),
//! then the messages. The check on a request reads the mirror, no Redis round trip.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fred::prelude::KeysInterface;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tollgate_core::AuthError;
use tollgate_jwt::{RevocationQuery, Revocations, VerifiedTokens};

use crate::store::{Inner, REVOCATION, Redis, RedisError, RedisStore, px, scan};

/// What the mirror holds, by issuer (one lookup of the issuer per check).
#[derive(Debug, Default, Clone)]
pub(crate) struct Revoked {
    issuers: HashMap<Box<str>, ByIssuer>,
}

/// One issuer's revocations, in seconds since the epoch.
#[derive(Debug, Default, Clone)]
struct ByIssuer {
    /// Revoked `jti`s, until the token's `exp`.
    tokens: HashMap<Box<str>, u64>,
    /// Subjects, with the time before which their tokens are revoked.
    subjects: HashMap<Box<str>, u64>,
}

/// One revocation, as stored and published.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "revoked", rename_all = "snake_case")]
pub(crate) enum Revocation {
    /// The token `jti` of `iss`, until its `exp`.
    Token { iss: String, jti: String, exp: u64 },
    /// Every token of `sub` of `iss` issued before `before`.
    Subject {
        iss: String,
        sub: String,
        before: u64,
    },
}

impl Revocation {
    /// The Redis key's part after the namespace.
    pub(crate) fn key(&self) -> String {
        let (kind, iss, id) = match self {
            Revocation::Token { iss, jti, .. } => ("rt", iss, jti),
            Revocation::Subject { iss, sub, .. } => ("rs", iss, sub),
        };
        let id = Sha256::new()
            .chain_update(iss.as_bytes())
            .chain_update([0])
            .chain_update(id.as_bytes())
            .finalize();
        format!("{kind}:{}", hex::encode(id))
    }
}

impl Revoked {
    /// Adds `revocation`, and drops what has expired in its issuer's entries.
    pub(crate) fn add(&mut self, revocation: Revocation, now: u64, max_token_lifetime: u64) {
        match revocation {
            Revocation::Token { iss, jti, exp } => {
                let tokens = &mut self.issuers.entry(iss.into()).or_default().tokens;
                tokens.retain(|_, exp| *exp > now);
                if exp > now {
                    tokens.insert(jti.into(), exp);
                }
            }
            Revocation::Subject { iss, sub, before } => {
                let subjects = &mut self.issuers.entry(iss.into()).or_default().subjects;
                subjects.retain(|_, before| before.saturating_add(max_token_lifetime) > now);
                let before_then = subjects.entry(sub.into()).or_default();
                *before_then = (*before_then).max(before);
            }
        }
    }

    /// The time before which `subject`'s tokens are revoked, if they are.
    fn subject_before(&self, issuer: &str, subject: &str) -> Option<u64> {
        self.issuers.get(issuer)?.subjects.get(subject).copied()
    }

    /// How many tokens and subjects are revoked.
    fn counts(&self) -> (usize, usize) {
        self.issuers.values().fold((0, 0), |(t, s), by| {
            (t + by.tokens.len(), s + by.subjects.len())
        })
    }

    fn revoked(&self, token: &RevocationQuery<'_>) -> bool {
        let Some(by) = self.issuers.get(token.issuer) else {
            return false;
        };
        token.jti.is_some_and(|jti| by.tokens.contains_key(jti))
            || by
                .subjects
                .get(token.subject)
                // A token without `iat` cannot show it is newer.
                .is_some_and(|before| token.issued_at.is_none_or(|iat| iat < *before))
    }
}

/// Why a revocation may not have reached the fleet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// Redis could not be written to or published on: this replica refuses the token, the
    /// others may not. Try again.
    #[error("the revocation could not be stored in Redis: {0}")]
    Redis(String),
}

/// JWTs revoked before their `exp` on every replica of a fleet: by `jti`, or every token of
/// a subject issued before a time. Made by [`RedisStore::revocations`]; give it to
/// `JwtAuth::builder().revocations(..)`.
///
/// The check on a request reads a local mirror (no Redis round trip). While the mirror is out
/// of sync (Redis unreachable, or not yet read at start), it keeps serving with the last
/// revocations it knew, logged; with [`refuse_when_out_of_sync_for`] it answers 503 once out
/// of sync for longer than the bound.
///
/// [`refuse_when_out_of_sync_for`]: Self::refuse_when_out_of_sync_for
///
/// ```no_run
/// use std::time::{Duration, SystemTime};
/// use tollgate_redis::RedisStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::builder("redis://redis.internal:6379").secret([7u8; 32]).build()?;
/// let revocations = store.revocations();
/// // JwtAuth::builder().issuer(..).revocations(revocations.clone())
///
/// // From any replica, or an operator's program with the same Redis and secret:
/// let exp = SystemTime::now() + Duration::from_secs(600);
/// revocations.revoke_token("https://idp.example", "token-id-123", exp).await?;
/// revocations.revoke_subject("https://idp.example", "user-42", SystemTime::now()).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RevocationList {
    store: RedisStore,
    refuse_after: Option<Duration>,
}

impl RedisStore {
    /// The fleet's JWT revocation list.
    pub fn revocations(&self) -> RevocationList {
        RevocationList {
            store: self.clone(),
            refuse_after: None,
        }
    }
}

impl RevocationList {
    /// Answers 503 (`Retry-After`) instead of serving with the last known revocations once
    /// the mirror has been out of sync for longer than `bound` (default: never; serving
    /// goes on, logged).
    pub fn refuse_when_out_of_sync_for(mut self, bound: Duration) -> Self {
        self.refuse_after = Some(bound);
        self
    }

    /// Revokes the token `jti` of `issuer` until `expires_at` (its `exp`), on every replica.
    pub async fn revoke_token(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: SystemTime,
    ) -> Result<(), RevocationError> {
        let exp = secs(expires_at);
        let revocation = Revocation::Token {
            iss: issuer.into(),
            jti: jti.into(),
            exp,
        };
        let ttl = Duration::from_secs(exp.saturating_sub(secs(SystemTime::now())));
        self.revoke(revocation, ttl).await
    }

    /// Revokes every token of `subject` of `issuer` issued before `issued_before` (by `iat`;
    /// a token without `iat` is revoked too), on every replica.
    pub async fn revoke_subject(
        &self,
        issuer: &str,
        subject: &str,
        issued_before: SystemTime,
    ) -> Result<(), RevocationError> {
        // Never weaker than one known already: the stored entry replaces the last one.
        let known = self
            .store
            .inner()
            .revoked
            .load()
            .subject_before(issuer, subject);
        let revocation = Revocation::Subject {
            iss: issuer.into(),
            sub: subject.into(),
            before: secs(issued_before).max(known.unwrap_or(0)),
        };
        let ttl = self.store.inner().max_token_lifetime;
        self.revoke(revocation, ttl).await
    }

    async fn revoke(&self, revocation: Revocation, ttl: Duration) -> Result<(), RevocationError> {
        let inner = self.store.inner();
        // Here at once, whatever Redis says.
        inner.revoked_locally(revocation.clone()).await;
        if ttl.is_zero() {
            return Ok(());
        }
        let key = format!("{}{}", inner.prefix, revocation.key());
        let body = serde_json::to_vec(&revocation).expect("a revocation serializes");
        let value = inner.seal.seal(&key, &body, ttl);
        let message = [REVOCATION, key.as_bytes(), b"\n", &value].concat();
        // Past the breaker: a revocation is worth a try whatever it remembers.
        let timeout = inner.timeout.max(Duration::from_secs(1));
        let stored = self
            .store
            .send("SET and PUBLISH", timeout, async |redis| {
                let ttl = Some(px(ttl));
                redis
                    .set::<(), _, _>(key.as_str(), value.as_slice(), ttl, None, false)
                    .await?;
                self.store.publish_sealed(redis, &message).await
            })
            .await;
        match stored {
            Ok(()) => {
                inner.fleet.message("jwt_revocation", "sent");
                Ok(())
            }
            Err(true) => Err(RevocationError::Redis("timed out".into())),
            Err(false) => Err(RevocationError::Redis("failed (see the log)".into())),
        }
    }
}

impl Revocations for RevocationList {
    fn attach(&self, cache: Weak<dyn VerifiedTokens>) {
        let inner = self.store.inner();
        let mut caches = inner.token_caches.lock().unwrap_or_else(|e| e.into_inner());
        caches.push(cache);
    }

    fn check(&self, token: RevocationQuery<'_>) -> Result<(), AuthError> {
        let inner = self.store.inner();
        if let Some(bound) = self.refuse_after
            && let Some(out_of_sync) = inner.out_of_sync_for()
            && out_of_sync > bound
        {
            return Err(AuthError::unavailable(
                "the token revocation list is out of sync",
                Duration::from_secs(5),
            ));
        }
        if inner.revoked.load().revoked(&token) {
            return Err(AuthError::invalid_token("the token was revoked"));
        }
        Ok(())
    }
}

impl Inner {
    pub(crate) async fn revoked_locally(&self, revocation: Revocation) {
        let now = secs(SystemTime::now());
        let lifetime = self.max_token_lifetime.as_secs();
        self.revoked.rcu(|revoked| {
            let mut revoked = Revoked::clone(revoked);
            revoked.add(revocation.clone(), now, lifetime);
            revoked
        });
        self.mirror_changed().await;
    }

    /// After the mirror changed: its size counted, the revoked tokens dropped from the
    /// verified-token caches (which refuse them anyway; this frees their room).
    async fn mirror_changed(&self) {
        self.count_revocations();
        let caches: Vec<Arc<dyn VerifiedTokens>> = {
            let mut caches = self.token_caches.lock().unwrap_or_else(|e| e.into_inner());
            caches.retain(|c| c.strong_count() > 0);
            caches.iter().filter_map(Weak::upgrade).collect()
        };
        if caches.is_empty() {
            return;
        }
        let revoked = self.revoked.load_full();
        let filter = move |token: RevocationQuery<'_>| revoked.revoked(&token);
        for cache in caches {
            cache.purge(&filter).await;
        }
    }

    /// The mirror's size, as gauges.
    fn count_revocations(&self) {
        let (tokens, subjects) = self.revoked.load().counts();
        let gauges = &self.fleet.revocations;
        for (kind, n) in [("token", tokens), ("subject", subjects)] {
            gauges.with(
                kind,
                |kind| vec![("kind", (*kind).into())],
                |g| g.set(n as f64),
            );
        }
    }

    /// A revocation published by a replica: `<key>\n<sealed value>`.
    pub(crate) async fn apply_revocation(&self, message: &[u8]) {
        let Some(newline) = message.iter().position(|b| *b == b'\n') else {
            return;
        };
        let (key, value) = (&message[..newline], &message[newline + 1..]);
        if let Some(revocation) = std::str::from_utf8(key)
            .ok()
            .and_then(|key| self.open_revocation(key, value))
        {
            self.revoked_locally(revocation).await;
        }
    }

    fn open_revocation(&self, key: &str, value: &[u8]) -> Option<Revocation> {
        let body = self.seal.open(key, value)?;
        let revocation: Revocation = serde_json::from_slice(&body).ok()?;
        // The entry names what it revokes: refused when moved to another key.
        (format!("{}{}", self.prefix, revocation.key()) == key).then_some(revocation)
    }

    /// Reads every revocation stored, and replaces the mirror with them.
    pub(crate) async fn load_revocations(&self, redis: &Redis) -> Result<usize, RedisError> {
        let now = secs(SystemTime::now());
        let lifetime = self.max_token_lifetime.as_secs();
        let mut revoked = Revoked::default();
        let mut count = 0;
        for kind in ["rt", "rs"] {
            let pattern = format!("{}{kind}:*", self.prefix);
            let mut pages = std::pin::pin!(scan(redis, &pattern));
            while let Some(keys) = pages.next().await {
                let keys = keys?;
                if keys.is_empty() {
                    continue;
                }
                let values: Vec<Option<Vec<u8>>> = redis.mget(keys.clone()).await?;
                for (key, value) in keys.iter().zip(values) {
                    if let Some(r) = value.and_then(|v| self.open_revocation(key, &v)) {
                        revoked.add(r, now, lifetime);
                        count += 1;
                    }
                }
            }
        }
        self.revoked.store(Arc::new(revoked));
        self.out_of_sync_since.store(0, Ordering::Relaxed);
        self.mirror_changed().await;
        Ok(count)
    }
}

fn secs(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoked_for(revoked: &Revoked, sub: &str, jti: Option<&str>, iat: Option<u64>) -> bool {
        let principal = tollgate_core::Principal::builder(sub, tollgate_core::CredentialKind::Jwt)
            .issuer("https://idp")
            .data(serde_json::json!({"jti": jti, "iat": iat}))
            .build();
        revoked.revoked(&RevocationQuery::of(&principal))
    }

    #[test]
    fn a_token_is_revoked_by_its_jti_or_its_subject_before_a_time() {
        let mut revoked = Revoked::default();
        let token = |jti: &str| Revocation::Token {
            iss: "https://idp".into(),
            jti: jti.into(),
            exp: 2_000,
        };
        revoked.add(token("t1"), 1_000, 86_400);
        revoked.add(
            Revocation::Subject {
                iss: "https://idp".into(),
                sub: "alice".into(),
                before: 1_500,
            },
            1_000,
            86_400,
        );
        assert!(revoked_for(&revoked, "bob", Some("t1"), Some(900)));
        assert!(!revoked_for(&revoked, "bob", Some("t2"), Some(900)));
        assert!(revoked_for(&revoked, "alice", Some("t2"), Some(1_499)));
        assert!(!revoked_for(&revoked, "alice", Some("t2"), Some(1_500)));
        assert!(
            revoked_for(&revoked, "alice", None, None),
            "no iat: not provably newer"
        );
        // Expired token revocations are dropped on the next addition.
        revoked.add(token("t3"), 2_001, 86_400);
        assert!(!revoked_for(&revoked, "bob", Some("t1"), Some(900)));
    }
}
