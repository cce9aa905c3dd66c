//! The outbound layer against tollgate's MockIdp token endpoint, calling a downstream service
//! protected by tollgate's JWT layer, all over HTTP on 127.0.0.1.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::Full;
use tollgate_client::{ClientAuthLayer, ClientCredentials, TokenError, TokenSource};
use tollgate_core::{AuthLayer, Principal};
use tollgate_jwt::{Issuer, JwtAuth};
use tollgate_testkit::{IdpFault, MockIdp};
use tower::{Service, ServiceBuilder, ServiceExt};

const SECRET: &str = "orders-service-secret";
const AUDIENCE: &str = "https://billing.internal";

/// A downstream service behind tollgate's JWT layer; counts the requests its handler got.
async fn downstream(idp: &MockIdp) -> (String, Arc<AtomicUsize>) {
    let auth = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience(AUDIENCE))
        .build()
        .await
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new()
        .route(
            "/invoices",
            get(move |req: axum::extract::Request| {
                h.fetch_add(1, Ordering::SeqCst);
                async move {
                    let p = req.extensions().get::<Principal>().unwrap();
                    format!("{} {}", p.subject(), p.scopes())
                }
            }),
        )
        .layer(AuthLayer::new(auth));
    (serve(app).await, hits)
}

async fn serve(app: Router) -> String {
    let addr = tollgate_testkit::serve(app).await;
    format!("http://{addr}/invoices")
}

async fn idp() -> MockIdp {
    let idp = MockIdp::start().await;
    idp.register_client("orders-service", SECRET);
    idp
}

fn client(idp: &MockIdp) -> ClientCredentials {
    ClientCredentials::new("orders-service")
        .secret_basic(SECRET)
        .discover(idp.issuer())
        .timeout(Duration::from_millis(500))
        .retries(2, Duration::from_millis(20))
}

fn layered(
    tokens: TokenSource,
) -> impl Service<
    reqwest::Request,
    Response = reqwest::Response,
    Error = tollgate_client::BoxError,
    Future: Send,
> + Clone
+ Send
+ 'static {
    ServiceBuilder::new()
        .layer(
            ClientAuthLayer::token(tokens)
                .audience(AUDIENCE)
                .scope("invoices:read"),
        )
        .service(reqwest::Client::new())
}

fn get_req(url: &str) -> reqwest::Request {
    reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap())
}

