//! The introspection authenticator in front of an axum app on 127.0.0.1, against the RFC 7662
//! endpoint of tollgate-testkit's `MockIdp`, which counts its calls.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tollgate_client::ClientCredentials;
use tollgate_core::{AuthLayer, Authenticator};
use tollgate_introspect::{AudiencePolicy, BuildError, CachePolicy, Introspection};
use tollgate_jwt::{ClaimRule, Issuer, JwtAuth, ScopeMapping};
use tollgate_testkit::{DEFAULT_AUDIENCE, IdpFault, MockIdp, ProtectedApp};

const CLIENT: &str = "orders-api";
const SECRET: &str = "orders-api-introspection-secret";

async fn idp() -> MockIdp {
    let idp = MockIdp::start().await;
    idp.register_client(CLIENT, SECRET);
    idp
}

fn introspection(idp: &MockIdp) -> tollgate_introspect::IntrospectionBuilder {
    Introspection::builder(idp.issuer())
        .client_credentials(ClientCredentials::new(CLIENT).secret_basic(SECRET))
        .audience(DEFAULT_AUDIENCE)
        .timeout(Duration::from_millis(500))
}

async fn serve(auth: impl Authenticator) -> ProtectedApp {
    ProtectedApp::start(AuthLayer::new(auth)).await
}

async fn status(app: &ProtectedApp, token: &str) -> u16 {
    app.bearer(token).await.status().as_u16()
}

async fn description(res: reqwest::Response) -> String {
    let json: serde_json::Value = res.json().await.unwrap();
    json["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn introspect_an_opaque_token_into_a_principal_with_the_endpoint_discovered() {
    let idp = idp().await;
    let auth = introspection(&idp).build().await.unwrap();
    assert_eq!(auth.endpoint(), idp.introspection_url());
    let app = serve(auth.clone()).await;
    let token = idp
        .opaque_token()
        .claim("scope", "orders:read orders:write")
        .issue();
    let res = app.bearer(&token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "user-1 orders:read orders:write");
    // Without `sub`, the client is the subject.
    let machine = idp
        .opaque_token()
        .without("sub")
        .claim("client_id", "billing")
        .issue();
    assert_eq!(app.bearer(&machine).await.text().await.unwrap(), "billing ");
    assert_eq!(idp.introspection_requests(), 2);
    assert_eq!(status(&app, &token).await, 200);
    assert_eq!(
        idp.introspection_requests(),
        2,
        "a cached verdict makes no call"
    );
}

#[tokio::test]
async fn introspect_refuses_what_the_answer_does_not_allow() {
    let idp = idp().await;
    let app = serve(
        introspection(&idp)
            .require(ClaimRule::equals("tenant", "acme"))
            .build()
            .await
            .unwrap(),
    )
    .await;
    let good = || idp.opaque_token().claim("tenant", "acme");
    assert_eq!(status(&app, &good().issue()).await, 200);
    let cases = [
        (
            good().claim("active", false).issue(),
            "the token is not active",
        ),
        (
            good().claim("active", "true").issue(),
            "the token is not active",
        ),
        (good().without("active").issue(), "the token is not active"),
        ("ot_never_issued".to_owned(), "the token is not active"),
        (good().expires_in(-5).issue(), "the token has expired"),
        (
            good().claim("exp", "soon").issue(),
            "the token's exp is not a number",
        ),
        (
            good().claim("iss", "https://evil.example").issue(),
            "the token issuer is not trusted",
        ),
        (
            good().claim("aud", "other-api").issue(),
            "the token is not meant for this audience",
        ),
        (
            good().claim("aud", json!(["a", "b"])).issue(),
            "the token is not meant for this audience",
        ),
        (
            good().claim("tenant", "globex").issue(),
            "the token's claims do not meet this service's requirements",
        ),
    ];
    for (token, expected) in &cases {
        let res = app.bearer(token).await;
        assert_eq!(res.status(), 401, "{expected}");
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        assert_eq!(description(res).await, *expected);
    }
    // A revoked token, once its verdict is no longer cached.
    let revoked = good().issue();
    idp.revoke(&revoked);
    assert_eq!(status(&app, &revoked).await, 401);
    assert_eq!(app.hits(), 1);
}

#[tokio::test]
async fn introspect_audience_policies() {
    let idp = idp().await;
    let without_aud = idp.opaque_token().without("aud").issue();
    let with_other = idp
        .opaque_token()
        .claim("aud", json!(["other", DEFAULT_AUDIENCE]))
        .issue();
    let when_present = serve(introspection(&idp).build().await.unwrap()).await;
    assert_eq!(status(&when_present, &without_aud).await, 200);
    assert_eq!(status(&when_present, &with_other).await, 200);
    let required = serve(
        introspection(&idp)
            .audience_policy(AudiencePolicy::Required)
            .build()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status(&required, &without_aud).await, 401);
    let ignored = serve(
        Introspection::builder(idp.issuer())
            .client_credentials(ClientCredentials::new(CLIENT).secret_basic(SECRET))
            .audience_policy(AudiencePolicy::Ignored)
            .build()
            .await
            .unwrap(),
    )
    .await;
    let elsewhere = idp.opaque_token().claim("aud", "other-api").issue();
    assert_eq!(status(&ignored, &elsewhere).await, 200);
    // No audience and no opt-out: a configuration error, loudly.
    let err = Introspection::builder(idp.issuer())
        .client_credentials(ClientCredentials::new(CLIENT).secret_basic(SECRET))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::NoAudience), "{err}");
    let err = Introspection::builder(idp.issuer())
        .audience("x")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::NoCredentials), "{err}");
}

