//! [`Dpop`]: sender-constrained tokens on the resource server (RFC 9449 §4.3, §7): whether an
//! issuer's tokens may or must be DPoP-bound, and the check of the proof each request sends.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::DecodeSliceError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use http::request::Parts;
use http::{HeaderName, HeaderValue};
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tollgate_core::{
    AuthError, Binding, Challenge, Credential, CredentialDigest, MemoryReplayStore, Principal,
    Remembered, ReplayStore, Via,
};

use crate::keys::prepare;
use crate::token::{JoseHeader, parse_header, whole_seconds};

/// The proof algorithms accepted by default: every asymmetric algorithm jsonwebtoken
/// verifies (never `none`, never HMAC: RFC 9449 §4.2).
pub const DEFAULT_DPOP_ALGORITHMS: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
];

/// The longest `DPoP` header accepted, in bytes: room for an RSA-4096 key and signature.
const MAX_PROOF_LEN: usize = 8 * 1024;

/// The longest `jti` accepted, in bytes.
const MAX_JTI_LEN: usize = 256;

/// Decoded proof claims up to this many bytes are read from the stack (a proof's usually
/// take 150–300); longer ones from the heap.
const CLAIMS_ON_STACK: usize = 512;

/// The `DPoP` request header.
static DPOP: HeaderName = HeaderName::from_static("dpop");

/// Whether an issuer's tokens may be sender-constrained with DPoP (RFC 9449), and how proofs
/// are checked. Set per issuer with [`Issuer::dpop`](crate::Issuer::dpop) (and on
/// `tollgate-introspect`'s `Introspection`); the default is [`off`](Self::off).
///
/// With DPoP [`allowed`](Self::allowed) or [`required`](Self::required), the authenticator
/// also reads `Authorization: DPoP <token>`, and for each such request checks the one `DPoP`
/// header: a JWT with `typ: dpop+jwt`, an allowed asymmetric algorithm, a public `jwk` in
/// its header that verifies its signature, `htm` and `htu` naming this request (the URI
/// without query and fragment, compared after RFC 3986 normalisation), an `iat` within the
/// [proof window](Self::proof_window), a `jti` not seen before in that window (per key),
/// `ath` the hash of the access token, and, with [nonces](Self::nonces), the server's
/// nonce. The token's `cnf.jkt` must then be the RFC 7638 thumbprint of the proof's key.
///
/// Whatever the mode, a token whose `cnf` binds it to a key is never accepted as a plain
/// bearer token (no downgrade), and a proof problem is a 401 `invalid_dpop_proof` whose
/// `DPoP` challenge names the accepted algorithms. The principal of a DPoP-bound request
/// says so: [`Principal::binding`](tollgate_core::Principal::binding).
///
/// ```
/// use std::time::Duration;
/// use tollgate_jwt::{Dpop, Issuer};
///
/// let issuer = Issuer::discover("https://idp.example.com")
///     .audience("orders-api")
///     .dpop(
///         Dpop::required()
///             // What clients call: the service runs behind a proxy.
///             .external_url("https://api.example.com")
///             .proof_window(Duration::from_secs(30)),
///     );
/// # let _ = issuer;
/// ```
#[derive(Clone)]
pub struct Dpop {
    mode: Mode,
    algorithms: Vec<Algorithm>,
    window: Duration,
    external_url: Option<String>,
    /// Where `jti`s are remembered: `shared` when configured, else `local`.
    local: Arc<MemoryReplayStore>,
    shared: Option<Arc<dyn DynReplayStore>>,
    nonces: Option<Arc<Nonces>>,
    nonce_rotation: Duration,
    /// Proof keys by the thumbprint tokens are bound to; only a key of that thumbprint is
    /// kept under it, so a proof can never put its key in place of another's.
    keys: moka::sync::Cache<Arc<str>, Arc<ProofKey>>,
}

/// A proof header's key, checked and prepared.
struct ProofKey {
    /// The header it came in, base64url as sent: a proof whose header is the same text has
    /// the same key and algorithm, with nothing parsed or hashed again.
    header: Box<str>,
    alg: Algorithm,
    key: crate::keys::PreparedKey,
}

