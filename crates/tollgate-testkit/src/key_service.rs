//! [`MockKeyService`]: a key-verification service for tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::server::Server;

/// A key the mock service knows, and how it answers for it.
#[derive(Debug, Clone)]
pub struct MockKey {
    key_id: String,
    owner: Option<String>,
    permissions: Vec<String>,
    roles: Vec<String>,
    meta: Value,
    expires: Option<SystemTime>,
    enabled: bool,
    code: Option<String>,
    reset: Option<SystemTime>,
}

impl MockKey {
    /// A valid, enabled key with id `key_id`.
    pub fn new(key_id: impl Into<String>) -> Self {
        MockKey {
            key_id: key_id.into(),
            owner: None,
            permissions: Vec::new(),
            roles: Vec::new(),
            meta: Value::Null,
            expires: None,
            enabled: true,
            code: None,
            reset: None,
        }
    }

    /// Sets the owner (`identity.externalId` in Unkey's answer, `owner` in the generic one).
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Sets the permissions (the generic protocol's `scopes`).
    pub fn permissions<I: IntoIterator<Item = S>, S: Into<String>>(mut self, p: I) -> Self {
        self.permissions = p.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the roles (Unkey only; merged into scopes by tollgate).
    pub fn roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, r: I) -> Self {
        self.roles = r.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the metadata.
    pub fn meta(mut self, meta: Value) -> Self {
        self.meta = meta;
        self
    }

    /// Sets the expiry; past it the key answers `EXPIRED`.
    pub fn expires(mut self, at: SystemTime) -> Self {
        self.expires = Some(at);
        self
    }

    /// Disables the key (`DISABLED`).
    pub fn disabled(mut self) -> Self {
        self.enabled = false;
        self
    }

    /// Forces an answer code (`RATE_LIMITED`, `USAGE_EXCEEDED`, `FORBIDDEN`,
    /// `INSUFFICIENT_PERMISSIONS`, or any made-up code).
    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// With `RATE_LIMITED`: when the limit resets.
    pub fn reset_at(mut self, at: SystemTime) -> Self {
        self.reset = Some(at);
        self
    }
}

/// A fault the mock service answers with, instead of a verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answers this status with a small JSON error body.
    Status(u16),
    /// Waits this long, then answers normally.
    Delay(Duration),
    /// Answers 200 with bytes that are not JSON.
    Garbage,
    /// Answers 200 with an HTML page.
    Html,
    /// Answers 200 with a valid-looking verdict whose key id is not UTF-8.
    NotUtf8,
    /// Answers 200 with JSON of the wrong types.
    WrongTypes,
    /// Answers 200 with a 2 MB JSON body.
    HugeBody,
    /// Answers 200 at once, then sends the body one byte every 500 ms.
    SlowBody,
    /// Answers with this redirect status (301, 302, 307, 308) to this URL (another host's
    /// key service, say).
    Redirect(u16, String),
}

struct Shared {
    keys: Mutex<HashMap<String, MockKey>>,
    fault: Mutex<Option<Fault>>,
    requests: AtomicUsize,
    root_key: Option<String>,
}

/// A key-verification service on 127.0.0.1 speaking Unkey's v2 protocol
/// (`POST /v2/keys.verifyKey`) and tollgate's generic JSON protocol (`POST /verify`).
/// Stops when dropped.
pub struct MockKeyService {
    shared: Arc<Shared>,
    server: Server,
}

impl MockKeyService {
    /// Starts a service that accepts any root key.
    pub async fn start() -> Self {
        Self::start_with_root_key(None).await
    }

    /// Starts a service whose Unkey endpoint requires `Authorization: Bearer <root_key>`
    /// (answering 401 otherwise, as Unkey does).
    pub async fn start_with_root_key(root_key: Option<String>) -> Self {
        let shared = Arc::new(Shared {
            keys: Mutex::default(),
            fault: Mutex::default(),
            requests: AtomicUsize::new(0),
            root_key,
        });
        let app = axum::Router::new()
            .route("/v2/keys.verifyKey", post(unkey))
            .route("/verify", post(generic))
            .with_state(shared.clone());
        MockKeyService {
            shared,
            server: Server::start(app).await,
        }
    }

    /// The base URL for [`UnkeyVerifier::base_url`](https://docs.rs/tollgate-apikey).
    pub fn unkey_base_url(&self) -> String {
        self.server.url("")
    }

    /// The URL of the generic JSON endpoint.
    pub fn json_url(&self) -> String {
        self.server.url("/verify")
    }

    /// Adds (or replaces) `key`.
    pub fn add_key(&self, key: impl Into<String>, info: MockKey) {
        lock(&self.shared.keys).insert(key.into(), info);
    }

    /// Removes `key`: it answers `NOT_FOUND` from now on.
    pub fn revoke(&self, key: &str) {
        lock(&self.shared.keys).remove(key);
    }

    /// Expires `key` now.
    pub fn expire(&self, key: &str) {
        if let Some(k) = lock(&self.shared.keys).get_mut(key) {
            k.expires = Some(SystemTime::now() - Duration::from_secs(1));
        }
    }

