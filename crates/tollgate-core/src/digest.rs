//! [`CredentialDigest`]: the SHA-256 of a credential, the only form in which a cache keeps one.

use std::fmt;
use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha256};

/// The SHA-256 of a credential (an API key, a token): what tollgate's caches are keyed by, so
/// that no cache ever holds a raw credential.
///
/// Equality compares all 32 bytes. Hashing (for a hash map or a moka cache) feeds only the
/// first 8 bytes to the map's hasher: a digest is already uniform, and the map's hasher is
/// keyed with a secret (SipHash in `std` and moka), so forcing two credentials into one bucket
/// still takes a 64-bit SHA-256 collision, for a quarter of the hashing work on every lookup.
/// `Debug` shows nothing of the digest.
///
/// ```
/// use std::collections::HashSet;
/// use tollgate_core::CredentialDigest;
///
/// let seen: HashSet<_> = [CredentialDigest::of("sk_live_a")].into_iter().collect();
/// assert!(seen.contains(&CredentialDigest::of("sk_live_a")));
/// assert!(!seen.contains(&CredentialDigest::of("sk_live_b")));
/// assert_eq!(format!("{:?}", CredentialDigest::of("sk_live_a")), "CredentialDigest(..)");
/// assert_eq!(CredentialDigest::of("abc").as_bytes()[..4], [0xba, 0x78, 0x16, 0xbf]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CredentialDigest([u8; 32]);

impl CredentialDigest {
    /// The SHA-256 of `credential`.
    pub fn of(credential: &str) -> Self {
        CredentialDigest(Sha256::digest(credential.as_bytes()).into())
    }

    /// The 32 bytes of the digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest whose bytes are `bytes` (one received from another replica, say).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        CredentialDigest(bytes)
    }
}

impl Hash for CredentialDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let [b0, b1, b2, b3, b4, b5, b6, b7, ..] = self.0;
        state.write_u64(u64::from_ne_bytes([b0, b1, b2, b3, b4, b5, b6, b7]));
    }
}

impl fmt::Debug for CredentialDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CredentialDigest(..)")
    }
}
