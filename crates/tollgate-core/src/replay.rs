//! [`ReplayStore`]: one-time values, refused when seen again; [`MemoryReplayStore`], one
//! process's.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::CredentialDigest;

/// Remembers one-time values (a DPoP proof's `jti`, a nonce) until they expire, so that a
/// value presented twice is refused: set-if-absent with an expiry. A fleet shares one (see
/// `tollgate-redis`), so a value replayed to another replica is refused too.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use std::time::{Duration, Instant};
/// use tollgate_core::{Remembered, ReplayStore};
///
/// /// One process's memory (unbounded: an example, not a production store).
/// #[derive(Default)]
/// struct Seen(Mutex<HashMap<String, Instant>>);
///
/// impl ReplayStore for Seen {
///     async fn first_use(&self, id: &str, ttl: Duration) -> Remembered {
///         let mut seen = self.0.lock().unwrap();
///         let now = Instant::now();
///         match seen.get(id) {
///             Some(until) if *until > now => Remembered::Replayed,
///             _ => {
///                 seen.insert(id.to_owned(), now + ttl);
///                 Remembered::New
///             }
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let seen = Seen::default();
/// let minute = Duration::from_secs(60);
/// assert_eq!(seen.first_use("proof-1", minute).await, Remembered::New);
/// assert_eq!(seen.first_use("proof-1", minute).await, Remembered::Replayed);
/// # }
/// ```
pub trait ReplayStore: Send + Sync + 'static {
    /// [`Remembered::New`] the first time `id` is seen within `ttl` (it is remembered for
    /// `ttl`), [`Remembered::Replayed`] for a replay, and [`Remembered::Full`] when the store
    /// cannot remember it: never `New` without remembering it, or a replay could pass. A full
    /// store is the server's trouble, not the client's (DPoP answers 503 with `Retry-After`).
    fn first_use(&self, id: &str, ttl: Duration) -> impl Future<Output = Remembered> + Send;
}

/// Values remembered at most by [`MemoryReplayStore::new`].
pub const DEFAULT_REPLAY_CAPACITY: usize = 1_000_000;

/// Independently locked parts of a [`MemoryReplayStore`], so replicas' worker threads seldom
/// wait for one another.
const SHARDS: usize = 16;

/// A [`ReplayStore`] in this process's memory: the default for DPoP proofs, and the fallback
/// of `tollgate-redis`'s store while Redis cannot be asked.
///
/// It never forgets a value before its time is up, which is why it is not a cache: a cache
/// that evicts (or declines to admit) entries when full would let a replay through. When
/// full it refuses instead, and says so ([`Remembered::Full`]), so a caller can answer 503
/// rather than blame the client. Values are kept as 128 bits of their SHA-256, in two
/// generations per shard that turn over every TTL, so an expired value costs nothing to
/// drop; memory is taken as values come, about 100 bytes each at most (both generations
/// kept allocated).
///
/// ```
/// use std::time::Duration;
/// use tollgate_core::{CredentialDigest, MemoryReplayStore, Remembered};
///
/// let seen = MemoryReplayStore::with_capacity(10_000);
/// let proof = CredentialDigest::of("dpop:thumbprint:jti-1");
/// let ttl = Duration::from_secs(120);
/// assert_eq!(seen.remember(&proof, ttl), Remembered::New);
/// assert_eq!(seen.remember(&proof, ttl), Remembered::Replayed);
/// ```
pub struct MemoryReplayStore {
    shards: Box<[Mutex<Generations>]>,
    per_shard: usize,
    start: Instant,
}

/// What a [`ReplayStore`] (or [`MemoryReplayStore::remember`]) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remembered {
    /// Not seen within its TTL: remembered now.
    New,
    /// Seen before, and its TTL has not run out: a replay.
    Replayed,
    /// Not seen, but the store is full and cannot remember it; room is made when the oldest
    /// values expire, within `retry_after`.
    Full {
        /// When to try again.
        retry_after: Duration,
    },
}

/// One shard: values (their digest's first 128 bits) with the millisecond they expire at, in
/// the generation being filled and the one before. A value lives at most one `period` (the
/// longest TTL asked for), so the generation before the previous one has wholly expired.
#[derive(Default)]
struct Generations {
    current: HashMap<u128, u64>,
    previous: HashMap<u128, u64>,
    turned_at: u64,
    period: u64,
}

impl Generations {
    fn turn_over(&mut self, now: u64) {
        if now < self.turned_at.saturating_add(self.period) {
            return;
        }
        if now >= self.turned_at.saturating_add(self.period.saturating_mul(2)) {
            self.previous.clear();
            self.current.clear();
        } else {
            std::mem::swap(&mut self.previous, &mut self.current);
            self.current.clear();
        }
        self.turned_at = now;
    }
}

