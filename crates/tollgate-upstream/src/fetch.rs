//! [`Upstream`]: the one way tollgate sends a request to anyone (a key service, a JWKS, a
//! discovery document, a token or introspection endpoint): never following a redirect, with a
//! timeout, a size cap on what is read, a circuit breaker, and a retry only when the request
//! provably reached no server.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use tollgate_core::telemetry::{Family, Gauge, Histogram, Labels, Lazy};

use crate::{Breaker, BreakerPolicy};

/// Why an upstream could not give an answer. Never contains a credential or a URL (which may
/// carry secrets in its query). Every variant makes a verdict a 503 with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// No answer in time.
    #[error("the upstream did not answer in time")]
    Timeout,
    /// The connection could not be made.
    #[error("the upstream could not be reached")]
    Connect,
    /// The upstream answered with a status that is not an answer (its own 401, 429, 5xx...).
    #[error("the upstream answered with status {0}")]
    Status(u16),
    /// The upstream answered with a redirect, which is never followed.
    #[error("the upstream answered with a redirect, which is not followed")]
    Redirected,
    /// The answer is larger than the cap.
    #[error("the upstream's answer is too large")]
    TooLarge,
    /// The answer could not be read.
    #[error("the upstream answered something unreadable: {0}")]
    Malformed(String),
    /// The upstream is known to be down (its breaker is open); try again after this long.
    #[error("the upstream is unavailable")]
    Unavailable {
        /// When to try again.
        retry_after: Duration,
    },
    /// Another failure (for verifiers of your own).
    #[error("{0}")]
    Other(String),
}

impl UpstreamError {
    /// A short name for counters and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Timeout => "timeout",
            UpstreamError::Connect => "connect",
            UpstreamError::Status(_) => "status",
            UpstreamError::Redirected => "redirect",
            UpstreamError::TooLarge | UpstreamError::Malformed(_) => "malformed",
            UpstreamError::Unavailable { .. } => "unavailable",
            UpstreamError::Other(_) => "other",
        }
    }

    /// When to try again, when the upstream said or the breaker knows.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::Unavailable { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// Sorts a `reqwest` failure; the URL is dropped.
    fn from_reqwest(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            UpstreamError::Timeout
        } else if e.is_connect() {
            UpstreamError::Connect
        } else if e.is_redirect() {
            UpstreamError::Redirected
        } else if e.is_body() || e.is_decode() {
            UpstreamError::Malformed("the body could not be read".into())
        } else {
            UpstreamError::Other("the request failed".into())
        }
    }
}

/// What an upstream answered: status, headers and the whole body (read up to the cap).
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Fetched {
    /// `self` if the status is 2xx, else [`UpstreamError::Status`].
    pub fn success(self) -> Result<Self, UpstreamError> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(UpstreamError::Status(self.status.as_u16()))
        }
    }

    /// The body as JSON of type `T`. The text is checked as UTF-8 once, in one pass
    /// (`serde_json::from_slice` would check each string on its own); the error says what
    /// is wrong by category only, since serde_json's messages quote what they choke on and an
    /// answer could echo a credential.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, UpstreamError> {
        parse_json(&self.body)
    }
}

/// Reads JSON the way [`Fetched::json`] does (for parsers that get bytes elsewhere, such as
/// fuzz targets).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, UpstreamError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| UpstreamError::Malformed("not the expected JSON (not UTF-8)".into()))?;
    serde_json::from_str(text).map_err(|e| {
        let problem = match e.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "wrong types",
            serde_json::error::Category::Eof => "truncated",
        };
        UpstreamError::Malformed(format!("not the expected JSON ({problem})"))
    })
}

/// The client tollgate builds when it is given none: rustls, keep-alive, **no redirects**,
/// and no timeout of its own (each request sets one).
static DEFAULT_CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
    crate::tls::ensure_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .expect("tollgate's HTTP client could not be built (TLS backend)")
});

/// The default timeout of one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The default cap on what is read from an upstream.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

/// One upstream and how it is asked: the client, a timeout per request, a cap on the body,
/// and a [`Breaker`]. Cheap to clone; clones share the breaker.
///
/// - **Redirects are never followed.** tollgate's own client is built without them, and a 3xx
///   answer is an [`UpstreamError::Redirected`]. A client you pass in with
///   [`client`](Self::client) may follow them (build it with
///   `.redirect(reqwest::redirect::Policy::none())`); a followed redirect is still detected
///   (the answer's URL is not the one asked) and refused the same way, though the request has
///   then reached the other host.
/// - **Every read is capped** ([`max_body`](Self::max_body)), by `Content-Length` first and
///   while reading.
/// - **A request is sent again only when it provably reached no server**: the connection to
///   the URL asked was refused or could not be made (once, with tollgate's own client).
///   Timeouts and resets after sending are never retried, nor is anything sent through a
///   client passed in, which may have followed a redirect to where the connection failed.
/// - **Outages are answered at once**: after a timeout, or consecutive failures, the breaker
///   opens and [`send`](Self::send) fails at once with [`UpstreamError::Unavailable`] until a
///   probe succeeds.
///
/// ```
/// use std::time::Duration;
/// use tollgate_upstream::Upstream;
///
/// let keys = Upstream::new("key service")
///     .timeout(Duration::from_secs(1))
///     .max_body(16 * 1024);
/// # let _ = keys;
/// ```
#[derive(Clone)]
pub struct Upstream {
    client: reqwest::Client,
    /// Whether the client is ours (built without redirects).
    own_client: bool,
    timeout: Duration,
    max_body: usize,
    breaker: Arc<Breaker>,
    what: Arc<str>,
    meters: Arc<Meters>,
}

