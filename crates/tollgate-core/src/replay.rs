//! [`ReplayStore`]: one-time values, refused when seen again.

use std::future::Future;
use std::time::Duration;

/// Remembers one-time values (a DPoP proof's `jti`, a nonce) until they expire, so that a
/// value presented twice is refused: set-if-absent with an expiry. A fleet shares one (see
/// `tollgate-redis`), so a value replayed to another replica is refused too.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use std::time::{Duration, Instant};
/// use tollgate_core::ReplayStore;
///
/// /// One process's memory (unbounded: an example, not a production store).
/// #[derive(Default)]
/// struct Seen(Mutex<HashMap<String, Instant>>);
///
/// impl ReplayStore for Seen {
///     async fn first_use(&self, id: &str, ttl: Duration) -> bool {
///         let mut seen = self.0.lock().unwrap();
///         let now = Instant::now();
///         match seen.get(id) {
///             Some(until) if *until > now => false,
///             _ => {
///                 seen.insert(id.to_owned(), now + ttl);
///                 true
///             }
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let seen = Seen::default();
/// assert!(seen.first_use("proof-1", Duration::from_secs(60)).await);
/// assert!(!seen.first_use("proof-1", Duration::from_secs(60)).await);
/// # }
/// ```
pub trait ReplayStore: Send + Sync + 'static {
    /// `true` the first time `id` is seen within `ttl` (and remembers it for `ttl`),
    /// `false` for a replay.
    fn first_use(&self, id: &str, ttl: Duration) -> impl Future<Output = bool> + Send;
}
