//! [`ClientCredentials`]: who this service is to the token endpoint, and one token request
//! (RFC 6749 §4.4), with timeouts and retries; [`TokenError`] for what can go wrong.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use tollgate_upstream::{BreakerPolicy, Fetched, ServerMetadata, Upstream, UpstreamError};

use crate::DpopKey;
use crate::dpop::{DPOP, DPOP_NONCE};

/// Why no token could be had. The outgoing request fails with it; it is never sent without a
/// token. Never contains the client secret or a token.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The token endpoint refused us (`invalid_client`, `invalid_scope`, `unauthorized_client`...):
    /// a configuration problem, not retried.
    #[error("the token endpoint refused the request: {error}")]
    Rejected {
        /// The OAuth error code (RFC 6749 §5.2).
        error: String,
    },
    /// The endpoint could not be reached, timed out, answered 5xx or a redirect (never
    /// followed), or is known to be down.
    #[error("the token endpoint is unavailable: {0}")]
    Unavailable(String),
    /// The endpoint answered something that is not a token response.
    #[error("the token endpoint answered something unreadable")]
    Malformed,
    /// Discovery of the token endpoint failed.
    #[error("discovery of the token endpoint failed: {0}")]
    Discovery(String),
}

impl TokenError {
    /// Whether trying again later may help (the endpoint is down), as opposed to a
    /// configuration error.
    pub fn is_transient(&self) -> bool {
        matches!(self, TokenError::Unavailable(_) | TokenError::Discovery(_))
    }
}

/// How the client proves itself to the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2).
#[derive(Clone)]
pub(crate) enum ClientAuth {
    /// The `Authorization: Basic` value, made once (sensitive).
    SecretBasic(http::HeaderValue),
    SecretPost(String),
    PrivateKeyJwt {
        key: EncodingKey,
        alg: Algorithm,
        kid: Option<String>,
    },
    /// The TLS client certificate of the HTTP client (RFC 8705 §2).
    TlsCertificate,
}

#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    Url(String),
    Discover(String),
}

/// A client of an OAuth 2.0 authorization server, allowed the `client_credentials` grant.
///
/// ```
/// use std::time::Duration;
/// use tollgate_client::ClientCredentials;
///
/// let client = ClientCredentials::new("orders-service")
///     .secret_basic("s3cret")
///     .token_endpoint("https://login.example.com/oauth/token")
///     .timeout(Duration::from_secs(3));
/// assert!(!format!("{client:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct ClientCredentials {
    pub(crate) client_id: String,
    pub(crate) auth: ClientAuth,
    pub(crate) endpoint: Endpoint,
    pub(crate) resolved: std::sync::Arc<OnceLock<String>>,
    pub(crate) upstream: Upstream,
    pub(crate) retries: u32,
    pub(crate) backoff: Duration,
    pub(crate) audience_param: &'static str,
    pub(crate) dpop: Option<DpopKey>,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            ClientAuth::SecretBasic(_) => "client_secret_basic",
            ClientAuth::SecretPost(_) => "client_secret_post",
            ClientAuth::PrivateKeyJwt { .. } => "private_key_jwt",
            ClientAuth::TlsCertificate => "tls_client_auth",
        };
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("auth", &auth)
            .field("endpoint", &self.endpoint)
            .field("upstream", &self.upstream)
            .field("dpop", &self.dpop)
            .finish_non_exhaustive()
    }
}

/// A token from the endpoint.
#[derive(Clone)]
pub(crate) struct AccessToken {
    /// The `Authorization` value: `Bearer <token>` or `DPoP <token>`.
    pub(crate) value: http::HeaderValue,
    pub(crate) lifetime: Duration,
    /// Whether the server bound it to the DPoP key (`token_type: DPoP`).
    pub(crate) bound: bool,
}

