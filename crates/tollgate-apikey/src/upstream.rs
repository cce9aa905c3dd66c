//! The one way tollgate talks to a key service: a JSON POST with a timeout, a size cap on the
//! answer, and a retry only when the request was never sent.

use std::time::Duration;

use http::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::VerifyError;

/// The largest answer read from a key service; a bigger one is treated as malformed.
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The default timeout of a verification call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// A client with rustls and keep-alive, and no timeout of its own (each call sets one).
pub(crate) fn default_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .unwrap_or_default()
}

/// POSTs `body` as JSON and reads a JSON answer of type `T` from a 200.
///
/// Retries once, only when the connection could not be made: verification may spend credits,
/// so a request that might have reached the service is never sent twice.
pub(crate) async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    headers: &HeaderMap,
    body: &B,
    timeout: Duration,
) -> Result<T, VerifyError> {
    let send = || {
        client
            .post(url)
            .headers(headers.clone())
            .json(body)
            .timeout(timeout)
            .send()
    };
    let response = match send().await {
        Err(e) if e.is_connect() => send().await,
        other => other,
    }
    .map_err(|e| VerifyError::from_reqwest(&e))?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(VerifyError::Status(status.as_u16()));
    }
    let bytes = read_capped(response).await?;
    parse(&bytes)
}

/// Reads a JSON answer. The text is checked as UTF-8 once, in one pass over all of it;
/// `serde_json::from_slice` would check each string it meets on its own.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, VerifyError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| VerifyError::Malformed("not the expected JSON (not UTF-8)".into()))?;
    serde_json::from_str(text).map_err(|e| {
        VerifyError::Malformed(format!("not the expected JSON ({})", json_problem(&e)))
    })
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, VerifyError> {
    let too_big = || VerifyError::Malformed("the answer is too large".into());
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| VerifyError::from_reqwest(&e))?
    {
        if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(too_big());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// What is wrong with an answer, by category only: serde_json's messages quote the values
/// they choke on, and an answer could echo the key.
fn json_problem(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "io",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "wrong types",
        serde_json::error::Category::Eof => "truncated",
    }
}
