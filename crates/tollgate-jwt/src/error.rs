//! [`BuildError`]: why a [`JwtAuth`](crate::JwtAuth) could not be built.

/// Why a [`JwtAuth`](crate::JwtAuth) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No issuer was added.
    #[error("no issuer is configured")]
    NoIssuer,
    /// The same `iss` was added twice.
    #[error("issuer {0} is configured twice")]
    DuplicateIssuer(String),
    /// An issuer has no audience (and `any_audience` was not set).
    #[error("issuer {0} has no audience; set one, or any_audience() to skip the check")]
    NoAudience(String),
    /// An issuer accepts no algorithm.
    #[error("issuer {0} accepts no algorithm")]
    NoAlgorithm(String),
    /// An issuer's DPoP settings are not usable.
    #[error("issuer {issuer}: DPoP: {reason}")]
    Dpop {
        /// The issuer.
        issuer: String,
        /// What is wrong.
        reason: crate::InvalidDpop,
    },
    /// Configured keys could not be used.
    #[error("keys: {0}")]
    Keys(String),
    /// The first fetch of an issuer's keys failed.
    #[error("fetching the keys of {issuer} failed{}: {reason}", if *.discovery { " (discovery)" } else { "" })]
    Fetch {
        /// The issuer.
        issuer: String,
        /// Whether discovery was used.
        discovery: bool,
        /// What went wrong.
        reason: String,
    },
}
