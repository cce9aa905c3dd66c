//! [`Issuer`]: one trusted issuer, where its keys come from, and the rules its tokens must
//! meet; [`LocalKeys`] for keys held in configuration.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use tollgate_core::AuthError;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::keys::{KeySet, PreparedKey, check_rsa_modulus, parse_jwks, thumbprint};
use crate::token::{Header, numeric_date};
use crate::{BuildError, ClaimRule, Dpop, Mtls, ScopeMapping};

/// The algorithms accepted by default: RSA (PKCS#1 and PSS), ECDSA P-256/P-384, Ed25519.
/// HMAC is only ever accepted for keys you configure yourself ([`LocalKeys::hmac`]), and
/// `none` never.
pub const DEFAULT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

#[derive(Debug, Clone)]
pub(crate) enum Source {
    Discovery,
    JwksUrl(String),
    Local(KeySet),
}

/// How the key set of a remote issuer is kept fresh.
#[derive(Debug, Clone)]
pub(crate) struct Refresh {
    pub(crate) interval: Duration,
    pub(crate) min: Duration,
    pub(crate) max: Duration,
    pub(crate) retry: Duration,
    pub(crate) cooldown: Duration,
    pub(crate) max_staleness: Duration,
    pub(crate) lazy: bool,
}

impl Default for Refresh {
    fn default() -> Self {
        Refresh {
            interval: Duration::from_secs(300),
            min: Duration::from_secs(60),
            max: Duration::from_secs(3600),
            retry: Duration::from_secs(10),
            cooldown: Duration::from_secs(30),
            max_staleness: Duration::from_secs(24 * 3600),
            lazy: false,
        }
    }
}

/// A trusted issuer: its exact `iss`, where its keys come from, and what its tokens must
/// carry. Add one or several to a [`JwtAuthBuilder`](crate::JwtAuthBuilder); a token is
/// routed to its issuer by `iss` before anything is verified, and a token from an issuer
/// not listed is refused without any fetch.
///
/// ```
/// use std::time::Duration;
/// use tollgate_jwt::{Issuer, ScopeMapping};
///
/// let issuer = Issuer::discover("https://login.example.com/realms/acme")
///     .audience("orders-api")
///     .require_typ_at_jwt()
///     .required_claims(["sub", "client_id"])
///     .scopes(ScopeMapping::default().and("realm_access.roles"))
///     .leeway(Duration::from_secs(30));
/// ```
#[derive(Debug, Clone)]
pub struct Issuer {
    pub(crate) issuer: String,
    pub(crate) source: Source,
    pub(crate) audiences: Vec<String>,
    pub(crate) any_audience: bool,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) leeway: Duration,
    pub(crate) typ: Option<Vec<String>>,
    pub(crate) required_claims: Vec<String>,
    pub(crate) scopes: ScopeMapping,
    pub(crate) rules: Vec<ClaimRule>,
    pub(crate) refresh: Refresh,
    pub(crate) dpop: Dpop,
    pub(crate) mtls: Mtls,
}

impl Issuer {
    fn new(issuer: impl Into<String>, source: Source) -> Self {
        Issuer {
            issuer: issuer.into(),
            source,
            audiences: Vec::new(),
            any_audience: false,
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            leeway: Duration::from_secs(60),
            typ: None,
            required_claims: Vec::new(),
            scopes: ScopeMapping::default(),
            rules: Vec::new(),
            refresh: Refresh::default(),
            dpop: Dpop::off(),
            mtls: Mtls::off(),
        }
    }

    /// Keys found by discovery: `{issuer}/.well-known/openid-configuration`, falling back to
    /// `/.well-known/oauth-authorization-server` (RFC 8414). The document's `issuer` must be
    /// exactly `issuer`, and its `jwks_uri` is then fetched and refreshed.
    pub fn discover(issuer: impl Into<String>) -> Self {
        Self::new(issuer, Source::Discovery)
    }

    /// Keys from a JWKS URL, fetched and refreshed.
    pub fn jwks_url(issuer: impl Into<String>, jwks_url: impl Into<String>) -> Self {
        Self::new(issuer, Source::JwksUrl(jwks_url.into()))
    }

    /// Keys held in configuration; nothing is fetched. The algorithms of HMAC keys given
    /// there are added to the allowlist.
    pub fn local_keys(issuer: impl Into<String>, keys: LocalKeys) -> Self {
        let mut issuer = Self::new(issuer, Source::Local(KeySet::new(keys.keys.clone())));
        for key in &keys.keys {
            for alg in &key.algorithms {
                if !issuer.algorithms.contains(alg) {
                    issuer.algorithms.push(*alg);
                }
            }
        }
        issuer
    }