/// Proof keys kept prepared at most, and for how long unused.
const PROOF_KEYS: u64 = 10_000;
const PROOF_KEY_IDLE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    Allowed,
    Required,
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Dpop");
        d.field("mode", &self.mode)
            .field("algorithms", &self.algorithms)
            .field("proof_window", &self.window)
            .field("external_url", &self.external_url);
        match &self.shared {
            Some(_) => d.field("replay_store", &"shared"),
            None => d.field("replay_store", &self.local),
        };
        d.field("nonces", &self.nonces.is_some()).finish()
    }
}

impl Default for Dpop {
    fn default() -> Self {
        Dpop::off()
    }
}

impl Dpop {
    fn with_mode(mode: Mode) -> Self {
        Dpop {
            mode,
            algorithms: DEFAULT_DPOP_ALGORITHMS.to_vec(),
            window: Duration::from_secs(60),
            external_url: None,
            local: Arc::new(MemoryReplayStore::new()),
            shared: None,
            nonces: None,
            nonce_rotation: Duration::from_secs(300),
            keys: moka::sync::Cache::builder()
                .max_capacity(PROOF_KEYS)
                .time_to_idle(PROOF_KEY_IDLE)
                .build(),
        }
    }

    /// No DPoP (the default): `Authorization: DPoP` is not read for this issuer, and a token
    /// bound to a key (`cnf`) is refused.
    pub fn off() -> Self {
        Self::with_mode(Mode::Off)
    }

    /// DPoP-bound tokens with their proof, and unbound tokens as bearer tokens.
    pub fn allowed() -> Self {
        Self::with_mode(Mode::Allowed)
    }

    /// Only DPoP-bound tokens, with their proof: a token without `cnf.jkt` is refused.
    pub fn required() -> Self {
        Self::with_mode(Mode::Required)
    }

