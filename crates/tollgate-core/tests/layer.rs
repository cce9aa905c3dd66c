//! `AuthLayer` over a plain `tower::service_fn` and over an axum `Router` served on 127.0.0.1.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use tollgate_core::*;
use tower::{Service, ServiceBuilder, ServiceExt};

/// Accepts bearer `good` (scopes `orders:read`), answers `down` as an outage and `slow` as a
/// rate limit, refuses anything else.
struct Token;

impl Authenticator for Token {
    async fn authenticate(&self, parts: &Parts) -> Result<Option<Principal>, AuthError> {
        match self.credential_source().find(parts)?.as_deref() {
            None => Ok(None),
            Some("good") => Ok(Some(
                Principal::builder("alice", CredentialKind::Jwt)
                    .scopes(Scopes::from(["orders:read"]))
                    .build(),
            )),
            Some("down") => Err(AuthError::unavailable(
                "the identity provider is unreachable",
                Duration::from_millis(1500),
            )),
            Some("limited") => Err(AuthError::rate_limited(
                "too many requests",
                Some(Duration::from_secs(7)),
            )),
            // Not ours: another authenticator's kind.
            Some("opaque") => Ok(None),
            Some(_) => Err(AuthError::invalid_token("unknown token")),
        }
    }

    fn credential_source(&self) -> CredentialSource {
        CredentialSource::bearer().max_len(64)
    }
}

/// Accepts `x-api-key: key-1`.
struct Key;

const API_KEY: HeaderName = HeaderName::from_static("x-api-key");

impl Authenticator for Key {
    async fn authenticate(&self, parts: &Parts) -> Result<Option<Principal>, AuthError> {
        match self.credential_source().find(parts)?.as_deref() {
            None => Ok(None),
            Some("key-1") => Ok(Some(
                Principal::builder("key_1", CredentialKind::ApiKey).build(),
            )),
            Some(_) => Err(AuthError::invalid_token("unknown key")),
        }
    }

    fn credential_source(&self) -> CredentialSource {
        CredentialSource::header(API_KEY)
    }
}

type Seen = Arc<std::sync::Mutex<Vec<Request<()>>>>;

type Res = Response<AuthBody<Full<Bytes>>>;

/// An inner service that records what it saw and answers with the subject.
fn recorder(
    seen: Seen,
) -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(move |req: Request<()>| {
        let seen = seen.clone();
        async move {
            let who = req
                .extensions()
                .get::<Principal>()
                .map_or("anonymous".to_owned(), |p| p.subject().to_owned());
            seen.lock().unwrap().push(req);
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(who))))
        }
    })
}

async fn call<A: Authenticator>(layer: AuthLayer<A>, req: Request<()>) -> (Res, Vec<Request<()>>) {
    let seen = Seen::default();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(recorder(seen.clone()));
    let res = svc.oneshot(req).await.unwrap();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (res, seen)
}