    /// Adds an accepted audience: `aud` must contain one of them (RFC 7519 §4.1.3). At least
    /// one is required, unless [`any_audience`](Self::any_audience) is set.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Does not check `aud` at all. Loosens security (RFC 8725 §3.9: a token meant for another
    /// service is accepted); only for issuers that mint tokens for this service alone.
    pub fn any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// Replaces the algorithm allowlist (default: [`DEFAULT_ALGORITHMS`]). Each key still
    /// verifies only the algorithms its type and its own `alg` allow.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Clock skew allowed on `exp`, `nbf` and `iat` (default: 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Requires the header `typ` to be `at+jwt` or `application/at+jwt` (RFC 9068 §2.1,
    /// RFC 8725 §3.11; default: not checked).
    pub fn require_typ_at_jwt(self) -> Self {
        self.require_typ(["at+jwt"])
    }

    /// Requires the header `typ` to be one of `types`, compared case-insensitively, with or
    /// without the `application/` prefix.
    pub fn require_typ<I: IntoIterator<Item = S>, S: Into<String>>(mut self, types: I) -> Self {
        self.typ = Some(
            types
                .into_iter()
                .map(|t| {
                    let t: String = t.into();
                    let t = t.to_ascii_lowercase();
                    t.strip_prefix("application/")
                        .map(str::to_owned)
                        .unwrap_or(t)
                })
                .collect(),
        );
        self
    }

