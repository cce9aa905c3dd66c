//! [`MockIdp`]: an OpenID provider for tests: discovery, a JWKS, token minting, rotation and
//! injected faults.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

use crate::server::Server;

/// The audience the mock's tokens carry unless told otherwise.
pub const DEFAULT_AUDIENCE: &str = "tollgate-tests";

/// A signing key of the mock provider.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Jwk,
    public_der: Vec<u8>,
}

impl SigningKey {
    /// Generates a key for `alg` (RS*/PS*: RSA 2048, ES256: P-256, ES384: P-384, EdDSA:
    /// Ed25519, HS*: a random 32-byte secret, never published).
    pub fn generate(kid: impl Into<String>, alg: Algorithm) -> Self {
        let kid = kid.into();
        let rng = SystemRandom::new();
        let (encoding, public_der) = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .expect("RSA key generation");
                let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).expect("PKCS#8");
                let pem = pem("PRIVATE KEY", der.as_ref());
                let public = pair
                    .public_key()
                    .as_der()
                    .expect("public DER")
                    .as_ref()
                    .to_vec();
                (
                    EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA PEM"),
                    public,
                )
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let curve = if alg == Algorithm::ES256 {
                    &ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &ECDSA_P384_SHA384_FIXED_SIGNING
                };
                let pair = EcdsaKeyPair::generate(curve).expect("EC key generation");
                let der = pair.to_pkcs8v1().expect("PKCS#8");
                let public = pair.public_key().as_ref().to_vec();
                (EncodingKey::from_ec_der(der.as_ref()), public)
            }
            Algorithm::EdDSA => {
                let der = Ed25519KeyPair::generate_pkcs8v1(&rng).expect("Ed25519 key generation");
                let pair = Ed25519KeyPair::from_pkcs8(der.as_ref()).expect("Ed25519 PKCS#8");
                let public = pair.public_key().as_ref().to_vec();
                (EncodingKey::from_ed_der(der.as_ref()), public)
            }
            _ => {
                let mut secret = [0u8; 32];
                aws_lc_rs::rand::fill(&mut secret).expect("random");
                (EncodingKey::from_secret(&secret), secret.to_vec())
            }
        };
        ensure_provider();
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("public JWK");
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        SigningKey {
            kid,
            alg,
            encoding,
            jwk,
            public_der,
        }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm it signs with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK (for HMAC keys, the secret: never publish those).
    pub fn jwk(&self) -> Value {
        serde_json::to_value(&self.jwk).unwrap_or_default()
    }

    /// The public key bytes as the JWK describes them (RSA: PKCS#1 DER; EC: the uncompressed
    /// point; Ed25519: the 32 bytes), for algorithm-confusion tests.
    pub fn public_key_bytes(&self) -> &[u8] {
        &self.public_der
    }

    /// Signs raw header and payload bytes as given (duplicate members, odd nesting...), for
    /// tokens no JSON serializer would produce.
    pub fn sign_raw(&self, header_json: &str, payload_json: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let message = format!("{}.{}", b64(header_json), b64(payload_json));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg)
            .expect("signing");
        format!("{message}.{signature}")
    }

    /// Signs `claims` with `header` (whose `alg` is forced to this key's).
    pub fn sign(&self, mut header: Header, claims: &Value) -> String {
        header.alg = self.alg;
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing")
    }
}

fn ensure_provider() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A fault the mock provider answers JWKS, discovery and token requests with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdpFault {
    /// Answers this status.
    Status(u16),
    /// Waits this long, then answers normally.
    Delay(Duration),
    /// Answers 200 with bytes that are not JSON.
    Garbage,
    /// Answers 200 with an HTML page.
    Html,
    /// Answers 200 with a 2 MB JSON body, streamed in 64 KiB chunks with no
    /// `Content-Length`, so only a client that counts what it reads stops it.
    Huge,
    /// Answers normally, but in chunks of this many bytes (at least 1) with no
    /// `Content-Length`: a client must put the chunks together.
    Chunked(usize),
    /// Answers `302 Found` to this URL (another host's JWKS, say).
    Redirect(String),
}

