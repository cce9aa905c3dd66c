//! mTLS from the client's end (RFC 8705): tollgate-client authenticates to a token endpoint
//! with its TLS client certificate (`tls_client_auth`), gets a token bound to that
//! certificate, and calls a resource that checks the binding, all over real TLS on 127.0.0.1
//! with certificates of the test's CA; the token from another certificate is worth nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Extension, Form, Json, Router};
use serde_json::json;
use tollgate_client::{ClientAuthLayer, ClientCredentials, TokenSource};
use tollgate_core::{AuthLayer, CertificateSource, ClientCertificate, Principal};
use tollgate_jwt::{Issuer, JwtAuth, Mtls};
use tollgate_testkit::{MockIdp, TestCa};
use tower::{ServiceBuilder, ServiceExt};

const CLIENT: &str = "orders-worker";
const AUDIENCE: &str = "https://billing.internal";

type Issued = Arc<Mutex<Vec<String>>>;

/// A token endpoint over TLS that knows its client by certificate alone, and binds the
/// tokens it issues to that certificate; the tokens it issued.
async fn token_endpoint(idp: &Arc<MockIdp>, ca: &TestCa) -> (String, Issued) {
    let issued = Issued::default();
    let (idp, log) = (idp.clone(), issued.clone());
    let issue = move |certificate: Option<Extension<ClientCertificate>>,
                      Form(form): Form<Vec<(String, String)>>| async move {
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let Some(Extension(certificate)) = certificate else {
            let refusal = json!({ "error": "invalid_client" });
            return (http::StatusCode::UNAUTHORIZED, Json(refusal));
        };
        if field("client_id").as_deref() != Some(CLIENT) || field("client_secret").is_some() {
            let refusal = json!({ "error": "invalid_client" });
            return (http::StatusCode::UNAUTHORIZED, Json(refusal));
        }
        let token = idp
            .token()
            .claim("aud", AUDIENCE)
            .claim("client_id", CLIENT)
            .claim("cnf", json!({ "x5t#S256": certificate.thumbprint() }))
            .sign();
        log.lock().unwrap().push(token.clone());
        let answer = json!({ "access_token": token, "token_type": "Bearer", "expires_in": 300 });
        (http::StatusCode::OK, Json(answer))
    };
    let addr = ca.serve(Router::new().route("/token", post(issue))).await;
    (format!("https://127.0.0.1:{}/token", addr.port()), issued)
}

/// A resource over TLS that accepts certificate-bound tokens only.
async fn resource(idp: &MockIdp, ca: &TestCa) -> (String, Arc<AtomicUsize>) {
    let auth = JwtAuth::builder()
        .issuer(
            Issuer::jwks_url(idp.issuer(), idp.jwks_url())
                .audience(AUDIENCE)
                .mtls(Mtls::required(CertificateSource::tls_connection())),
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
                let bound = p.binding().and_then(|b| b.certificate_thumbprint());
                let bound = bound.unwrap_or("").to_owned();
                async move { bound }
            }),
        )
        .layer(AuthLayer::new(auth));
    let addr = ca.serve(app).await;
    (format!("https://127.0.0.1:{}/invoices", addr.port()), hits)
}

fn get_req(url: &str) -> reqwest::Request {
    reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap())
}

#[tokio::test]
async fn mtls_client_authenticates_with_its_certificate_and_its_bound_token_works_only_with_it() {
    let (idp, ca) = (Arc::new(MockIdp::start().await), TestCa::new());
    let worker = ca.client_certificate(CLIENT);
    let (token_url, issued) = token_endpoint(&idp, &ca).await;
    let (url, hits) = resource(&idp, &ca).await;

    // One HTTP client, with the worker's certificate, for the token and the calls.
    let http = ca.client(Some(&worker));
    let credentials = ClientCredentials::new(CLIENT)
        .tls_client_auth()
        .token_endpoint(&token_url)
        .timeout(Duration::from_secs(2))
        .http_client(http.clone());
    assert!(format!("{credentials:?}").contains("tls_client_auth"));
    let svc = ServiceBuilder::new()
        .layer(ClientAuthLayer::token(TokenSource::new(credentials)).audience(AUDIENCE))
        .service(http);
    for _ in 0..3 {
        let res = svc.clone().oneshot(get_req(&url)).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), worker.thumbprint());
    }
    assert_eq!(issued.lock().unwrap().len(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // The same token from a connection with another certificate, or none, is refused.
    let token = issued.lock().unwrap()[0].clone();
    let thief = ca.client_certificate("thief");
    for client in [ca.client(Some(&thief)), ca.client(None)] {
        let res = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status(), 401);
        let challenge: &str = res.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    // Without a certificate the client cannot authenticate at all: the endpoint's refusal.
    let anonymous = ClientCredentials::new(CLIENT)
        .tls_client_auth()
        .token_endpoint(&token_url)
        .http_client(ca.client(None));
    let svc = ServiceBuilder::new()
        .layer(ClientAuthLayer::token(TokenSource::new(anonymous)).audience(AUDIENCE))
        .service(ca.client(None));
    let err = svc.oneshot(get_req(&url)).await.unwrap_err();
    assert!(format!("{err:?}").contains("invalid_client"), "{err:?}");
    assert_eq!(issued.lock().unwrap().len(), 1);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn mtls_client_discovers_the_servers_mtls_token_endpoint_alias() {
    // The provider's plain token endpoint knows no such client; its mTLS alias (RFC 8705
    // §5) does: a tls_client_auth client finds and uses the alias, others do not.
    let (idp, ca) = (Arc::new(MockIdp::start().await), TestCa::new());
    let worker = ca.client_certificate(CLIENT);
    let (token_url, issued) = token_endpoint(&idp, &ca).await;
    idp.set_mtls_endpoint_aliases(Some(&token_url), None);
    let (url, hits) = resource(&idp, &ca).await;
    let http = ca.client(Some(&worker));
    let credentials = ClientCredentials::new(CLIENT)
        .tls_client_auth()
        .discover(idp.issuer())
        .http_client(http.clone());
    let svc = ServiceBuilder::new()
        .layer(ClientAuthLayer::token(TokenSource::new(credentials)).audience(AUDIENCE))
        .service(http);
    let res = svc.oneshot(get_req(&url)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        issued.lock().unwrap().len(),
        1,
        "the alias issued the token"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        idp.token_requests(),
        0,
        "the plain token endpoint was not asked"
    );
}