    /// Claims that must be present (not null), besides `iss`, `exp` and `aud` which always
    /// are (default: none; RFC 9068 lists `sub`, `client_id`, `iat`, `jti`).
    pub fn required_claims<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        claims: I,
    ) -> Self {
        self.required_claims = claims.into_iter().map(Into::into).collect();
        self
    }

    /// Requires the claims to meet `rule` (default: no rule). Several calls add rules that
    /// must all hold. See [`ClaimRule`] for the rules and the error a failing token gets.
    pub fn require(mut self, rule: ClaimRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Where the principal's scopes come from (default: `scope` and `scp`).
    pub fn scopes(mut self, mapping: ScopeMapping) -> Self {
        self.scopes = mapping;
        self
    }

    /// How often the key set is refreshed in the background (default: 5 min). A JWKS answer
    /// with `Cache-Control: max-age` sets the next interval instead, clamped to
    /// [`refresh_bounds`](Self::refresh_bounds).
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh.interval = interval;
        self
    }

    /// The bounds `max-age` is clamped to (default: 1 min to 1 h).
    pub fn refresh_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.refresh.min = min;
        self.refresh.max = max.max(min);
        self
    }

    /// How soon a failed refresh is tried again (default: 10 s).
    pub fn retry_interval(mut self, retry: Duration) -> Self {
        self.refresh.retry = retry;
        self
    }

    /// The least time between two refetches caused by an unknown `kid` (default: 30 s).
    pub fn refetch_cooldown(mut self, cooldown: Duration) -> Self {
        self.refresh.cooldown = cooldown;
        self
    }

    /// How long the last good keys are used while the issuer cannot be reached (default:
    /// 24 h); past it, requests get 503.
    pub fn max_staleness(mut self, max: Duration) -> Self {
        self.refresh.max_staleness = max;
        self
    }

    /// Does not fetch at build time: keys are fetched in the background, retried until they
    /// load, and requests get 503 until then (default: off, `build()` fails if the first
    /// fetch fails).
    pub fn lazy(mut self) -> Self {
        self.refresh.lazy = true;
        self
    }

    /// Whether this issuer's tokens may or must be DPoP-bound, and how proofs are checked
    /// (default: [`Dpop::off`], and a token bound to a key is refused). See [`Dpop`].
    pub fn dpop(mut self, dpop: Dpop) -> Self {
        self.dpop = dpop;
        self
    }

    /// Whether this issuer's tokens may or must be bound to the client's TLS certificate,
    /// and where that certificate is read from (default: [`Mtls::off`], and a
    /// certificate-bound token is refused). See [`Mtls`].
    pub fn mtls(mut self, mtls: Mtls) -> Self {
        self.mtls = mtls;
        self
    }

    /// The `iss` this issuer is configured for.
    pub fn iss(&self) -> &str {
        &self.issuer
    }

    pub(crate) fn validate(&self) -> Result<(), BuildError> {
        if self.audiences.is_empty() && !self.any_audience {
            return Err(BuildError::NoAudience(self.issuer.clone()));
        }
        if self.algorithms.is_empty() {
            return Err(BuildError::NoAlgorithm(self.issuer.clone()));
        }
        self.dpop.validate().map_err(|e| BuildError::Dpop {
            issuer: self.issuer.clone(),
            reason: e,
        })
    }

    /// Checks the header against this issuer's rules.
    pub(crate) fn check_header(&self, header: &Header, alg: Algorithm) -> Result<(), AuthError> {
        if !self.algorithms.contains(&alg) {
            return Err(AuthError::invalid_token(
                "the token algorithm is not accepted",
            ));
        }
        if let Some(types) = &self.typ {
            let typ = header.typ.as_deref().unwrap_or("").to_ascii_lowercase();
            let typ = typ.strip_prefix("application/").unwrap_or(&typ);
            if !types.iter().any(|t| t == typ) {
                return Err(AuthError::invalid_token(
                    "the token is not of the expected type",
                ));
            }
        }
        Ok(())
    }

    /// Checks the registered claims (RFC 7519 §4.1) and the required ones, at `now` (Unix
    /// seconds). Called only after the signature was verified.
    pub(crate) fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now: i64,
    ) -> Result<i64, AuthError> {
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        let exp = numeric_date(claims, "exp")?
            .ok_or_else(|| AuthError::invalid_token("the token has no expiry"))?;
        if now >= exp.saturating_add(leeway) {
            return Err(AuthError::invalid_token("the token has expired"));
        }
        if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(AuthError::invalid_token("the token is not valid yet"));
        }
        if numeric_date(claims, "iat")?.is_some_and(|iat| iat > now.saturating_add(leeway)) {
            return Err(AuthError::invalid_token(
                "the token was issued in the future",
            ));
        }
        if !self.any_audience && !self.audience_matches(claims.get("aud")) {
            return Err(AuthError::invalid_token(
                "the token is not meant for this audience",
            ));
        }
        if let Some(missing) = self
            .required_claims
            .iter()
            .find(|c| claims.get(c.as_str()).is_none_or(Value::is_null))
        {
            tracing::debug!(claim = missing.as_str(), "required claim missing");
            return Err(AuthError::invalid_token("the token lacks a required claim"));
        }
        if let Some(failed) = self.rules.iter().find(|rule| !rule.matches(claims)) {
            tracing::debug!(rule = ?failed, "claim rule not met");
            return Err(AuthError::invalid_token(
                "the token's claims do not meet this service's requirements",
            ));
        }
        Ok(exp)
    }

    fn audience_matches(&self, aud: Option<&Value>) -> bool {
        let ours = |a: &str| self.audiences.iter().any(|x| x == a);
        match aud {
            Some(Value::String(a)) => ours(a),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).any(ours),
            _ => false,
        }
    }
}

/// Keys held in configuration: a JWK Set document, PEM public keys, HMAC secrets.
///
/// ```
/// use jsonwebtoken::Algorithm;
/// use tollgate_jwt::LocalKeys;
///
/// let keys = LocalKeys::new()
///     .hmac("internal", Algorithm::HS256, b"a secret of at least thirty-two bytes!!")
///     .unwrap();
/// assert!(LocalKeys::new().hmac("short", Algorithm::HS256, b"too short").is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct LocalKeys {
    keys: Vec<PreparedKey>,
}