impl AccessToken {
    /// The token itself, without its scheme.
    pub(crate) fn token(&self) -> &str {
        self.value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .map_or("", |(_, token)| token)
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

impl ClientCredentials {
    /// A client with id `client_id`; set how it authenticates and where its token endpoint
    /// is before use (defaults: `client_secret_basic` with an empty secret is not useful).
    pub fn new(client_id: impl Into<String>) -> Self {
        let client = ClientCredentials {
            client_id: client_id.into(),
            auth: ClientAuth::SecretPost(String::new()),
            endpoint: Endpoint::Url(String::new()),
            resolved: Default::default(),
            upstream: Upstream::new("token endpoint")
                .target("token_endpoint")
                .timeout(Duration::from_secs(5)),
            retries: 2,
            backoff: Duration::from_millis(200),
            audience_param: "audience",
            dpop: None,
        };
        client.secret_basic(String::new())
    }

    /// Authenticates with the secret in HTTP Basic (`client_secret_basic`, the default method).
    pub fn secret_basic(mut self, secret: impl Into<String>) -> Self {
        // RFC 6749 §2.3.1: the id and secret are form-encoded before Basic encoding.
        let pair = format!(
            "{}:{}",
            form_encode(&self.client_id),
            form_encode(&secret.into())
        );
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        );
        self.auth = match http::HeaderValue::try_from(basic) {
            Ok(mut value) => {
                value.set_sensitive(true);
                ClientAuth::SecretBasic(value)
            }
            // Form-encoding and base64 leave only visible ASCII: unreachable in practice.
            Err(_) => ClientAuth::SecretPost(String::new()),
        };
        self
    }

    /// Authenticates with the secret in the form body (`client_secret_post`).
    pub fn secret_post(mut self, secret: impl Into<String>) -> Self {
        self.auth = ClientAuth::SecretPost(secret.into());
        self
    }

    /// Authenticates with a JWT assertion signed by `key` (`private_key_jwt`, RFC 7523): `iss`
    /// and `sub` the client id, `aud` the token endpoint, a one-minute life, a fresh `jti`.
    pub fn private_key_jwt(
        mut self,
        key: EncodingKey,
        alg: Algorithm,
        kid: Option<String>,
    ) -> Self {
        self.auth = ClientAuth::PrivateKeyJwt { key, alg, kid };
        self
    }

    /// Authenticates with the TLS client certificate of the HTTP client (`tls_client_auth`
    /// or `self_signed_tls_client_auth`, RFC 8705 §2; the same on the wire): the form names
    /// the client, the certificate proves it. Give the client a certificate with
    /// [`http_client`](Self::http_client); a server that binds tokens to it (RFC 8705 §3)
    /// accepts them only over connections with that certificate, so send your requests
    /// through the same client.
    ///
    /// ```no_run
    /// use tollgate_client::{ClientAuthLayer, ClientCredentials, TokenSource};
    ///
    /// # fn run(cert_and_key_pem: &[u8]) -> Result<(), reqwest::Error> {
    /// let http = reqwest::Client::builder()
    ///     .identity(reqwest::Identity::from_pem(cert_and_key_pem)?)
    ///     .redirect(reqwest::redirect::Policy::none())
    ///     .build()?;
    /// let client = ClientCredentials::new("orders-worker")
    ///     .tls_client_auth()
    ///     .token_endpoint("https://mtls.login.example.com/oauth/token")
    ///     .http_client(http.clone());
    /// let orders = tower::ServiceBuilder::new()
    ///     .layer(ClientAuthLayer::token(TokenSource::new(client)).audience("orders-api"))
    ///     .service(http);
    /// # let _ = orders; Ok(()) }
    /// ```
    pub fn tls_client_auth(mut self) -> Self {
        self.auth = ClientAuth::TlsCertificate;
        self
    }

    /// The token endpoint URL.
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Endpoint::Url(url.into());
        self.resolved = Default::default();
        self
    }

    /// Finds the token endpoint in the issuer's discovery document (OIDC, then RFC 8414) on
    /// first use.
    pub fn discover(mut self, issuer: impl Into<String>) -> Self {
        self.endpoint = Endpoint::Discover(issuer.into());
        self.resolved = Default::default();
        self
    }

    /// Asks for DPoP-bound tokens (RFC 9449, default: bearer tokens): every token request
    /// carries a proof of `key` (retried once with the server's nonce when it asks for one),
    /// and [`ClientAuthLayer`](crate::ClientAuthLayer) sends a bound token as
    /// `Authorization: DPoP` with a fresh proof per request. A server that answers with a
    /// bearer token anyway is used as one.
    pub fn dpop(mut self, key: DpopKey) -> Self {
        self.dpop = Some(key);
        self
    }

    /// Sends the audience as `resource` (RFC 8707) instead of `audience` (the default,
    /// as Auth0 and others expect).
    pub fn audience_as_resource(mut self) -> Self {
        self.audience_param = "resource";
        self
    }