    /// The proof algorithms accepted (default: [`DEFAULT_DPOP_ALGORITHMS`]). HMAC algorithms
    /// are refused when the authenticator is built: a proof must be signed by a key only the
    /// client holds.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        // Keys prepared under other rules are not kept.
        self.keys.invalidate_all();
        self
    }

    /// How far a proof's `iat` may be from now, either way (default: 60 s). Proofs are
    /// remembered for twice this, to refuse a replay.
    pub fn proof_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The scheme, host and port (and path prefix, if any) clients use to reach this
    /// service, such as `https://api.example.com`, for the `htu` check: behind a proxy, the
    /// `Host` the service sees may not be the one the client called. Default: the request's
    /// own authority (its URI's, else its `Host` header) with the scheme of its URI, else
    /// `https` (a plain-HTTP service with no proxy sets `http://host:port` here).
    pub fn external_url(mut self, url: impl Into<String>) -> Self {
        self.external_url = Some(url.into());
        self
    }

    /// Remembers proof `jti`s in `store` (default: this process's memory, see
    /// [`replay_capacity`](Self::replay_capacity)). With the fleet's store
    /// (`tollgate-redis`'s `RedisStore`), a proof replayed to another replica is refused too.
    pub fn replay_store(mut self, store: impl ReplayStore) -> Self {
        self.shared = Some(Arc::new(store));
        self
    }

    /// How many proofs this process remembers at once when no
    /// [`replay_store`](Self::replay_store) is set (default:
    /// [`DEFAULT_REPLAY_CAPACITY`](tollgate_core::DEFAULT_REPLAY_CAPACITY), a million: 8 000
    /// proofs a second with the default window, about 100 MB when full). A proof is never
    /// forgotten within twice the [proof window](Self::proof_window); when the memory is
    /// full, proofs are refused with 503 and `Retry-After` rather than risk a replay.
    pub fn replay_capacity(mut self, proofs: usize) -> Self {
        self.local = Arc::new(MemoryReplayStore::with_capacity(proofs));
        self
    }

    /// Requires server nonces (RFC 9449 §8, default: off): a proof without this server's
    /// current nonce is refused with 401 `use_dpop_nonce` and a fresh one in the `DPoP-Nonce`
    /// header, which the client retries with. Nonces are derived from `secret` (at least 32
    /// bytes) and the time, so no state is kept and replicas given the same secret accept
    /// each other's nonces.
    pub fn nonces(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.nonces = Some(Arc::new(Nonces {
            secret: secret.as_ref().to_vec(),
        }));
        self
    }

    /// How often the nonce changes (default: 5 min); the previous one is still accepted
    /// for one more period.
    pub fn nonce_rotation(mut self, every: Duration) -> Self {
        self.nonce_rotation = every;
        self
    }

    /// Whether DPoP is allowed or required.
    pub fn is_enabled(&self) -> bool {
        self.mode != Mode::Off
    }

    /// Whether DPoP is required (RFC 9728's `dpop_bound_access_tokens_required`).
    pub fn is_required(&self) -> bool {
        self.mode == Mode::Required
    }

    /// The proof algorithms accepted (RFC 9728's `dpop_signing_alg_values_supported`, and
    /// the `algs` of the `DPoP` challenge).
    pub fn algorithms_supported(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// `challenges` with the `DPoP` one naming, in `algs`, every proof algorithm some of
    /// `settings` accept (RFC 9449 §7.1); what an authenticator's
    /// [`challenges`](tollgate_core::Authenticator::challenges) returns.
    pub fn name_algorithms<'a>(
        challenges: Vec<Challenge>,
        settings: impl IntoIterator<Item = &'a Dpop>,
    ) -> Vec<Challenge> {
        let mut algs: Vec<String> = Vec::new();
        for dpop in settings.into_iter().filter(|d| d.is_enabled()) {
            for alg in &dpop.algorithms {
                let name = alg_name(*alg);
                if !algs.contains(&name) {
                    algs.push(name);
                }
            }
        }
        challenges
            .into_iter()
            .map(|c| match c.scheme() {
                "DPoP" if !algs.is_empty() => c.param("algs", algs.join(" ")),
                _ => c,
            })
            .collect()
    }

    /// Checks the settings, as `build()` does: an algorithm at least and none of them HMAC,
    /// a proof window, an http(s) external URL, a nonce secret of 32 bytes or more.
    pub fn validate(&self) -> Result<(), InvalidDpop> {
        let bad = |why: &'static str| Err(InvalidDpop(why));
        if self.mode == Mode::Off {
            return Ok(());
        }
        if self.algorithms.is_empty() {
            return bad("no proof algorithm is accepted");
        }
        if self
            .algorithms
            .iter()
            .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return bad("proofs cannot be HMAC-signed");
        }
        if self.window.is_zero() {
            return bad("the proof window is zero");
        }
        if let Some(url) = &self.external_url {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => return bad("the external URL is not an http(s) URL"),
            }
        }
        if let Some(nonces) = &self.nonces {
            if nonces.secret.len() < 32 {
                return bad("the nonce secret is shorter than 32 bytes");
            }
            if self.nonce_rotation.as_secs() == 0 {
                return bad("the nonce rotation is under a second");
            }
        }
        Ok(())
    }

    /// Checks how `principal`'s token was presented in `parts`: with `Authorization: DPoP`,
    /// the proof and its key against the token's binding; otherwise, that the token is not
    /// bound and DPoP is not required. Every authenticator calls this after verifying a
    /// token, cached or not.
    pub async fn check(
        &self,
        parts: &Parts,
        token: &Credential<'_>,
        principal: &Principal,
    ) -> Result<(), AuthError> {
        self.check_hashed(parts, token, None, principal).await
    }

    /// [`check`](Self::check), with the token's SHA-256 when the caller has it already (a
    /// cache's key): `ath` is the same hash.
    pub(crate) async fn check_hashed(
        &self,
        parts: &Parts,
        token: &Credential<'_>,
        digest: Option<&CredentialDigest>,
        principal: &Principal,
    ) -> Result<(), AuthError> {
        if token.via() != Via::Dpop {
            return self.check_bearer(principal);
        }
        if self.mode == Mode::Off {
            return Err(AuthError::invalid_token(
                "this issuer's tokens are not accepted with DPoP",
            ));
        }
        let Some(jkt) = principal.binding().and_then(Binding::dpop_thumbprint) else {
            return Err(AuthError::invalid_token(
                "the token is not DPoP-bound; send it as a bearer token",
            ));
        };
        let digest = digest
            .copied()
            .unwrap_or_else(|| CredentialDigest::of(token));
        self.check_proof(parts, &digest, jkt).await
    }

    /// Checks a token presented without a proof (a bearer token, or one verified outside a
    /// request): it must not be DPoP-bound, and DPoP must not be required. (A token bound to
    /// a certificate is [`Mtls`](crate::Mtls)'s to check.)
    pub fn check_bearer(&self, principal: &Principal) -> Result<(), AuthError> {
        match principal.binding() {
            Some(Binding::Dpop { .. }) => Err(AuthError::invalid_token(
                "the token is DPoP-bound: send it with the DPoP scheme and a proof",
            )),
            _ if self.mode == Mode::Required => Err(AuthError::invalid_token(
                "this issuer's tokens must be DPoP-bound",
            )),
            _ => Ok(()),
        }
    }

    /// RFC 9449 §4.3, in order of cost: the proof's form, the nonce, the signature, the
    /// claims that tie it to this request and token, the key's thumbprint, and last the
    /// replay check (so a proof refused for another reason spends no `jti`).
    async fn check_proof(
        &self,
        parts: &Parts,
        token: &CredentialDigest,
        jkt: &str,
    ) -> Result<(), AuthError> {
        let entry = self.verify_proof(parts, token, jkt)?;
        self.first_use(entry).await
    }

    /// Every check of the proof but the replay check, and where its `jti` is to be
    /// remembered. Not async: the decoded claims stay on the stack, out of the future.
    fn verify_proof(
        &self,
        parts: &Parts,
        token: &CredentialDigest,
        jkt: &str,
    ) -> Result<ReplayEntry<'_>, AuthError> {
        let not_jws = || AuthError::invalid_dpop_proof("the DPoP proof is not a valid JWS");
        let proof = one_proof(parts)?;
        let (key, header_len) = self.proof_key(proof, jkt)?;
        // The header is known (equal to a checked one, or just parsed); the rest must be
        // `payload.signature`, each part base64url, which no other byte (a third `.`, or
        // one that is not text) passes. The last `.` is found from the end: a signature is
        // shorter than the claims.
        let rest = &proof[header_len + 1..];
        let dot = rest.iter().rposition(|&b| b == b'.').ok_or_else(not_jws)?;
        let (payload, signature) = (&rest[..dot], &rest[dot + 1..]);
        if signature.is_empty() {
            return Err(not_jws());
        }
        let message = &proof[..header_len + 1 + dot];
        let mut on_stack = [0u8; CLAIMS_ON_STACK];
        let on_heap;
        let payload = match URL_SAFE_NO_PAD.decode_slice(payload, &mut on_stack) {
            Ok(len) => &on_stack[..len],
            Err(DecodeSliceError::OutputSliceTooSmall) => {
                on_heap = URL_SAFE_NO_PAD.decode(payload).map_err(|_| not_jws())?;
                &on_heap
            }
            Err(DecodeSliceError::DecodeError(_)) => return Err(not_jws()),
        };
        // Checked as text once, so the parser need not check each string.
        let claims = std::str::from_utf8(payload)
            .ok()
            .and_then(|payload| serde_json::from_str::<ProofClaims<'_>>(payload).ok())
            .ok_or_else(|| {
                AuthError::invalid_dpop_proof("the DPoP proof's claims are not valid")
            })?;
        if let Some(nonces) = &self.nonces {
            nonces.check(claims.nonce.as_deref(), self.nonce_rotation)?;
        }
        if !key.key.verifies(key.alg, message, signature) {
            return Err(AuthError::invalid_dpop_proof(
                "the DPoP proof's signature is not valid",
            ));
        }
        if claims.htm.as_deref() != Some(parts.method.as_str()) {
            return Err(AuthError::invalid_dpop_proof(
                "the DPoP proof is for another HTTP method",
            ));
        }
        if !self.htu_matches(claims.htu.as_deref(), parts) {
            return Err(AuthError::invalid_dpop_proof(
                "the DPoP proof is for another URI",
            ));
        }
        self.check_iat(claims.iat.as_ref())?;
        if !claims
            .ath
            .as_deref()
            .is_some_and(|ath| is_token_hash(ath, token))
        {
            return Err(AuthError::invalid_dpop_proof(
                "the DPoP proof is for another access token",
            ));
        }
        if key.key.material != jkt {
            return Err(AuthError::invalid_token(
                "the token is bound to another key than the DPoP proof's",
            ));
        }
        let jti = claims
            .jti
            .as_deref()
            .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
            .ok_or_else(|| AuthError::invalid_dpop_proof("the DPoP proof has no valid jti"))?;
        Ok(self.replay_entry(jkt, jti))
    }

    /// The key and algorithm of a proof's header, for a token bound to `jkt`, with the
    /// header's length (a `.` follows it). A client signs every proof under the same header,
    /// so its key is prepared (parsed, checked, thumbprinted) on its first proof only, and
    /// kept when it is the token's key: a proof that starts with the header text it came in
    /// has it, with nothing read again.
    fn proof_key(&self, proof: &[u8], jkt: &str) -> Result<(Arc<ProofKey>, usize), AuthError> {
        if let Some(key) = self.keys.get(jkt)
            && proof.get(key.header.len()) == Some(&b'.')
            && proof.starts_with(key.header.as_bytes())
        {
            let len = key.header.len();
            return Ok((key, len));
        }
        let not_jws = || AuthError::invalid_dpop_proof("the DPoP proof is not a valid JWS");
        let header_b64 = proof
            .iter()
            .position(|&b| b == b'.')
            .and_then(|end| std::str::from_utf8(&proof[..end]).ok())
            .ok_or_else(not_jws)?;
        let header = parse_header::<ProofHeader>(header_b64).map_err(|_| not_jws())?;
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
        {
            return Err(AuthError::invalid_dpop_proof(
                "the DPoP proof's typ is not dpop+jwt",
            ));
        }
        let alg = Algorithm::from_str(&header.alg)
            .ok()
            .filter(|alg| self.algorithms.contains(alg))
            .ok_or_else(|| {
                AuthError::invalid_dpop_proof("the DPoP proof's algorithm is not accepted")
            })?;
        let key = Arc::new(ProofKey {
            header: header_b64.into(),
            alg,
            key: prepare_proof_key(header.jwk.as_ref(), alg)?,
        });
        // Another key is refused after the signature's check, as every proof is.
        if key.key.material == jkt {
            self.keys.insert(jkt.into(), key.clone());
        }
        Ok((key, header_b64.len()))
    }

    /// Where and as what the proof of `jti` by the key `jkt` is remembered (a `jti` is unique
    /// per key, RFC 9449 §11.1).
    fn replay_entry(&self, jkt: &str, jti: &str) -> ReplayEntry<'_> {
        match &self.shared {
            Some(store) => ReplayEntry::Shared(&**store, format!("dpop:{jkt}:{jti}")),
            // The digest of the same id, without building it.
            None => ReplayEntry::Local(CredentialDigest::from_bytes(
                Sha256::new()
                    .chain_update("dpop:")
                    .chain_update(jkt)
                    .chain_update(":")
                    .chain_update(jti)
                    .finalize()
                    .into(),
            )),
        }
    }

    /// `Ok` if the proof is new, remembered for as long as a proof can be accepted: twice
    /// the window.
    async fn first_use(&self, entry: ReplayEntry<'_>) -> Result<(), AuthError> {
        let ttl = self.window * 2;
        let remembered = match entry {
            ReplayEntry::Shared(store, id) => store.first_use_boxed(&id, ttl).await,
            ReplayEntry::Local(digest) => self.local.remember(&digest, ttl),
        };
        match remembered {
            Remembered::New => Ok(()),
            Remembered::Replayed => Err(AuthError::invalid_dpop_proof(
                "the DPoP proof was used before",
            )),
            Remembered::Full { retry_after } => Err(AuthError::unavailable(
                "too many DPoP proofs to remember at once (see Dpop::replay_capacity)",
                retry_after,
            )),
        }
    }

    fn check_iat(&self, iat: Option<&serde_json::Number>) -> Result<(), AuthError> {
        let stale =
            || AuthError::invalid_dpop_proof("the DPoP proof is too old or from the future");
        let iat = iat
            .and_then(whole_seconds)
            .ok_or_else(|| AuthError::invalid_dpop_proof("the DPoP proof has no valid iat"))?;
        let window = i64::try_from(self.window.as_secs()).unwrap_or(i64::MAX);
        let now = crate::auth::now_secs();
        if iat < now.saturating_sub(window) || iat > now.saturating_add(window) {
            return Err(stale());
        }
        Ok(())
    }

    /// Whether `htu` names this request's URI, query and fragment aside (RFC 9449 §4.3,
    /// check 9), both sides normalised by the `url` crate (case of scheme and host, default
    /// ports, dot segments) and for percent-encoding case and unreserved characters.
    fn htu_matches(&self, htu: Option<&str>, parts: &Parts) -> bool {
        let Some(htu) = htu else {
            return false;
        };
        let path = parts.uri.path();
        // The base this service is reached at, in pieces: the URL up to the path.
        let (base, plain_base) = match &self.external_url {
            // Checked to be an http(s) URL when the settings were validated; one with user
            // info (which `htu` may not have) takes the long way.
            Some(base) => ([base.trim_end_matches('/'), "", ""], !base.contains('@')),
            None => {
                let authority = parts
                    .uri
                    .authority()
                    .map(|a| a.as_str())
                    .or_else(|| parts.headers.get(http::header::HOST)?.to_str().ok());
                let Some(authority) = authority else {
                    return false;
                };
                let scheme = parts.uri.scheme_str().unwrap_or("https");
                // A bare host[:port]: nothing in it that parsing would change or refuse.
                let plain = !authority.is_empty()
                    && authority.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b)
                    });
                ([scheme, "://", authority], plain)
            }
        };
        // Most clients write `htu` as the server sees it: the same text needs no parsing.
        let without_query = htu
            .bytes()
            .position(|b| b == b'?' || b == b'#')
            .map_or(htu, |end| &htu[..end]);
        let rest = base
            .iter()
            .try_fold(without_query, |rest, piece| rest.strip_prefix(piece));
        if plain_base && rest == Some(path) {
            return true;
        }
        let Ok(htu) = url::Url::parse(htu) else {
            return false;
        };
        let mut expected = base.concat();
        expected.push_str(path);
        let Ok(expected) = url::Url::parse(&expected) else {
            return false;
        };
        htu.scheme() == expected.scheme()
            && htu.host_str() == expected.host_str()
            && htu.port_or_known_default() == expected.port_or_known_default()
            && htu.username().is_empty()
            && htu.password().is_none()
            && normalized_path(htu.path()) == normalized_path(expected.path())
    }
}

