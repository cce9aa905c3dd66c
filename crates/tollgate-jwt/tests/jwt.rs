//! The JWT layer in front of an axum app on 127.0.0.1, against OpenID providers started by
//! the test (tollgate-testkit's `MockIdp`), which count their requests.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::json;
use tollgate_core::AuthLayer;
use tollgate_jwt::{Algorithm, BuildError, Issuer, JwtAuth, LocalKeys, ScopeMapping};
use tollgate_testkit::{DEFAULT_AUDIENCE, IdpFault, MockIdp, ProtectedApp, SigningKey};

async fn serve_app(auth: JwtAuth) -> ProtectedApp {
    ProtectedApp::start(AuthLayer::new(auth)).await
}

async fn status(app: &ProtectedApp, token: &str) -> u16 {
    app.bearer(token).await.status().as_u16()
}

fn issuer(idp: &MockIdp) -> Issuer {
    Issuer::jwks_url(idp.issuer(), idp.jwks_url()).audience(DEFAULT_AUDIENCE)
}

async fn auth_for(issuer: Issuer) -> JwtAuth {
    JwtAuth::builder().issuer(issuer).build().await.unwrap()
}

async fn description(res: reqwest::Response) -> String {
    let json: serde_json::Value = res.json().await.unwrap();
    json["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn rs256_ps256_es256_eddsa_tokens_are_accepted_via_discovery() {
    let idp = MockIdp::start().await;
    let auth = auth_for(Issuer::discover(idp.issuer()).audience(DEFAULT_AUDIENCE)).await;
    assert_eq!(idp.discovery_requests(), 1);
    let app = serve_app(auth).await;
    for alg in [
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ] {
        let token = idp
            .token()
            .alg(alg)
            .claim("scope", "orders:read  orders:write")
            .sign();
        let res = app.bearer(&token).await;
        assert_eq!(res.status(), 200, "{alg:?}");
        assert_eq!(res.text().await.unwrap(), "user-1 orders:read orders:write");
    }
    assert_eq!(idp.jwks_requests(), 1);
}

#[tokio::test]
async fn discovery_issuer_must_match_exactly() {
    let idp = MockIdp::start().await;
    idp.set_discovery_issuer(Some(&format!("{}/", idp.issuer())));
    let err = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience(DEFAULT_AUDIENCE))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BuildError::Fetch {
                discovery: true,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn first_fetch_failure_fails_the_build_loudly() {
    let idp = MockIdp::start().await;
    idp.fail_with(IdpFault::Status(500));
    let err = JwtAuth::builder()
        .issuer(issuer(&idp))
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("status 500"), "{err}");
    let err = JwtAuth::builder()
        .issuer(Issuer::jwks_url(idp.issuer(), idp.jwks_url()))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::NoAudience(_)));
}

#[tokio::test]
async fn rotation_needs_one_refetch_and_removed_keys_stop_working() {
    let idp = MockIdp::start().await;
    // No background refresh during this part, so every fetch counted is a refetch.
    let auth = auth_for(issuer(&idp).refresh_interval(Duration::from_secs(3600))).await;
    let app = serve_app(auth).await;
    let old = idp.token().sign();
    assert_eq!(status(&app, &old).await, 200);

    let before = idp.jwks_requests();
    let new_kid = idp.rotate(Algorithm::RS256);
    let new = idp.token().sign();
    assert!(new_kid.starts_with("rs-"));
    // Ten requests at once with the new kid: one refetch between them.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let req = app.get().bearer_auth(&new).send();
        set.spawn(async move { req.await.unwrap().status().as_u16() });
    }
    assert!(set.join_all().await.iter().all(|s| *s == 200));
    assert_eq!(
        idp.jwks_requests(),
        before + 1,
        "exactly one refetch for the new kid"
    );

    // A layer that refreshes often: once the old key is unpublished and a refresh ran, its
    // tokens are refused.
    let refreshing =
        serve_app(auth_for(issuer(&idp).refresh_interval(Duration::from_millis(200))).await).await;
    assert_eq!(status(&refreshing, &old).await, 200);
    idp.unpublish("rs-1");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let res = refreshing.bearer(&old).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        description(res).await,
        "the token was signed by an unknown key"
    );
    assert_eq!(status(&refreshing, &new).await, 200);
}

