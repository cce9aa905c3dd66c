//! The key set and its lifecycle against a `MockIdp` on 127.0.0.1: the JWK rules (kids shared
//! across key types, tokens without a kid, RSA sizes, empty sets), redirects, and rotations
//! that an attacker cannot stall.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use serde_json::json;
use tollgate_core::AuthLayer;
use tollgate_jwt::{Algorithm, BuildError, Issuer, JwtAuth, LocalKeys};
use tollgate_testkit::{DEFAULT_AUDIENCE, IdpFault, MockIdp, ProtectedApp, SigningKey};

async fn serve_app(auth: JwtAuth) -> ProtectedApp {
    ProtectedApp::start(AuthLayer::new(auth)).await
}

fn issuer(idp: &MockIdp) -> Issuer {
    Issuer::jwks_url(idp.issuer(), idp.jwks_url()).audience(DEFAULT_AUDIENCE)
}

async fn auth_for(issuer: Issuer) -> JwtAuth {
    JwtAuth::builder().issuer(issuer).build().await.unwrap()
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

/// Polls `check` every 50 ms until it holds or `within` has passed; whether it held.
async fn eventually(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_kid_shared_by_keys_of_different_types_rfc7517_s4_5() {
    let idp = MockIdp::start().await;
    // An RSA and an EC key under one kid, the EC one published after (as Entra ID does).
    let rsa = SigningKey::generate("shared", Algorithm::RS256);
    let ec = SigningKey::generate("shared", Algorithm::ES256);
    idp.publish(rsa.clone());
    idp.publish(ec.clone());
    let app = serve_app(auth_for(issuer(&idp)).await).await;
    assert_eq!(status(&app, &idp.token().key(rsa).sign()).await, 200);
    assert_eq!(status(&app, &idp.token().key(ec).sign()).await, 200);
}

#[tokio::test]
async fn a_token_without_kid_needs_exactly_one_key_for_its_algorithm() {
    let idp = MockIdp::start().await;
    let app =
        serve_app(auth_for(issuer(&idp).refresh_interval(Duration::from_millis(100))).await).await;
    // One RS256 key in the set: a token without a kid is verified by it.
    assert_eq!(status(&app, &idp.token().kid(None).sign()).await, 200);
    // A second RS256 key: which one signed is ambiguous, and nothing is tried.
    idp.rotate(Algorithm::RS256);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = app.bearer(&idp.token().kid(None).sign()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        description(res).await,
        "the token names no key, and several keys of its issuer fit its algorithm"
    );
    assert_eq!(app.hits(), 1);
}

/// An RSA public JWK whose modulus has exactly `bits` bits.
fn rsa_jwk(kid: &str, bits: usize) -> serde_json::Value {
    let mut n = vec![0xffu8; bits.div_ceil(8)];
    n[0] = 0xff >> (n.len() * 8 - bits);
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": B64.encode(&n), "e": "AQAB"})
}

#[tokio::test]
async fn rsa_moduli_are_counted_in_bits_not_bytes() {
    let idp = MockIdp::start().await;
    idp.publish_raw(rsa_jwk("weak-2041", 2041));
    let app = serve_app(auth_for(issuer(&idp)).await).await;
    let token = idp.token().kid(Some("weak-2041")).sign();
    let res = app.bearer(&token).await;
    assert_eq!(res.status(), 401);
    // Skipped when loaded, not merely failing its signature check.
    assert_eq!(
        description(res).await,
        "the token was signed by an unknown key"
    );

    // The same floor for PEM keys given locally: a 1024-bit PKCS#1 key is refused.
    let mut n = vec![0xffu8; 129];
    n[0] = 0; // INTEGER sign byte before 1024 bits
    n[1] = 0xc0;
    let mut der = vec![0x30, 0x81, 0x89, 0x02, 0x81, 0x81];
    der.extend_from_slice(&n);
    der.extend_from_slice(&[0x02, 0x03, 0x01, 0x00, 0x01]);
    let pem = format!(
        "-----BEGIN RSA PUBLIC KEY-----\n{}\n-----END RSA PUBLIC KEY-----\n",
        STANDARD.encode(&der)
    );
    let err = LocalKeys::new()
        .pem("small", Algorithm::RS256, pem.as_bytes())
        .unwrap_err();
    assert!(matches!(err, BuildError::Keys(_)), "{err}");
    assert!(err.to_string().contains("2048"), "{err}");
}

#[tokio::test]
async fn a_jwks_with_no_usable_key_is_a_failed_fetch_and_the_good_keys_stay() {
    let idp = MockIdp::start().await;
    let auth = auth_for(issuer(&idp).refresh_interval(Duration::from_millis(100))).await;
    let app = serve_app(auth.clone()).await;
    let token = idp.token().sign();
    assert_eq!(status(&app, &token).await, 200);
    for kid in ["rs-1", "ps-1", "es-1", "ed-1"] {
        idp.unpublish(kid);
    }
    idp.publish_raw(json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}));
    idp.publish_raw(rsa_jwk("weak", 1024));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(auth.stats().jwks_failures >= 2);
    assert_eq!(
        status(&app, &token).await,
        200,
        "the last good keys are kept"
    );
}