struct Shared {
    issuer: OnceLock<String>,
    published: Mutex<Vec<SigningKey>>,
    signing: Mutex<Vec<SigningKey>>,
    clients: Mutex<std::collections::HashMap<String, String>>,
    token_ttl: Mutex<u64>,
    token_requests: AtomicUsize,
    extra_jwks: Mutex<Vec<Value>>,
    fault: Mutex<Option<IdpFault>>,
    cache_control: Mutex<Option<String>>,
    discovery_issuer: Mutex<Option<String>>,
    mtls_aliases: Mutex<Option<Value>>,
    jwks_path: Mutex<String>,
    jwks_requests: AtomicUsize,
    discovery_requests: AtomicUsize,
    /// Opaque tokens and the introspection answer for each.
    opaque: Mutex<std::collections::HashMap<String, Value>>,
    introspection_bearers: Mutex<Vec<String>>,
    introspection_requests: AtomicUsize,
    /// The nonce DPoP token requests must carry, when set.
    dpop_nonce: Mutex<Option<String>>,
}

/// An OpenID provider on 127.0.0.1: `/.well-known/openid-configuration` and `/jwks.json`,
/// with an RS256, a PS256, an ES256 and an EdDSA key published at start. Mints tokens with
/// any claims, algorithm and key; rotates and removes keys; can be told to fail. Counts its
/// requests. Stops when dropped.
///
/// ```
/// use tollgate_testkit::MockIdp;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let idp = MockIdp::start().await;
/// let token = idp.token().claim("scope", "orders:read").sign();
/// assert_eq!(token.split('.').count(), 3);
/// # }
/// ```
pub struct MockIdp {
    shared: Arc<Shared>,
    hmac: SigningKey,
    server: Server,
}