/// An upstream's metrics (feature `metrics` of tollgate-core): its requests by result
/// (`tollgate_upstream_requests_total`), their duration, and its breaker's state
/// (`tollgate_breaker_transitions_total`, `tollgate_breaker_open`). [`Upstream`] keeps one;
/// an upstream that is not HTTP (Redis) keeps its own, so every upstream is counted alike.
///
/// ```
/// use std::time::Duration;
/// use tollgate_upstream::Meters;
///
/// let meters = Meters::new("redis", None);
/// meters.request("ok", Some(Duration::from_micros(80)));
/// meters.breaker(true);
/// ```
#[derive(Debug)]
pub struct Meters {
    target: &'static str,
    issuer: Option<Arc<str>>,
    requests: Family<&'static str>,
    duration: Lazy<Histogram>,
    transitions: Family<&'static str>,
    open: Lazy<Gauge>,
}

impl Meters {
    /// The metrics of the upstream `target` (a bounded name: `key_service`, `jwks`, `redis`)
    /// of `issuer`, if it belongs to one.
    pub fn new(target: &'static str, issuer: Option<Arc<str>>) -> Self {
        Meters {
            target,
            issuer,
            requests: Family::counters("tollgate_upstream_requests_total"),
            duration: Lazy::default(),
            transitions: Family::counters("tollgate_breaker_transitions_total"),
            open: Lazy::default(),
        }
    }

    fn labels(&self) -> Labels {
        vec![
            ("target", self.target.into()),
            ("issuer", self.issuer.as_deref().unwrap_or("").into()),
        ]
    }

