//! Certificate-bound tokens on the resource server (RFC 8705 §3): through an axum app served
//! over real TLS on 127.0.0.1 (the service terminating TLS itself, its clients presenting
//! certificates of the test's CA) or over plain HTTP behind a pretend proxy's header; each
//! refusal checked for its status, its `invalid_token` and that the handler never ran.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::HeaderName;
use tollgate_core::{AuthLayer, CertificateSource, Principal};
use tollgate_jwt::{Dpop, Issuer, JwtAuth, Mtls};
use tollgate_testkit::{DEFAULT_AUDIENCE, DpopKey, MockIdp, TestCa, TestCertificate};

/// A protected `/orders` whose handler says which certificate the token was bound to.
struct Rs {
    url: String,
    hits: Arc<AtomicUsize>,
}

struct Answer {
    status: u16,
    challenge: String,
    body: String,
}

async fn auth(idp: &MockIdp, mtls: Mtls, cache: bool) -> JwtAuth {
    let mut builder = JwtAuth::builder().issuer(
        Issuer::jwks_url(idp.issuer(), idp.jwks_url())
            .audience(DEFAULT_AUDIENCE)
            .mtls(mtls),
    );
    if cache {
        builder = builder.verified_token_cache(100, Duration::from_secs(60));
    }
    builder.build().await.unwrap()
}

fn app(auth: JwtAuth, hits: Arc<AtomicUsize>) -> Router {
    let handler = move |principal: Principal| async move {
        hits.fetch_add(1, Ordering::SeqCst);
        principal
            .binding()
            .and_then(|b| b.certificate_thumbprint())
            .unwrap_or("bearer")
            .to_owned()
    };
    Router::new()
        .route("/orders", get(handler))
        .layer(AuthLayer::new(auth))
}

/// Served over TLS by `ca`, reading certificates from the connection.
async fn tls_rs(idp: &MockIdp, ca: &TestCa, mtls: Mtls) -> Rs {
    served_over_tls(ca, auth(idp, mtls, false).await).await
}

async fn served_over_tls(ca: &TestCa, auth: JwtAuth) -> Rs {
    let hits = Arc::new(AtomicUsize::new(0));
    let addr = ca.serve(app(auth, hits.clone())).await;
    Rs {
        url: format!("https://127.0.0.1:{}/orders", addr.port()),
        hits,
    }
}

/// Served over plain HTTP, as behind a proxy that terminated TLS.
async fn proxied_rs(idp: &MockIdp, mtls: Mtls) -> Rs {
    let hits = Arc::new(AtomicUsize::new(0));
    let addr = tollgate_testkit::serve(app(auth(idp, mtls, false).await, hits.clone())).await;
    Rs {
        url: format!("http://{addr}/orders"),
        hits,
    }
}

