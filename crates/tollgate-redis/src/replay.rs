//! The fleet's [`ReplayStore`]: a one-time value seen by any replica is refused by all.

use std::time::{Duration, Instant};

use tollgate_core::{CredentialDigest, ReplayStore};

use fred::prelude::KeysInterface;

use crate::store::{RedisStore, px};

/// Most one-time values remembered locally while Redis cannot be asked.
const LOCAL_CAPACITY: u64 = 100_000;

/// What each value is remembered for, locally.
struct ForItsTtl;

impl moka::Expiry<CredentialDigest, Duration> for ForItsTtl {
    fn expire_after_create(
        &self,
        _: &CredentialDigest,
        ttl: &Duration,
        _: Instant,
    ) -> Option<Duration> {
        Some(*ttl)
    }
}

/// The local fallback of the replay store.
pub(crate) fn local() -> moka::future::Cache<CredentialDigest, Duration> {
    moka::future::Cache::builder()
        .max_capacity(LOCAL_CAPACITY)
        .expire_after(ForItsTtl)
        .build()
}

/// `SET <namespace>:once:<HMAC of the value> NX PX <ttl>`: the first replica to set it wins.
/// While Redis cannot be asked, this replica's own memory answers (logged): a value replayed
/// to the same replica is still refused, one replayed to another may not be until Redis is
/// back.
impl ReplayStore for RedisStore {
    async fn first_use(&self, id: &str, ttl: Duration) -> bool {
        let digest = CredentialDigest::of(id);
        let inner = self.inner();
        let key = format!("{}once:{}", inner.prefix, inner.seal.key_id(&digest));
        let set = self
            .ask("SET NX", async |redis| {
                let nx = Some(fred::prelude::SetOptions::NX);
                redis
                    .set::<Option<String>, _, _>(key.as_str(), 1, Some(px(ttl)), nx, false)
                    .await
            })
            .await;
        match set {
            Some(answer) => answer.is_some(),
            None => inner.once.entry(digest).or_insert(ttl).await.is_fresh(),
        }
    }
}
