//! A fleet of tollgate replicas on one Redis, not N strangers.
//!
//! - [`RedisStore`]: the verdict engine's second-level store (`VerdictStore`) for API keys
//!   and introspected tokens: a key verified on one replica is known to all, and
//!   `invalidate(..)` on any of them is told to every other over pub/sub. Built with
//!   [`RedisStore::builder`].
//! - [`RevocationList`] (feature `jwt`, on by default): JWTs revoked by `jti` or subject on
//!   every replica, checked from a local mirror, for `JwtAuth::builder().revocations(..)`.
//! - `RedisStore` is also a [`ReplayStore`](tollgate_core::ReplayStore): a one-time value
//!   (a DPoP proof's `jti`) seen by one replica is refused by all.
//! - What Redis holds is keyed and sealed by a secret of yours (the `seal` module): no
//!   credential in a dump, no principal minted by a forged entry.
//!
//! One server, a Redis Cluster or a Sentinel-managed primary, by URL
//! ([`RedisStore::builder`]); the client is [fred](https://docs.rs/fred), which follows a
//! cluster's slots and a Sentinel's failovers and reconnects by itself.
//!
//! Redis is never the reason a request fails: down, slow or answering garbage, it is a miss,
//! and requests go to the key service as without it.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod replay;
#[cfg(feature = "jwt")]
mod revocation;
mod seal;
mod store;

#[cfg(feature = "jwt")]
pub use revocation::{RevocationError, RevocationList};
pub use store::{DEFAULT_TIMEOUT, RedisStore, RedisStoreBuilder, RedisStoreError};