#[tokio::test]
async fn introspect_endpoint_trouble_is_503_never_401_or_200() {
    let idp = idp().await;
    let attacker = idp_with_everything_active().await;
    let token = idp.opaque_token().issue();
    let faults = [
        IdpFault::Status(500),
        IdpFault::Status(503),
        IdpFault::Status(400),
        IdpFault::Delay(Duration::from_secs(2)),
        IdpFault::Garbage,
        IdpFault::Html,
        IdpFault::Huge,
        IdpFault::Redirect(attacker.introspection_url()),
    ];
    // Discovery first, before the faults (a fresh authenticator for each: nothing cached, no
    // breaker shared).
    let mut apps = Vec::new();
    for _ in &faults {
        apps.push(serve(introspection(&idp).build().await.unwrap()).await);
    }
    for (fault, app) in faults.iter().zip(&apps) {
        idp.fail_with(fault.clone());
        let res = app.bearer(&token).await;
        assert_eq!(res.status(), 503, "{fault:?}");
        assert!(res.headers().contains_key("retry-after"), "{fault:?}");
        let body = res.text().await.unwrap();
        assert!(!body.contains(&token), "{fault:?}: the token in the answer");
        assert_eq!(app.hits(), 0, "{fault:?}");
    }
    assert_eq!(
        attacker.introspection_requests(),
        0,
        "the token was sent to the redirect"
    );
    idp.heal();

    // Our own credentials refused: the server's 401 is not the client's fault.
    let wrong = Introspection::builder(idp.issuer())
        .client_credentials(ClientCredentials::new(CLIENT).secret_basic("not-the-secret"))
        .audience(DEFAULT_AUDIENCE)
        .build()
        .await
        .unwrap();
    assert_eq!(status(&serve(wrong).await, &token).await, 503);
}

/// An answer may come in many chunks with no `Content-Length` (the cap is counted as they
/// come: `IdpFault::Huge` above streams), and is read whole; a malformed endpoint URL fails
/// the build rather than every request.
#[tokio::test]
async fn introspect_answer_in_chunks_is_read_whole_and_a_bad_endpoint_fails_the_build() {
    let idp = idp().await;
    let token = idp.opaque_token().claim("scope", "orders:read").issue();
    let app = serve(introspection(&idp).build().await.unwrap()).await;
    idp.fail_with(IdpFault::Chunked(7));
    assert_eq!(status(&app, &token).await, 200);
    idp.heal();
    let err = introspection(&idp)
        .endpoint("not a URL")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::Endpoint(_)), "{err}");
}