impl MockIdp {
    /// Starts a provider; its issuer is its base URL (`http://127.0.0.1:PORT`).
    pub async fn start() -> Self {
        let keys = vec![
            SigningKey::generate("rs-1", Algorithm::RS256),
            SigningKey::generate("ps-1", Algorithm::PS256),
            SigningKey::generate("es-1", Algorithm::ES256),
            SigningKey::generate("ed-1", Algorithm::EdDSA),
        ];
        let shared = Arc::new(Shared {
            issuer: OnceLock::new(),
            published: Mutex::new(keys.clone()),
            signing: Mutex::new(keys),
            clients: Mutex::default(),
            token_ttl: Mutex::new(300),
            token_requests: AtomicUsize::new(0),
            extra_jwks: Mutex::default(),
            fault: Mutex::default(),
            cache_control: Mutex::default(),
            discovery_issuer: Mutex::default(),
            mtls_aliases: Mutex::default(),
            jwks_path: Mutex::new("/jwks.json".into()),
            jwks_requests: AtomicUsize::new(0),
            discovery_requests: AtomicUsize::new(0),
            opaque: Mutex::default(),
            introspection_bearers: Mutex::default(),
            introspection_requests: AtomicUsize::new(0),
            dpop_nonce: Mutex::new(None),
        });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/token", axum::routing::post(token_endpoint))
            .route("/introspect", axum::routing::post(introspection_endpoint))
            // The JWKS is wherever `jwks_path` says (see `move_jwks`).
            .fallback(jwks)
            .layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                chunked,
            ))
            .with_state(shared.clone());
        let server = Server::start(app).await;
        let _ = shared.issuer.set(server.url(""));
        MockIdp {
            shared,
            hmac: SigningKey::generate("hs-1", Algorithm::HS256),
            server,
        }
    }

    /// The issuer (`iss` of its tokens, and the discovery base).
    pub fn issuer(&self) -> String {
        self.server.url("")
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> String {
        self.server.url(&lock(&self.shared.jwks_path))
    }

    /// Moves the JWKS to `path`: discovery names the new URL, the old one answers 404.
    pub fn move_jwks(&self, path: &str) {
        *lock(&self.shared.jwks_path) = path.to_owned();
    }

    /// A token with the default claims (`iss`, `sub` = `user-1`, `aud` =
    /// [`DEFAULT_AUDIENCE`], `iat` now, `exp` in 5 minutes), signed with the current RS256
    /// key; change anything before [`sign`](TokenBuilder::sign).
    pub fn token(&self) -> TokenBuilder<'_> {
        let now = now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer()));
        claims.insert("sub".into(), json!("user-1"));
        claims.insert("aud".into(), json!(DEFAULT_AUDIENCE));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + 300));
        TokenBuilder {
            idp: self,
            alg: Algorithm::RS256,
            header: Header::new(Algorithm::RS256),
            claims,
            key: None,
            kid: None,
        }
    }

    /// The current signing key for `alg` (HS256 gives the unpublished HMAC key).
    pub fn signing_key(&self, alg: Algorithm) -> SigningKey {
        if alg == Algorithm::HS256 {
            return self.hmac.clone();
        }
        lock(&self.shared.signing)
            .iter()
            .rev()
            .find(|k| k.alg == alg)
            .cloned()
            .expect("no key for that algorithm")
    }

    /// Rotates: a new key for `alg` signs from now on and is published; the old one stays
    /// published. Returns the new kid.
    pub fn rotate(&self, alg: Algorithm) -> String {
        let n = lock(&self.shared.signing).len() + 1;
        let key = SigningKey::generate(format!("{}-{n}", alg_name(alg)), alg);
        let kid = key.kid.clone();
        lock(&self.shared.published).push(key.clone());
        lock(&self.shared.signing).push(key);
        kid
    }

    /// Replaces the key `kid` with new key material of the same algorithm under the same
    /// kid (a rotation in place), and returns it.
    pub fn replace_key(&self, kid: &str) -> SigningKey {
        let old = lock(&self.shared.signing)
            .iter()
            .find(|k| k.kid == kid)
            .cloned()
            .expect("no key with that kid");
        let key = SigningKey::generate(kid, old.alg);
        for keys in [&self.shared.published, &self.shared.signing] {
            for k in lock(keys).iter_mut().filter(|k| k.kid == kid) {
                *k = key.clone();
            }
        }
        key
    }

    /// Publishes `key` (one made with [`SigningKey::generate`]) beside the others; tokens
    /// signed with it (`token().key(key)`) then verify.
    pub fn publish(&self, key: SigningKey) {
        lock(&self.shared.published).push(key);
    }

    /// Stops publishing the key `kid` (tokens it signed should then be refused).
    pub fn unpublish(&self, kid: &str) {
        lock(&self.shared.published).retain(|k| k.kid != kid);
    }

    /// Publishes a raw JWK entry as well (a malformed or unusable one, for tests).
    pub fn publish_raw(&self, jwk: Value) {
        lock(&self.shared.extra_jwks).push(jwk);
    }

    /// Answers JWKS and discovery requests with `fault` until [`heal`](Self::heal).
    pub fn fail_with(&self, fault: IdpFault) {
        *lock(&self.shared.fault) = Some(fault);
    }

    /// Stops injecting faults.
    pub fn heal(&self) {
        *lock(&self.shared.fault) = None;
    }

    /// Sends `Cache-Control: <value>` with the JWKS (or nothing with `None`).
    pub fn set_cache_control(&self, value: Option<&str>) {
        *lock(&self.shared.cache_control) = value.map(str::to_owned);
    }

    /// Makes the discovery document claim another `issuer` (for the exact-match check).
    pub fn set_discovery_issuer(&self, issuer: Option<&str>) {
        *lock(&self.shared.discovery_issuer) = issuer.map(str::to_owned);
    }

    /// Publishes `mtls_endpoint_aliases` (RFC 8705 §5) in the discovery document: where
    /// clients over mutual TLS send their token and introspection requests (or nothing with
    /// `None`).
    pub fn set_mtls_endpoint_aliases(
        &self,
        token_endpoint: Option<&str>,
        introspection_endpoint: Option<&str>,
    ) {
        let aliases = json!({
            "token_endpoint": token_endpoint,
            "introspection_endpoint": introspection_endpoint,
        });
        let any = token_endpoint.is_some() || introspection_endpoint.is_some();
        *lock(&self.shared.mtls_aliases) = any.then_some(aliases);
    }

    /// Requires DPoP token requests to carry `nonce` (RFC 9449 §8), answering
    /// `use_dpop_nonce` with it otherwise; `None` stops requiring one.
    pub fn require_dpop_nonce(&self, nonce: Option<&str>) {
        *lock(&self.shared.dpop_nonce) = nonce.map(str::to_owned);
    }

    /// Registers a client for the token endpoint (`client_credentials` with
    /// `client_secret_basic` or `client_secret_post`).
    pub fn register_client(&self, client_id: &str, secret: &str) {
        lock(&self.shared.clients).insert(client_id.to_owned(), secret.to_owned());
    }

    /// Sets the lifetime (`expires_in`) of tokens from the token endpoint (default 300 s).
    pub fn set_token_ttl(&self, secs: u64) {
        *lock(&self.shared.token_ttl) = secs;
    }

    /// Token endpoint requests so far.
    pub fn token_requests(&self) -> usize {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    /// The token endpoint URL.
    pub fn token_url(&self) -> String {
        self.server.url("/token")
    }

    /// JWKS requests so far.
    pub fn jwks_requests(&self) -> usize {
        self.shared.jwks_requests.load(Ordering::SeqCst)
    }

    /// Discovery requests so far.
    pub fn discovery_requests(&self) -> usize {
        self.shared.discovery_requests.load(Ordering::SeqCst)
    }

    /// An opaque access token, answered by the introspection endpoint (RFC 7662) with the
    /// default members (`active: true`, `iss`, `sub` = `user-1`, `client_id` = `client-1`,
    /// `aud` = [`DEFAULT_AUDIENCE`], `iat` now, `exp` in 5 minutes, `token_type`); change
    /// anything before [`issue`](OpaqueTokenBuilder::issue).
    pub fn opaque_token(&self) -> OpaqueTokenBuilder<'_> {
        let now = now();
        let answer = json!({
            "active": true, "iss": self.issuer(), "sub": "user-1", "client_id": "client-1",
            "aud": DEFAULT_AUDIENCE, "iat": now, "exp": now + 300, "token_type": "Bearer",
        });
        OpaqueTokenBuilder {
            idp: self,
            answer: answer.as_object().cloned().unwrap_or_default(),
        }
    }

    /// Revokes an opaque token (RFC 7009): it is answered `{"active": false}` from now on.
    pub fn revoke(&self, token: &str) {
        lock(&self.shared.opaque).remove(token);
    }

    /// The introspection endpoint URL (also in the discovery document). It takes the
    /// registered clients' `client_secret_basic` or `client_secret_post`
    /// ([`register_client`](Self::register_client)), or a bearer token registered with
    /// [`register_introspection_bearer`](Self::register_introspection_bearer).
    pub fn introspection_url(&self) -> String {
        self.server.url("/introspect")
    }

    /// Lets `Authorization: Bearer <token>` authenticate introspection requests (servers
    /// that want a bearer token of the resource server rather than client credentials).
    pub fn register_introspection_bearer(&self, token: &str) {
        lock(&self.shared.introspection_bearers).push(token.to_owned());
    }

    /// Introspection requests so far.
    pub fn introspection_requests(&self) -> usize {
        self.shared.introspection_requests.load(Ordering::SeqCst)
    }
}