fn with_auth(value: &[u8]) -> Request<()> {
    let mut req = Request::new(());
    req.headers_mut()
        .insert(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
    req
}

async fn bytes(res: Res) -> Bytes {
    use http_body_util::BodyExt;
    res.into_body().collect().await.unwrap().to_bytes()
}

async fn body(res: Res) -> serde_json::Value {
    serde_json::from_slice(&bytes(res).await).unwrap()
}

#[tokio::test]
async fn valid_credential_reaches_inner_with_principal() {
    let (res, seen) = call(AuthLayer::new(Token), with_auth(b"Bearer good")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(seen.len(), 1);
    let principal = seen[0].extensions().get::<Principal>().unwrap();
    assert_eq!(principal.subject(), "alice");
    assert!(principal.scopes().contains("orders:read"));
    // The credential header stays, but is marked sensitive for loggers behind the layer.
    assert!(seen[0].headers()[AUTHORIZATION].is_sensitive());
}

#[tokio::test]
async fn missing_credential_is_a_bare_challenge_rfc6750_s3() {
    let (res, seen) = call(AuthLayer::new(Token), Request::new(())).await;
    assert!(seen.is_empty(), "inner must not be called");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[WWW_AUTHENTICATE], r#"Bearer realm="api""#);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(body(res).await["error"], "unauthorized");
}

#[tokio::test]
async fn malformed_authorization_headers() {
    // (header value, expected status, expected challenge error code)
    let cases: &[(&[u8], u16, Option<&str>)] = &[
        (b"good", 401, None),                          // no scheme: no bearer credential
        (b"Basic dXNlcjpwYXNz", 401, None),            // another scheme
        (b"Bearer", 400, Some("invalid_request")),     // empty token
        (b"Bearer    ", 400, Some("invalid_request")), // only spaces
        (b"Bearer a b", 400, Some("invalid_request")), // space inside
        (b"Bearer go\"od", 400, Some("invalid_request")), // outside b64token
        (b"Bearer \xff\xfe", 400, Some("invalid_request")), // not visible ASCII
        (b"Bearer bad", 401, Some("invalid_token")),
        (b"bEaReR good", 200, None), // scheme is case-insensitive (RFC 6750 §2.1)
        (b"Bearer  good ", 200, None),
    ];
    for (value, status, code) in cases {
        let (res, seen) = call(AuthLayer::new(Token), with_auth(value)).await;
        assert_eq!(
            res.status(),
            *status,
            "{:?}",
            String::from_utf8_lossy(value)
        );
        assert_eq!(seen.len(), usize::from(*status == 200));
        if *status != 200 {
            let challenge = res.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
            match code {
                Some(code) => assert!(
                    challenge.contains(&format!(r#"error="{code}""#)),
                    "{challenge}"
                ),
                None => assert_eq!(challenge, r#"Bearer realm="api""#),
            }
        }
    }
}

#[tokio::test]
async fn two_authorization_headers_are_invalid_request() {
    let mut req = with_auth(b"Bearer good");
    req.headers_mut()
        .append(AUTHORIZATION, HeaderValue::from_static("Bearer good"));
    let (res, seen) = call(AuthLayer::new(Token), req).await;
    assert!(seen.is_empty());
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(
        res.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_request""#)
    );
}

#[tokio::test]
async fn oversized_header_is_refused_before_parsing() {
    let huge = format!("Bearer {}", "a".repeat(100 * 1024));
    let (res, seen) = call(AuthLayer::new(Token), with_auth(huge.as_bytes())).await;
    assert!(seen.is_empty());
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let text = format!("{:?}", res.headers());
    assert!(!text.contains("aaaa"), "the credential must not be echoed");
    assert_eq!(
        body(res).await["error_description"],
        "the credential is too long"
    );
}

#[tokio::test]
async fn outage_is_503_with_retry_after_never_401() {
    let (res, seen) = call(AuthLayer::new(Token), with_auth(b"Bearer down")).await;
    assert!(seen.is_empty());
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "2"); // 1.5 s rounded up
    assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
    assert_eq!(body(res).await["error"], "temporarily_unavailable");

    let (res, _) = call(AuthLayer::new(Token), with_auth(b"Bearer limited")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "7");
}

#[tokio::test]
async fn optional_mode_lets_anonymous_through_but_not_bad_credentials() {
    let (res, seen) = call(AuthLayer::new(Token).optional(), Request::new(())).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(seen[0].extensions().get::<Principal>().is_none());

    let (res, seen) = call(AuthLayer::new(Token).optional(), with_auth(b"Bearer bad")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(seen.is_empty());

    let (res, seen) = call(AuthLayer::new(Token).optional(), with_auth(b"Bearer ")).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(seen.is_empty());
}

#[tokio::test]
async fn two_authenticators_are_chosen_by_the_credential_present() {
    let layer = || AuthLayer::new(Token.or(Key));

    let (res, seen) = call(layer(), with_auth(b"Bearer good")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        seen[0].extensions().get::<Principal>().unwrap().kind(),
        CredentialKind::Jwt
    );

    let mut req = Request::new(());
    req.headers_mut()
        .insert(API_KEY, HeaderValue::from_static("key-1"));
    let (res, seen) = call(layer(), req).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        seen[0].extensions().get::<Principal>().unwrap().kind(),
        CredentialKind::ApiKey
    );

    // A bad bearer token is refused by the bearer authenticator; the key one never sees it,
    // even though a good key is also present.
    let mut req = with_auth(b"Bearer bad");
    req.headers_mut()
        .insert(API_KEY, HeaderValue::from_static("key-1"));
    let (res, seen) = call(layer(), req).await;
    assert_eq!(res.status(), 401);
    assert!(seen.is_empty());

    let (res, _) = call(layer(), Request::new(())).await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn custom_error_format_is_used_with_the_status_of_the_error() {
    let format = |err: &AuthError| {
        let mut res = Response::new(Bytes::from(format!(
            "<problem>{}</problem>",
            err.kind().code()
        )));
        // A format cannot change the status: tollgate decides it.
        *res.status_mut() = StatusCode::IM_A_TEAPOT;
        res
    };
    let (res, seen) = call(
        AuthLayer::new(Token).error_format(format),
        with_auth(b"Bearer bad"),
    )
    .await;
    assert!(seen.is_empty());
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The standard headers stay although the format set none of them.
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"Bearer realm="api", error="invalid_token", error_description="unknown token""#
    );
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(bytes(res).await, "<problem>invalid_token</problem>");

    // ...and Retry-After on an outage.
    let (res, _) = call(
        AuthLayer::new(Token).error_format(format),
        with_auth(b"Bearer down"),
    )
    .await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "2");
}

#[tokio::test]
async fn json_envelope_from_a_closure_keeps_the_standard_headers() {
    let envelope = JsonEnvelope::new(
        |err: &AuthError| serde_json::json!({"problem": {"code": err.kind().code(), "detail": err.description()}}),
    );
    let (res, _) = call(
        AuthLayer::new(Token).error_format(envelope).realm("orders"),
        with_auth(b"Bearer limited"),
    )
    .await;
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "7");
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(
        body(res).await,
        serde_json::json!({"problem": {"code": "rate_limited", "detail": "too many requests"}})
    );

    // A format that sets a header itself keeps its own.
    let own = |_: &AuthError| {
        Response::builder()
            .header(WWW_AUTHENTICATE, "Custom realm=\"x\"")
            .body(Bytes::new())
            .unwrap()
    };
    let (res, _) = call(AuthLayer::new(Token).error_format(own), Request::new(())).await;
    assert_eq!(res.headers()[WWW_AUTHENTICATE], r#"Custom realm="x""#);
}

#[tokio::test]
async fn api_key_routes_challenge_for_a_key_not_a_bearer_token() {
    let (res, _) = call(AuthLayer::new(Key).realm("orders"), Request::new(())).await;
    assert_eq!(res.status(), 401);
    let challenges: Vec<_> = res.headers().get_all(WWW_AUTHENTICATE).iter().collect();
    assert_eq!(challenges, [r#"ApiKey realm="orders", header="x-api-key""#]);

    // Both kinds on one route: the challenge of the credential sent carries the error, first.
    let mut req = Request::new(());
    req.headers_mut()
        .insert(API_KEY, HeaderValue::from_static("nope"));
    let (res, _) = call(AuthLayer::new(Token.or(Key)), req).await;
    let challenges: Vec<_> = res.headers().get_all(WWW_AUTHENTICATE).iter().collect();
    assert_eq!(
        challenges,
        [
            r#"ApiKey realm="api", header="x-api-key", error="invalid_token", error_description="unknown key""#,
            r#"Bearer realm="api""#,
        ]
    );
}

#[tokio::test]
async fn a_credential_no_authenticator_takes_is_refused_never_anonymous() {
    // `Token` hands `opaque` on (not its kind); alone, nobody takes it.
    for layer in [AuthLayer::new(Token), AuthLayer::new(Token).optional()] {
        let (res, seen) = call(layer, with_auth(b"Bearer opaque")).await;
        assert_eq!(res.status(), 401);
        assert!(seen.is_empty());
        assert_eq!(
            body(res).await["error_description"],
            "the credential is not of a kind this service accepts"
        );
    }
    // A credential in a header nobody here reads does not count: the request is anonymous.
    let mut req = Request::new(());
    req.headers_mut()
        .insert(API_KEY, HeaderValue::from_static("key-1"));
    let (res, seen) = call(AuthLayer::new(Token).optional(), req).await;
    assert_eq!(res.status(), 200);
    assert!(seen[0].extensions().get::<Principal>().is_none());
}

#[tokio::test]
async fn query_tokens_rfc6750_s2_3_are_opt_in_removed_from_the_uri_and_private() {
    /// Reads the bearer header or the `access_token` query parameter.
    struct Query;
    impl Authenticator for Query {
        async fn authenticate(&self, parts: &Parts) -> Result<Option<Principal>, AuthError> {
            Token.authenticate_with(self.credential_source(), parts)
        }
        fn credential_source(&self) -> CredentialSource {
            CredentialSource::bearer().also_query("access_token")
        }
    }
    let req = |uri: &str| Request::builder().uri(uri).body(()).unwrap();
    let (res, seen) = call(AuthLayer::new(Query), req("/ws?room=1&access_token=good")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        seen[0].uri(),
        "/ws?room=1",
        "the token never reaches the service"
    );
    assert_eq!(res.headers()["cache-control"], "private");

    let (res, seen) = call(AuthLayer::new(Query), req("/ws?access_token=bad")).await;
    assert_eq!(res.status(), 401);
    assert!(seen.is_empty());

    // Without the opt-in, the parameter is not a credential.
    let (res, _) = call(AuthLayer::new(Token), req("/ws?access_token=good")).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()[WWW_AUTHENTICATE], r#"Bearer realm="api""#);

    // Header and query at once: one method only (RFC 6750 §2).
    let mut both = req("/ws?access_token=good");
    both.headers_mut()
        .insert(AUTHORIZATION, HeaderValue::from_static("Bearer good"));
    let (res, _) = call(AuthLayer::new(Query), both).await;
    assert_eq!(res.status(), 400);
}

impl Token {
    /// `Token`'s verdict on the credential `source` finds.
    fn authenticate_with(
        &self,
        source: CredentialSource,
        parts: &Parts,
    ) -> Result<Option<Principal>, AuthError> {
        match source.find(parts)?.as_deref() {
            None => Ok(None),
            Some("good") => Ok(Some(
                Principal::builder("alice", CredentialKind::Jwt).build(),
            )),
            Some(_) => Err(AuthError::invalid_token("unknown token")),
        }
    }
}

#[tokio::test]
async fn a_boxed_authenticator_behaves_like_the_one_inside() {
    let boxed: BoxAuthenticator = Token.boxed().or(Key.boxed()).boxed();
    let (res, seen) = call(AuthLayer::new(boxed.clone()), with_auth(b"Bearer good")).await;
    assert_eq!(res.status(), 200);
    assert!(seen[0].headers()[AUTHORIZATION].is_sensitive());
    let (res, _) = call(AuthLayer::new(boxed), with_auth(b"Bearer bad")).await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn strip_credentials_removes_them_before_the_inner_service() {
    let (res, seen) = call(
        AuthLayer::new(Token).strip_credentials(),
        with_auth(b"Bearer good"),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert!(seen[0].headers().get(AUTHORIZATION).is_none());
}

#[tokio::test]
async fn credential_header_is_marked_sensitive_beside_repeated_headers() {
    let mut req = Request::new(());
    req.headers_mut()
        .insert(API_KEY, HeaderValue::from_static("key-1"));
    req.headers_mut()
        .append("accept", HeaderValue::from_static("text/plain"));
    req.headers_mut()
        .append("accept", HeaderValue::from_static("application/json"));
    let (res, seen) = call(AuthLayer::new(Key), req).await;
    assert_eq!(res.status(), 200);
    assert!(seen[0].headers()[API_KEY].is_sensitive());
    assert!(
        seen[0]
            .headers()
            .get_all("accept")
            .iter()
            .all(|v| !v.is_sensitive())
    );
}

#[tokio::test]
async fn cookie_credential_is_opt_in_and_stripped_alone() {
    struct CookieAuth;
    impl Authenticator for CookieAuth {
        async fn authenticate(&self, parts: &Parts) -> Result<Option<Principal>, AuthError> {
            match self.credential_source().find(parts)?.as_deref() {
                Some("good") => Ok(Some(
                    Principal::builder("c", CredentialKind::Other("cookie")).build(),
                )),
                Some(_) => Err(AuthError::invalid_token("bad")),
                None => Ok(None),
            }
        }
        fn credential_source(&self) -> CredentialSource {
            CredentialSource::bearer().also_cookie("session")
        }
    }
    let mut req = Request::new(());
    req.headers_mut().insert(
        "cookie",
        HeaderValue::from_static("theme=dark; session=good; lang=en"),
    );
    let (res, seen) = call(AuthLayer::new(CookieAuth).strip_credentials(), req).await;
    assert_eq!(res.status(), 200);
    assert_eq!(seen[0].headers()["cookie"], "theme=dark; lang=en");

    // Two Cookie headers, the credential in the second: both stay, both marked sensitive.
    let mut req = Request::new(());
    req.headers_mut()
        .append("cookie", HeaderValue::from_static("theme=dark"));
    req.headers_mut()
        .append("cookie", HeaderValue::from_static("session=good"));
    let (res, seen) = call(AuthLayer::new(CookieAuth), req).await;
    assert_eq!(res.status(), 200);
    let cookies: Vec<_> = seen[0].headers().get_all("cookie").iter().collect();
    assert_eq!(cookies.len(), 2);
    assert!(cookies.iter().all(|v| v.is_sensitive()));

    // Sent both as a cookie and as a header: one method only (RFC 6750 §2).
    let mut req = with_auth(b"Bearer good");
    req.headers_mut()
        .insert("cookie", HeaderValue::from_static("session=good"));
    let (res, seen) = call(AuthLayer::new(CookieAuth), req).await;
    assert_eq!(res.status(), 400);
    assert!(seen.is_empty());
}

#[tokio::test]
async fn cors_preflight_is_let_through_only_when_enabled() {
    let preflight = || {
        Request::builder()
            .method("OPTIONS")
            .header("access-control-request-method", "POST")
            .body(())
            .unwrap()
    };
    let (res, _) = call(AuthLayer::new(Token), preflight()).await;
    assert_eq!(res.status(), 401);
    let (res, seen) = call(AuthLayer::new(Token).allow_cors_preflight(), preflight()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(seen.len(), 1);
    // A plain OPTIONS is not a preflight.
    let plain = Request::builder().method("OPTIONS").body(()).unwrap();
    let (res, _) = call(AuthLayer::new(Token).allow_cors_preflight(), plain).await;
    assert_eq!(res.status(), 401);
}

/// A service that is ready only when told so.
#[derive(Clone)]
struct Gate(Arc<AtomicBool>, Arc<AtomicUsize>);

impl Service<Request<()>> for Gate {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.0.load(Ordering::SeqCst) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        self.1.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(Response::new(Full::default())))
    }
}

#[tokio::test]
async fn poll_ready_back_pressure_is_passed_through() {
    let open = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut svc = ServiceBuilder::new()
        .layer(AuthLayer::new(Token))
        .service(Gate(open.clone(), calls.clone()));
    let waker = futures_noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(svc.poll_ready(&mut cx).is_pending());
    open.store(true, Ordering::SeqCst);
    assert!(svc.poll_ready(&mut cx).is_ready());
    let res = svc.call(with_auth(b"Bearer good")).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

fn futures_noop_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}

mod over_http {
    use super::*;
    use axum::Router;
    use axum::routing::get;

    /// Serves `app` on 127.0.0.1 (random port) and returns its base URL.
    async fn serve(app: Router) -> String {
        let addr = tollgate_testkit::serve(app).await;
        format!("http://{addr}")
    }

    fn app(hits: Arc<AtomicUsize>) -> Router {
        Router::new()
            .route(
                "/orders",
                get(move |req: axum::extract::Request| {
                    let hits = hits.clone();
                    async move {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let p = req.extensions().get::<Principal>().cloned();
                        p.map_or("anonymous".to_owned(), |p| p.subject().to_owned())
                    }
                }),
            )
            .layer(AuthLayer::new(Token.or(Key)))
    }

    #[tokio::test]
    async fn axum_router_over_real_http() {
        let hits = Arc::new(AtomicUsize::new(0));
        let base = serve(app(hits.clone())).await;
        let client = reqwest::Client::new();
        let url = format!("{base}/orders");

        let res = client.get(&url).bearer_auth("good").send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "alice");

        let res = client
            .get(&url)
            .header("x-api-key", "key-1")
            .send()
            .await
            .unwrap();
        assert_eq!(res.text().await.unwrap(), "key_1");
        assert_eq!(hits.load(Ordering::SeqCst), 2);

        let res = client.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(res.headers()[WWW_AUTHENTICATE], r#"Bearer realm="api""#);

        let res = client.get(&url).bearer_auth("nope").send().await.unwrap();
        assert_eq!(res.status(), 401);
        let challenge = res.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
        assert_eq!(
            challenge,
            r#"Bearer realm="api", error="invalid_token", error_description="unknown token""#
        );
        let json: serde_json::Value = res.json().await.unwrap();
        assert_eq!(json["error"], "invalid_token");

        let res = client
            .get(&url)
            .header("authorization", "Bearer good")
            .header("authorization", "Bearer good")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);

        let res = client.get(&url).bearer_auth("down").send().await.unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers()["retry-after"], "2");

        // 100 KB header: refused (by hyper's header limit or by the length cap), never served.
        let res = client
            .get(&url)
            .header(
                "authorization",
                format!("Bearer {}", "a".repeat(100 * 1024)),
            )
            .send()
            .await;
        if let Ok(res) = res {
            assert!(res.status().is_client_error(), "{}", res.status());
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            2,
            "the handler ran for a refused request"
        );
    }
}

#[tokio::test]
async fn any_response_body_works_a_tonic_style_boxed_body_included() {
    use http_body_util::combinators::UnsyncBoxBody;
    use http_body_util::{BodyExt, Full};
    type Boxed = UnsyncBoxBody<Bytes, std::io::Error>;
    // tonic's services answer `Response<UnsyncBoxBody<Bytes, Status>>`: no `From<Bytes>`.
    let inner = tower::service_fn(|_req: Request<()>| async {
        let body: Boxed = Full::new(Bytes::from("served"))
            .map_err(|never| match never {})
            .boxed_unsync();
        Ok::<_, Infallible>(Response::new(body))
    });
    let svc = ServiceBuilder::new()
        .layer(AuthLayer::new(Token))
        .layer(RequireScopesLayer::all(["orders:read"]))
        .service(inner);
    let res = svc
        .clone()
        .oneshot(with_auth(b"Bearer good"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "served"
    );
    let res = svc.oneshot(with_auth(b"Bearer bad")).await.unwrap();
    assert_eq!(res.status(), 401);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(body.starts_with(b"{\"error\":\"invalid_token\""));
}

#[tokio::test]
async fn refusals_behind_the_layer_come_out_in_its_format_and_challenges() {
    use http_body_util::BodyExt;
    // Key principals hold no scope: the scope check behind refuses them.
    let envelope =
        JsonEnvelope::new(|e: &AuthError| serde_json::json!({"problem": e.kind().code()}));
    let svc = ServiceBuilder::new()
        .layer(AuthLayer::new(Key).realm("orders").error_format(envelope))
        .layer(RequireScopesLayer::all(["orders:read"]))
        .service(recorder(Seen::default()));
    let mut req = Request::new(());
    req.headers_mut()
        .insert(API_KEY, HeaderValue::from_static("key-1"));
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.headers()[WWW_AUTHENTICATE],
        r#"ApiKey realm="orders", header="x-api-key", error="insufficient_scope", error_description="the credential does not grant the scope this request needs", scope="orders:read""#
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, r#"{"problem":"insufficient_scope"}"#);
}

#[tokio::test]
async fn scopes_by_path_refuse_paths_no_rule_covers() {
    let layer = |otherwise: bool| {
        let scopes = RequireScopesLayer::by_path()
            .path("/orders.v1.Orders/List", ["orders:read"])
            .path("/orders.v1.Orders/Create", ["orders:write"]);
        match otherwise {
            true => scopes.otherwise(Scopes::empty()),
            false => scopes,
        }
    };
    let call = |otherwise: bool, path: &'static str| {
        let svc = ServiceBuilder::new()
            .layer(AuthLayer::new(Token))
            .layer(layer(otherwise))
            .service(recorder(Seen::default()));
        let mut req = with_auth(b"Bearer good");
        *req.uri_mut() = path.parse().unwrap();
        svc.oneshot(req)
    };
    assert_eq!(
        call(false, "/orders.v1.Orders/List")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        call(false, "/orders.v1.Orders/Create")
            .await
            .unwrap()
            .status(),
        403
    );
    let res = call(false, "/orders.v1.Orders/Delete").await.unwrap();
    assert_eq!(
        res.status(),
        403,
        "a method with no rule is never open by mistake"
    );
    assert!(
        res.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("no scope rule covers this request")
    );
    assert_eq!(
        call(true, "/orders.v1.Orders/Delete")
            .await
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn grpc_status_codes_are_decided_beside_http_statuses() {
    assert_eq!(ErrorKind::MissingCredential.grpc_code(), 16);
    assert_eq!(ErrorKind::InvalidRequest.grpc_code(), 16);
    assert_eq!(ErrorKind::InvalidToken.grpc_code(), 16);
    assert_eq!(ErrorKind::InsufficientScope.grpc_code(), 7);
    assert_eq!(ErrorKind::RateLimited.grpc_code(), 8);
    assert_eq!(ErrorKind::Unavailable.grpc_code(), 14);
    let res = GrpcStatus.render(&AuthError::invalid_token("bad – token"));
    assert_eq!(res.headers()["grpc-message"], "bad %E2%80%93 token");
}