#[tokio::test]
async fn a_flood_of_made_up_kids_costs_at_most_one_fetch() {
    let idp = MockIdp::start().await;
    let app = serve_app(auth_for(issuer(&idp)).await).await;
    let stranger = SigningKey::generate("x", Algorithm::ES256);
    let tokens: Vec<String> = (0..200)
        .map(|i| {
            let kid = format!("made-up-{i}");
            idp.token().key(stranger.clone()).kid(Some(&kid)).sign()
        })
        .collect();
    for token in &tokens {
        assert_eq!(status(&app, token).await, 401);
    }
    // A repeated made-up kid is remembered as unknown.
    assert_eq!(status(&app, &tokens[0]).await, 401);
    assert!(idp.jwks_requests() <= 2, "{} fetches", idp.jwks_requests());
    assert_eq!(app.hits(), 0);
}

#[tokio::test]
async fn issuer_down_keeps_the_last_good_keys_then_503_after_max_staleness() {
    let idp = MockIdp::start().await;
    let auth = auth_for(
        issuer(&idp)
            .refresh_interval(Duration::from_millis(100))
            .retry_interval(Duration::from_millis(100))
            .max_staleness(Duration::from_millis(800)),
    )
    .await;
    let app = serve_app(auth.clone()).await;
    let token = idp.token().sign();
    idp.fail_with(IdpFault::Status(503));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status(&app, &token).await, 200, "last good keys still used");
    assert!(auth.stats().jwks_failures >= 2);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let res = app.bearer(&token).await;
    assert_eq!(
        res.status(),
        503,
        "stale past the maximum: fail closed, not 401"
    );
    assert!(res.headers().contains_key("retry-after"));
    idp.heal();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status(&app, &token).await,
        200,
        "recovers when the issuer is back"
    );
}