#[tokio::test]
async fn cached_tokens_are_dropped_when_a_key_is_replaced_under_its_kid() {
    let idp = MockIdp::start().await;
    let auth = JwtAuth::builder()
        .issuer(issuer(&idp).refresh_interval(Duration::from_millis(100)))
        .verified_token_cache(100, Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    let app = serve_app(auth.clone()).await;
    let old = idp.token().sign();
    assert_eq!(status(&app, &old).await, 200);
    assert_eq!(status(&app, &old).await, 200);
    assert_eq!(auth.stats().cache_hits, 1);
    idp.replace_key("rs-1"); // new material, same kid
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        status(&app, &old).await,
        401,
        "no longer trusted from the cache"
    );
    assert_eq!(status(&app, &idp.token().sign()).await, 200);
}

#[tokio::test]
async fn a_redirecting_jwks_never_replaces_the_keys() {
    let idp = MockIdp::start().await;
    let attacker = MockIdp::start().await;
    let auth = auth_for(issuer(&idp).refresh_interval(Duration::from_millis(100))).await;
    let app = serve_app(auth.clone()).await;
    idp.fail_with(IdpFault::Redirect(attacker.jwks_url()));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(auth.stats().jwks_failures >= 1);
    // The attacker's tokens, claiming the issuer: refused. The issuer's own: still good.
    let forged = attacker.token().claim("iss", idp.issuer()).sign();
    assert_eq!(status(&app, &forged).await, 401);
    assert_eq!(status(&app, &idp.token().sign()).await, 200);
    assert_eq!(attacker.jwks_requests(), 0, "the redirect was followed");

    // A discovery document that redirects fails the build; nothing is fetched there.
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
    assert_eq!(attacker.jwks_requests() + attacker.discovery_requests(), 0);
}

#[tokio::test]
async fn a_client_that_follows_redirects_is_caught() {
    let idp = MockIdp::start().await;
    let attacker = MockIdp::start().await;
    idp.fail_with(IdpFault::Redirect(attacker.jwks_url()));
    let err = JwtAuth::builder()
        .issuer(issuer(&idp))
        .client(reqwest::Client::new()) // follows redirects
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("redirect"), "{err}");
}

#[tokio::test]
async fn a_flood_of_made_up_kids_cannot_stall_a_rotation() {
    let idp = MockIdp::start().await;
    let cooldown = Duration::from_millis(500);
    let auth = auth_for(
        issuer(&idp)
            .refresh_interval(Duration::from_secs(3600))
            .refetch_cooldown(cooldown),
    )
    .await;
    let app = serve_app(auth.clone()).await;
    let stranger = SigningKey::generate("x", Algorithm::ES256);
    let flood = |i: usize| {
        let kid = format!("made-up-{i}");
        idp.token().key(stranger.clone()).kid(Some(&kid)).sign()
    };
    // The flood is under way: every cooldown starts with a made-up kid.
    assert_eq!(status(&app, &flood(0)).await, 401);
    idp.rotate(Algorithm::RS256);
    let rotated = idp.token().sign();
    let started = Instant::now();
    let mut i = 1;
    let accepted = eventually(cooldown * 4, async || {
        i += 1;
        assert_eq!(status(&app, &flood(i)).await, 401);
        status(&app, &rotated).await == 200
    })
    .await;
    assert!(
        accepted,
        "the rotated-in key was not accepted during the flood"
    );
    // Within one cooldown of its first use (and the fetch's own time).
    assert!(started.elapsed() < cooldown * 2, "{:?}", started.elapsed());
    // The flood still costs at most one fetch per cooldown (plus the one at build time).
    let cooldowns = started.elapsed().as_millis() / cooldown.as_millis() + 2;
    assert!(
        idp.jwks_requests() as u128 <= cooldowns + 1,
        "{} fetches",
        idp.jwks_requests()
    );
}

