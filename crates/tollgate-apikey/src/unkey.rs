//! [`UnkeyVerifier`]: Unkey's v2 `keys.verifyKey`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use tollgate_upstream::{BreakerPolicy, Upstream, UpstreamError};

use crate::{Denial, KeyInfo, KeyVerifier, Verdict};

/// Verifies keys with Unkey's v2 API: `POST {base}/v2/keys.verifyKey` with the root key as
/// bearer.
///
/// The key's `permissions` and `roles` become the principal's scopes, its `keyId` the
/// subject, and `{"name", "meta", "identity", "credits", "owner"}` (those present) its data;
/// `owner` is the identity's `externalId`.
/// Codes map to statuses as [`Denial`] says; unknown codes and fields are tolerated. Unkey's
/// own non-200 answers (a bad root key, its API rate limit, 5xx), redirects (never followed),
/// answers over 64 KiB and timeouts are upstream failures: 503, never the client's fault. The
/// call goes through tollgate's fetch path ([`Upstream`]): while Unkey is known to be down,
/// requests that need it are answered at once.
///
/// ```
/// use std::time::Duration;
/// use tollgate_apikey::UnkeyVerifier;
///
/// let verifier = UnkeyVerifier::new("unkey_root_key")
///     .base_url("http://127.0.0.1:8787")
///     .timeout(Duration::from_secs(1))
///     .permissions("orders.read");
/// assert!(!format!("{verifier:?}").contains("unkey_root_key"));
/// ```
#[derive(Clone)]
pub struct UnkeyVerifier {
    upstream: Upstream,
    url: String,
    headers: HeaderMap,
    permissions: Option<String>,
    tags: Vec<String>,
}

/// Unkey's hosted API.
pub const UNKEY_BASE_URL: &str = "https://api.unkey.com";

impl UnkeyVerifier {
    /// Verifies against Unkey's hosted API with `root_key` (which needs the `verify_key`
    /// permission).
    pub fn new(root_key: impl AsRef<str>) -> Self {
        let mut headers = HeaderMap::new();
        if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", root_key.as_ref())) {
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        UnkeyVerifier {
            upstream: Upstream::new("Unkey").target("key_service"),
            url: format!("{UNKEY_BASE_URL}/v2/keys.verifyKey"),
            headers,
            permissions: None,
            tags: Vec::new(),
        }
    }

    /// Sets the API base (default: [`UNKEY_BASE_URL`]), for self-hosted Unkey and tests.
    pub fn base_url(mut self, base: impl AsRef<str>) -> Self {
        self.url = format!("{}/v2/keys.verifyKey", base.as_ref().trim_end_matches('/'));
        self
    }

    /// Uses your `reqwest` client (custom CA, proxy...). Default: a shared rustls client with
    /// keep-alive and no redirects. Build yours with
    /// `.redirect(reqwest::redirect::Policy::none())`: a redirected answer is refused either
    /// way, but a client that follows one has already re-sent the key to the other host.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.upstream = self.upstream.client(client);
        self
    }

    /// Sets the timeout of one verification (default: 2 s). On timeout the request gets 503,
    /// and the breaker opens.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.upstream = self.upstream.timeout(timeout);
        self
    }

    /// When Unkey counts as down, and how soon it is probed again (default:
    /// [`BreakerPolicy::default`]: 5 failures in a row or one timeout; a probe every 2 s).
    pub fn breaker(mut self, policy: BreakerPolicy) -> Self {
        self.upstream = self.upstream.breaker(policy);
        self
    }

    /// Asks Unkey to check a permission query (`"orders.read AND orders.write"`) on every
    /// key (default: none). Keys without it get 403.
    pub fn permissions(mut self, query: impl Into<String>) -> Self {
        self.permissions = Some(query.into());
        self
    }

    /// Sends tags for Unkey's analytics (default: none; at most 20 are sent).
    pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.tags = tags.into_iter().take(20).map(Into::into).collect();
        self
    }
}

impl fmt::Debug for UnkeyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnkeyVerifier")
            .field("url", &self.url)
            .field("upstream", &self.upstream)
            .field("permissions", &self.permissions)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Request<'a> {
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
}

#[derive(Deserialize)]
struct Response {
    data: Data,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    valid: bool,
    code: String,
    key_id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    meta: Value,
    expires: Option<i64>,
    #[serde(default)]
    credits: Value,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    identity: Value,
    #[serde(default)]
    ratelimits: Vec<RateLimit>,
}

#[derive(Deserialize)]
struct RateLimit {
    reset: Option<i64>,
    #[serde(default)]
    exceeded: bool,
}

fn from_millis(ms: i64) -> Option<SystemTime> {
    UNIX_EPOCH.checked_add(Duration::from_millis(u64::try_from(ms).ok()?))
}

impl Data {
    fn into_verdict(self) -> Result<Verdict, UpstreamError> {
        if !self.valid {
            let reset = self
                .ratelimits
                .iter()
                .filter(|r| r.exceeded)
                .filter_map(|r| r.reset.and_then(from_millis))
                .max();
            return Ok(Verdict::Invalid(Denial::from_code(&self.code, reset)));
        }
        if self.code != "VALID" {
            return Err(UpstreamError::Malformed(
                "valid is true but the code is not VALID".into(),
            ));
        }
        let key_id = self
            .key_id
            .ok_or_else(|| UpstreamError::Malformed("a valid key without keyId".into()))?;
        let owner = self
            .identity
            .get("externalId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut info = KeyInfo::new(key_id)
            .scopes(self.permissions.iter().chain(&self.roles))
            .meta(Value::Object(
                [
                    ("name", self.name.map_or(Value::Null, Value::String)),
                    ("meta", self.meta),
                    ("identity", self.identity),
                    ("credits", self.credits),
                ]
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            ));
        if let Some(owner) = owner {
            info = info.owner(owner);
        }
        if let Some(at) = self.expires.and_then(from_millis) {
            info = info.expires_at(at);
        }
        Ok(Verdict::Valid(info))
    }
}

/// Reads an Unkey answer body as `verify` does (for the fuzz targets).
#[cfg(feature = "fuzzing")]
pub(crate) fn parse_answer(bytes: &[u8]) -> Result<Verdict, UpstreamError> {
    tollgate_upstream::parse_json::<Response>(bytes)?
        .data
        .into_verdict()
}

impl KeyVerifier for UnkeyVerifier {
    async fn verify(&self, key: &str) -> Result<Verdict, UpstreamError> {
        let body = Request {
            key,
            permissions: self.permissions.as_deref(),
            tags: &self.tags,
        };
        let request = self
            .upstream
            .post(&self.url)
            .headers(self.headers.clone())
            .json(&body);
        self.upstream
            .send(request, |answer| {
                answer.success()?.json::<Response>()?.data.into_verdict()
            })
            .await
    }
}
