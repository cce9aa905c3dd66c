//! [`Introspection`]: the opaque-token [`Authenticator`], and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use http::request::Parts;
use tollgate_client::ClientCredentials;
use tollgate_core::{
    AuthError, AuthLayer, Authenticator, Challenge, CredentialKind, CredentialSource, Principal,
    Via,
};
use tollgate_jwt::{ClaimRule, Dpop, InvalidDpop, Mtls, ScopeMapping};
use tollgate_upstream::{
    BreakerPolicy, CachePolicy, DiscoveryError, ServerMetadata, SharedStore, Stats, Upstream,
    VerdictCache, VerdictStore,
};

use crate::answer::{AudiencePolicy, Rules};
use crate::endpoint::{Endpoint, EndpointAuth};

/// The longest token accepted by default, in bytes, when the credential source sets no cap.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 4 * 1024;

/// The default timeout of one introspection request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why an [`Introspection`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither client credentials nor a bearer token were given (RFC 7662 §2.1 requires the
    /// resource server to authenticate).
    #[error(
        "the introspection endpoint needs credentials: client_credentials(..) or bearer_token(..)"
    )]
    NoCredentials,
    /// No audience was configured, and the audience policy is not `Ignored`.
    #[error("no audience is configured; set one, or AudiencePolicy::Ignored to skip the check")]
    NoAudience,
    /// Discovery of the endpoint failed.
    #[error("discovery of the introspection endpoint of {issuer} failed: {error}")]
    Discovery {
        /// The issuer.
        issuer: String,
        /// What went wrong.
        error: DiscoveryError,
    },
    /// The bearer token is not a valid header value.
    #[error("the bearer token is not a valid header value")]
    BearerToken,
    /// The introspection endpoint is not a valid URL.
    #[error("the introspection endpoint is not a valid URL: {0}")]
    Endpoint(String),
    /// The DPoP settings are not usable.
    #[error("DPoP: {0}")]
    Dpop(#[from] InvalidDpop),
}

/// An [`AuthLayer`] that authenticates opaque tokens by introspection.
pub type IntrospectionLayer = AuthLayer<Introspection>;

/// Authenticates `Authorization: Bearer <opaque token>` by asking the issuer's introspection
/// endpoint (RFC 7662), through the verdict cache: one request per token however many
/// requests miss at once, cached for at most `min(ttl, exp − now)`.
///
/// A bearer token shaped like a JWT is left to the next authenticator (unless
/// [`introspect_jwts`](IntrospectionBuilder::introspect_jwts)), so `jwts.or(introspection)`
/// makes no introspection call for a JWT and no JWT parse of an opaque token.
/// Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct Introspection {
    verdicts: VerdictCache<Endpoint>,
    source: CredentialSource,
    introspect_jwts: bool,
    dpop: Dpop,
    mtls: Mtls,
}

impl fmt::Debug for Introspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = self.verdicts.verifier();
        f.debug_struct("Introspection")
            .field("issuer", &endpoint.rules.issuer)
            .field("endpoint", &endpoint.url)
            .field("verdicts", &self.verdicts)
            .finish_non_exhaustive()
    }
}

impl Introspection {
    /// Starts building an authenticator for the tokens of `issuer` (its exact identifier,
    /// checked against `iss` in answers that carry one, and the base of discovery).
    pub fn builder(issuer: impl Into<String>) -> IntrospectionBuilder {
        IntrospectionBuilder {
            issuer: issuer.into(),
            endpoint: None,
            auth: None,
            audiences: Vec::new(),
            audience_policy: AudiencePolicy::default(),
            scopes: ScopeMapping::claims(["scope"]),
            rules: Vec::new(),
            introspect_jwts: false,
            source: CredentialSource::bearer(),
            dpop: Dpop::off(),
            mtls: Mtls::off(),
            upstream: Upstream::new("introspection endpoint")
                .target("introspection")
                .timeout(DEFAULT_TIMEOUT),
            store: None,
            cache: CachePolicy::default(),
            retry_after: tollgate_upstream::DEFAULT_RETRY_AFTER,
        }
    }

    /// The tower layer for this authenticator (`AuthLayer::new(self)`).
    pub fn layer(self) -> IntrospectionLayer {
        AuthLayer::new(self)
    }

    /// Forgets what is cached about `token` (after revoking it at the server, say).
    pub async fn invalidate(&self, token: &str) {
        self.verdicts.invalidate(token).await;
    }

    /// Forgets everything cached.
    pub async fn invalidate_all(&self) {
        self.verdicts.invalidate_all().await;
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        self.verdicts.stats()
    }

    /// The configured issuer: the authorization server of this resource, for its RFC 9728
    /// metadata.
    pub fn issuer(&self) -> &str {
        &self.verdicts.verifier().rules.issuer
    }