/// Why [`Dpop`] settings are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidDpop(&'static str);

/// The JOSE name of `alg` (`ES256`): its variant's name, which is what serde writes too.
pub(crate) fn alg_name(alg: Algorithm) -> String {
    format!("{alg:?}")
}

/// The one `DPoP` header of the request. It is not checked as text here: every part is
/// base64url-decoded, or compared with a header that was, and read as text only then.
fn one_proof(parts: &Parts) -> Result<&[u8], AuthError> {
    let mut proofs = parts.headers.get_all(&DPOP).iter();
    let proof = proofs
        .next()
        .ok_or_else(|| AuthError::invalid_dpop_proof("the request has no DPoP proof"))?;
    if proofs.next().is_some() {
        return Err(AuthError::invalid_dpop_proof(
            "the request has more than one DPoP proof",
        ));
    }
    if proof.len() > MAX_PROOF_LEN {
        return Err(AuthError::invalid_dpop_proof("the DPoP proof is too long"));
    }
    Ok(proof.as_bytes())
}

/// The public key of the proof's header, prepared for `alg`: private parameters (or a
/// symmetric key) refuse it, and so do the rules of a JWKS key (RSA size, curve for `alg`).
fn prepare_proof_key(
    jwk: Option<&Value>,
    alg: Algorithm,
) -> Result<crate::keys::PreparedKey, AuthError> {
    const PRIVATE: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
    let Some(Value::Object(members)) = jwk else {
        return Err(AuthError::invalid_dpop_proof(
            "the DPoP proof has no jwk header",
        ));
    };
    if PRIVATE.iter().any(|m| members.contains_key(*m)) {
        return Err(AuthError::invalid_dpop_proof(
            "the DPoP proof's jwk holds private key material",
        ));
    }
    let unusable = |_| AuthError::invalid_dpop_proof("the DPoP proof's jwk is not a usable key");
    let jwk: Jwk = Jwk::deserialize(jwk.unwrap_or(&Value::Null))
        .map_err(|_| AuthError::invalid_dpop_proof("the DPoP proof's jwk is not a usable key"))?;
    prepare(&jwk, &[alg]).map_err(unusable)
}

