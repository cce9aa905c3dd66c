//! What the layer decided for a request: counted (`tollgate_decisions_total`), traced (the
//! `tollgate.authenticate` span) and, for refusals, logged as [`RefusalLog`] says.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::telemetry::Family;
use crate::{AuthError, CredentialKind, ErrorKind, Principal};

/// How the layer logs refusals, through `tracing` (target `tollgate_core::layer`).
///
/// A refusal is the client's doing more often than not, so the default keeps them at `debug`.
/// An operator who wants to see why requests are refused in production, without a line per
/// refused request, samples them at `info`:
///
/// ```
/// use std::time::Duration;
/// use tollgate_core::{AuthLayer, RefusalLog};
/// # use tollgate_core::{Authenticator, AuthError, CredentialSource, Principal};
/// # struct Nobody;
/// # impl Authenticator for Nobody {
/// #     async fn authenticate(&self, _: &http::request::Parts) -> Result<Option<Principal>, AuthError> { Ok(None) }
/// #     fn credential_source(&self) -> CredentialSource { CredentialSource::bearer() }
/// # }
///
/// // At most one `info` line per reason (invalid_token, insufficient_scope...) every 10 s,
/// // saying how many refusals of that reason it stands for; the rest at `debug`.
/// let layer = AuthLayer::new(Nobody).refusal_log(RefusalLog::info_every(Duration::from_secs(10)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RefusalLog {
    info_every: Option<Duration>,
}

impl RefusalLog {
    /// Every refusal at `debug` (the default).
    pub const fn debug() -> Self {
        RefusalLog { info_every: None }
    }

    /// One refusal per reason at `info` every `interval`, with the number of refusals of that
    /// reason since the last; every other one at `debug`.
    pub const fn info_every(interval: Duration) -> Self {
        RefusalLog {
            info_every: Some(interval),
        }
    }
}

/// The outcomes a decision is counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Decision {
    /// `None`: authenticated (or let through anonymously when `anonymous`).
    refused: Option<ErrorKind>,
    anonymous: bool,
    kind: Option<CredentialKind>,
    issuer: Option<Arc<str>>,
}

impl Decision {
    pub(crate) fn authenticated(principal: &Principal) -> Self {
        Decision {
            refused: None,
            anonymous: false,
            kind: Some(principal.kind()),
            issuer: principal.shared_issuer().cloned(),
        }
    }

    pub(crate) fn anonymous() -> Self {
        Decision {
            refused: None,
            anonymous: true,
            kind: None,
            issuer: None,
        }
    }

    /// A refusal; `by` is the principal a check behind the layer refused, if any.
    pub(crate) fn refused(e: &AuthError, by: Option<&Decision>) -> Self {
        let (kind, issuer) = match by {
            Some(by) => (by.kind, by.issuer.clone()),
            None => match e.origin() {
                Some((kind, issuer)) => (Some(*kind), issuer.clone()),
                None => (None, None),
            },
        };
        Decision {
            refused: Some(e.kind()),
            anonymous: false,
            kind,
            issuer,
        }
    }

    fn outcome(&self) -> &'static str {
        match self.refused {
            None if self.anonymous => "anonymous",
            None => "authenticated",
            Some(ErrorKind::RateLimited) => "rate_limited",
            Some(ErrorKind::Unavailable) => "unavailable",
            Some(_) => "refused",
        }
    }

    fn labels(&self) -> crate::telemetry::Labels {
        vec![
            ("outcome", self.outcome().into()),
            ("reason", self.refused.map_or("none", reason).into()),
            (
                "kind",
                self.kind.map_or("none", CredentialKind::name).into(),
            ),
            ("issuer", self.issuer.as_deref().unwrap_or("").into()),
        ]
    }
}

/// The `reason` label and log field of a refusal.
fn reason(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::MissingCredential => "missing_credential",
        ErrorKind::InvalidRequest => "invalid_request",
        ErrorKind::InvalidToken => "invalid_token",
        ErrorKind::InsufficientScope => "insufficient_scope",
        ErrorKind::RateLimited => "rate_limited",
        ErrorKind::Unavailable => "unavailable",
    }
}

/// Where a reason's sampling state is kept.
fn slot(kind: ErrorKind) -> usize {
    match kind {
        ErrorKind::MissingCredential => 0,
        ErrorKind::InvalidRequest => 1,
        ErrorKind::InvalidToken => 2,
        ErrorKind::InsufficientScope => 3,
        ErrorKind::RateLimited => 4,
        ErrorKind::Unavailable => 5,
    }
}

/// Counts and logs one layer's decisions.
#[derive(Debug)]
pub(crate) struct Decisions {
    counters: Family<Decision>,
    log: RefusalLog,
    started: Instant,
    /// Per reason: when (ms since `started`, plus one) the last `info` line was written, and
    /// the refusals since.
    last_info: [AtomicU64; 6],
    since: [AtomicU64; 6],
}

impl Decisions {
    pub(crate) fn new(log: RefusalLog) -> Self {
        Decisions {
            counters: Family::counters("tollgate_decisions_total"),
            log,
            started: Instant::now(),
            last_info: Default::default(),
            since: Default::default(),
        }
    }

    /// Whether a decision is looked at: counted, or recorded on an enabled span. When not,
    /// nothing is built for it.
    pub(crate) fn wanted(&self, span: &tracing::Span) -> bool {
        cfg!(feature = "metrics") || !span.is_disabled()
    }

    /// Counts `decision` and records it on the authentication's `span`.
    pub(crate) fn count(&self, span: &tracing::Span, decision: Decision) {
        span.record("tollgate.outcome", decision.outcome());
        if let Some(kind) = decision.kind {
            span.record("tollgate.credential.kind", kind.name());
        }
        if let Some(issuer) = &decision.issuer {
            span.record("tollgate.issuer", &**issuer);
        }
        self.counters
            .with(decision, Decision::labels, |c| c.increment());
    }

    /// Logs a refusal as the [`RefusalLog`] says.
    pub(crate) fn log(&self, e: &AuthError) {
        let reason = reason(e.kind());
        let Some(every) = self.log.info_every else {
            tracing::debug!(reason, description = e.description(), "request refused");
            return;
        };
        let i = slot(e.kind());
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        self.since[i].fetch_add(1, Relaxed);
        let last = self.last_info[i].load(Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= every.as_millis() as u64;
        // One thread wins the slot; the others log at debug.
        if due
            && self.last_info[i]
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            let refusals = self.since[i].swap(0, Relaxed);
            tracing::info!(
                reason,
                description = e.description(),
                refusals,
                "request refused"
            );
        } else {
            tracing::debug!(reason, description = e.description(), "request refused");
        }
    }
}

/// The span of one authentication, its fields recorded once decided. OpenTelemetry has no
/// semantic conventions for authentication; the names follow its style under `tollgate.`.
pub(crate) fn span() -> tracing::Span {
    tracing::debug_span!(
        "tollgate.authenticate",
        "tollgate.outcome" = tracing::field::Empty,
        "tollgate.credential.kind" = tracing::field::Empty,
        "tollgate.issuer" = tracing::field::Empty,
    )
}
