//! DPoP from the client's end (RFC 9449): tollgate-client asks MockIdp's token endpoint for a
//! DPoP-bound token and calls a route behind tollgate's own DPoP check; server nonces at the
//! token endpoint and at the resource; the bound token without the key is worth nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tollgate_client::{ClientAuthLayer, ClientCredentials, DpopKey, TokenSource};
use tollgate_core::{AuthLayer, Principal};
use tollgate_jwt::{Dpop, Issuer, JwtAuth};
use tollgate_testkit::MockIdp;
use tower::{ServiceBuilder, ServiceExt};

const SECRET: &str = "orders-service-secret";
const AUDIENCE: &str = "https://billing.internal";

/// A resource at `http://127.0.0.1:<port>/invoices` requiring DPoP, and its handler count.
async fn resource(idp: &MockIdp, dpop: impl FnOnce(String) -> Dpop) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let auth = JwtAuth::builder()
        .issuer(
            Issuer::discover(idp.issuer())
                .audience(AUDIENCE)
                .dpop(dpop(base.clone())),
        )
        .build()
        .await
        .unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new()
        .route(
            "/invoices",
            get(move |p: Principal| {
                h.fetch_add(1, Ordering::SeqCst);
                let jkt = p
                    .binding()
                    .and_then(|b| b.dpop_thumbprint())
                    .unwrap_or("")
                    .to_owned();
                async move { jkt }
            }),
        )
        .layer(AuthLayer::new(auth));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("{base}/invoices"), hits)
}

fn credentials(idp: &MockIdp, key: &DpopKey) -> ClientCredentials {
    ClientCredentials::new("orders-service")
        .secret_basic(SECRET)
        .discover(idp.issuer())
        .timeout(Duration::from_millis(500))
        .dpop(key.clone())
}

fn get_req(url: &str) -> reqwest::Request {
    reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap())
}

#[tokio::test]
async fn dpop_client_and_server_agree_and_a_bound_token_is_useless_without_its_key() {
    let idp = MockIdp::start().await;
    idp.register_client("orders-service", SECRET);
    let (url, hits) = resource(&idp, |base| Dpop::required().external_url(base)).await;
    let key = DpopKey::generate().unwrap();
    let tokens = TokenSource::new(credentials(&idp, &key));
    let svc = ServiceBuilder::new()
        .layer(ClientAuthLayer::token(tokens.clone()).audience(AUDIENCE))
        .service(reqwest::Client::new());
    for _ in 0..3 {
        let res = svc.clone().oneshot(get_req(&url)).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), key.thumbprint());
    }
    assert_eq!(
        idp.token_requests(),
        1,
        "one bound token, a fresh proof per request"
    );

    // The same token, stolen: as a bearer token, or with the thief's own proof.
    let bound = ClientCredentials::new("orders-service")
        .secret_basic(SECRET)
        .discover(idp.issuer())
        .dpop(key.clone());
    let token = {
        // What goes over the wire, read back from a request the layer prepared.
        let tokens = TokenSource::new(bound);
        let svc = ServiceBuilder::new()
            .layer(ClientAuthLayer::token(tokens).audience(AUDIENCE))
            .service(tower::service_fn(|req: reqwest::Request| async move {
                let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
                let res = http::Response::builder().status(200).body(auth).unwrap();
                Ok::<_, tollgate_client::BoxError>(res)
            }));
        let res = svc.oneshot(get_req(&url)).await.unwrap();
        let auth = res.into_body();
        assert!(auth.starts_with("DPoP "), "{auth}");
        auth["DPoP ".len()..].to_owned()
    };
    let http = reqwest::Client::new();
    let res = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let thief = DpopKey::generate().unwrap();
    let proof = thief.proof("GET", &url, Some(&token)).unwrap();
    let res = http
        .get(&url)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn dpop_nonces_are_learned_and_retried_with_at_both_servers() {
    let idp = MockIdp::start().await;
    idp.register_client("orders-service", SECRET);
    idp.require_dpop_nonce(Some("idp-nonce-1"));
    let (url, hits) = resource(&idp, |base| {
        Dpop::required().external_url(base).nonces([9u8; 32])
    })
    .await;
    let key = DpopKey::generate().unwrap();
    let tokens = TokenSource::new(credentials(&idp, &key));
    let svc = ServiceBuilder::new()
        .layer(ClientAuthLayer::token(tokens.clone()).audience(AUDIENCE))
        .service(reqwest::Client::new());
    let res = svc.clone().oneshot(get_req(&url)).await.unwrap();
    assert_eq!(res.status(), 200);
    // The token endpoint: once without, once with its nonce; the resource likewise.
    assert_eq!(idp.token_requests(), 2);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Known now: the next request goes through at once.
    let res = svc.oneshot(get_req(&url)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!(idp.token_requests(), 2);
}

#[tokio::test]
async fn dpop_keys_that_are_not_asymmetric_are_refused() {
    let secret = tollgate_client::EncodingKey::from_secret(b"a shared secret is no dpop key");
    assert!(DpopKey::new(secret, tollgate_client::Algorithm::HS256).is_err());
    let key = DpopKey::generate().unwrap();
    let debug = format!("{key:?}");
    assert!(
        debug.contains(key.thumbprint()) && !debug.contains("BEGIN"),
        "{debug}"
    );
}