/// What RFC 9449 §4.3 checks in a proof's claims, read straight from the decoded payload (no
/// map is built; strings are borrowed unless escaped). A claim named twice refuses the proof
/// (RFC 7515 §5.2 allows it; serde's derive does it), one of the wrong type too; claims not
/// named here are skipped unread.
#[derive(Deserialize)]
struct ProofClaims<'a> {
    #[serde(borrow)]
    htm: Option<Text<'a>>,
    #[serde(borrow)]
    htu: Option<Text<'a>>,
    iat: Option<serde_json::Number>,
    #[serde(borrow)]
    ath: Option<Text<'a>>,
    #[serde(borrow)]
    jti: Option<Text<'a>>,
    #[serde(borrow)]
    nonce: Option<Text<'a>>,
}

/// A JSON string, borrowed when it has no escapes (serde borrows a bare `Cow<str>` field,
/// but not one inside an `Option`).
struct Text<'a>(Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(v.into()))
            }

            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(v.to_owned().into()))
            }
        }
        d.deserialize_str(Visit)
    }
}

/// Whether `ath` is base64url(SHA-256(token)) (RFC 9449 §4.2): the digest encoded, compared
/// with `ath` as text (one canonical encoding, so nothing else matches).
fn is_token_hash(ath: &str, token: &CredentialDigest) -> bool {
    let mut encoded = [0u8; 43];
    matches!(
        URL_SAFE_NO_PAD.encode_slice(token.as_bytes(), &mut encoded),
        Ok(43)
    ) && ath.as_bytes() == encoded
}

