//! [`JwtAuth`]: the bearer-JWT [`Authenticator`], and its builder.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::request::Parts;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use tollgate_core::{
    AuthError, AuthLayer, Authenticator, Binding, Challenge, Credential, CredentialDigest,
    CredentialKind, CredentialSource, Principal, Via, is_jwt_shaped,
};
use tollgate_upstream::{BreakerPolicy, Upstream};

use crate::cache::VerifiedCache;
use crate::issuer::Source;
use crate::keys::{KeySet, Lookup, PreparedKey};
use crate::revocation::{RevocationQuery, Revocations, VerifiedTokens};
use crate::store::{KeyStore, Refetch};
use crate::token::Parsed;
use crate::{BuildError, Dpop, Issuer};

/// The longest token accepted by default, in bytes, when the credential source sets no cap
/// of its own.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// The default timeout of one JWKS or discovery fetch.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// An [`AuthLayer`] that authenticates bearer JWTs.
pub type JwtLayer = AuthLayer<JwtAuth>;

/// Authenticates `Authorization: Bearer` JWTs from one or several [`Issuer`]s.
///
/// Per request: the size cap, one parse of header and claims, the issuer chosen by `iss`,
/// the key chosen by `kid` and the token's algorithm from an atomically swapped key set
/// (never waiting on a fetch unless the `kid` is unknown or its key stopped verifying), the
/// signature checked by `jsonwebtoken`, then the claims. A bearer token that is not shaped
/// like a JWT is left to the next authenticator (`jwts.or(introspection)`). Cheap to clone;
/// the background refresh stops when the last clone is dropped.
#[derive(Clone)]
pub struct JwtAuth {
    inner: Arc<Inner>,
}

struct Inner {
    issuers: HashMap<String, TrustedIssuer>,
    source: CredentialSource,
    cache: Option<Arc<VerifiedCache>>,
    revocations: Option<Arc<dyn Revocations>>,
    /// Whether some issuer requires DPoP or a certificate: without it, an unbound bearer
    /// token needs no look at its issuer's binding settings.
    binding_required: bool,
}

/// A configured issuer with its keys.
struct TrustedIssuer {
    config: Issuer,
    /// The `iss`, shared by every principal of this issuer.
    iss: Arc<str>,
    keys: Keys,
}

enum Keys {
    Local(KeySet),
    Remote(Arc<KeyStore>),
}

/// What the JWT layer has done, read with [`JwtAuth::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwtStats {
    /// JWKS (and discovery) loads attempted, all issuers together.
    pub jwks_fetches: u64,
    /// Loads that failed (the last good keys were kept).
    pub jwks_failures: u64,
    /// Tokens answered from the verified-token cache.
    pub cache_hits: u64,
    /// Fetches started because a token named an unknown `kid` or its key stopped verifying.
    pub refetches: u64,
    /// Such requests that found the refetch cooldown running (answered without a fetch).
    pub cooldown_refusals: u64,
}