/// An opaque token being made by [`MockIdp::opaque_token`]: what the introspection endpoint
/// answers for it.
#[must_use]
pub struct OpaqueTokenBuilder<'a> {
    idp: &'a MockIdp,
    answer: Map<String, Value>,
}

impl OpaqueTokenBuilder<'_> {
    /// Sets a member of the answer (`"active": "yes"` too, for hostile shapes).
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.answer.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a member of the answer.
    pub fn without(mut self, name: &str) -> Self {
        self.answer.remove(name);
        self
    }

    /// Sets `exp` to now plus `secs` (negative for the past).
    pub fn expires_in(self, secs: i64) -> Self {
        let exp = now() as i64 + secs;
        self.claim("exp", exp)
    }

    /// Binds the token to `key` (`cnf.jkt`, RFC 9449 §6).
    pub fn dpop_bound(self, key: &crate::DpopKey) -> Self {
        self.claim("cnf", key.cnf())
    }

    /// Binds the token to a client certificate (`cnf.x5t#S256`, RFC 8705 §3).
    pub fn certificate_bound(self, certificate: &crate::TestCertificate) -> Self {
        self.claim("cnf", certificate.cnf())
    }

    /// Mints the token: a random string that means nothing but to the introspection endpoint.
    pub fn issue(self) -> String {
        let mut bytes = [0u8; 24];
        aws_lc_rs::rand::fill(&mut bytes).expect("random");
        let token = format!(
            "ot_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        lock(&self.idp.shared.opaque).insert(token.clone(), Value::Object(self.answer));
        token
    }
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 | Algorithm::ES384 => "es",
        Algorithm::EdDSA => "ed",
        Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512 => "ps",
        _ => "rs",
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A token being made by [`MockIdp::token`].
#[must_use]
pub struct TokenBuilder<'a> {
    idp: &'a MockIdp,
    alg: Algorithm,
    header: Header,
    claims: Map<String, Value>,
    key: Option<SigningKey>,
    kid: Option<Option<String>>,
}