    /// Uses your `reqwest` client for token requests and discovery (default: tollgate's,
    /// which never follows redirects; build yours with
    /// `.redirect(reqwest::redirect::Policy::none())`, since a client that follows one sends
    /// the client's credentials to the other host before tollgate can refuse the answer).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.upstream = self.upstream.client(client);
        self
    }

    /// The timeout of one token request (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.upstream = self.upstream.timeout(timeout);
        self
    }

    /// When the token endpoint counts as down, and how soon it is probed again (default:
    /// [`BreakerPolicy::default`]); while it is down, token requests fail at once.
    pub fn breaker(mut self, policy: BreakerPolicy) -> Self {
        self.upstream = self.upstream.breaker(policy);
        self
    }

    /// Retries a token request that reached no server (the connection was refused or could
    /// not be made) up to `retries` times (default 2), waiting `backoff`, then twice as long
    /// each time (default 200 ms). A request that may have reached the endpoint (a timeout,
    /// a 5xx) is never sent again, nor is a refusal (4xx).
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    async fn endpoint(&self) -> Result<String, TokenError> {
        if let Some(url) = self.resolved.get() {
            return Ok(url.clone());
        }
        let url = match &self.endpoint {
            Endpoint::Url(url) => url.clone(),
            Endpoint::Discover(issuer) => self.discover_endpoint(issuer).await?,
        };
        Ok(self.resolved.get_or_init(|| url).clone())
    }

    async fn discover_endpoint(&self, issuer: &str) -> Result<String, TokenError> {
        let meta = ServerMetadata::discover(&self.upstream, issuer)
            .await
            .map_err(|e| TokenError::Discovery(e.to_string()))?;
        // A client that proves itself with its certificate uses the server's mTLS alias
        // when it has one (RFC 8705 §5).
        let alias = meta.mtls_endpoint_aliases.token_endpoint;
        alias
            .filter(|_| self.uses_tls_client_auth())
            .or(meta.token_endpoint)
            .ok_or_else(|| TokenError::Discovery("the document has no token_endpoint".into()))
    }

    /// Requests a token, retrying with backoff only requests that reached no server.
    pub(crate) async fn request(
        &self,
        audience: Option<&str>,
        scope: Option<&str>,
    ) -> Result<AccessToken, TokenError> {
        let endpoint = self.endpoint().await?;
        let mut delay = self.backoff;
        let mut attempt = 0;
        loop {
            match self.request_once(&endpoint, audience, scope).await {
                Err(Unanswered::NoServer) if attempt < self.retries => {
                    tracing::debug!(attempt, "token endpoint unreachable; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                Err(Unanswered::NoServer) => {
                    return Err(TokenError::Unavailable(reason(&UpstreamError::Connect)));
                }
                Err(Unanswered::Failed(e)) => return Err(e),
                Ok(token) => return Ok(token),
            }
        }
    }

    async fn request_once(
        &self,
        endpoint: &str,
        audience: Option<&str>,
        scope: Option<&str>,
    ) -> Result<AccessToken, Unanswered> {
        // A server that wants a DPoP nonce says so once; the request is then made again
        // with it (RFC 9449 §8).
        let mut nonce_retry = self.dpop.is_some();
        loop {
            let mut form: Vec<(&'static str, String)> =
                vec![("grant_type", "client_credentials".into())];
            if let Some(scope) = scope {
                form.push(("scope", scope.into()));
            }
            if let Some(audience) = audience {
                form.push((self.audience_param, audience.into()));
            }
            let mut req = self
                .authenticate(self.upstream.post(endpoint), &mut form, endpoint)
                .map_err(Unanswered::Failed)?;
            if let Some(key) = &self.dpop {
                let proof = key.proof_header("POST", endpoint, None).map_err(|e| {
                    Unanswered::Failed(TokenError::Rejected {
                        error: e.to_string(),
                    })
                })?;
                req = req.header(DPOP, proof);
            }
            let dpop = self.dpop.is_some();
            let answer = self
                .upstream
                .send(req.form(&form), |answer| read_token(answer, dpop))
                .await;
            let (token, nonce) = match answer {
                Ok(answer) => answer,
                Err(UpstreamError::Connect) => return Err(Unanswered::NoServer),
                Err(UpstreamError::Malformed(_) | UpstreamError::TooLarge) => {
                    return Err(Unanswered::Failed(TokenError::Malformed));
                }
                Err(e) => return Err(Unanswered::Failed(TokenError::Unavailable(reason(&e)))),
            };
            if let (Some(key), Some(nonce)) = (&self.dpop, &nonce) {
                key.remember_nonce(endpoint, nonce);
            }
            match token {
                Err(TokenError::Rejected { error })
                    if error == "use_dpop_nonce" && nonce.is_some() && nonce_retry =>
                {
                    nonce_retry = false;
                }
                token => return token.map_err(Unanswered::Failed),
            }
        }
    }

    /// Authenticates a form POST to `endpoint` as this client (RFC 6749 §2.3, RFC 7523 §2.2,
    /// RFC 8705 §2): HTTP Basic on `request`, or `client_id` and `client_secret`, or a
    /// `private_key_jwt` assertion whose `aud` is `endpoint`, or `client_id` alone (the
    /// HTTP client's certificate proves it), added to `form`. For every endpoint a client
    /// authenticates to: the token endpoint here, an introspection endpoint
    /// (tollgate-introspect).
    pub fn authenticate(
        &self,
        request: reqwest::RequestBuilder,
        form: &mut Vec<(&'static str, String)>,
        endpoint: &str,
    ) -> Result<reqwest::RequestBuilder, TokenError> {
        Ok(match &self.auth {
            ClientAuth::SecretBasic(basic) => {
                request.header(http::header::AUTHORIZATION, basic.clone())
            }
            ClientAuth::SecretPost(secret) => {
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_secret", secret.clone()));
                request
            }
            ClientAuth::PrivateKeyJwt { key, alg, kid } => {
                form.push(("client_id", self.client_id.clone()));
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push((
                    "client_assertion",
                    self.assertion(endpoint, key, *alg, kid.clone())?,
                ));
                request
            }
            ClientAuth::TlsCertificate => {
                form.push(("client_id", self.client_id.clone()));
                request
            }
        })
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Whether the client authenticates with its TLS certificate
    /// ([`tls_client_auth`](Self::tls_client_auth)): its discovered endpoints are then the
    /// server's `mtls_endpoint_aliases` where it has them (RFC 8705 §5).
    pub fn uses_tls_client_auth(&self) -> bool {
        matches!(self.auth, ClientAuth::TlsCertificate)
    }

    fn assertion(
        &self,
        endpoint: &str,
        key: &EncodingKey,
        alg: Algorithm,
        kid: Option<String>,
    ) -> Result<String, TokenError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = serde_json::json!({
            "iss": self.client_id, "sub": self.client_id, "aud": endpoint,
            "iat": now, "exp": now + 60, "jti": jti(),
        });
        let mut header = Header::new(alg);
        header.kid = kid;
        crate::crypto::ensure_provider();
        jsonwebtoken::encode(&header, &claims, key).map_err(|_| TokenError::Rejected {
            error: "the client assertion could not be signed".into(),
        })
    }
}

/// Why a token request got no token: it reached no server (and may be sent again), or it
/// failed otherwise.
enum Unanswered {
    NoServer,
    Failed(TokenError),
}

/// Reads a token endpoint's answer (RFC 6749 §5.1, §5.2): a 5xx is a failure of the
/// endpoint (counted by its breaker); a 4xx is a refusal, an answer like a token.
/// A token answer: the token or the refusal, and the DPoP nonce the server sent, if any.
type TokenAnswer = (Result<AccessToken, TokenError>, Option<http::HeaderValue>);

fn read_token(answer: Fetched, dpop: bool) -> Result<TokenAnswer, UpstreamError> {
    let nonce = answer.headers.get(&DPOP_NONCE).cloned();
    read_token_only(answer, dpop).map(|token| (token, nonce))
}

fn read_token_only(
    answer: Fetched,
    dpop: bool,
) -> Result<Result<AccessToken, TokenError>, UpstreamError> {
    let status = answer.status;
    if status.is_server_error() {
        return Err(UpstreamError::Status(status.as_u16()));
    }
    if !status.is_success() {
        let error = answer
            .json::<ErrorResponse>()
            .map(|e| e.error.chars().take(64).collect())
            .unwrap_or_else(|_| format!("status {}", status.as_u16()));
        return Ok(Err(TokenError::Rejected { error }));
    }
    let token: TokenResponse = answer.json()?;
    // A DPoP-bound token (RFC 9449 §5) only when we sent a proof.
    let bound = match token.token_type.as_deref() {
        None => false,
        Some(t) if t.eq_ignore_ascii_case("bearer") => false,
        Some(t) if dpop && t.eq_ignore_ascii_case("dpop") => true,
        Some(_) => return Ok(Err(TokenError::Malformed)),
    };
    let scheme = if bound { "DPoP" } else { "Bearer" };
    let Ok(mut value) = http::HeaderValue::try_from(format!("{scheme} {}", token.access_token))
    else {
        return Ok(Err(TokenError::Malformed));
    };
    value.set_sensitive(true);
    Ok(Ok(AccessToken {
        value,
        // Without expires_in, assume an hour (RFC 6749 leaves it to the server).
        lifetime: Duration::from_secs(token.expires_in.unwrap_or(3600)),
        bound,
    }))
}

/// A short reason for [`TokenError::Unavailable`].
fn reason(e: &UpstreamError) -> String {
    match e {
        UpstreamError::Timeout => "timeout".into(),
        UpstreamError::Connect => "connection failed".into(),
        UpstreamError::Status(status) => format!("status {status}"),
        UpstreamError::Redirected => "redirect (not followed)".into(),
        UpstreamError::Unavailable { .. } => "known to be down".into(),
        other => other.kind().into(),
    }
}

/// RFC 6749 §2.3.1: the id and secret are form-encoded before Basic encoding.
fn form_encode(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A unique `jti`: the time, a process counter and std's randomly keyed hasher.
pub(crate) fn jti() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!(
        "{:016x}{:016x}",
        h.finish(),
        COUNTER.load(Ordering::Relaxed)
    )
}
