//! The opt-in verified-token cache: a repeated token skips the signature check.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant, SystemTime};

use std::future::Future;
use std::pin::Pin;

use moka::Expiry;
use moka::future::Cache;
use tollgate_core::{CredentialDigest, Principal};

use crate::revocation::{RevocationQuery, TokenFilter, VerifiedTokens};

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
        token: &CredentialDigest,
        generation_of: impl Fn(&str) -> Option<u64>,
    ) -> Option<Principal> {
        let entry = self.entries.get(token).await?;
        let current = generation_of(entry.principal.issuer().unwrap_or_default())?;
        if current != entry.generation {
            return None;
        }
        self.hits.fetch_add(1, Relaxed);
        Some(entry.principal)
    }

    /// How many tokens are cached.
    pub(crate) async fn len(&self) -> u64 {
        self.entries.run_pending_tasks().await;
        self.entries.entry_count()
    }

    pub(crate) async fn insert(
        &self,
        token: CredentialDigest,
        principal: &Principal,
        generation: u64,
    ) {
        if self.expiry.ttl(principal).is_zero() {
            return;
        }
        let entry = Entry {
            principal: principal.clone(),
            generation,
        };
        self.entries.insert(token, entry).await;
    }
}

impl VerifiedTokens for VerifiedCache {
    fn purge<'a>(
        &'a self,
        revoked: TokenFilter<'a>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            // A scan per revocation, which is rare; the hot path pays nothing for it.
            let doomed: Vec<_> = self
                .entries
                .iter()
                .filter(|(_, entry)| revoked(RevocationQuery::of(&entry.principal)))
                .map(|(digest, _)| *digest)
                .collect();
            for digest in doomed {
                self.entries.invalidate(&digest).await;
            }
        })
    }
}