impl TokenBuilder<'_> {
    /// Signs with the current key for `alg` (default RS256).
    pub fn alg(mut self, alg: Algorithm) -> Self {
        self.alg = alg;
        self
    }

    /// Signs with `key` instead of the provider's (a key the JWKS does not hold, say); the
    /// kid stays `key`'s unless set with [`kid`](Self::kid).
    pub fn key(mut self, key: SigningKey) -> Self {
        self.alg = key.alg;
        self.key = Some(key);
        self
    }

    /// Sets (or with `None`, removes) the header `kid`.
    pub fn kid(mut self, kid: Option<&str>) -> Self {
        self.kid = Some(kid.map(str::to_owned));
        self
    }

    /// Sets the header `typ` (default `JWT`).
    pub fn typ(mut self, typ: &str) -> Self {
        self.header.typ = Some(typ.to_owned());
        self
    }

    /// Edits the header directly (`jku`, `jwk`, `x5u`, `crit`...).
    pub fn header(mut self, edit: impl FnOnce(&mut Header)) -> Self {
        edit(&mut self.header);
        self
    }

    /// Sets a claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim.
    pub fn without(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets `exp` to now plus `secs` (negative for the past).
    pub fn expires_in(self, secs: i64) -> Self {
        let exp = now() as i64 + secs;
        self.claim("exp", exp)
    }

    /// Binds the token to `key` (`cnf.jkt`, RFC 9449 §6).
    pub fn dpop_bound(self, key: &crate::DpopKey) -> Self {
        self.claim("cnf", key.cnf())
    }

    /// Binds the token to a client certificate (`cnf.x5t#S256`, RFC 8705 §3).
    pub fn certificate_bound(self, certificate: &crate::TestCertificate) -> Self {
        self.claim("cnf", certificate.cnf())
    }

    /// Signs the token.
    pub fn sign(self) -> String {
        let key = self.key.unwrap_or_else(|| self.idp.signing_key(self.alg));
        let mut header = self.header;
        header.kid = match self.kid {
            Some(kid) => kid,
            None => Some(key.kid.clone()),
        };
        key.sign(header, &Value::Object(self.claims))
    }
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    shared.discovery_requests.fetch_add(1, Ordering::SeqCst);
    if let Some(res) = fault(&shared).await {
        return res;
    }
    let issuer = shared.issuer.get().cloned().unwrap_or_default();
    let claimed = lock(&shared.discovery_issuer)
        .clone()
        .unwrap_or_else(|| issuer.clone());
    let jwks_path = lock(&shared.jwks_path).clone();
    let mut document = json!({
        "issuer": claimed,
        "jwks_uri": format!("{issuer}{jwks_path}"),
        "token_endpoint": format!("{issuer}/token"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
    });
    if let Some(aliases) = lock(&shared.mtls_aliases).clone() {
        document["mtls_endpoint_aliases"] = aliases;
    }
    Json(document).into_response()
}

async fn jwks(State(shared): State<Arc<Shared>>, uri: axum::http::Uri) -> Response {
    if uri.path() != *lock(&shared.jwks_path) {
        return StatusCode::NOT_FOUND.into_response();
    }
    shared.jwks_requests.fetch_add(1, Ordering::SeqCst);
    if let Some(res) = fault(&shared).await {
        return res;
    }
    let mut keys: Vec<Value> = lock(&shared.published)
        .iter()
        .map(SigningKey::jwk)
        .collect();
    keys.extend(lock(&shared.extra_jwks).iter().cloned());
    let mut res = Json(json!({ "keys": keys })).into_response();
    if let Some(cc) = lock(&shared.cache_control).as_deref()
        && let Ok(value) = cc.parse()
    {
        res.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    res
}

/// `POST /token`: the client-credentials grant for registered clients; the token is signed
/// with the current RS256 key, `typ: at+jwt`, `aud` from `audience` or `resource`, and bound
/// to the key of a `DPoP` proof sent with the request (`token_type: DPoP`).
async fn token_endpoint(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> Response {
    shared.token_requests.fetch_add(1, Ordering::SeqCst);
    if let Some(res) = fault(&shared).await {
        return res;
    }
    let error =
        |status: StatusCode, code: &str| (status, Json(json!({ "error": code }))).into_response();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let Some(id) = client_of(&shared, &headers, &form) else {
        return error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    let jkt = match headers.get("dpop") {
        None => None,
        Some(proof) => match token_request_proof(&shared, proof) {
            Ok(jkt) => Some(jkt),
            Err(res) => return *res,
        },
    };
    let ttl = *lock(&shared.token_ttl);
    let now = now();
    let audience = form
        .get("audience")
        .or_else(|| form.get("resource"))
        .cloned();
    let mut claims = json!({
        "iss": shared.issuer.get().cloned().unwrap_or_default(),
        "sub": id, "client_id": id,
        "aud": audience.unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
        "scope": form.get("scope").cloned().unwrap_or_default(),
        "iat": now, "exp": now + ttl,
        "jti": format!("{now}-{}", shared.token_requests.load(Ordering::SeqCst)),
    });
    let key = lock(&shared.signing)
        .iter()
        .rev()
        .find(|k| k.alg == Algorithm::RS256)
        .cloned();
    let Some(key) = key else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
    };
    if let Some(jkt) = &jkt {
        claims["cnf"] = json!({ "jkt": jkt });
    }
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(key.kid.clone());
    Json(json!({
        "access_token": key.sign(header, &claims),
        "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": ttl,
    }))
    .into_response()
}

/// The thumbprint of the key of a token request's DPoP proof (RFC 9449 §5), checked as an
/// authorization server would: signature under its `jwk`, `typ`, `htm`, and the nonce when
/// one is required; else the answer to send.
fn token_request_proof(
    shared: &Shared,
    proof: &axum::http::HeaderValue,
) -> Result<String, Box<Response>> {
    let bad = |code: &str| {
        Box::new((StatusCode::BAD_REQUEST, Json(json!({ "error": code }))).into_response())
    };
    let proof = proof.to_str().map_err(|_| bad("invalid_dpop_proof"))?;
    let header = jsonwebtoken::decode_header(proof).map_err(|_| bad("invalid_dpop_proof"))?;
    let (Some(jwk), Some("dpop+jwt")) = (header.jwk.as_ref(), header.typ.as_deref()) else {
        return Err(bad("invalid_dpop_proof"));
    };
    ensure_provider();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|_| bad("invalid_dpop_proof"))?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<Value>(proof, &key, &validation)
        .map_err(|_| bad("invalid_dpop_proof"))?
        .claims;
    if claims["htm"] != "POST" {
        return Err(bad("invalid_dpop_proof"));
    }
    if let Some(nonce) = lock(&shared.dpop_nonce).clone()
        && claims["nonce"] != nonce.as_str()
    {
        let mut res = bad("use_dpop_nonce");
        if let Ok(value) = nonce.parse() {
            res.headers_mut().insert("dpop-nonce", value);
        }
        return Err(res);
    }
    jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
        .map_err(|_| bad("invalid_dpop_proof"))
}

/// The registered client a request authenticates as (`client_secret_basic` or
/// `client_secret_post`), if any.
fn client_of(
    shared: &Shared,
    headers: &axum::http::HeaderMap,
    form: &std::collections::HashMap<String, String>,
) -> Option<String> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_owned(), b.to_owned())));
    let (id, secret) = match basic {
        Some(pair) => pair,
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    (!secret.is_empty() && lock(&shared.clients).get(&id) == Some(&secret)).then_some(id)
}

