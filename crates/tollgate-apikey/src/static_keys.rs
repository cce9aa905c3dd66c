//! [`StaticKeys`]: keys held in memory as SHA-256 hashes, for small deployments and tests.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use tollgate_upstream::UpstreamError;

use crate::{Denial, KeyInfo, KeyVerifier, Verdict};

/// A fixed list of keys, held only as SHA-256 hashes and compared in constant time.
///
/// Every lookup compares against every entry, so its time does not depend on which entry (if
/// any) matched; meant for tens of keys, not millions. Keys can come from configuration
/// already hashed ([`hashed`](Self::hashed)) so that the raw keys never sit in a config file,
/// or from the environment ([`from_env`](Self::from_env)).
///
/// ```
/// # tokio_test_block_on(async {
/// use tollgate_apikey::{KeyInfo, KeyVerifier, StaticKeys, Verdict};
///
/// let keys = StaticKeys::new().key("sk_test_abc", KeyInfo::new("ci").scopes(["deploy"]));
/// assert!(matches!(keys.verify("sk_test_abc").await, Ok(Verdict::Valid(_))));
/// assert!(matches!(keys.verify("sk_test_abd").await, Ok(Verdict::Invalid(_))));
/// assert!(!format!("{keys:?}").contains("sk_test_abc"));
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone, Default)]
pub struct StaticKeys {
    entries: Vec<([u8; 32], KeyInfo)>,
}

impl StaticKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key given in the clear; only its hash is kept.
    pub fn key(mut self, key: impl AsRef<[u8]>, info: KeyInfo) -> Self {
        self.entries
            .push((Sha256::digest(key.as_ref()).into(), info));
        self
    }

    /// Adds a key given as the hex SHA-256 of the key (`sha256sum`'s output). Returns `None`
    /// when `sha256_hex` is not 64 hex digits.
    pub fn hashed(mut self, sha256_hex: &str, info: KeyInfo) -> Option<Self> {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(sha256_hex.trim(), &mut hash).ok()?;
        self.entries.push((hash, info));
        Some(self)
    }

    /// Reads keys from the environment variable `var`: entries separated by `;` or newlines,
    /// each `key_id:sha256-hex` or `key_id:sha256-hex:scope scope...`. Returns `None` when the
    /// variable is unset or an entry is malformed.
    ///
    /// ```text
    /// TOLLGATE_KEYS="ci:9f86d08...:deploy read;billing:60303ae...:invoices:read"
    /// ```
    pub fn from_env(var: &str) -> Option<Self> {
        Self::parse(&std::env::var(var).ok()?)
    }

    fn parse(spec: &str) -> Option<Self> {
        spec.split([';', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .try_fold(StaticKeys::new(), |keys, entry| {
                let mut parts = entry.splitn(3, ':');
                let id = parts.next()?;
                let hash = parts.next()?;
                let scopes = parts.next().unwrap_or("").split_ascii_whitespace();
                keys.hashed(hash, KeyInfo::new(id).scopes(scopes))
            })
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeys")
            .field("keys", &self.entries.len())
            .finish()
    }
}

impl KeyVerifier for StaticKeys {
    async fn verify(&self, key: &str) -> Result<Verdict, UpstreamError> {
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        // Visit every entry and select without branching, so timing says nothing about which
        // entry matched.
        let mut index = u64::MAX;
        for (i, (candidate, _)) in self.entries.iter().enumerate() {
            index.conditional_assign(&(i as u64), candidate.ct_eq(&hash));
        }
        Ok(match self.entries.get(index as usize) {
            Some((_, info)) => Verdict::Valid(info.clone()),
            None => Verdict::Invalid(Denial::NotFound),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_env_spec() {
        let hash = hex::encode(Sha256::digest(b"k1"));
        let keys = StaticKeys::parse(&format!("ci:{hash}:deploy read;\nother:{hash}")).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(StaticKeys::parse("ci:nothex").is_none());
        assert!(StaticKeys::parse("ci").is_none());
    }
}