impl Rs {
    async fn call(
        &self,
        client: &reqwest::Client,
        token: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut req = client.get(&self.url).bearer_auth(token);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let res = req.send().await.unwrap();
        let challenge = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        Answer {
            status: res.status().as_u16(),
            challenge,
            body: res.text().await.unwrap(),
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// RFC 8705 §3: a mismatch is a 401 with `invalid_token`, and the handler never runs.
fn refused(rs: &Rs, answer: &Answer, case: &str) {
    assert_eq!(answer.status, 401, "{case}: {}", answer.body);
    assert!(
        answer.challenge.starts_with("Bearer ")
            && answer.challenge.contains("error=\"invalid_token\""),
        "{case}: {}",
        answer.challenge
    );
    assert_eq!(rs.hits(), 0, "{case}: the handler ran");
}

fn bound_token(idp: &MockIdp, certificate: &TestCertificate) -> String {
    idp.token().certificate_bound(certificate).sign()
}

#[tokio::test]
async fn mtls_bound_token_from_its_certificate_is_accepted_and_the_principal_says_so() {
    let (idp, ca) = (MockIdp::start().await, TestCa::new());
    let alice = ca.client_certificate("alice");
    let rs = tls_rs(
        &idp,
        &ca,
        Mtls::allowed(CertificateSource::tls_connection()),
    )
    .await;
    let answer = rs
        .call(&ca.client(Some(&alice)), &bound_token(&idp, &alice), &[])
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, alice.thumbprint());
    // Allowed, not required: an unbound token is still a bearer token, with or without a
    // certificate.
    let plain = idp.token().sign();
    for client in [ca.client(Some(&alice)), ca.client(None)] {
        let answer = rs.call(&client, &plain, &[]).await;
        assert_eq!((answer.status, answer.body.as_str()), (200, "bearer"));
    }
}

#[tokio::test]
async fn mtls_bound_token_from_another_certificate_or_none_is_refused() {
    let (idp, ca) = (MockIdp::start().await, TestCa::new());
    let (alice, mallory) = (
        ca.client_certificate("alice"),
        ca.client_certificate("mallory"),
    );
    let rs = tls_rs(
        &idp,
        &ca,
        Mtls::required(CertificateSource::tls_connection()),
    )
    .await;
    let token = bound_token(&idp, &alice);
    let answer = rs.call(&ca.client(Some(&mallory)), &token, &[]).await;
    refused(&rs, &answer, "another certificate");
    assert!(
        answer.body.contains("another client certificate"),
        "{}",
        answer.body
    );
    let answer = rs.call(&ca.client(None), &token, &[]).await;
    refused(&rs, &answer, "no certificate");
    // Tokens never carry the certificate's owner's secret, nor do errors the token.
    assert!(!answer.body.contains(&token));
}

#[tokio::test]
async fn mtls_untrusted_forwarded_certificate_header_is_ignored() {
    // The service terminates TLS itself: a client that sends the header a proxy would set
    // gains nothing by it.
    let (idp, ca) = (MockIdp::start().await, TestCa::new());
    let alice = ca.client_certificate("alice");
    let rs = tls_rs(
        &idp,
        &ca,
        Mtls::allowed(CertificateSource::tls_connection()),
    )
    .await;
    let token = bound_token(&idp, &alice);
    let forged = [
        ("x-forwarded-client-cert", alice.xfcc()),
        ("ssl-client-cert", alice.escaped_pem()),
    ];
    let headers: Vec<_> = forged.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let answer = rs.call(&ca.client(None), &token, &headers).await;
    refused(&rs, &answer, "forged forwarded headers");
}

#[tokio::test]
async fn mtls_certificate_forwarded_by_a_trusted_proxy_is_checked() {
    let (idp, ca) = (MockIdp::start().await, TestCa::new());
    let (alice, mallory) = (
        ca.client_certificate("alice"),
        ca.client_certificate("mallory"),
    );
    let token = bound_token(&idp, &alice);
    let client = reqwest::Client::new();

    let nginx = proxied_rs(
        &idp,
        Mtls::required(CertificateSource::forwarded_pem(HeaderName::from_static(
            "ssl-client-cert",
        ))),
    )
    .await;
    let answer = nginx
        .call(
            &client,
            &token,
            &[("ssl-client-cert", &alice.escaped_pem())],
        )
        .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, alice.thumbprint().as_str())
    );

    let envoy = proxied_rs(&idp, Mtls::required(CertificateSource::envoy())).await;
    let answer = envoy
        .call(
            &client,
            &token,
            &[("x-forwarded-client-cert", &alice.xfcc())],
        )
        .await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, alice.thumbprint().as_str())
    );

    // Behind Envoy, nginx's header means nothing, and another client's certificate is not
    // the one the token is bound to.
    let nginx_hits = nginx.hits();
    let fresh = proxied_rs(&idp, Mtls::required(CertificateSource::envoy())).await;
    let cases = [
        ("ssl-client-cert", alice.escaped_pem()),
        ("x-forwarded-client-cert", mallory.xfcc()),
        (
            "x-forwarded-client-cert",
            format!("{},{}", alice.xfcc(), alice.xfcc()),
        ),
        ("x-forwarded-client-cert", "Hash=not-hex".to_owned()),
    ];
    for (name, value) in &cases {
        let answer = fresh.call(&client, &token, &[(name, value)]).await;
        refused(&fresh, &answer, &format!("{name}: {value}"));
    }
    assert_eq!(nginx.hits(), nginx_hits);
}