#[tokio::test]
async fn a_kid_seen_before_the_issuer_publishes_it_is_looked_up_again() {
    let idp = MockIdp::start().await;
    let cooldown = Duration::from_millis(400);
    let auth = auth_for(
        issuer(&idp)
            .refresh_interval(Duration::from_secs(3600))
            .refetch_cooldown(cooldown),
    )
    .await;
    let app = serve_app(auth).await;
    // A token from a key the issuer has not published yet.
    let early = SigningKey::generate("rs-early", Algorithm::RS256);
    let token = idp.token().key(early.clone()).sign();
    assert_eq!(status(&app, &token).await, 401);
    idp.publish(early);
    assert!(
        eventually(cooldown * 4, async || status(&app, &token).await == 200).await,
        "still refused after the issuer published the key"
    );
}

#[tokio::test]
async fn a_key_replaced_under_its_kid_heals_within_a_cooldown() {
    let idp = MockIdp::start().await;
    let cooldown = Duration::from_millis(300);
    let auth = auth_for(
        issuer(&idp)
            .refresh_interval(Duration::from_secs(3600))
            .refetch_cooldown(cooldown),
    )
    .await;
    let app = serve_app(auth).await;
    idp.replace_key("rs-1");
    let token = idp.token().sign();
    assert!(
        eventually(cooldown * 4, async || status(&app, &token).await == 200).await,
        "the replaced key was never fetched"
    );
}

#[tokio::test]
async fn while_the_issuer_is_down_an_unknown_kid_is_503_not_401() {
    let idp = MockIdp::start().await;
    let auth = auth_for(
        issuer(&idp)
            .refresh_interval(Duration::from_secs(3600))
            .refetch_cooldown(Duration::from_millis(100)),
    )
    .await;
    let app = serve_app(auth).await;
    let known = idp.token().sign();
    idp.rotate(Algorithm::ES256);
    let unknown = idp.token().alg(Algorithm::ES256).sign();
    idp.fail_with(IdpFault::Status(503));
    for _ in 0..3 {
        let res = app.bearer(&unknown).await;
        assert_eq!(res.status(), 503);
        assert!(res.headers().contains_key("retry-after"));
        assert_eq!(
            res.json::<serde_json::Value>().await.unwrap()["error"],
            "temporarily_unavailable"
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    assert_eq!(status(&app, &known).await, 200, "known kids keep working");
    idp.heal();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(status(&app, &unknown).await, 200);
}

#[tokio::test]
async fn a_moved_jwks_is_found_again_by_discovery() {
    let idp = MockIdp::start().await;
    let auth = auth_for(
        Issuer::discover(idp.issuer())
            .audience(DEFAULT_AUDIENCE)
            .refetch_cooldown(Duration::from_millis(50)),
    )
    .await;
    let app = serve_app(auth).await;
    assert_eq!(status(&app, &idp.token().sign()).await, 200);
    idp.move_jwks("/keys/v2/jwks.json");
    idp.rotate(Algorithm::RS256);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(status(&app, &idp.token().sign()).await, 200);
    assert_eq!(idp.discovery_requests(), 2);
}

#[tokio::test]
async fn a_discovery_issuer_mismatch_names_the_issuer_the_document_names() {
    let idp = MockIdp::start().await;
    idp.set_discovery_issuer(Some("https://impostor.example"));
    let err = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience(DEFAULT_AUDIENCE))
        .build()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("https://impostor.example"),
        "{err}"
    );
}