impl MemoryReplayStore {
    /// A store for up to [`DEFAULT_REPLAY_CAPACITY`] values at once.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_REPLAY_CAPACITY)
    }

    /// A store for up to `capacity` values at once (memory is taken as values come, not
    /// up front).
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryReplayStore {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            start: Instant::now(),
        }
    }

    /// Remembers `id` for `ttl` unless it is remembered already.
    pub fn remember(&self, id: &CredentialDigest, ttl: Duration) -> Remembered {
        let [b @ .., _, _, _, _, _, _, _, _, _, _, _, _, _, _, _, _] = *id.as_bytes();
        let key = u128::from_le_bytes(b);
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let shard = &self.shards[(key % SHARDS as u128) as usize];
        // A poisoned lock only means another thread panicked mid-insert: the maps are whole.
        let mut generations = shard.lock().unwrap_or_else(|e| e.into_inner());
        generations.period = generations.period.max(ttl);
        generations.turn_over(now);
        let live = |until: &u64| *until > now;
        if generations.previous.get(&key).is_some_and(live) {
            return Remembered::Replayed;
        }
        let held = generations.current.len() + generations.previous.len();
        let turn = generations.turned_at.saturating_add(generations.period);
        // One lookup in the current generation, for the check and the insert.
        match generations.current.entry(key) {
            Entry::Occupied(entry) if live(entry.get()) => Remembered::Replayed,
            Entry::Occupied(mut entry) => {
                entry.insert(now.saturating_add(ttl));
                Remembered::New
            }
            Entry::Vacant(_) if held >= self.per_shard => Remembered::Full {
                retry_after: Duration::from_millis(turn.saturating_sub(now)).max(SECOND),
            },
            Entry::Vacant(entry) => {
                entry.insert(now.saturating_add(ttl));
                Remembered::New
            }
        }
    }
}

const SECOND: Duration = Duration::from_secs(1);

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

impl ReplayStore for MemoryReplayStore {
    async fn first_use(&self, id: &str, ttl: Duration) -> Remembered {
        self.remember(&CredentialDigest::of(id), ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> CredentialDigest {
        CredentialDigest::of(&format!("value-{n}"))
    }

    #[test]
    fn a_value_is_a_replay_until_its_ttl_runs_out() {
        let store = MemoryReplayStore::with_capacity(100);
        let ttl = Duration::from_millis(50);
        assert_eq!(store.remember(&id(1), ttl), Remembered::New);
        assert_eq!(store.remember(&id(1), ttl), Remembered::Replayed);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(store.remember(&id(1), ttl), Remembered::New);
    }

    #[test]
    fn an_expired_value_is_new_again_before_its_generation_turns_over() {
        let store = MemoryReplayStore::with_capacity(100);
        // A long TTL keeps the generations from turning over for a minute.
        assert_eq!(
            store.remember(&id(0), Duration::from_secs(60)),
            Remembered::New
        );
        let short = Duration::from_millis(20);
        assert_eq!(store.remember(&id(1), short), Remembered::New);
        assert_eq!(store.remember(&id(1), short), Remembered::Replayed);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(store.remember(&id(1), short), Remembered::New);
        assert_eq!(store.remember(&id(1), short), Remembered::Replayed);
    }

    #[test]
    fn values_survive_a_turn_over_within_their_ttl() {
        let mut generations = Generations {
            period: 100,
            ..Generations::default()
        };
        generations.current.insert(7, 150);
        generations.turn_over(120);
        assert_eq!(
            generations.previous.get(&7),
            Some(&150),
            "moved to the previous generation"
        );
        generations.turn_over(230);
        assert!(generations.previous.is_empty() && generations.current.is_empty());
    }

    #[test]
    fn a_full_store_refuses_rather_than_forgets() {
        let store = MemoryReplayStore::with_capacity(SHARDS);
        let ttl = Duration::from_secs(60);
        let mut full = 0;
        for n in 0..200 {
            match store.remember(&id(n), ttl) {
                Remembered::Full { retry_after } => {
                    assert!(retry_after >= SECOND);
                    full += 1;
                }
                other => assert_eq!(other, Remembered::New),
            }
        }
        assert!(full >= 200 - SHARDS as u32);
        // What it took, it still knows.
        let kept = (0..200)
            .filter(|n| store.remember(&id(*n), ttl) == Remembered::Replayed)
            .count();
        assert_eq!(kept, 200 - full as usize);
    }
}