impl LocalKeys {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the keys of a JWK Set document: public keys as from a JWKS (unusable ones are
    /// skipped and logged), and secrets (`kty: oct`, with an `alg` of `HS256`/`HS384`/`HS512`)
    /// as [`hmac`](Self::hmac) takes them. A set that mixes secrets and public keys is refused
    /// (a token's `alg` must never choose between them), as is a set without a usable key.
    pub fn jwks(mut self, jwks_json: &str) -> Result<Self, BuildError> {
        let bad = |why: &str| BuildError::Keys(why.to_owned());
        let doc: Value =
            serde_json::from_str(jwks_json).map_err(|_| bad("the JWKS is not JSON"))?;
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("the JWKS has no \"keys\" array"))?;
        let is_secret = |e: &&Value| e.get("kty").and_then(Value::as_str) == Some("oct");
        let (secrets, public): (Vec<&Value>, Vec<&Value>) = entries.iter().partition(is_secret);
        if !secrets.is_empty() && !public.is_empty() {
            return Err(bad("the JWKS mixes secrets and public keys"));
        }
        for secret in secrets {
            let text = |name: &str| secret.get(name).and_then(Value::as_str);
            let alg = text("alg")
                .and_then(|a| a.parse::<Algorithm>().ok())
                .ok_or_else(|| bad("a secret in the JWKS needs an HS256, HS384 or HS512 alg"))?;
            let bytes = text("k")
                .and_then(|k| URL_SAFE_NO_PAD.decode(k).ok())
                .ok_or_else(|| bad("a secret in the JWKS is not valid base64url"))?;
            self = self.hmac(text("kid").unwrap_or_default(), alg, &bytes)?;
        }
        if !public.is_empty() {
            let doc = serde_json::json!({ "keys": public });
            let set = parse_jwks(doc.to_string().as_bytes(), DEFAULT_ALGORITHMS)
                .map_err(BuildError::Keys)?;
            for key in set.into_keys() {
                self.push(key)?;
            }
        }
        Ok(self)
    }

    #[cfg(feature = "conformance")]
    pub(crate) fn into_keys(self) -> Vec<PreparedKey> {
        self.keys
    }

    /// Adds `key`, refusing a second key with the kid and algorithm family of another: in
    /// configuration, that is a mistake to report, not a choice to make per token.
    fn push(&mut self, key: PreparedKey) -> Result<(), BuildError> {
        let family = |k: &PreparedKey| k.algorithms.first().map(|a| a.family());
        if self
            .keys
            .iter()
            .any(|k| k.kid == key.kid && family(k) == family(&key))
        {
            return Err(BuildError::Keys(
                "two keys of the same type have the same kid".into(),
            ));
        }
        self.keys.push(key);
        Ok(())
    }

    /// Adds a PEM public key that verifies `alg` only (RSA, EC or Ed25519 by `alg`). RSA
    /// moduli under 2048 bits are refused, as from a JWKS.
    pub fn pem(
        mut self,
        kid: impl Into<String>,
        alg: Algorithm,
        pem: &[u8],
    ) -> Result<Self, BuildError> {
        use jsonwebtoken::Algorithm::*;
        let key = match alg {
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => DecodingKey::from_rsa_pem(pem),
            ES256 | ES384 => DecodingKey::from_ec_pem(pem),
            EdDSA => DecodingKey::from_ed_pem(pem),
            _ => {
                return Err(BuildError::Keys(
                    "pem keys take an RSA, ECDSA or EdDSA algorithm; use LocalKeys::hmac for secrets".into(),
                ));
            }
        }
        .map_err(|_| BuildError::Keys("the PEM key could not be read".into()))?;
        crate::crypto::ensure_provider();
        let jwk = jsonwebtoken::jwk::Jwk::from_decoding_key(&key, Some(alg))
            .map_err(|_| BuildError::Keys("the PEM key could not be read".into()))?;
        if let jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) = &jwk.algorithm {
            check_rsa_modulus(&rsa.n).map_err(|e| BuildError::Keys(e.to_string()))?;
        }
        let material = thumbprint(&jwk).map_err(|e| BuildError::Keys(e.to_string()))?;
        self.push(PreparedKey::new(Some(kid.into()), vec![alg], key, material))?;
        Ok(self)
    }

    /// Adds an HMAC secret for internal services (`HS256`/`HS384`/`HS512` only). The secret
    /// must be at least as long as the hash: 32, 48 or 64 bytes (RFC 7518 §3.2).
    pub fn hmac(
        mut self,
        kid: impl Into<String>,
        alg: Algorithm,
        secret: &[u8],
    ) -> Result<Self, BuildError> {
        let least = match alg {
            Algorithm::HS256 => 32,
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => {
                return Err(BuildError::Keys(
                    "hmac keys take HS256, HS384 or HS512".into(),
                ));
            }
        };
        if secret.len() < least {
            return Err(BuildError::Keys(format!(
                "an {alg:?} secret must be at least {least} bytes"
            )));
        }
        // Local keys never change; nothing compares a secret's material.
        let key = DecodingKey::from_secret(secret);
        self.push(PreparedKey::new(
            Some(kid.into()),
            vec![alg],
            key,
            String::new(),
        ))?;
        Ok(self)
    }
}