    /// Answers every request with `fault` until [`heal`](Self::heal).
    pub fn fail_with(&self, fault: Fault) {
        *lock(&self.shared.fault) = Some(fault);
    }

    /// Stops injecting faults.
    pub fn heal(&self) {
        *lock(&self.shared.fault) = None;
    }

    /// How many verification requests arrived so far (both endpoints).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// The verdict for `key`: its code (`VALID` or why not) and the key, when there is one.
fn judge(shared: &Shared, key: &str) -> (String, Option<MockKey>) {
    let keys = lock(&shared.keys);
    let Some(k) = keys.get(key).cloned() else {
        return ("NOT_FOUND".into(), None);
    };
    let code = if !k.enabled {
        "DISABLED".to_owned()
    } else if k.expires.is_some_and(|at| at <= SystemTime::now()) {
        "EXPIRED".to_owned()
    } else {
        k.code.clone().unwrap_or_else(|| "VALID".to_owned())
    };
    (code, Some(k))
}

/// Counts the request, then answers with the fault if one is set.
async fn fault(shared: &Shared) -> Option<Response> {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let fault = lock(&shared.fault).clone()?;
    Some(match fault {
        Fault::Status(code) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(json!({"error": {"title": "injected"}})),
        )
            .into_response(),
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            return None;
        }
        Fault::Garbage => (StatusCode::OK, "{\"data\": {\"valid\": tr").into_response(),
        Fault::NotUtf8 => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            // Read by both protocols: the generic one at the top, Unkey under `data`.
            &b"{\"valid\": true, \"key_id\": \"k\xff\", \"data\": {\"valid\": true, \"code\": \"VALID\", \"keyId\": \"k\xff\"}}"[..],
        )
            .into_response(),
        Fault::Html => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>502 Bad Gateway</body></html>",
        )
            .into_response(),
        Fault::WrongTypes => Json(json!({
            "data": {"valid": "yes", "code": 7, "keyId": ["x"]},
            "valid": "yes", "key_id": 5, "scopes": "all"
        }))
        .into_response(),
        Fault::SlowBody => {
            let body = br#"{"valid": true, "key_id": "k", "data": {"valid": true, "code": "VALID", "keyId": "k"}}"#;
            let stream = futures_util::stream::iter(body.iter().copied()).then(|b| async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                Ok::<_, std::io::Error>(vec![b])
            });
            Response::new(axum::body::Body::from_stream(stream))
        }
        Fault::Redirect(status, to) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT),
            [(header::LOCATION, to)],
        )
            .into_response(),
        Fault::HugeBody => {
            let filler = "x".repeat(2 * 1024 * 1024);
            Json(json!({"data": {"valid": false, "code": "NOT_FOUND", "pad": filler}}))
                .into_response()
        }
    })
}

async fn unkey(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Json<Value>,
) -> Response {
    if let Some(res) = fault(&shared).await {
        return res;
    }
    if let Some(root) = &shared.root_key {
        let expected = format!("Bearer {root}");
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(&expected)
        {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": {"title": "Unauthorized"}})),
            )
                .into_response();
        }
    }
    let key = body.get("key").and_then(Value::as_str).unwrap_or_default();
    let request_id = json!({"requestId": "req_mock"});
    let data = match judge(&shared, key) {
        (code, Some(k)) if code == "VALID" => json!({
            "valid": true, "code": "VALID", "keyId": k.key_id, "name": "mock key",
            "meta": k.meta, "expires": k.expires.map(millis), "enabled": true,
            "permissions": k.permissions, "roles": k.roles,
            "identity": k.owner.map(|o| json!({"id": "id_mock", "externalId": o, "meta": {}})),
            "ratelimits": [], "unknownField": {"tolerated": true}
        }),
        (code, None) => json!({"valid": false, "code": code}),
        (code, Some(k)) => json!({
            "valid": false, "code": code, "keyId": k.key_id, "enabled": k.enabled,
            "ratelimits": k.reset.map(|r| vec![json!({
                "id": "rl_1", "name": "requests", "limit": 10, "duration": 60000,
                "reset": millis(r), "remaining": 0, "exceeded": true, "autoApply": true
            })]).unwrap_or_default()
        }),
    };
    Json(json!({"meta": request_id, "data": data})).into_response()
}

async fn generic(State(shared): State<Arc<Shared>>, body: Json<Value>) -> Response {
    if let Some(res) = fault(&shared).await {
        return res;
    }
    let key = body.get("key").and_then(Value::as_str).unwrap_or_default();
    let answer = match judge(&shared, key) {
        (code, Some(k)) if code == "VALID" => json!({
            "valid": true, "key_id": k.key_id, "owner": k.owner, "scopes": k.permissions,
            "meta": k.meta,
            "expires_at": k.expires.map(|t| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()),
        }),
        (code, _) => json!({"valid": false, "code": code}),
    };
    Json(answer).into_response()
}
