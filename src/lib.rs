#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use tollgate_core::{
    AuthBody, AuthError, AuthLayer, AuthService, AuthSettings, Authenticator, Binding,
    BoxAuthenticator, CertificateSource, Challenge, ClientCertificate, Credential,
    CredentialDigest, CredentialKind, CredentialSource, DEFAULT_MAX_CREDENTIAL_LEN, ErrorFormat,
    ErrorKind, GrpcStatus, JsonEnvelope, Or, Principal, PrincipalBuilder, RefusalLog, ReplayStore,
    RequireScopesLayer, RequireScopesService, ResourceMetadata, ResourceMetadataBuilder,
    ResourceMetadataError, ResourceMetadataService, Rfc6750, ScopeMatch, ScopePolicy, ScopeSet,
    Scopes, Via, is_jwt_shaped, layer, require_scopes, retry_after_value, scopes, telemetry,
};

/// axum extractors (feature `axum`): [`RequireScopes`], [`RequireAnyScope`], [`Claims`], and
/// `Principal` itself.
#[cfg(feature = "axum")]
pub use tollgate_core::{AuthRejection, Claims, RequireAnyScope, RequireScopes};

/// API keys verified by a key service: [`ApiKeyAuth`](apikey::ApiKeyAuth) and its verifiers.
#[cfg(feature = "apikey")]
pub use tollgate_apikey as apikey;

/// Bearer JWTs: [`JwtAuth`](jwt::JwtAuth), [`Issuer`](jwt::Issuer) and the key sources.
#[cfg(feature = "jwt")]
pub use tollgate_jwt as jwt;

/// Opaque access tokens by RFC 7662 introspection:
/// [`Introspection`](introspect::Introspection).
#[cfg(feature = "introspect")]
pub use tollgate_introspect as introspect;

/// Outbound machine-to-machine auth: [`ClientAuthLayer`](client::ClientAuthLayer) with
/// client-credentials tokens or a static API key.
#[cfg(feature = "client")]
pub use tollgate_client as client;

/// A fleet of replicas on one Redis: shared verdicts, revocation fan-out, JWT revocation
/// and a replay store: [`RedisStore`](redis::RedisStore).
#[cfg(feature = "redis")]
pub use tollgate_redis as redis;

/// The fetch path, discovery and the verdict engine shared by the credential kinds:
/// [`Upstream`](upstream::Upstream), [`VerdictCache`](upstream::VerdictCache) for verifiers of
/// your own.
#[cfg(any(feature = "apikey", feature = "jwt", feature = "client"))]
pub use tollgate_upstream as upstream;