impl fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("issuers", &self.inner.issuers.keys().collect::<Vec<_>>())
            .field("verified_token_cache", &self.inner.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// Starts building; add at least one [`Issuer`].
    pub fn builder() -> JwtAuthBuilder {
        JwtAuthBuilder {
            issuers: Vec::new(),
            client: None,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            cache: None,
            source: CredentialSource::bearer(),
            revocations: None,
        }
    }

    /// The tower layer for this authenticator (`AuthLayer::new(self)`).
    pub fn layer(self) -> JwtLayer {
        AuthLayer::new(self)
    }

    /// The counters so far.
    pub fn stats(&self) -> JwtStats {
        let mut stats = JwtStats {
            cache_hits: self
                .inner
                .cache
                .as_ref()
                .map_or(0, |c| c.hits.load(Relaxed)),
            ..JwtStats::default()
        };
        for issuer in self.inner.issuers.values() {
            if let Keys::Remote(store) = &issuer.keys {
                stats.jwks_fetches += store.counters.fetches.load(Relaxed);
                stats.jwks_failures += store.counters.failures.load(Relaxed);
                stats.refetches += store.counters.refetches.load(Relaxed);
                stats.cooldown_refusals += store.counters.cooldown_refusals.load(Relaxed);
            }
        }
        stats
    }

    /// The `iss` of every configured issuer: the authorization servers of this resource,
    /// for its RFC 9728 metadata (`ResourceMetadata::builder(..).authorization_servers(..)`).
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.inner.issuers.keys().map(String::as_str)
    }

    /// Whether every issuer requires DPoP-bound tokens (RFC 9728's
    /// `dpop_bound_access_tokens_required`).
    pub fn dpop_required(&self) -> bool {
        self.inner
            .issuers
            .values()
            .all(|i| i.config.dpop.is_required())
    }

    /// Whether some issuer accepts certificate-bound tokens (RFC 9728's
    /// `tls_client_certificate_bound_access_tokens`).
    pub fn mtls_enabled(&self) -> bool {
        self.inner
            .issuers
            .values()
            .any(|i| i.config.mtls.is_enabled())
    }

    /// How many verified tokens are cached (0 without the cache).
    pub async fn cached_tokens(&self) -> u64 {
        match &self.inner.cache {
            Some(cache) => cache.len().await,
            None => 0,
        }
    }

    /// Verifies `token` as the layer does, without a request (for WebSocket handshakes,
    /// message queues...).
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > self.inner.source.length_limit() {
            return Err(AuthError::invalid_token("the credential is too long"));
        }
        let principal = self.inner.verify(token).await?;
        // Without a request there is no proof: a bound token cannot be used this way.
        match self.inner.issuer_of(&principal) {
            Some(issuer) => {
                let config = &issuer.config;
                config
                    .dpop
                    .check_bearer(&principal)
                    .and_then(|()| config.mtls.check_without_request(&principal))
                    .map_err(|e| issuer.refusal(e))?
            }
            None => return Err(AuthError::invalid_token("the token issuer is not trusted")),
        }
        Ok(principal)
    }
}