/// A second provider whose introspection endpoint would call anything active.
async fn idp_with_everything_active() -> MockIdp {
    let evil = MockIdp::start().await;
    evil.register_client(CLIENT, SECRET);
    evil
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspect_once_for_a_hundred_concurrent_misses() {
    let idp = idp().await;
    idp.fail_with(IdpFault::Delay(Duration::from_millis(200)));
    let app = Arc::new(
        serve(
            introspection(&idp)
                .endpoint(idp.introspection_url())
                .build()
                .await
                .unwrap(),
        )
        .await,
    );
    let token = idp.opaque_token().issue();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (app, token) = (app.clone(), token.clone());
        set.spawn(async move { status(&app, &token).await });
    }
    assert!(set.join_all().await.iter().all(|s| *s == 200));
    assert_eq!(idp.introspection_requests(), 1);
}

#[tokio::test]
async fn introspect_cache_lifetimes_and_invalidation() {
    let idp = idp().await;
    let auth = introspection(&idp)
        .cache(
            CachePolicy::default()
                .ttl(Duration::from_millis(300))
                .negative_ttl(Duration::from_millis(300)),
        )
        .build()
        .await
        .unwrap();
    let app = serve(auth.clone()).await;
    let calls = || idp.introspection_requests();

    // Refusals are cached briefly.
    assert_eq!(status(&app, "ot_unknown").await, 401);
    assert_eq!(status(&app, "ot_unknown").await, 401);
    assert_eq!(calls(), 1);

    // A revoked token is refused once its positive TTL has run out.
    let token = idp.opaque_token().issue();
    assert_eq!(status(&app, &token).await, 200);
    idp.revoke(&token);
    assert_eq!(status(&app, &token).await, 200, "still cached");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status(&app, &token).await, 401);

    // invalidate() forgets at once.
    let other = idp.opaque_token().issue();
    assert_eq!(status(&app, &other).await, 200);
    idp.revoke(&other);
    auth.invalidate(&other).await;
    assert_eq!(status(&app, &other).await, 401);

    // A verdict never outlives the token's exp, whatever the TTL.
    let long = introspection(&idp).build().await.unwrap();
    let app = serve(long).await;
    let short = idp.opaque_token().expires_in(1).issue();
    assert_eq!(status(&app, &short).await, 200);
    let before = calls();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(status(&app, &short).await, 401);
    assert_eq!(
        calls(),
        before + 1,
        "the expired verdict was dropped, and asked again"
    );
}

#[tokio::test]
async fn introspect_outage_serves_stale_and_answers_at_once() {
    let idp = idp().await;
    let auth = introspection(&idp)
        .cache(
            CachePolicy::default()
                .ttl(Duration::from_millis(100))
                .serve_stale_on_error(Duration::from_secs(60)),
        )
        .build()
        .await
        .unwrap();
    let app = serve(auth).await;
    let known = idp.opaque_token().issue();
    let unknown = idp.opaque_token().issue();
    assert_eq!(status(&app, &known).await, 200);
    tokio::time::sleep(Duration::from_millis(150)).await;
    idp.fail_with(IdpFault::Delay(Duration::from_secs(10)));
    let before = idp.introspection_requests();
    for _ in 0..10 {
        assert_eq!(status(&app, &known).await, 200, "served stale");
        assert_eq!(status(&app, &unknown).await, 503);
    }
    assert_eq!(
        idp.introspection_requests(),
        before + 1,
        "one timeout, then none"
    );
}

