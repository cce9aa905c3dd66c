//! What tollgate asks of upstreams, and how little it trusts them.
//!
//! - [`Upstream`]: the one fetch path every outbound request takes (key services, JWKS,
//!   discovery, token and introspection endpoints): no redirects followed, a timeout, capped
//!   reads, a retry only when the request provably reached no server, and a [`Breaker`] that
//!   answers at once while an outage is known. Failures are [`UpstreamError`]s; [`Meters`]
//!   count every upstream alike.
//! - [`ServerMetadata::discover`]: OpenID Connect Discovery / RFC 8414 metadata, with the
//!   exact-issuer check.
//! - [`VerdictCache`]: the engine for credentials an upstream judges (API keys, opaque
//!   tokens): single flight, TTLs capped by expiry, bounded refusals, stale-while-revalidate,
//!   serve-stale-on-error ([`CachePolicy`]), and an optional shared [`VerdictStore`] that
//!   can make the engine's [`LocalVerdicts`] forget what another replica revoked.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod breaker;
mod discovery;
mod fetch;
mod tls;
mod verdicts;

pub use breaker::{Breaker, BreakerPolicy, Permit};
pub use discovery::{DiscoveryError, MtlsEndpointAliases, ServerMetadata};
pub use fetch::{
    DEFAULT_MAX_BODY, DEFAULT_TIMEOUT, Fetched, Meters, Upstream, UpstreamError, parse_json,
};
pub use verdicts::{
    BoxFuture, CachePolicy, DEFAULT_RETRY_AFTER, LocalVerdicts, Outcomes, RemoteVerifier,
    SharedStore, Stats, UpstreamErrors, VerdictCache, VerdictCacheBuilder, VerdictStore,
};