/// Now, in whole seconds since the Unix epoch (what JWT time claims count).
pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl TrustedIssuer {
    /// Generation of the keys, for the verified-token cache (local keys never change).
    fn generation(&self) -> u64 {
        match &self.keys {
            Keys::Local(_) => 0,
            Keys::Remote(store) => store.current.load().generation,
        }
    }

    fn unavailable(retry_after: Duration) -> AuthError {
        AuthError::unavailable(
            "the token issuer's keys are not available right now",
            retry_after,
        )
    }

    /// Finds the key that may have signed the token and verifies the signature with it
    /// (one verification at most, two after a refetch); returns the key generation.
    async fn verify_signature(
        &self,
        parsed: &Parsed<'_>,
        alg: Algorithm,
    ) -> Result<u64, AuthError> {
        let kid = parsed.header.kid.as_deref();
        let verifies = |key: &PreparedKey| {
            key.verifies(alg, parsed.message.as_bytes(), parsed.signature.as_bytes())
        };
        let store = match &self.keys {
            Keys::Local(keys) => return check(keys.lookup(kid, alg), verifies).map(|()| 0),
            Keys::Remote(store) => store,
        };
        let seen = store.fetches_completed();
        {
            let snapshot = store.current.load();
            if !store.usable(&snapshot) {
                return Err(Self::unavailable(store.retry_after()));
            }
            match snapshot.keys.lookup(kid, alg) {
                Lookup::Key(key) if verifies(key) => return Ok(snapshot.generation),
                // A key replaced under its kid: worth a refetch once the keys are older than
                // a cooldown.
                Lookup::Key(_) if store.older_than_cooldown(&snapshot) => {}
                Lookup::UnknownKid => {}
                other => return check(other, verifies).map(|()| snapshot.generation),
            }
        }
        // The guard above is dropped before waiting, so no snapshot is held across the
        // fetch. The fetch's future is boxed: inline, its kilobytes would be part of every
        // request's future.
        let refetched = Box::pin(store.refetch(seen)).await;
        let snapshot = store.current.load();
        let lookup = snapshot.keys.lookup(kid, alg);
        match (refetched, lookup) {
            (Refetch::Done { .. }, Lookup::Key(key)) if verifies(key) => Ok(snapshot.generation),
            (Refetch::Done { joined: true }, Lookup::UnknownKid) => {
                // That fetch began before this kid was seen: it proves nothing of it.
                store.look_again();
                Err(unknown_key())
            }
            (Refetch::IssuerDown(after), Lookup::UnknownKid) => Err(Self::unavailable(after)),
            (_, lookup) => check(lookup, verifies).map(|()| snapshot.generation),
        }
    }

    /// `e`, labelled as this issuer's refusal.
    fn refusal(&self, e: AuthError) -> AuthError {
        e.with_origin(CredentialKind::Jwt, Some(self.iss.clone()))
    }

    fn principal(&self, claims: Map<String, Value>, exp: i64) -> Result<Principal, AuthError> {
        let binding = Binding::from_cnf(claims.get("cnf"))?;
        let subject = claims
            .get("sub")
            .or_else(|| claims.get("client_id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let scopes = self.config.scopes.scopes(&claims);
        let mut builder = Principal::builder(subject, CredentialKind::Jwt)
            .issuer(self.iss.clone())
            .scopes(scopes);
        if let Some(at) = u64::try_from(exp)
            .ok()
            .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
        {
            builder = builder.expires_at(at);
        }
        if let Some(binding) = binding {
            builder = builder.binding(binding);
        }
        Ok(builder.data(Value::Object(claims)).build())
    }
}

/// Whether the key `keys` hold for a token with `kid` and `alg` verifies its signature.
#[cfg(feature = "conformance")]
pub(crate) fn signature_valid(
    keys: &KeySet,
    kid: Option<&str>,
    alg: Algorithm,
    message: &str,
    signature: &str,
) -> bool {
    check(keys.lookup(kid, alg), |key| {
        key.verifies(alg, message.as_bytes(), signature.as_bytes())
    })
    .is_ok()
}

/// The verdict on a lookup without a refetch.
fn check(lookup: Lookup<'_>, verifies: impl Fn(&PreparedKey) -> bool) -> Result<(), AuthError> {
    match lookup {
        Lookup::Key(key) if verifies(key) => Ok(()),
        Lookup::Key(_) => Err(AuthError::invalid_token("the token signature is not valid")),
        Lookup::UnknownKid => Err(unknown_key()),
        Lookup::WrongAlgorithm => Err(AuthError::invalid_token(
            "the token algorithm does not fit its key",
        )),
        Lookup::NoKey => Err(AuthError::invalid_token(
            "the token names no key, and no key of its issuer fits its algorithm",
        )),
        Lookup::Ambiguous => Err(AuthError::invalid_token(
            "the token names no key, and several keys of its issuer fit its algorithm",
        )),
    }
}

fn unknown_key() -> AuthError {
    AuthError::invalid_token("the token was signed by an unknown key")
}

impl Inner {
    /// The token's digest, when there is a cache to key by it (the DPoP check's `ath` is the
    /// same hash, so it is computed once).
    fn digest_for_cache(&self, token: &str) -> Option<CredentialDigest> {
        self.cache.as_ref().map(|_| CredentialDigest::of(token))
    }

    /// A token seen before, verified under the keys still in force.
    async fn cached(&self, digest: Option<&CredentialDigest>) -> Option<Principal> {
        self.cache
            .as_ref()?
            .get(digest?, |iss| {
                self.issuers.get(iss).map(TrustedIssuer::generation)
            })
            .await
    }

    async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let digest = self.digest_for_cache(token);
        match self.cached(digest.as_ref()).await {
            Some(principal) => self.not_revoked(principal),
            None => self.verify_uncached(token, digest).await,
        }
    }

    fn issuer_of(&self, principal: &Principal) -> Option<&TrustedIssuer> {
        self.issuers.get(principal.issuer()?)
    }

    /// `principal`, if the way its token was presented fits the token's binding and its
    /// issuer's DPoP and mTLS settings ([`Dpop::check`](crate::Dpop::check),
    /// [`Mtls::check`](crate::Mtls::check)); asked of bound tokens, DPoP requests, and every
    /// token when an issuer requires a binding.
    async fn presented_well(
        &self,
        parts: &Parts,
        token: &Credential<'_>,
        digest: Option<&CredentialDigest>,
        principal: Principal,
    ) -> Result<Principal, AuthError> {
        let Some(issuer) = self.issuer_of(&principal) else {
            return Err(untrusted(AuthError::invalid_token(
                "the token issuer is not trusted",
            )));
        };
        let config = &issuer.config;
        let presented = match config
            .dpop
            .check_hashed(parts, token, digest, &principal)
            .await
        {
            Ok(()) => config.mtls.check(parts, &principal),
            Err(e) => Err(e),
        };
        presented.map_err(|e| issuer.refusal(e))?;
        Ok(principal)
    }

    /// `principal`, unless its token was revoked: asked of cached tokens too, so a revoked
    /// token is refused on its next request, and before a token is cached, so a revoked one
    /// is not.
    fn not_revoked(&self, principal: Principal) -> Result<Principal, AuthError> {
        if let Some(revocations) = &self.revocations {
            revocations
                .check(RevocationQuery::of(&principal))
                .map_err(|e| {
                    e.with_origin(CredentialKind::Jwt, principal.issuer().map(Arc::from))
                })?;
        }
        Ok(principal)
    }

    async fn verify_uncached(
        &self,
        token: &str,
        digest: Option<CredentialDigest>,
    ) -> Result<Principal, AuthError> {
        let parsed = Parsed::parse(token).map_err(untrusted)?;
        let alg = parsed.header.algorithm().map_err(untrusted)?;
        let issuer = self
            .issuers
            .get(parsed.issuer().map_err(untrusted)?)
            .ok_or_else(|| {
                untrusted(AuthError::invalid_token("the token issuer is not trusted"))
            })?;
        let by_issuer = |e: AuthError| e.with_origin(CredentialKind::Jwt, Some(issuer.iss.clone()));
        issuer
            .config
            .check_header(&parsed.header, alg)
            .map_err(by_issuer)?;
        let generation = issuer
            .verify_signature(&parsed, alg)
            .await
            .map_err(by_issuer)?;
        let exp = issuer
            .config
            .check_claims(&parsed.claims, now_secs())
            .map_err(by_issuer)?;
        let principal = issuer.principal(parsed.claims, exp).map_err(by_issuer)?;
        let principal = self.not_revoked(principal)?;
        if let (Some(cache), Some(digest)) = (&self.cache, digest) {
            // Boxed for the same reason as the refetch: a miss has just paid for a signature
            // check, and the hits' future stays small.
            Box::pin(cache.insert(digest, &principal, generation)).await;
        }
        Ok(principal)
    }
}

/// A refusal before the token's issuer is known to be one of ours: no issuer label.
fn untrusted(e: AuthError) -> AuthError {
    e.with_origin(CredentialKind::Jwt, None)
}

impl Authenticator for JwtAuth {
    async fn authenticate(&self, parts: &Parts) -> Result<Option<Principal>, AuthError> {
        let Some(token) = self.inner.source.find(parts)? else {
            return Ok(None);
        };
        // A token in the verified-token cache is a JWT; any other is looked at for its shape
        // first: not a JWT, it is another authenticator's (an opaque token for introspection).
        let digest = self.inner.digest_for_cache(&token);
        let principal = match self.inner.cached(digest.as_ref()).await {
            Some(principal) => self.inner.not_revoked(principal)?,
            None if !is_jwt_shaped(&token) => return Ok(None),
            None => self.inner.verify_uncached(&token, digest).await?,
        };
        if principal.binding().is_none() && token.via() != Via::Dpop && !self.inner.binding_required
        {
            return Ok(Some(principal));
        }
        // Boxed: a proof check is rare next to the cache hits whose future this would grow.
        Box::pin(
            self.inner
                .presented_well(parts, &token, digest.as_ref(), principal),
        )
        .await
        .map(Some)
    }

    fn credential_source(&self) -> CredentialSource {
        self.inner.source.clone()
    }

    /// Those of the credential source, the `DPoP` one naming the proof algorithms the
    /// issuers accept (RFC 9449 §7.1).
    fn challenges(&self) -> Vec<Challenge> {
        let settings = self.inner.issuers.values().map(|i| &i.config.dpop);
        Dpop::name_algorithms(self.inner.source.challenges(), settings)
    }
}

/// Builds a [`JwtAuth`]; every setting has a safe default, named on its method.
#[must_use]
pub struct JwtAuthBuilder {
    issuers: Vec<Issuer>,
    client: Option<reqwest::Client>,
    fetch_timeout: Duration,
    cache: Option<(u64, Duration)>,
    source: CredentialSource,
    revocations: Option<Arc<dyn Revocations>>,
}

impl JwtAuthBuilder {
    /// Trusts `issuer` (several may be added; each `iss` once).
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// Uses your `reqwest` client for every JWKS and discovery fetch (custom CA, mTLS,
    /// proxy). Default: tollgate's rustls client, which never follows redirects. Build yours
    /// with `.redirect(reqwest::redirect::Policy::none())`: a redirected answer is refused
    /// either way (the last good keys are kept), but a client that follows one has already
    /// asked the other host.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// The timeout of one JWKS or discovery fetch (default: 5 s). A timeout counts the
    /// issuer as down: unknown kids then get 503 at once until a probe succeeds.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Where tokens are read, and how long they may be (default: `Authorization: Bearer`,
    /// 8 KiB, checked before anything is decoded). For example
    /// `CredentialSource::bearer().also_cookie("session")` (a cookie needs CSRF protection
    /// of its own), or `.also_query("access_token")` for browser WebSocket clients (see
    /// [`CredentialSource::query`] for its risks). A token sent two ways is a 400.
    pub fn credential_source(mut self, source: CredentialSource) -> Self {
        self.source = source;
        self
    }

    /// Refuses tokens `revocations` says were revoked (default: none), asked after every
    /// verification and every verified-token cache hit. For a fleet, `tollgate-redis`'s
    /// `RevocationList` revokes by `jti` or subject on every replica at once.
    pub fn revocations(mut self, revocations: impl Revocations) -> Self {
        self.revocations = Some(Arc::new(revocations));
        self
    }

    /// Caches verified tokens (default: off): up to `max_entries`, keyed by the token's
    /// SHA-256, each for at most `max_ttl` and never past the token's `exp`. A repeated token
    /// then skips the signature check.
    ///
    /// The trade-off: a token stays accepted for its cached life even if its key is removed
    /// from the JWKS, until the key set is next refreshed; any change to an issuer's set of
    /// keys invalidates that issuer's cached tokens. A [revocation](Self::revocations) is
    /// asked on cached tokens too.
    pub fn verified_token_cache(mut self, max_entries: u64, max_ttl: Duration) -> Self {
        self.cache = Some((max_entries, max_ttl));
        self
    }

    /// Fetches the keys of every remote issuer (discovery first where asked) and starts
    /// their background refresh. Fails if an issuer is misconfigured, or if a first fetch
    /// fails for an issuer that is not [`lazy`](Issuer::lazy). Needs a Tokio runtime.
    pub async fn build(self) -> Result<JwtAuth, BuildError> {
        crate::crypto::ensure_provider();
        if self.issuers.is_empty() {
            return Err(BuildError::NoIssuer);
        }
        let upstream = |issuer: &Issuer| {
            // The breaker probes no less often than a failed refresh is retried.
            let probe = BreakerPolicy::default();
            let probe =
                probe.probe_interval(probe.configured_probe_interval().min(issuer.refresh.retry));
            let upstream = Upstream::new(format!("JWKS of {}", issuer.issuer))
                .target("jwks")
                .issuer(&*issuer.issuer)
                .timeout(self.fetch_timeout)
                .breaker(probe);
            match &self.client {
                Some(client) => upstream.client(client.clone()),
                None => upstream,
            }
        };
        let mut issuers = HashMap::new();
        for config in self.issuers {
            config.validate()?;
            let keys = match &config.source {
                Source::Local(keys) => Keys::Local(keys.clone()),
                Source::JwksUrl(_) | Source::Discovery => {
                    let url = match &config.source {
                        Source::JwksUrl(url) => Some(url.clone()),
                        _ => None,
                    };
                    let store = KeyStore::new(
                        &config.issuer,
                        url,
                        upstream(&config),
                        config.algorithms.clone(),
                        config.refresh.clone(),
                    );
                    let (outcome, next) = store.first_load().await;
                    outcome.map_err(|reason| BuildError::Fetch {
                        issuer: config.issuer.clone(),
                        discovery: store.uses_discovery(),
                        reason,
                    })?;
                    store.spawn_refresh(next);
                    Keys::Remote(store)
                }
            };
            let iss = config.issuer.clone();
            let trusted = TrustedIssuer {
                iss: iss.as_str().into(),
                config,
                keys,
            };
            if issuers.insert(iss.clone(), trusted).is_some() {
                return Err(BuildError::DuplicateIssuer(iss));
            }
        }
        let cache = self
            .cache
            .map(|(entries, ttl)| Arc::new(VerifiedCache::new(entries, ttl)));
        if let (Some(revocations), Some(cache)) = (&self.revocations, &cache) {
            let cache: Arc<dyn VerifiedTokens> = cache.clone();
            revocations.attach(Arc::downgrade(&cache));
        }
        let mut source = self.source.max_len_if_unset(DEFAULT_MAX_TOKEN_LEN);
        if issuers.values().any(|i| i.config.dpop.is_enabled()) {
            source = source.also_dpop();
        }
        Ok(JwtAuth {
            inner: Arc::new(Inner {
                binding_required: issuers
                    .values()
                    .any(|i| i.config.dpop.is_required() || i.config.mtls.is_required()),
                issuers,
                source,
                cache,
                revocations: self.revocations,
            }),
        })
    }
}
