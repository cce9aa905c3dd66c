//! [`JsonVerifier`]: a small documented protocol for teams with their own key service.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::upstream::{DEFAULT_TIMEOUT, default_client, post_json};
use crate::{Denial, KeyInfo, KeyVerifier, Verdict, VerifyError};

/// Verifies keys with your own service, in a small JSON protocol:
///
/// - request: `POST <url>` with body `{"key": "<the key>"}` and the extra headers you set;
/// - answer (status 200): `{"valid": bool, "key_id": str, "owner": str?, "scopes": [str]?,
///   "meta": any?, "expires_at": unix-seconds?, "code": str?}`; `key_id` is required when
///   `valid` is true; `code` (optional, Unkey's names such as `"DISABLED"`, `"RATE_LIMITED"`)
///   says why when it is false, `NOT_FOUND` when absent;
/// - any other status, or an answer that does not parse, is an upstream failure: 503.
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
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    timeout: Duration,
}

impl JsonVerifier {
    /// Verifies at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        JsonVerifier {
            client: default_client(),
            url: url.into(),
            headers: HeaderMap::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Adds a header to every call (a service token, say; it is kept out of `Debug`).
    pub fn header(mut self, name: HeaderName, mut value: HeaderValue) -> Self {
        value.set_sensitive(true);
        self.headers.append(name, value);
        self
    }

    /// Uses your `reqwest` client (default: a shared rustls client with keep-alive).
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    /// Sets the timeout of one verification (default: 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl fmt::Debug for JsonVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonVerifier")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
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
    async fn verify(&self, key: &str) -> Result<Verdict, VerifyError> {
        let answer: Answer = post_json(
            &self.client,
            &self.url,
            &self.headers,
            &Request { key },
            self.timeout,
        )
        .await?;
        answer.into_verdict()
    }
}

/// Reads a generic-protocol answer body as `verify` does (for the fuzz targets).
#[cfg(feature = "fuzzing")]
pub(crate) fn parse_answer(bytes: &[u8]) -> Result<Verdict, VerifyError> {
    crate::upstream::parse::<Answer>(bytes)?.into_verdict()
}

impl Answer {
    fn into_verdict(self) -> Result<Verdict, VerifyError> {
        if !self.valid {
            let code = self.code.as_deref().unwrap_or("NOT_FOUND");
            return Ok(Verdict::Invalid(Denial::from_code(code, None)));
        }
        let key_id = self
            .key_id
            .ok_or_else(|| VerifyError::Malformed("a valid key without key_id".into()))?;
        let mut info = KeyInfo::new(key_id).scopes(self.scopes).meta(self.meta);
        if let Some(owner) = self.owner {
            info = info.owner(owner);
        }
        if let Some(secs) = self.expires_at {
            let at = UNIX_EPOCH
                .checked_add(Duration::from_secs(secs))
                .ok_or_else(|| VerifyError::Malformed("expires_at is out of range".into()))?;
            info = info.expires_at(at);
        }
        Ok(Verdict::Valid(info))
    }
}
