//! [`Stats`]: what the API-key cache and verifier have done, for dashboards and alerts.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of one [`ApiKeyAuth`](crate::ApiKeyAuth) (and its clones), read with
/// [`ApiKeyAuth::stats`](crate::ApiKeyAuth::stats). Export them to your metrics system by
/// reading them periodically.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Answers served from the cache (valid or not).
    pub hits: u64,
    /// Requests that found no usable cache entry.
    pub misses: u64,
    /// Answers served stale: during stale-while-revalidate, or from the grace period while the
    /// key service was down.
    pub stale_served: u64,
    /// Calls made to the key service.
    pub upstream_calls: u64,
    /// Failed calls, by kind.
    pub upstream_errors: UpstreamErrors,
    /// Verdicts from the key service, by outcome.
    pub outcomes: Outcomes,
    /// Keys refused locally (wrong prefix) without a call.
    pub rejected_locally: u64,
}

/// Failed calls to the key service, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamErrors {
    /// No answer in time.
    pub timeout: u64,
    /// No connection.
    pub connect: u64,
    /// A status that is not a verdict.
    pub status: u64,
    /// An unreadable answer.
    pub malformed: u64,
    /// Anything else.
    pub other: u64,
}

/// Verdicts from the key service, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcomes {
    /// `VALID`.
    pub valid: u64,
    /// `NOT_FOUND`, `DISABLED`, `EXPIRED` and unknown codes.
    pub invalid: u64,
    /// `FORBIDDEN`, `INSUFFICIENT_PERMISSIONS`.
    pub forbidden: u64,
    /// `RATE_LIMITED`, `USAGE_EXCEEDED`.
    pub limited: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) upstream_calls: AtomicU64,
    pub(crate) rejected_locally: AtomicU64,
    errors: [AtomicU64; 5],
    outcomes: [AtomicU64; 4],
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Counters {
    pub(crate) fn error(&self, kind: &str) {
        let i = match kind {
            "timeout" => 0,
            "connect" => 1,
            "status" => 2,
            "malformed" => 3,
            _ => 4,
        };
        bump(&self.errors[i]);
    }

    pub(crate) fn outcome(&self, verdict: &crate::Verdict) {
        use crate::{Denial, Verdict};
        let i = match verdict {
            Verdict::Valid(_) => 0,
            Verdict::Invalid(Denial::Forbidden | Denial::InsufficientPermissions) => 2,
            Verdict::Invalid(Denial::RateLimited { .. } | Denial::UsageExceeded) => 3,
            Verdict::Invalid(_) => 1,
        };
        bump(&self.outcomes[i]);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Relaxed);
        Stats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            stale_served: get(&self.stale_served),
            upstream_calls: get(&self.upstream_calls),
            rejected_locally: get(&self.rejected_locally),
            upstream_errors: UpstreamErrors {
                timeout: get(&self.errors[0]),
                connect: get(&self.errors[1]),
                status: get(&self.errors[2]),
                malformed: get(&self.errors[3]),
                other: get(&self.errors[4]),
            },
            outcomes: Outcomes {
                valid: get(&self.outcomes[0]),
                invalid: get(&self.outcomes[1]),
                forbidden: get(&self.outcomes[2]),
                limited: get(&self.outcomes[3]),
            },
        }
    }
}
