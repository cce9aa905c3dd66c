//! The fleet's [`ReplayStore`]: a one-time value seen by any replica is refused by all.

use std::time::Duration;

use fred::prelude::KeysInterface;
use tollgate_core::{CredentialDigest, Remembered, ReplayStore};

use crate::store::{RedisStore, px};

/// `SET <namespace>:once:<HMAC of the value> NX PX <ttl>`: the first replica to set it wins.
/// While Redis cannot be asked, this replica's own memory (a `MemoryReplayStore`) answers
/// (logged): a value replayed to the same replica is still refused, one replayed to another
/// may not be until Redis is back.
impl ReplayStore for RedisStore {
    async fn first_use(&self, id: &str, ttl: Duration) -> Remembered {
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
            Some(Some(_)) => Remembered::New,
            Some(None) => Remembered::Replayed,
            None => inner.once.remember(&digest, ttl),
        }
    }
}