#[tokio::test]
async fn a_slow_issuer_does_not_hold_up_known_kids() {
    let idp = MockIdp::start().await;
    let app =
        serve_app(auth_for(issuer(&idp).refresh_interval(Duration::from_millis(50))).await).await;
    idp.fail_with(IdpFault::Delay(Duration::from_secs(30)));
    tokio::time::sleep(Duration::from_millis(200)).await; // a refresh is now hanging
    let token = idp.token().sign();
    let res = app
        .get()
        .bearer_auth(&token)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .expect("answered while the JWKS fetch hangs");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn cache_control_max_age_sets_the_refresh_interval() {
    let idp = MockIdp::start().await;
    idp.set_cache_control(Some("public, max-age=1"));
    let _auth = auth_for(
        issuer(&idp)
            .refresh_interval(Duration::from_secs(3600))
            .refresh_bounds(Duration::from_millis(200), Duration::from_secs(10)),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let n = idp.jwks_requests();
    assert!((2..=4).contains(&n), "{n} fetches in 2.6 s with max-age=1");

    let quiet = MockIdp::start().await;
    let _auth = auth_for(issuer(&quiet).refresh_interval(Duration::from_secs(3600))).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(quiet.jwks_requests(), 1);
}

#[tokio::test]
async fn one_bad_jwk_is_skipped_and_the_others_load() {
    let idp = MockIdp::start().await;
    idp.publish_raw(json!({"kty": "RSA", "kid": "broken", "n": "!!!", "e": "AQAB"}));
    idp.publish_raw(
        json!({"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256", "x": "a", "y": "b"}),
    );
    idp.publish_raw(
        json!({"kty": "oct", "kid": "secret", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}),
    );
    let app = serve_app(auth_for(issuer(&idp)).await).await;
    assert_eq!(status(&app, &idp.token().sign()).await, 200);
    assert_eq!(
        status(&app, &idp.token().alg(Algorithm::EdDSA).sign()).await,
        200
    );
}

#[tokio::test]
async fn every_claim_failure_is_401_invalid_token() {
    let idp = MockIdp::start().await;
    let app = serve_app(
        auth_for(
            issuer(&idp)
                .leeway(Duration::from_secs(5))
                .required_claims(["client_id"])
                .require_typ_at_jwt(),
        )
        .await,
    )
    .await;
    let good = || idp.token().typ("at+jwt").claim("client_id", "c1");
    assert_eq!(status(&app, &good().sign()).await, 200);
    assert_eq!(
        status(&app, &good().typ("application/at+jwt").sign()).await,
        200
    );
    let issuer = idp.issuer();
    let cases = [
        (good().expires_in(-10).sign(), "the token has expired"),
        (good().without("exp").sign(), "the token has no expiry"),
        (
            good().claim("exp", "tomorrow").sign(),
            "a time claim is not a number",
        ),
        (
            good().claim("nbf", 4_000_000_000u64).sign(),
            "the token is not valid yet",
        ),
        (
            good().claim("iat", 4_000_000_000u64).sign(),
            "the token was issued in the future",
        ),
        (
            good().claim("iss", "https://evil.example").sign(),
            "the token issuer is not trusted",
        ),
        (
            good().claim("iss", format!("{issuer}/")).sign(),
            "the token issuer is not trusted",
        ),
        (good().without("iss").sign(), "the token has no issuer"),
        (
            good().claim("aud", "someone-else").sign(),
            "the token is not meant for this audience",
        ),
        (
            good().claim("aud", json!(["a", "b"])).sign(),
            "the token is not meant for this audience",
        ),
        (
            good().without("aud").sign(),
            "the token is not meant for this audience",
        ),
        (
            good().without("client_id").sign(),
            "the token lacks a required claim",
        ),
        (
            good().typ("JWT").sign(),
            "the token is not of the expected type",
        ),
        (
            idp.token().claim("client_id", "c1").sign(),
            "the token is not of the expected type",
        ),
    ];
    for (token, expected) in cases {
        let res = app.bearer(&token).await;
        assert_eq!(res.status(), 401, "{expected}");
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains(r#"error="invalid_token""#));
        assert_eq!(description(res).await, expected);
    }
    let with_us = good().claim("aud", json!(["a", DEFAULT_AUDIENCE])).sign();
    assert_eq!(status(&app, &with_us).await, 200);
    assert_eq!(app.hits(), 3);
}

fn forge(header: serde_json::Value, claims: serde_json::Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string()),
        signature
    )
}

#[tokio::test]
async fn algorithm_attacks_are_refused() {
    let idp = MockIdp::start().await;
    let app = serve_app(auth_for(issuer(&idp)).await).await;
    let claims = json!({"iss": idp.issuer(), "aud": DEFAULT_AUDIENCE, "sub": "mallory", "exp": 4_000_000_000u64});

    // alg none in every casing, with and without a signature (RFC 8725 §3.2).
    for alg in ["none", "None", "NONE", "nOnE"] {
        for sig in ["", "c2lnbmF0dXJl"] {
            let token = forge(json!({"alg": alg, "kid": "rs-1"}), claims.clone(), sig);
            assert_eq!(status(&app, &token).await, 401, "{alg} {sig:?}");
        }
    }

    // HS256 signed with the RSA public key's bytes as the HMAC secret (key confusion).
    let rsa = idp.signing_key(Algorithm::RS256);
    let secret = jsonwebtoken::EncodingKey::from_secret(rsa.public_key_bytes());
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("rs-1".into());
    let confused = jsonwebtoken::encode(&header, &claims, &secret).unwrap();
    assert_eq!(status(&app, &confused).await, 401);

    // A valid signature from a key the JWKS does not hold, claiming a real kid.
    let stranger = SigningKey::generate("rs-1", Algorithm::RS256);
    let res = app.bearer(&idp.token().key(stranger.clone()).sign()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(description(res).await, "the token signature is not valid");

    // The attacker's key embedded in the header (jwk), or a URL to it (jku, x5u): never used,
    // never fetched.
    let attacker_jwks = MockIdp::start().await;
    let embedded: jsonwebtoken::jwk::Jwk = serde_json::from_value(stranger.jwk()).unwrap();
    let token = idp
        .token()
        .key(stranger.clone())
        .kid(Some("attacker"))
        .header(|h| {
            h.jwk = Some(embedded);
            h.jku = Some(attacker_jwks.jwks_url());
            h.x5u = Some(attacker_jwks.jwks_url());
        })
        .sign();
    assert_eq!(status(&app, &token).await, 401);
    assert_eq!(
        attacker_jwks.jwks_requests(),
        0,
        "jku/x5u must never be fetched"
    );

    // crit with an extension we do not implement (RFC 7515 §4.1.11).
    let token = idp
        .token()
        .header(|h| h.crit = Some(vec!["exp".into()]))
        .sign();
    let res = app.bearer(&token).await;
    assert_eq!(res.status(), 401);

    // PS/RS swapped: a PS256 token naming the RS256 key, whose JWK pins `alg: RS256`.
    let swapped = idp.token().alg(Algorithm::PS256).kid(Some("rs-1")).sign();
    assert_eq!(status(&app, &swapped).await, 401);
    assert_eq!(app.hits(), 0);
}

#[tokio::test]
async fn hmac_local_keys_and_pinned_algorithms() {
    let secret = b"an internal secret of 32+ bytes!!";
    let keys = LocalKeys::new()
        .hmac("internal", Algorithm::HS256, secret)
        .unwrap();
    let auth = JwtAuth::builder()
        .issuer(Issuer::local_keys("internal-svc", keys).audience("api"))
        .build()
        .await
        .unwrap();
    let app = serve_app(auth).await;
    let claims =
        json!({"iss": "internal-svc", "aud": "api", "sub": "svc-a", "exp": 4_000_000_000u64});
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("internal".into());
    let key = jsonwebtoken::EncodingKey::from_secret(secret);
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    assert_eq!(status(&app, &token).await, 200);
    header.alg = Algorithm::HS512;
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    assert_eq!(
        status(&app, &token).await,
        401,
        "the key is pinned to HS256"
    );
}

#[tokio::test]
async fn several_issuers_on_one_layer() {
    let (a, b, unknown) = (
        MockIdp::start().await,
        MockIdp::start().await,
        MockIdp::start().await,
    );
    let auth = JwtAuth::builder()
        .issuer(issuer(&a).scopes(ScopeMapping::claims(["permissions"])))
        .issuer(Issuer::discover(b.issuer()).audience("b-api"))
        .build()
        .await
        .unwrap();
    let app = serve_app(auth).await;
    let res = app
        .bearer(&a.token().claim("permissions", json!(["x:read"])).sign())
        .await;
    assert_eq!(res.text().await.unwrap(), "user-1 x:read");
    assert_eq!(
        status(&app, &b.token().claim("aud", "b-api").sign()).await,
        200
    );
    // Each issuer's rules are its own: B's audience is not A's.
    assert_eq!(
        status(&app, &a.token().claim("aud", "b-api").sign()).await,
        401
    );
    // A token of A's signed by B's key with A's iss: A's keys do not hold it.
    let cross = b.token().claim("iss", a.issuer()).kid(Some("rs-1")).sign();
    assert_eq!(status(&app, &cross).await, 401);
    // An issuer not configured: refused without any fetch to it.
    let res = app.bearer(&unknown.token().sign()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(unknown.jwks_requests() + unknown.discovery_requests(), 0);
}

#[tokio::test]
async fn lazy_mode_answers_503_until_keys_load() {
    let idp = MockIdp::start().await;
    idp.fail_with(IdpFault::Status(500));
    let auth = auth_for(
        issuer(&idp)
            .lazy()
            .retry_interval(Duration::from_millis(100)),
    )
    .await;
    let app = serve_app(auth).await;
    let token = idp.token().sign();
    assert_eq!(status(&app, &token).await, 503);
    idp.heal();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status(&app, &token).await, 200);
}

#[tokio::test]
async fn verified_token_cache_skips_the_check_and_follows_key_changes() {
    let idp = MockIdp::start().await;
    let auth = JwtAuth::builder()
        .issuer(issuer(&idp).refresh_interval(Duration::from_millis(200)))
        .verified_token_cache(1000, Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let app = serve_app(auth.clone()).await;
    let token = idp.token().sign();
    assert_eq!(status(&app, &token).await, 200);
    assert_eq!(status(&app, &token).await, 200);
    assert_eq!(auth.stats().cache_hits, 1);
    // The key is removed: once the key set is refreshed, the cached verdict is not trusted.
    idp.unpublish("rs-1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(&app, &token).await, 401);
    // An expired token is never served from the cache.
    let short = idp.token().alg(Algorithm::ES256).expires_in(-61).sign();
    assert_eq!(status(&app, &short).await, 401);
}

#[tokio::test]
async fn the_background_refresh_ends_with_the_last_clone() {
    let idp = MockIdp::start().await;
    let auth = auth_for(issuer(&idp).refresh_interval(Duration::from_millis(50))).await;
    let clone = auth.clone();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(idp.jwks_requests() >= 2);
    drop(auth);
    drop(clone);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_drop = idp.jwks_requests();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(idp.jwks_requests(), after_drop);
}

#[tokio::test]
async fn malformed_tokens() {
    let idp = MockIdp::start().await;
    let app = serve_app(auth_for(issuer(&idp)).await).await;
    let good = idp.token().sign();
    let (head, rest) = good.split_once('.').unwrap();
    let payload = rest.split_once('.').unwrap().0;
    let cases = [
        format!("{head}.{payload}."), // signature stripped
        format!("{good}.extra"),      // four segments
        format!("{head}.{payload}"),  // two
        "abc".to_owned(),
        format!(
            "{}.{payload}.sig",
            B64.encode(r#"{"alg":"RS256","alg":"RS256"}"#)
        ), // duplicate member
        format!("{head}.{}.sig", B64.encode(r#"{"sub":"a","sub":"b"}"#)),
        format!("{head}.{}.sig", B64.encode("[1,2]")),
    ];
    for token in cases {
        let status = status(&app, &token).await;
        assert!(status == 401 || status == 400, "{token}: {status}");
    }
    let huge = format!("{good}{}", "A".repeat(9000));
    assert_eq!(status(&app, &huge).await, 401);
    assert_eq!(app.hits(), 0);
}