    /// One request and its `result` (`ok`, `timeout`, `unavailable` when the open breaker
    /// refused it...), with how long it took if it was sent.
    pub fn request(&self, result: &'static str, took: Option<Duration>) {
        let labels = |result: &&'static str| {
            let mut labels = self.labels();
            labels.push(("result", (*result).into()));
            labels
        };
        self.requests.with(result, labels, |c| c.increment());
        if let Some(took) = took {
            let name = "tollgate_upstream_request_duration_seconds";
            self.duration
                .with(name, || self.labels(), |h| h.record(took.as_secs_f64()));
        }
    }

    /// The breaker opened (`true`) or closed.
    pub fn breaker(&self, open: bool) {
        let state = if open { "open" } else { "closed" };
        let labels = |state: &&'static str| {
            let mut labels = self.labels();
            labels.push(("state", (*state).into()));
            labels
        };
        self.transitions.with(state, labels, |c| c.increment());
        let gauge = "tollgate_breaker_open";
        self.open.with(
            gauge,
            || self.labels(),
            |g| g.set(if open { 1.0 } else { 0.0 }),
        );
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("what", &self.what)
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// An upstream described by `what` (for logs: "key service", "JWKS of https://idp"), with
    /// tollgate's client, a 2 s timeout, a 64 KiB cap and the default breaker.
    pub fn new(what: impl Into<Arc<str>>) -> Self {
        let what = what.into();
        Upstream {
            client: DEFAULT_CLIENT.clone(),
            own_client: true,
            timeout: DEFAULT_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
            breaker: Arc::new(Breaker::new(&*what, BreakerPolicy::default())),
            what,
            meters: Arc::new(Meters::new("custom", None)),
        }
    }

    /// The `target` label of this upstream's metrics (default: `custom`): tollgate's own are
    /// `key_service`, `jwks`, `token_endpoint` and `introspection`.
    pub fn target(mut self, target: &'static str) -> Self {
        self.meters = Arc::new(Meters::new(target, self.meters.issuer.clone()));
        self
    }

    /// The `issuer` label of this upstream's metrics (default: none): the configured issuer
    /// whose JWKS or introspection endpoint this is.
    pub fn issuer(mut self, issuer: impl Into<Arc<str>>) -> Self {
        self.meters = Arc::new(Meters::new(self.meters.target, Some(issuer.into())));
        self
    }

    /// Uses your `reqwest` client (custom CA, mTLS, proxy). Build it with
    /// `.redirect(reqwest::redirect::Policy::none())`: tollgate refuses any answer that was
    /// redirected, but a client that follows redirects has by then sent the request (and
    /// what it carries) to the other host. Set no timeout on it, or a longer one: the
    /// per-request timeout here applies.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self.own_client = false;
        self
    }

    /// The timeout of one request, from connecting to the end of the body (default: 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest body read, in bytes (default: 64 KiB); a larger one is
    /// [`UpstreamError::TooLarge`].
    pub fn max_body(mut self, max: usize) -> Self {
        self.max_body = max;
        self
    }

    /// When the breaker opens and how soon it probes (default: [`BreakerPolicy::default`]).
    pub fn breaker(mut self, policy: BreakerPolicy) -> Self {
        self.breaker = Arc::new(Breaker::new(&*self.what, policy));
        self
    }

    /// The breaker, for its state.
    pub fn breaker_state(&self) -> &Breaker {
        &self.breaker
    }

    /// The configured timeout.
    pub fn configured_timeout(&self) -> Duration {
        self.timeout
    }

    /// A GET to `url`, to pass to [`send`](Self::send).
    pub fn get(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.client.get(url)
    }

    /// A POST to `url`, to pass to [`send`](Self::send). A [`reqwest::Url`] parsed once
    /// saves parsing it again for every request.
    pub fn post(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.client.post(url)
    }

    /// Sends `request` and reads the answer with `read`, which decides whether it is an
    /// answer (`Ok`, even a refusal) or a failure (`Err`: a status that is no answer, a body
    /// that does not parse). The breaker counts what `read` decides; while it is open, this
    /// fails at once.
    pub async fn send<T>(
        &self,
        request: reqwest::RequestBuilder,
        read: impl FnOnce(Fetched) -> Result<T, UpstreamError>,
    ) -> Result<T, UpstreamError> {
        let permit = match self.breaker.permit() {
            Ok(permit) => permit,
            Err(retry_after) => {
                // No request is sent: counted, but with no duration.
                self.meters.request("unavailable", None);
                return Err(UpstreamError::Unavailable { retry_after });
            }
        };
        let started = Instant::now();
        let result = match self.fetch(request).await {
            Ok(fetched) => read(fetched),
            Err(e) => Err(e),
        };
        let took = Some(started.elapsed());
        match &result {
            Ok(_) => {
                self.meters.request("ok", took);
                if permit.succeeded() {
                    self.meters.breaker(false);
                }
            }
            Err(e) => {
                tracing::debug!(upstream = %self.what, error = %e, "upstream request failed");
                self.meters.request(e.kind(), took);
                if permit.failed(matches!(e, UpstreamError::Timeout)) {
                    self.meters.breaker(true);
                }
            }
        }
        result
    }

    async fn fetch(&self, request: reqwest::RequestBuilder) -> Result<Fetched, UpstreamError> {
        let request = request
            .timeout(self.timeout)
            .build()
            .map_err(|_| UpstreamError::Other("the request could not be built".into()))?;
        // Our client follows no redirect, so only a user's client needs the URL asked kept,
        // to tell a followed one; a copy to send again exists only where a retry may happen.
        let (asked, again) = if self.own_client {
            (None, request.try_clone())
        } else {
            (Some(request.url().clone()), None)
        };
        let response = match self.client.execute(request).await {
            // Retried only when the connection to the URL asked could not be made: then no
            // server saw the request. With a client of the user's, which may have followed a
            // redirect to where the connection failed, that cannot be known: no retry.
            Err(e) if e.is_connect() => match again {
                Some(again) => self.client.execute(again).await,
                None => Err(e),
            },
            other => other,
        }
        .map_err(|e| UpstreamError::from_reqwest(&e))?;
        let mut response = response;
        let followed = asked.is_some_and(|asked| response.url() != &asked);
        if followed {
            tracing::warn!(upstream = %self.what, "the HTTP client followed a redirect; refused (disable redirects on the client)");
        }
        if followed || response.status().is_redirection() {
            return Err(UpstreamError::Redirected);
        }
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let body = read_capped(response, self.max_body).await?;
        Ok(Fetched {
            status,
            headers,
            body,
        })
    }
}

async fn read_capped(mut response: reqwest::Response, max: usize) -> Result<Bytes, UpstreamError> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(UpstreamError::TooLarge);
    }
    let mut next = async || {
        response
            .chunk()
            .await
            .map_err(|e| UpstreamError::from_reqwest(&e))
    };
    // A small answer is one chunk, kept as it came; only a longer one is copied together.
    let Some(first) = next().await? else {
        return Ok(Bytes::new());
    };
    if first.len() > max {
        return Err(UpstreamError::TooLarge);
    }
    let mut body: Option<Vec<u8>> = None;
    let mut len = first.len();
    while let Some(chunk) = next().await? {
        len += chunk.len();
        if len > max {
            return Err(UpstreamError::TooLarge);
        }
        body.get_or_insert_with(|| first.to_vec())
            .extend_from_slice(&chunk);
    }
    Ok(body.map_or(first, Bytes::from))
}