    /// Whether certificate-bound tokens are accepted (RFC 9728's
    /// `tls_client_certificate_bound_access_tokens`).
    pub fn mtls_enabled(&self) -> bool {
        self.mtls.is_enabled()
    }

    /// Whether DPoP-bound tokens are required (RFC 9728's
    /// `dpop_bound_access_tokens_required`).
    pub fn dpop_required(&self) -> bool {
        self.dpop.is_required()
    }

    /// The introspection endpoint in use (configured or discovered).
    pub fn endpoint(&self) -> &str {
        &self.verdicts.verifier().url
    }
}

impl Authenticator for Introspection {
    async fn authenticate(&self, parts: &Parts) -> Result<Option<Principal>, AuthError> {
        let Some(token) = self.source.find(parts)? else {
            return Ok(None);
        };
        if !self.introspect_jwts && token.is_jwt_shaped() {
            // A JWT: the JWT authenticator's.
            return Ok(None);
        }
        let refused = |e: AuthError| {
            let issuer = self.verdicts.verifier().rules.issuer.clone();
            e.with_origin(CredentialKind::OpaqueToken, Some(issuer))
        };
        let principal = self.verdicts.verdict(&token).await.map_err(refused)?;
        if principal.binding().is_some()
            || token.via() == Via::Dpop
            || self.dpop.is_required()
            || self.mtls.is_required()
        {
            // Boxed: a proof check is rare next to the cache hits whose future this would grow.
            Box::pin(self.dpop.check(parts, &token, &principal))
                .await
                .and_then(|()| self.mtls.check(parts, &principal))
                .map_err(refused)?;
        }
        Ok(Some(principal))
    }

    fn credential_source(&self) -> CredentialSource {
        self.source.clone()
    }

    /// Those of the credential source, the `DPoP` one naming the proof algorithms.
    fn challenges(&self) -> Vec<Challenge> {
        Dpop::name_algorithms(self.source.challenges(), [&self.dpop])
    }
}

/// Builds an [`Introspection`]; every setting has a safe default, named on its method, and
/// no setting depends on the order of the calls.
#[must_use]
pub struct IntrospectionBuilder {
    issuer: String,
    endpoint: Option<String>,
    auth: Option<Result<EndpointAuth, BuildError>>,
    audiences: Vec<String>,
    audience_policy: AudiencePolicy,
    scopes: ScopeMapping,
    rules: Vec<ClaimRule>,
    introspect_jwts: bool,
    source: CredentialSource,
    dpop: Dpop,
    mtls: Mtls,
    upstream: Upstream,
    store: Option<SharedStore>,
    cache: CachePolicy,
    retry_after: Duration,
}

impl IntrospectionBuilder {
    /// The introspection endpoint (default: `introspection_endpoint` from the issuer's
    /// OpenID Connect or RFC 8414 metadata, found at build time, with the exact-issuer check).
    /// A URL that does not parse fails the build ([`BuildError::Endpoint`]).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Authenticates to the endpoint as this OAuth client (`client_secret_basic`,
    /// `client_secret_post` or `private_key_jwt`, as configured on it). Required, or
    /// [`bearer_token`](Self::bearer_token); the last of the two called is used.
    pub fn client_credentials(mut self, client: ClientCredentials) -> Self {
        self.auth = Some(Ok(EndpointAuth::Client(Box::new(client))));
        self
    }

    /// Authenticates to the endpoint with `Authorization: Bearer <token>`, for servers that
    /// want one instead of client credentials.
    pub fn bearer_token(mut self, token: impl AsRef<str>) -> Self {
        let value = HeaderValue::try_from(format!("Bearer {}", token.as_ref())).map(|mut v| {
            v.set_sensitive(true);
            EndpointAuth::Bearer(v)
        });
        self.auth = Some(value.map_err(|_| BuildError::BearerToken));
        self
    }

    /// Adds an accepted audience (checked by the [`audience_policy`](Self::audience_policy)).
    /// At least one is required unless the policy is [`AudiencePolicy::Ignored`].
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// How `aud` is checked (default: [`AudiencePolicy::WhenPresent`]).
    pub fn audience_policy(mut self, policy: AudiencePolicy) -> Self {
        self.audience_policy = policy;
        self
    }

    /// Where the principal's scopes come from (default: `scope`, space-separated).
    pub fn scopes(mut self, mapping: ScopeMapping) -> Self {
        self.scopes = mapping;
        self
    }