/// `POST /introspect` (RFC 7662 §2): for a registered client, the answer stored for the
/// token, or `{"active": false}`.
async fn introspection_endpoint(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> Response {
    shared.introspection_requests.fetch_add(1, Ordering::SeqCst);
    if let Some(res) = fault(&shared).await {
        return res;
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| lock(&shared.introspection_bearers).iter().any(|b| b == t));
    if !bearer && client_of(&shared, &headers, &form).is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    let token = form.get("token").cloned().unwrap_or_default();
    let answer = lock(&shared.opaque).get(&token).cloned();
    Json(answer.unwrap_or_else(|| json!({ "active": false }))).into_response()
}

/// `body` as a stream of `size`-byte chunks: no `Content-Length`, so sent chunked.
fn streamed(body: Vec<u8>, size: usize) -> axum::body::Body {
    let chunks: Vec<Result<Vec<u8>, std::convert::Infallible>> =
        body.chunks(size.max(1)).map(|c| Ok(c.to_vec())).collect();
    axum::body::Body::from_stream(futures_util::stream::iter(chunks))
}

/// Under [`IdpFault::Chunked`], re-sends every answer in chunks.
async fn chunked(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let Some(IdpFault::Chunked(size)) = lock(&shared.fault).clone() else {
        return response;
    };
    let (mut parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, streamed(body.to_vec(), size))
}

async fn fault(shared: &Shared) -> Option<Response> {
    let fault = lock(&shared.fault).clone()?;
    match fault {
        IdpFault::Status(code) => Some(
            StatusCode::from_u16(code)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response(),
        ),
        IdpFault::Delay(d) => {
            tokio::time::sleep(d).await;
            None
        }
        IdpFault::Garbage => Some((StatusCode::OK, "{\"keys\": [").into_response()),
        IdpFault::Html => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>502 Bad Gateway</body></html>",
            )
                .into_response(),
        ),
        IdpFault::Huge => {
            let filler = "x".repeat(2 * 1024 * 1024);
            let body = json!({ "keys": [], "pad": filler })
                .to_string()
                .into_bytes();
            Some((StatusCode::OK, streamed(body, 64 * 1024)).into_response())
        }
        IdpFault::Chunked(_) => None,
        IdpFault::Redirect(to) => {
            Some((StatusCode::FOUND, [(header::LOCATION, to)]).into_response())
        }
    }
}