#[tokio::test]
async fn introspect_and_jwts_from_one_issuer_on_one_route() {
    let idp = idp().await;
    let jwts = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience(DEFAULT_AUDIENCE))
        .build()
        .await
        .unwrap();
    let opaque = introspection(&idp).build().await.unwrap();
    for app in [
        serve(jwts.clone().or(opaque.clone())).await,
        serve(opaque.clone().or(jwts.clone())).await,
    ] {
        let before = (idp.introspection_requests(), idp.jwks_requests());
        let jwt = idp.token().claim("scope", "orders:read").sign();
        assert_eq!(
            app.bearer(&jwt).await.text().await.unwrap(),
            "user-1 orders:read"
        );
        assert_eq!(
            idp.introspection_requests(),
            before.0,
            "a JWT was introspected"
        );
        let token = idp.opaque_token().claim("scope", "orders:write").issue();
        assert_eq!(
            app.bearer(&token).await.text().await.unwrap(),
            "user-1 orders:write"
        );
        assert_eq!(idp.introspection_requests(), before.0 + 1);
        assert_eq!(
            idp.jwks_requests(),
            before.1,
            "no JWT work for an opaque token"
        );
    }
    // Asked to, introspection takes JWT-shaped tokens too.
    let app = serve(introspection(&idp).introspect_jwts().build().await.unwrap()).await;
    assert_eq!(
        status(&app, &idp.token().sign()).await,
        401,
        "not a token the endpoint knows"
    );
}

#[tokio::test]
async fn introspect_with_a_bearer_token_or_client_secret_post() {
    let idp = idp().await;
    idp.register_introspection_bearer("resource-server-token");
    let token = idp.opaque_token().issue();
    let bearer = Introspection::builder(idp.issuer())
        .bearer_token("resource-server-token")
        .audience(DEFAULT_AUDIENCE)
        .build()
        .await
        .unwrap();
    assert_eq!(status(&serve(bearer).await, &token).await, 200);
    let post = Introspection::builder(idp.issuer())
        .client_credentials(ClientCredentials::new(CLIENT).secret_post(SECRET))
        .audience(DEFAULT_AUDIENCE)
        .build()
        .await
        .unwrap();
    assert_eq!(status(&serve(post).await, &token).await, 200);
}

#[tokio::test]
async fn introspect_answers_shaped_like_hydra_keycloak_and_okta() {
    let idp = idp().await;
    let iss = idp.issuer();
    // Ory Hydra: aud an array, scopes in `scope`, the rest under `ext`.
    let hydra = idp
        .opaque_token()
        .claim("aud", json!([DEFAULT_AUDIENCE]))
        .claim("scope", "offline orders:read")
        .claim("token_use", "access_token")
        .claim("ext", json!({"tenant": "acme"}))
        .claim("nbf", 0)
        .issue();
    // Keycloak: roles under realm_access, `typ`, `username`, an `azp`.
    let keycloak = idp
        .opaque_token()
        .claim("typ", "Bearer")
        .claim("username", "alice")
        .claim("azp", "web")
        .claim("realm_access", json!({"roles": ["orders-admin"]}))
        .claim("scope", "profile email")
        .issue();
    // Okta: aud a string, `uid`, `jti`, `token_type`.
    let okta = idp
        .opaque_token()
        .claim("aud", DEFAULT_AUDIENCE)
        .claim("uid", "00uabc")
        .claim("jti", "AT.xyz")
        .claim("scope", "orders:read")
        .issue();
    let app = serve(
        introspection(&idp)
            .scopes(ScopeMapping::claims(["scope", "realm_access.roles"]))
            .require(ClaimRule::any([
                ClaimRule::equals("ext.tenant", "acme"),
                ClaimRule::equals("azp", "web"),
                ClaimRule::equals("uid", "00uabc"),
            ]))
            .build()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        app.bearer(&hydra).await.text().await.unwrap(),
        "user-1 offline orders:read"
    );
    assert_eq!(
        app.bearer(&keycloak).await.text().await.unwrap(),
        "user-1 email orders-admin profile"
    );
    assert_eq!(
        app.bearer(&okta).await.text().await.unwrap(),
        "user-1 orders:read"
    );
    assert!(iss.starts_with("http://127.0.0.1"));
}