/// A path with percent-encodings upper-cased and unreserved characters decoded
/// (RFC 3986 §6.2.2.1–2).
fn normalized_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(Some(h)), Some(Some(l))) = (
                bytes.get(i + 1).map(|b| hex(*b)),
                bytes.get(i + 2).map(|b| hex(*b)),
            )
        {
            let c = (h * 16 + l) as u8;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                out.push(c as char);
            } else {
                out.push_str(&format!("%{c:02X}"));
            }
            i += 3;
            continue;
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

/// The header of a proof: the access-token header's members plus the public key.
#[derive(Deserialize)]
struct ProofHeader {
    alg: String,
    typ: Option<String>,
    jwk: Option<Value>,
    crit: Option<Value>,
    enc: Option<Value>,
}

impl JoseHeader for ProofHeader {
    fn has_crit(&self) -> bool {
        self.crit.is_some()
    }

    fn has_enc(&self) -> bool {
        self.enc.is_some()
    }
}

/// Where a proof's `jti` is remembered, and as what (see [`Dpop::replay_entry`]).
enum ReplayEntry<'a> {
    /// In the shared store, as `dpop:<jkt>:<jti>`.
    Shared(&'a dyn DynReplayStore, String),
    /// In this process's memory, as the digest of the same id.
    Local(CredentialDigest),
}

