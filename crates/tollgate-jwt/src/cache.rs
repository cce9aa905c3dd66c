//! The opt-in verified-token cache: a repeated token skips the signature check.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use moka::future::Cache;
use tollgate_core::{CredentialDigest, Principal};

#[derive(Clone)]
struct Entry {
    principal: Principal,
    /// The issuer's key generation when the token was verified.
    generation: u64,
}

/// An entry lives until its token expires, and at most `max_ttl` (computed here rather than
/// stored, which keeps entries small).
struct UntilExpiry {
    max_ttl: Duration,
}

impl UntilExpiry {
    fn ttl(&self, principal: &Principal) -> Duration {
        principal
            .expires_at()
            .and_then(|at| at.duration_since(SystemTime::now()).ok())
            .unwrap_or_default()
            .min(self.max_ttl)
    }
}

impl Expiry<CredentialDigest, Entry> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &CredentialDigest,
        entry: &Entry,
        _: Instant,
    ) -> Option<Duration> {
        Some(self.ttl(&entry.principal))
    }
}

pub(crate) struct VerifiedCache {
    entries: Cache<CredentialDigest, Entry>,
    expiry: UntilExpiry,
    pub(crate) hits: AtomicU64,
}

impl VerifiedCache {
    pub(crate) fn new(max_entries: u64, max_ttl: Duration) -> Self {
        VerifiedCache {
            entries: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(UntilExpiry { max_ttl })
                .build(),
            expiry: UntilExpiry { max_ttl },
            hits: AtomicU64::new(0),
        }
    }

    /// The principal of a token verified before, if its issuer's keys have not changed since
    /// (`generation_of` gives the issuer's current generation).
    pub(crate) async fn get(
        &self,
        token: &str,
        generation_of: impl Fn(&str) -> Option<u64>,
    ) -> Option<Principal> {
        let entry = self.entries.get(&CredentialDigest::of(token)).await?;
        let current = generation_of(entry.principal.issuer().unwrap_or_default())?;
        if current != entry.generation {
            return None;
        }
        self.hits.fetch_add(1, Relaxed);
        Some(entry.principal)
    }

    pub(crate) async fn insert(&self, token: &str, principal: &Principal, generation: u64) {
        if self.expiry.ttl(principal).is_zero() {
            return;
        }
        let entry = Entry {
            principal: principal.clone(),
            generation,
        };
        self.entries
            .insert(CredentialDigest::of(token), entry)
            .await;
    }
}
