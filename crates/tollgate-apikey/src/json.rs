//! [`JsonVerifier`]: a small documented protocol for teams with their own key service.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use tollgate_upstream::{BreakerPolicy, Upstream, UpstreamError};

use crate::{Denial, KeyInfo, KeyVerifier, Verdict};

/// Verifies keys with your own service, in a small JSON protocol:
///
/// - request: `POST <url>` with body `{"key": "<the key>"}` and the extra headers you set;
/// - answer (status 200): `{"valid": bool, "key_id": str, "owner": str?, "scopes": [str]?,
///   "meta": any?, "expires_at": unix-seconds?, "code": str?}`; `key_id` is required when
///   `valid` is true; `code` (optional, Unkey's names such as `"DISABLED"`, `"RATE_LIMITED"`)
///   says why when it is false, `NOT_FOUND` when absent;
/// - any other status, a redirect (never followed), an answer over 64 KiB or that does not
///   parse, or a timeout is an upstream failure: 503, through tollgate's fetch path
///   ([`Upstream`], with its breaker).
///
/// ```
/// use tollgate_apikey::JsonVerifier;
/// use http::{HeaderName, HeaderValue};
///
/// let verifier = JsonVerifier::new("http://keys.internal/verify")
///     .header(HeaderName::from_static("x-service-token"), HeaderValue::from_static("s3cret"));
/// assert!(!format!("{verifier:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct JsonVerifier {
    upstream: Upstream,
    url: String,
    headers: HeaderMap,
}

impl JsonVerifier {
    /// Verifies at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        JsonVerifier {
            upstream: Upstream::new("key service").target("key_service"),
            url: url.into(),
            headers: HeaderMap::new(),
        }
    }

    /// Adds a header to every call (a service token, say; it is kept out of `Debug`).
    pub fn header(mut self, name: HeaderName, mut value: HeaderValue) -> Self {
        value.set_sensitive(true);
        self.headers.append(name, value);
        self
    }

    /// Uses your `reqwest` client (default: a shared rustls client with keep-alive and no
    /// redirects; build yours with `.redirect(reqwest::redirect::Policy::none())`).
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.upstream = self.upstream.client(client);
        self
    }

    /// Sets the timeout of one verification (default: 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.upstream = self.upstream.timeout(timeout);
        self
    }

    /// When the service counts as down, and how soon it is probed again (default:
    /// [`BreakerPolicy::default`]).
    pub fn breaker(mut self, policy: BreakerPolicy) -> Self {
        self.upstream = self.upstream.breaker(policy);
        self
    }
}

impl fmt::Debug for JsonVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonVerifier")
            .field("url", &self.url)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Request<'a> {
    key: &'a str,
}

#[derive(Deserialize)]
struct Answer {
    valid: bool,
    key_id: Option<String>,
    owner: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    meta: Value,
    expires_at: Option<u64>,
    code: Option<String>,
}

impl KeyVerifier for JsonVerifier {
    async fn verify(&self, key: &str) -> Result<Verdict, UpstreamError> {
        let request = self
            .upstream
            .post(&self.url)
            .headers(self.headers.clone())
            .json(&Request { key });
        self.upstream
            .send(request, |answer| {
                answer.success()?.json::<Answer>()?.into_verdict()
            })
            .await
    }
}

/// Reads a generic-protocol answer body as `verify` does (for the fuzz targets).
#[cfg(feature = "fuzzing")]
pub(crate) fn parse_answer(bytes: &[u8]) -> Result<Verdict, UpstreamError> {
    tollgate_upstream::parse_json::<Answer>(bytes)?.into_verdict()
}

impl Answer {
    fn into_verdict(self) -> Result<Verdict, UpstreamError> {
        if !self.valid {
            let code = self.code.as_deref().unwrap_or("NOT_FOUND");
            return Ok(Verdict::Invalid(Denial::from_code(code, None)));
        }
        let key_id = self
            .key_id
            .ok_or_else(|| UpstreamError::Malformed("a valid key without key_id".into()))?;
        let mut info = KeyInfo::new(key_id).scopes(self.scopes).meta(self.meta);
        if let Some(owner) = self.owner {
            info = info.owner(owner);
        }
        if let Some(secs) = self.expires_at {
            let at = UNIX_EPOCH
                .checked_add(Duration::from_secs(secs))
                .ok_or_else(|| UpstreamError::Malformed("expires_at is out of range".into()))?;
            info = info.expires_at(at);
        }
        Ok(Verdict::Valid(info))
    }
}