/// The object-safe twin of [`ReplayStore`].
trait DynReplayStore: Send + Sync + 'static {
    fn first_use_boxed<'a>(
        &'a self,
        id: &'a str,
        ttl: Duration,
    ) -> Pin<Box<dyn Future<Output = Remembered> + Send + 'a>>;
}

impl<S: ReplayStore> DynReplayStore for S {
    fn first_use_boxed<'a>(
        &'a self,
        id: &'a str,
        ttl: Duration,
    ) -> Pin<Box<dyn Future<Output = Remembered> + Send + 'a>> {
        Box::pin(self.first_use(id, ttl))
    }
}

/// Stateless server nonces: the rotation period's number and its HMAC, so any replica with
/// the secret can tell a current nonce from a forged or stale one.
struct Nonces {
    secret: Vec<u8>,
}

impl Nonces {
    const MAC_LEN: usize = 16;

    fn period(rotation: Duration) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        now / rotation.as_secs().max(1)
    }

    fn mac(&self, period: u64) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(b"tollgate dpop nonce");
        mac.update(&period.to_be_bytes());
        mac
    }

    /// The nonce of the current period.
    fn current(&self, rotation: Duration) -> String {
        let period = Self::period(rotation);
        let tag = self.mac(period).finalize().into_bytes();
        let mut raw = period.to_be_bytes().to_vec();
        raw.extend_from_slice(&tag[..Self::MAC_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// `Ok` for the current or the previous period's nonce; `use_dpop_nonce` with the
    /// current one otherwise.
    fn check(&self, nonce: Option<&str>, rotation: Duration) -> Result<(), AuthError> {
        let valid = nonce
            .and_then(|n| URL_SAFE_NO_PAD.decode(n).ok())
            .filter(|raw| raw.len() == 8 + Self::MAC_LEN)
            .is_some_and(|raw| {
                let period = u64::from_be_bytes(raw[..8].try_into().unwrap_or_default());
                let now = Self::period(rotation);
                (period == now || period.saturating_add(1) == now)
                    && self.mac(period).verify_truncated_left(&raw[8..]).is_ok()
            });
        if valid {
            return Ok(());
        }
        let fresh = HeaderValue::from_str(&self.current(rotation))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        Err(AuthError::use_dpop_nonce(fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ath_is_the_token_hash_in_canonical_base64url() {
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(b"token"));
        assert!(is_token_hash(&ath, &CredentialDigest::of("token")));
        assert!(!is_token_hash(&ath, &CredentialDigest::of("other")));
        assert!(!is_token_hash(
            &format!("{ath}="),
            &CredentialDigest::of("token")
        ));
        assert!(!is_token_hash(&ath[..42], &CredentialDigest::of("token")));
        assert!(!is_token_hash("", &CredentialDigest::of("token")));
        // The same 32 bytes with a non-zero unused bit in the last character: not the
        // canonical encoding, refused.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = ALPHABET
            .iter()
            .position(|&c| c == ath.as_bytes()[42])
            .unwrap();
        let loose = format!("{}{}", &ath[..42], ALPHABET[last ^ 1] as char);
        assert!(!is_token_hash(&loose, &CredentialDigest::of("token")));
    }

    #[test]
    fn paths_are_compared_after_normalisation() {
        assert_eq!(normalized_path("/a%7eb/%2f"), "/a~b/%2F");
        assert_eq!(normalized_path("/%41%zz"), "/A%zz");
    }

    #[test]
    fn nonces_of_this_and_the_last_period_pass_others_do_not() {
        let nonces = Nonces {
            secret: vec![7; 32],
        };
        let rotation = Duration::from_secs(300);
        let now = nonces.current(rotation);
        assert!(nonces.check(Some(&now), rotation).is_ok());
        let other = Nonces {
            secret: vec![8; 32],
        };
        assert!(other.check(Some(&now), rotation).is_err());
        let err = nonces.check(None, rotation).unwrap_err();
        assert_eq!(err.kind(), tollgate_core::ErrorKind::UseDpopNonce);
        assert!(err.headers().unwrap().contains_key("dpop-nonce"));
    }
}
