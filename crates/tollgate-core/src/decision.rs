//! What the layer decided for a request: counted (`tollgate_decisions_total`), traced (the
//! `tollgate.authenticate` span) and, for refusals, logged as [`RefusalLog`] says.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::telemetry::{Counter, Labels, Lazy};
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

/// What the layer decided for a request: the `outcome` and `reason` labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Authenticated,
    /// Let through without a credential (optional mode).
    Anonymous,
    Refused(ErrorKind),
}

impl Outcome {
    const COUNT: usize = 2 + REASONS;

    fn index(self) -> usize {
        match self {
            Outcome::Authenticated => 0,
            Outcome::Anonymous => 1,
            Outcome::Refused(kind) => 2 + slot(kind),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Outcome::Authenticated => "authenticated",
            Outcome::Anonymous => "anonymous",
            Outcome::Refused(ErrorKind::RateLimited) => "rate_limited",
            Outcome::Refused(ErrorKind::Unavailable) => "unavailable",
            Outcome::Refused(_) => "refused",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Outcome::Refused(kind) => reason(kind),
            _ => "none",
        }
    }
}

/// Who decided: a credential kind and its configured issuer, with the counter of each
/// outcome for them, registered on first use.
#[derive(Debug)]
pub(crate) struct Origin {
    kind: Option<CredentialKind>,
    issuer: Option<Arc<str>>,
    /// Past [`Decisions::ORIGINS`], the one origin whose kind and issuer labels say `other`.
    overflow: bool,
    counters: [Lazy; Outcome::COUNT],
}

impl Origin {
    fn new(kind: Option<CredentialKind>, issuer: Option<Arc<str>>, overflow: bool) -> Self {
        Origin {
            kind,
            issuer,
            overflow,
            counters: Default::default(),
        }
    }

    fn is(&self, kind: Option<CredentialKind>, issuer: Option<&Arc<str>>) -> bool {
        self.kind == kind
            && match (&self.issuer, issuer) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                _ => false,
            }
    }

    fn labels(&self, outcome: Outcome) -> Labels {
        let (kind, issuer) = match self.overflow {
            true => ("other", "other"),
            false => (
                self.kind.map_or("none", CredentialKind::name),
                self.issuer.as_deref().unwrap_or(""),
            ),
        };
        vec![
            ("outcome", outcome.name().into()),
            ("reason", outcome.reason().into()),
            ("kind", kind.into()),
            ("issuer", issuer.into()),
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
        ErrorKind::InvalidDpopProof => "invalid_dpop_proof",
        ErrorKind::UseDpopNonce => "use_dpop_nonce",
        ErrorKind::RateLimited => "rate_limited",
        ErrorKind::Unavailable => "unavailable",
    }
}

/// How many reasons there are: [`slot`]'s range.
const REASONS: usize = 8;

/// Where a reason's counter and sampling state are kept.
fn slot(kind: ErrorKind) -> usize {
    match kind {
        ErrorKind::MissingCredential => 0,
        ErrorKind::InvalidRequest => 1,
        ErrorKind::InvalidToken => 2,
        ErrorKind::InsufficientScope => 3,
        ErrorKind::RateLimited => 4,
        ErrorKind::Unavailable => 5,
        ErrorKind::InvalidDpopProof => 6,
        ErrorKind::UseDpopNonce => 7,
    }
}

/// Counts and logs one layer's decisions.
#[derive(Debug)]
pub(crate) struct Decisions {
    /// Filled in the order origins are first seen, then scanned: a layer sees one or two, and
    /// a scan of set cells costs less than hashing a label set per request.
    origins: [OnceLock<Origin>; Decisions::ORIGINS],
    overflow: Origin,
    log: RefusalLog,
    started: Instant,
    /// Per reason: when (ms since `started`, plus one) the last `info` line was written, and
    /// the refusals since.
    last_info: [AtomicU64; REASONS],
    since: [AtomicU64; REASONS],
}

impl Decisions {
    /// Most (credential kind, issuer) pairs counted apart; the rest are counted as `other`.
    const ORIGINS: usize = 32;

    pub(crate) fn new(log: RefusalLog) -> Self {
        Decisions {
            origins: Default::default(),
            overflow: Origin::new(None, None, true),
            log,
            started: Instant::now(),
            last_info: Default::default(),
            since: Default::default(),
        }
    }

    /// Whether decisions are looked at: counted, or recorded on an enabled span. When not,
    /// nothing is looked up for them.
    pub(crate) fn wanted(&self, span: &tracing::Span) -> bool {
        cfg!(feature = "metrics") || !span.is_disabled()
    }

    /// The origin of `kind` and `issuer`.
    pub(crate) fn origin(
        &self,
        kind: Option<CredentialKind>,
        issuer: Option<&Arc<str>>,
    ) -> &Origin {
        for cell in &self.origins {
            let origin = cell.get_or_init(|| Origin::new(kind, issuer.cloned(), false));
            if origin.is(kind, issuer) {
                return origin;
            }
        }
        &self.overflow
    }

    /// Where a principal came from.
    pub(crate) fn origin_of(&self, principal: &Principal) -> &Origin {
        self.origin(Some(principal.kind()), principal.shared_issuer())
    }

    /// Where a refusal came from, as its authenticator said.
    pub(crate) fn origin_of_refusal(&self, e: &AuthError) -> &Origin {
        match e.origin() {
            Some((kind, issuer)) => self.origin(Some(*kind), issuer.as_ref()),
            None => self.origin(None, None),
        }
    }

    /// Counts `outcome` of `origin` and records both on the authentication's `span`.
    pub(crate) fn count(&self, span: &tracing::Span, origin: &Origin, outcome: Outcome) {
        if !span.is_disabled() {
            span.record("tollgate.outcome", outcome.name());
            if let Some(kind) = origin.kind {
                span.record("tollgate.credential.kind", kind.name());
            }
            if let Some(issuer) = &origin.issuer {
                span.record("tollgate.issuer", &**issuer);
            }
        }
        origin.counters[outcome.index()].with(
            "tollgate_decisions_total",
            || origin.labels(outcome),
            Counter::increment,
        );
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

/// The span of one authentication, its fields recorded once decided (`tollgate.key_id` for
/// an API key). OpenTelemetry has no
/// semantic conventions for authentication; the names follow its style under `tollgate.`.
pub(crate) fn span() -> tracing::Span {
    tracing::debug_span!(
        "tollgate.authenticate",
        "tollgate.outcome" = tracing::field::Empty,
        "tollgate.credential.kind" = tracing::field::Empty,
        "tollgate.issuer" = tracing::field::Empty,
        "tollgate.key_id" = tracing::field::Empty,
    )
}

/// Records on the authentication's `span` what identifies the credential without being it:
/// an API key's id (its principal's subject). A JWT's subject is a person, not a key: left
/// to the application's own spans.
pub(crate) fn record_key_id(span: &tracing::Span, principal: &Principal) {
    if principal.kind() == CredentialKind::ApiKey && !span.is_disabled() {
        span.record("tollgate.key_id", principal.subject());
    }
}