#[tokio::test]
async fn introspect_logs_and_errors_never_contain_the_token() {
    let (logs, _guard) = tollgate_testkit::capture_logs(tracing::Level::TRACE);

    let idp = idp().await;
    let auth = introspection(&idp).build().await.unwrap();
    let app = serve(auth.clone()).await;
    let good = idp.opaque_token().issue();
    let bad = idp.opaque_token().claim("active", false).issue();
    let mut seen = String::new();
    for token in [&good, &bad] {
        let res = app.bearer(token).await;
        seen.push_str(&format!("{:?}", res.headers()));
        seen.push_str(&res.text().await.unwrap());
    }
    idp.fail_with(IdpFault::Garbage);
    auth.invalidate_all().await;
    seen.push_str(&app.bearer(&good).await.text().await.unwrap());
    seen.push_str(&format!("{auth:?}"));
    let logs = logs.text();
    for secret in [&good, &bad, &SECRET.to_owned()] {
        assert!(!logs.contains(secret.as_str()), "logs leak a secret");
        assert!(!seen.contains(secret.as_str()), "responses leak a secret");
    }
}

/// A DPoP request to `app`'s route (served at `GET /` on 127.0.0.1).
async fn dpop_call(app: &ProtectedApp, token: &str, proof: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .get(app.url())
        .header("authorization", format!("DPoP {token}"));
    if let Some(proof) = proof {
        req = req.header("dpop", proof);
    }
    let res = req.send().await.unwrap();
    let challenge = res
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(" | ");
    (res.status().as_u16(), challenge)
}