#[tokio::test]
async fn mtls_bound_token_is_refused_where_certificates_are_not_checked() {
    // mTLS off (the default): the token is never taken as a plain bearer token, even from
    // its own certificate over TLS.
    let (idp, ca) = (MockIdp::start().await, TestCa::new());
    let alice = ca.client_certificate("alice");
    let rs = tls_rs(&idp, &ca, Mtls::off()).await;
    let answer = rs
        .call(&ca.client(Some(&alice)), &bound_token(&idp, &alice), &[])
        .await;
    refused(&rs, &answer, "mTLS off");
    assert!(answer.body.contains("does not check"), "{}", answer.body);
}

#[tokio::test]
async fn mtls_required_refuses_unbound_and_dpop_bound_tokens() {
    let (idp, ca) = (MockIdp::start().await, TestCa::new());
    let alice = ca.client_certificate("alice");
    let rs = tls_rs(
        &idp,
        &ca,
        Mtls::required(CertificateSource::tls_connection()),
    )
    .await;
    let client = ca.client(Some(&alice));
    let dpop_bound = idp
        .token()
        .dpop_bound(&DpopKey::generate(jsonwebtoken::Algorithm::ES256))
        .sign();
    for (case, token) in [("unbound", idp.token().sign()), ("DPoP-bound", dpop_bound)] {
        let answer = rs.call(&client, &token, &[]).await;
        refused(&rs, &answer, case);
    }
}

#[tokio::test]
async fn mtls_is_checked_on_cached_tokens_too() {
    let (idp, ca) = (MockIdp::start().await, TestCa::new());
    let (alice, mallory) = (
        ca.client_certificate("alice"),
        ca.client_certificate("mallory"),
    );
    let mtls = Mtls::allowed(CertificateSource::tls_connection());
    let rs = served_over_tls(&ca, auth(&idp, mtls, true).await).await;
    let token = bound_token(&idp, &alice);
    assert_eq!(
        rs.call(&ca.client(Some(&alice)), &token, &[]).await.status,
        200
    );
    // Now a cache hit: still only from alice's certificate.
    let answer = rs.call(&ca.client(Some(&mallory)), &token, &[]).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(rs.hits(), 1);
}

#[tokio::test]
async fn mtls_and_dpop_on_one_issuer_each_check_their_own_tokens() {
    let (idp, ca) = (MockIdp::start().await, TestCa::new());
    let alice = ca.client_certificate("alice");
    let auth = JwtAuth::builder()
        .issuer(
            Issuer::jwks_url(idp.issuer(), idp.jwks_url())
                .audience(DEFAULT_AUDIENCE)
                .dpop(Dpop::allowed())
                .mtls(Mtls::allowed(CertificateSource::tls_connection())),
        )
        .build()
        .await
        .unwrap();
    assert!(auth.mtls_enabled());
    let rs = served_over_tls(&ca, auth).await;
    let answer = rs
        .call(&ca.client(Some(&alice)), &bound_token(&idp, &alice), &[])
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // A DPoP-bound token as a bearer token is still refused, certificate or not.
    let dpop_bound = idp
        .token()
        .dpop_bound(&DpopKey::generate(jsonwebtoken::Algorithm::ES256))
        .sign();
    let answer = rs.call(&ca.client(Some(&alice)), &dpop_bound, &[]).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
}

#[tokio::test]
async fn mtls_bound_token_cannot_be_verified_without_its_request() {
    let (idp, ca) = (MockIdp::start().await, TestCa::new());
    let alice = ca.client_certificate("alice");
    let auth = auth(
        &idp,
        Mtls::allowed(CertificateSource::tls_connection()),
        false,
    )
    .await;
    let err = auth.verify(&bound_token(&idp, &alice)).await.unwrap_err();
    assert_eq!(err.status(), 401);
    assert!(auth.verify(&idp.token().sign()).await.is_ok());
}