    /// Requires the answer to meet `rule` (default: none; several calls add rules that must
    /// all hold), as for JWT claims.
    pub fn require(mut self, rule: ClaimRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Introspects JWT-shaped bearer tokens too (default: off: they are left to the next
    /// authenticator, a `JwtAuth` for the same issuer, say).
    pub fn introspect_jwts(mut self) -> Self {
        self.introspect_jwts = true;
        self
    }

    /// Whether this issuer's opaque tokens may or must be DPoP-bound (`cnf.jkt` in the
    /// introspection answer, RFC 9449 §6.2), and how proofs are checked (default:
    /// [`Dpop::off`], and a bound token is refused). See [`Dpop`].
    pub fn dpop(mut self, dpop: Dpop) -> Self {
        self.dpop = dpop;
        self
    }

    /// Whether this issuer's opaque tokens may or must be bound to the client's TLS
    /// certificate (`cnf.x5t#S256` in the introspection answer, RFC 8705 §3.2), and where
    /// that certificate is read from (default: [`Mtls::off`], and a certificate-bound token
    /// is refused). See [`Mtls`].
    pub fn mtls(mut self, mtls: Mtls) -> Self {
        self.mtls = mtls;
        self
    }

    /// Where tokens are read, and how long they may be (default: `Authorization: Bearer`,
    /// 4 KiB; `Authorization: DPoP` is added when [DPoP](Self::dpop) is allowed).
    pub fn credential_source(mut self, source: CredentialSource) -> Self {
        self.source = source;
        self
    }

    /// How verdicts are cached (default: [`CachePolicy::default`]: valid tokens 60 s and
    /// never past their `exp`, refusals 10 s and at most 10 000 of them). A token revoked at
    /// the server stays accepted until its cached verdict expires, unless
    /// [`Introspection::invalidate`] is called.
    pub fn cache(mut self, policy: CachePolicy) -> Self {
        self.cache = policy;
        self
    }

    /// Shares verdicts through `store` (default: none).
    pub fn store(mut self, store: impl VerdictStore) -> Self {
        self.store = Some(SharedStore::new(store));
        self
    }

    /// The `Retry-After` of a 503 when the endpoint gives no better one (default: 5 s).
    pub fn retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Uses your `reqwest` client (default: tollgate's, which never follows redirects;
    /// build yours with `.redirect(reqwest::redirect::Policy::none())`): a custom CA, or the
    /// certificate for `ClientCredentials::tls_client_auth()`.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.upstream = self.upstream.client(client);
        self
    }

    /// The timeout of one introspection request (default: 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.upstream = self.upstream.timeout(timeout);
        self
    }

    /// When the endpoint counts as down, and how soon it is probed again (default:
    /// [`BreakerPolicy::default`]).
    pub fn breaker(mut self, policy: BreakerPolicy) -> Self {
        self.upstream = self.upstream.breaker(policy);
        self
    }

    /// Finishes the authenticator, discovering the endpoint when none was given. Fails if
    /// no credentials or audience were configured, or discovery fails.
    pub async fn build(self) -> Result<Introspection, BuildError> {
        let auth = self.auth.ok_or(BuildError::NoCredentials)??;
        self.dpop.validate()?;
        if self.audiences.is_empty() && self.audience_policy != AudiencePolicy::Ignored {
            return Err(BuildError::NoAudience);
        }
        let upstream = self.upstream.issuer(&*self.issuer);
        let url = match self.endpoint {
            Some(url) => url,
            None => {
                let discovery_error = |error| BuildError::Discovery {
                    issuer: self.issuer.clone(),
                    error,
                };
                let meta = ServerMetadata::discover(&upstream, &self.issuer)
                    .await
                    .map_err(discovery_error)?;
                // Over mutual TLS, the server's mTLS alias where it has one (RFC 8705 §5).
                let mtls = matches!(&auth, EndpointAuth::Client(c) if c.uses_tls_client_auth());
                let alias = meta.mtls_endpoint_aliases.introspection_endpoint;
                alias
                    .filter(|_| mtls)
                    .or(meta.introspection_endpoint)
                    .ok_or_else(|| {
                        discovery_error(DiscoveryError::Missing("introspection_endpoint"))
                    })?
            }
        };
        let target = reqwest::Url::parse(&url).map_err(|e| BuildError::Endpoint(e.to_string()))?;
        let endpoint = Endpoint {
            upstream,
            url,
            target,
            auth,
            rules: Rules {
                issuer: Arc::from(self.issuer),
                audiences: self.audiences,
                audience_policy: self.audience_policy,
                scopes: self.scopes,
                rules: self.rules,
            },
        };
        let mut engine = VerdictCache::builder(endpoint)
            .policy(self.cache)
            .retry_after(self.retry_after)
            .credential_kind(CredentialKind::OpaqueToken);
        if let Some(store) = self.store {
            engine = engine.store(store);
        }
        let mut source = self.source.max_len_if_unset(DEFAULT_MAX_TOKEN_LEN);
        if self.dpop.is_enabled() {
            source = source.also_dpop();
        }
        Ok(Introspection {
            verdicts: engine.build(),
            source,
            introspect_jwts: self.introspect_jwts,
            dpop: self.dpop,
            mtls: self.mtls,
        })
    }
}