#[tokio::test]
async fn introspect_dpop_bound_opaque_tokens_need_their_proof_cached_or_not() {
    use tollgate_jwt::Dpop;
    use tollgate_testkit::DpopKey;

    let idp = idp().await;
    let app = serve(
        introspection(&idp)
            .dpop(Dpop::allowed())
            .build()
            .await
            .unwrap(),
    )
    .await;
    let htu = app.url().replacen("http://", "https://", 1);
    let key = DpopKey::generate(tollgate_jwt::Algorithm::ES256);
    let token = idp.opaque_token().dpop_bound(&key).issue();

    let proof = key.proof("GET", &htu).access_token(&token).build();
    assert_eq!(dpop_call(&app, &token, Some(&proof)).await.0, 200);
    // The verdict is cached now, the proof is still checked: a replay, a missing proof and
    // another key's proof are refused, and a bound token is no bearer token.
    let (code, challenge) = dpop_call(&app, &token, Some(&proof)).await;
    assert_eq!(code, 401);
    assert!(
        challenge.contains(r#"error="invalid_dpop_proof""#),
        "{challenge}"
    );
    assert_eq!(dpop_call(&app, &token, None).await.0, 401);
    let thief = DpopKey::generate(tollgate_jwt::Algorithm::ES256);
    let stolen = thief.proof("GET", &htu).access_token(&token).build();
    let (code, challenge) = dpop_call(&app, &token, Some(&stolen)).await;
    assert_eq!(code, 401);
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert_eq!(status(&app, &token).await, 401);
    assert_eq!(app.hits(), 1);
    assert_eq!(idp.introspection_requests(), 1);

    let fresh = key.proof("GET", &htu).access_token(&token).build();
    assert_eq!(dpop_call(&app, &token, Some(&fresh)).await.0, 200);
    // An unbound opaque token still works as a bearer token.
    assert_eq!(status(&app, &idp.opaque_token().issue()).await, 200);
}

#[tokio::test]
async fn introspect_dpop_required_refuses_unbound_and_off_refuses_bound_tokens() {
    use tollgate_jwt::Dpop;
    use tollgate_testkit::DpopKey;

    let idp = idp().await;
    let required = serve(
        introspection(&idp)
            .dpop(Dpop::required())
            .build()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status(&required, &idp.opaque_token().issue()).await, 401);

    let off = serve(introspection(&idp).build().await.unwrap()).await;
    let key = DpopKey::generate(tollgate_jwt::Algorithm::ES256);
    let bound = idp.opaque_token().dpop_bound(&key).issue();
    assert_eq!(status(&off, &bound).await, 401);
    // A cnf that binds the token in a way nobody here checks is refused too.
    let odd = idp
        .opaque_token()
        .claim("cnf", json!({ "kid": "k1" }))
        .issue();
    assert_eq!(status(&off, &odd).await, 401);
    assert_eq!(off.hits() + required.hits(), 0);
}

#[tokio::test]
async fn introspect_certificate_bound_opaque_tokens_need_their_certificate_cached_or_not() {
    use http::HeaderName;
    use tollgate_core::CertificateSource;
    use tollgate_jwt::Mtls;
    use tollgate_testkit::TestCa;

    let idp = idp().await;
    let header = HeaderName::from_static("ssl-client-cert");
    let auth = introspection(&idp)
        .mtls(Mtls::allowed(CertificateSource::forwarded_pem(header)))
        .build()
        .await
        .unwrap();
    assert!(auth.mtls_enabled());
    let app = serve(auth).await;
    let ca = TestCa::new();
    let (alice, mallory) = (
        ca.client_certificate("alice"),
        ca.client_certificate("mallory"),
    );
    let token = idp.opaque_token().certificate_bound(&alice).issue();
    let call = |certificate: Option<String>| {
        let mut req = reqwest::Client::new().get(app.url()).bearer_auth(&token);
        if let Some(pem) = certificate {
            req = req.header("ssl-client-cert", pem);
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(call(Some(alice.escaped_pem())).await, 200);
    // Cached now: still only with alice's certificate.
    assert_eq!(call(Some(mallory.escaped_pem())).await, 401);
    assert_eq!(call(None).await, 401);
    assert_eq!(call(Some(alice.escaped_pem())).await, 200);
    assert_eq!(idp.introspection_requests(), 1);
    assert_eq!(app.hits(), 2);

    // mTLS off: the bound token is refused, never taken as a bearer token.
    let off = serve(introspection(&idp).build().await.unwrap()).await;
    let res = reqwest::Client::new()
        .get(off.url())
        .bearer_auth(&token)
        .header("ssl-client-cert", alice.escaped_pem())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(off.hits(), 0);
}

#[tokio::test]
async fn introspect_over_mtls_uses_the_servers_mtls_endpoint_alias() {
    use axum::routing::post;
    use axum::{Extension, Form, Json};
    use tollgate_core::ClientCertificate;
    use tollgate_testkit::TestCa;

    // An introspection endpoint over TLS that knows the resource server by its certificate
    // alone, published as the provider's mTLS alias (RFC 8705 §5).
    let (idp, ca) = (idp().await, TestCa::new());
    let rs_certificate = ca.client_certificate(CLIENT);
    let (issuer, expected) = (idp.issuer(), rs_certificate.thumbprint());
    let endpoint = move |certificate: Option<Extension<ClientCertificate>>,
                         Form(form): Form<Vec<(String, String)>>| async move {
        let client = form
            .iter()
            .find(|(k, _)| k == "client_id")
            .map(|(_, v)| v.as_str());
        let known = certificate.is_some_and(|c| c.thumbprint() == expected);
        if !known || client != Some(CLIENT) {
            return (
                http::StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "invalid_client" })),
            );
        }
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 300;
        let answer = json!({
            "active": true, "sub": "svc", "exp": exp, "iss": issuer, "aud": DEFAULT_AUDIENCE,
        });
        (http::StatusCode::OK, Json(answer))
    };
    let addr = ca
        .serve(axum::Router::new().route("/introspect", post(endpoint)))
        .await;
    let alias = format!("https://127.0.0.1:{}/introspect", addr.port());
    idp.set_mtls_endpoint_aliases(None, Some(&alias));

    let auth = Introspection::builder(idp.issuer())
        .client_credentials(ClientCredentials::new(CLIENT).tls_client_auth())
        .http_client(ca.client(Some(&rs_certificate)))
        .audience(DEFAULT_AUDIENCE)
        .build()
        .await
        .unwrap();
    let app = serve(auth).await;
    assert_eq!(status(&app, "opaque-token-for-the-alias").await, 200);
    assert_eq!(
        idp.introspection_requests(),
        0,
        "the plain endpoint was not asked"
    );
}