#[tokio::test]
async fn one_token_for_many_requests() {
    let idp = idp().await;
    let (url, hits) = downstream(&idp).await;
    let tokens = TokenSource::new(client(&idp));
    let svc = layered(tokens.clone());
    for _ in 0..20 {
        let res = svc.clone().oneshot(get_req(&url)).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "orders-service invoices:read");
    }
    assert_eq!(idp.token_requests(), 1);
    assert_eq!(tokens.token_requests(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn refreshed_ahead_of_expiry() {
    let idp = idp().await;
    idp.set_token_ttl(2);
    let (url, _) = downstream(&idp).await;
    let svc = layered(TokenSource::with_skew(
        client(&idp),
        Duration::from_millis(500),
    ));
    // Usable 1.5 s; refreshed in the background after 1.125 s; every request succeeds.
    for _ in 0..16 {
        assert_eq!(
            svc.clone().oneshot(get_req(&url)).await.unwrap().status(),
            200
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let n = idp.token_requests();
    assert!(
        (2..=4).contains(&n),
        "{n} token requests over 3.2 s with 2 s tokens"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_token_request() {
    let idp = idp().await;
    let (url, hits) = downstream(&idp).await;
    idp.fail_with(IdpFault::Delay(Duration::from_millis(200)));
    let svc = layered(TokenSource::new(client(&idp)));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let call = svc.clone().oneshot(get_req(&url));
        set.spawn(async move { call.await.unwrap().status().as_u16() });
    }
    assert!(set.join_all().await.iter().all(|s| *s == 200));
    assert_eq!(idp.token_requests(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 100);
}

async fn token_error(
    downstream: &(String, Arc<AtomicUsize>),
    creds: ClientCredentials,
) -> TokenError {
    let (url, hits) = downstream;
    let err = layered(TokenSource::new(creds))
        .oneshot(get_req(url))
        .await
        .unwrap_err();
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a request was sent without a token"
    );
    *err.downcast::<TokenError>().expect("a TokenError")
}

#[tokio::test]
async fn endpoint_faults_fail_the_request_with_a_typed_error() {
    let idp = idp().await;
    let down = downstream(&idp).await;
    // A fresh client for each fault: clones share the endpoint's breaker, which the
    // timeout below opens.
    let creds = || client(&idp).token_endpoint(idp.token_url());

    idp.fail_with(IdpFault::Status(503));
    let err = token_error(&down, creds()).await;
    assert!(
        matches!(err, TokenError::Unavailable(_)) && err.is_transient(),
        "{err}"
    );
    // The request reached the endpoint: it is never sent again (a retry happens only when
    // no server was reached; see the unreachable endpoint below).
    assert_eq!(idp.token_requests(), 1, "a 5xx is not retried");

    idp.fail_with(IdpFault::Delay(Duration::from_secs(5)));
    assert!(
        matches!(token_error(&down, creds()).await, TokenError::Unavailable(r) if r == "timeout")
    );

    idp.fail_with(IdpFault::Garbage);
    assert_eq!(token_error(&down, creds()).await, TokenError::Malformed);

    idp.heal();
    let before = idp.token_requests();
    let wrong = creds().secret_basic("not-the-secret");
    let err = token_error(&down, wrong).await;
    assert_eq!(
        err,
        TokenError::Rejected {
            error: "invalid_client".into()
        }
    );
    assert!(!err.is_transient());
    assert_eq!(idp.token_requests(), before + 1, "a refusal is not retried");

    let url = tollgate_testkit::unreachable_url("/token");
    let unreachable = creds().token_endpoint(url);
    assert!(
        matches!(token_error(&down, unreachable).await, TokenError::Unavailable(r) if r == "connection failed")
    );

    // A token endpoint that redirects: the credentials go nowhere else.
    let attacker = MockIdp::start().await;
    idp.fail_with(IdpFault::Redirect(attacker.token_url()));
    let err = token_error(&down, creds()).await;
    assert!(
        matches!(&err, TokenError::Unavailable(r) if r.contains("redirect")),
        "{err}"
    );
    assert_eq!(attacker.token_requests(), 0);

    // An oversized answer is capped, not read whole.
    idp.fail_with(IdpFault::Huge);
    assert_eq!(token_error(&down, creds()).await, TokenError::Malformed);
}

#[tokio::test]
async fn client_secret_post() {
    let idp = idp().await;
    let (url, _) = downstream(&idp).await;
    let creds = ClientCredentials::new("orders-service")
        .secret_post(SECRET)
        .token_endpoint(idp.token_url());
    let res = layered(TokenSource::new(creds))
        .oneshot(get_req(&url))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_401_invalid_token_gets_one_refresh_and_one_retry() {
    let idp = idp().await;
    // Downstream refuses the first token it ever sees (as if it had been revoked).
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let app = Router::new().route(
        "/invoices",
        get(move |headers: http::HeaderMap| {
            let s = s.clone();
            async move {
                let token = headers["authorization"].to_str().unwrap().to_owned();
                let mut seen = s.lock().unwrap();
                let first = seen.first().cloned();
                seen.push(token.clone());
                if first.is_none_or(|f| f == token) {
                    let challenge = r#"Bearer error="invalid_token""#;
                    (
                        http::StatusCode::UNAUTHORIZED,
                        [("www-authenticate", challenge)],
                        "revoked",
                    )
                } else {
                    (http::StatusCode::OK, [("www-authenticate", "")], "ok")
                }
            }
        }),
    );
    let url = serve(app).await;
    let svc = layered(TokenSource::new(client(&idp)));
    let res = svc.clone().oneshot(get_req(&url)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(idp.token_requests(), 2);
    assert_eq!(seen.lock().unwrap().len(), 2, "exactly one retry");

    // A 401 without invalid_token (or a second refusal) is returned as is, not retried again.
    seen.lock().unwrap().clear();
    let always = Router::new().route(
        "/invoices",
        get(|| async {
            (
                http::StatusCode::UNAUTHORIZED,
                [("www-authenticate", r#"Bearer error="invalid_token""#)],
            )
        }),
    );
    let url = serve(always).await;
    let res = svc.oneshot(get_req(&url)).await.unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn any_tower_http_client_and_api_key_mode() {
    // A stand-in for hyper-util's client: a tower service over http types that records what
    // it was asked to send.
    let sent: Arc<Mutex<Vec<http::HeaderMap>>> = Arc::default();
    let s = sent.clone();
    let inner = tower::service_fn(move |req: http::Request<Full<Bytes>>| {
        s.lock().unwrap().push(req.headers().clone());
        async { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok")))) }
    });
    let key = http::HeaderValue::from_static("sk_live_outbound");
    let layer = ClientAuthLayer::api_key(http::HeaderName::from_static("x-api-key"), key);
    assert!(!format!("{layer:?}").contains("sk_live_outbound"));
    let svc = ServiceBuilder::new().layer(layer).service(inner);
    let req = http::Request::new(Full::new(Bytes::from_static(b"{}")));
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
    let headers = sent.lock().unwrap()[0].clone();
    assert_eq!(headers["x-api-key"], "sk_live_outbound");
    assert!(headers["x-api-key"].is_sensitive());

    // Tokens through the same http-typed client.
    let idp = idp().await;
    let s = sent.clone();
    let inner = tower::service_fn(move |req: http::Request<Full<Bytes>>| {
        s.lock().unwrap().push(req.headers().clone());
        async { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new()))) }
    });
    let creds = client(&idp);
    assert!(!format!("{creds:?}").contains(SECRET));
    let svc = ServiceBuilder::new()
        .layer(ClientAuthLayer::token(TokenSource::new(creds)).audience(AUDIENCE))
        .service(inner);
    svc.oneshot(http::Request::new(Full::new(Bytes::new())))
        .await
        .unwrap();
    let auth = sent.lock().unwrap()[1]["authorization"].clone();
    assert!(auth.to_str().unwrap().starts_with("Bearer ey") && auth.is_sensitive());
}
