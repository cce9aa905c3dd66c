//! DPoP on the resource server (RFC 9449 §4.3, §7, §8): every rule of the proof check,
//! through an axum app on 127.0.0.1 and real HTTP, each refusal checked for its status, its
//! error code in the `DPoP` challenge, and that the handler never ran.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use jsonwebtoken::Algorithm;
use tollgate_core::{AuthLayer, Principal, Remembered, ReplayStore};
use tollgate_jwt::{Dpop, Issuer, JwtAuth};
use tollgate_testkit::{DEFAULT_AUDIENCE, DpopKey, MockIdp};

/// A resource server whose one issuer has `dpop`, serving `/orders` (GET and POST).
struct Rs {
    /// `127.0.0.1:<port>`.
    authority: String,
    hits: Arc<AtomicUsize>,
    client: reqwest::Client,
}

struct Answer {
    status: u16,
    challenges: Vec<String>,
    nonce: Option<String>,
    retry_after: Option<String>,
    body: String,
}

impl Answer {
    /// The `error` of the first challenge of `scheme`.
    fn error_in(&self, scheme: &str) -> Option<String> {
        let challenge = self
            .challenges
            .iter()
            .find(|c| c.starts_with(&format!("{scheme} ")))?;
        let rest = challenge.split(" error=\"").nth(1)?;
        Some(rest.split('"').next()?.to_owned())
    }
}

async fn rs_with(idp: &MockIdp, dpop: Dpop, cache: bool) -> Rs {
    let mut builder = JwtAuth::builder().issuer(
        Issuer::jwks_url(idp.issuer(), idp.jwks_url())
            .audience(DEFAULT_AUDIENCE)
            .dpop(dpop),
    );
    if cache {
        builder = builder.verified_token_cache(100, Duration::from_secs(60));
    }
    let auth = builder.build().await.unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let handler = move |principal: Principal| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let jkt = principal
                .binding()
                .and_then(|b| b.dpop_thumbprint())
                .unwrap_or("bearer")
                .to_owned();
            format!("{} {jkt}", principal.subject())
        }
    };
    let app = Router::new()
        .route("/orders", get(handler.clone()).post(handler))
        .layer(AuthLayer::new(auth));
    let addr = tollgate_testkit::serve(app).await;
    Rs {
        authority: addr.to_string(),
        hits,
        client: reqwest::Client::new(),
    }
}

async fn rs(idp: &MockIdp, dpop: Dpop) -> Rs {
    rs_with(idp, dpop, false).await
}

impl Rs {
    /// The `htu` a client of this server names without a proxy in front: the server takes
    /// the scheme to be `https` unless told its external URL.
    fn htu(&self) -> String {
        format!("https://{}/orders", self.authority)
    }

    async fn call(&self, method: &str, authorization: &str, proofs: &[&str]) -> Answer {
        let proofs: Vec<&[u8]> = proofs.iter().map(|p| p.as_bytes()).collect();
        self.call_bytes(method, authorization, &proofs).await
    }

    /// [`call`](Self::call) with proofs as bytes, which need not be text.
    async fn call_bytes(&self, method: &str, authorization: &str, proofs: &[&[u8]]) -> Answer {
        let url = format!("http://{}/orders", self.authority);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, url)
            .header("authorization", authorization);
        for proof in proofs {
            req = req.header(
                "dpop",
                reqwest::header::HeaderValue::from_bytes(proof).unwrap(),
            );
        }
        let res = req.send().await.unwrap();
        let challenges = res
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let nonce = res
            .headers()
            .get("dpop-nonce")
            .map(|v| v.to_str().unwrap().to_owned());
        let retry_after = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        Answer {
            status: res.status().as_u16(),
            challenges,
            nonce,
            retry_after,
            body: res.text().await.unwrap(),
        }
    }

    async fn dpop(&self, token: &str, proof: &str) -> Answer {
        self.call("GET", &format!("DPoP {token}"), &[proof]).await
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Asserts a refusal with `status` and `code` in the `DPoP` challenge, the handler not run.
#[track_caller]
fn refused(rs: &Rs, answer: &Answer, code: &str) {
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(
        answer.error_in("DPoP").as_deref(),
        Some(code),
        "{:?}",
        answer.challenges
    );
    assert_eq!(rs.hits(), 0, "the handler ran");
}

/// Asserts that each of `cases` (what is wrong, the proof, which need not be text) is
/// refused as `invalid_dpop_proof` with `token`, the handler never run for any of them.
async fn all_refused<P: AsRef<[u8]>>(
    rs: &Rs,
    token: &str,
    cases: impl IntoIterator<Item = (&str, P)>,
) {
    let hits = rs.hits();
    let authorization = format!("DPoP {token}");
    for (what, proof) in cases {
        let answer = rs
            .call_bytes("GET", &authorization, &[proof.as_ref()])
            .await;
        assert_eq!(answer.status, 401, "{what}");
        assert_eq!(
            answer.error_in("DPoP").as_deref(),
            Some("invalid_dpop_proof"),
            "{what}: {} {:?}",
            answer.body,
            answer.challenges
        );
    }
    assert_eq!(rs.hits(), hits, "the handler ran");
}

#[tokio::test]
async fn dpop_bound_token_with_its_proof_is_accepted_and_the_principal_says_so() {
    let idp = MockIdp::start().await;
    let rs = rs(&idp, Dpop::allowed()).await;
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    let proof = key.proof("GET", &rs.htu()).access_token(&token).build();
    let answer = rs.dpop(&token, &proof).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, format!("user-1 {}", key.thumbprint()));

    // A POST with its own proof; the scheme is case-insensitive.
    let proof = key.proof("POST", &rs.htu()).access_token(&token).build();
    let answer = rs.call("POST", &format!("dpop {token}"), &[&proof]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    // Allowed, not required: an unbound token still works as a bearer token.
    let plain = idp.token().sign();
    let answer = rs.call("GET", &format!("Bearer {plain}"), &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "user-1 bearer");
}

#[tokio::test]
async fn dpop_proofs_of_every_algorithm_are_accepted() {
    let idp = MockIdp::start().await;
    let rs = rs(&idp, Dpop::required()).await;
    for alg in [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::PS256,
        Algorithm::RS256,
    ] {
        let key = DpopKey::generate(alg);
        let token = idp.token().dpop_bound(&key).sign();
        let proof = key.proof("GET", &rs.htu()).access_token(&token).build();
        let answer = rs.dpop(&token, &proof).await;
        assert_eq!(answer.status, 200, "{alg:?}: {}", answer.body);
    }
}

#[tokio::test]
async fn dpop_replayed_proof_is_refused() {
    let idp = MockIdp::start().await;
    let rs = rs_with(&idp, Dpop::allowed(), true).await;
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    let proof = key.proof("GET", &rs.htu()).access_token(&token).build();
    assert_eq!(rs.dpop(&token, &proof).await.status, 200);
    let hits = rs.hits();
    let again = rs.dpop(&token, &proof).await;
    assert_eq!(again.status, 401);
    assert_eq!(
        again.error_in("DPoP").as_deref(),
        Some("invalid_dpop_proof")
    );
    assert!(again.body.contains("used before"), "{}", again.body);
    assert_eq!(rs.hits(), hits);
    // The token is cached by now; a fresh proof still has to come with it.
    let fresh = key.proof("GET", &rs.htu()).access_token(&token).build();
    assert_eq!(rs.dpop(&token, &fresh).await.status, 200);
    let answer = rs.call("GET", &format!("DPoP {token}"), &[]).await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.error_in("DPoP").as_deref(),
        Some("invalid_dpop_proof")
    );
}

#[tokio::test]
async fn dpop_replay_memory_when_full_answers_503_and_forgets_nothing() {
    let idp = MockIdp::start().await;
    // Room for one proof per shard: a few proofs fill it.
    let rs = rs(&idp, Dpop::allowed().replay_capacity(1)).await;
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    let mut accepted = Vec::new();
    let full = loop {
        let proof = key.proof("GET", &rs.htu()).access_token(&token).build();
        let answer = rs.dpop(&token, &proof).await;
        if answer.status != 200 {
            break answer;
        }
        accepted.push(proof);
        assert!(accepted.len() <= 16, "the memory never filled");
    };
    // The server's limit, not the client's fault, and never a replay let through.
    assert_eq!(full.status, 503, "{}", full.body);
    assert!(full.retry_after.is_some());
    assert!(full.body.contains("replay_capacity"), "{}", full.body);
    let hits = rs.hits();
    for proof in &accepted {
        let again = rs.dpop(&token, proof).await;
        assert_eq!(again.status, 401, "{}", again.body);
        assert!(again.body.contains("used before"), "{}", again.body);
    }
    assert_eq!(rs.hits(), hits);
}

/// A replay store of the user's (or the fleet's fallback memory) that is full says so, and
/// the proof is refused with 503 and the store's `Retry-After`: not 401, not accepted.
#[tokio::test]
async fn dpop_replay_store_that_is_full_answers_503() {
    struct Full;
    impl ReplayStore for Full {
        async fn first_use(&self, _: &str, _: Duration) -> Remembered {
            Remembered::Full {
                retry_after: Duration::from_secs(7),
            }
        }
    }
    let idp = MockIdp::start().await;
    let rs = rs(&idp, Dpop::allowed().replay_store(Full)).await;
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    let proof = key.proof("GET", &rs.htu()).access_token(&token).build();
    let answer = rs.dpop(&token, &proof).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.retry_after.as_deref(), Some("7"));
    assert_eq!(rs.hits(), 0);
}

#[tokio::test]
async fn dpop_proof_for_another_method_uri_or_token_is_refused() {
    let idp = MockIdp::start().await;
    let rs = rs(&idp, Dpop::allowed()).await;
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    let other_token = idp.token().dpop_bound(&key).claim("jti", "other").sign();
    let cases = [
        (
            "method",
            key.proof("POST", &rs.htu()).access_token(&token).build(),
        ),
        (
            "uri",
            key.proof("GET", &format!("https://{}/admin", rs.authority))
                .access_token(&token)
                .build(),
        ),
        (
            "uri",
            key.proof("GET", "https://elsewhere.example/orders")
                .access_token(&token)
                .build(),
        ),
        (
            "scheme",
            key.proof("GET", &format!("http://{}/orders", rs.authority))
                .access_token(&token)
                .build(),
        ),
        (
            "token",
            key.proof("GET", &rs.htu())
                .access_token(&other_token)
                .build(),
        ),
        ("no ath", key.proof("GET", &rs.htu()).build()),
        (
            "no jti",
            key.proof("GET", &rs.htu())
                .access_token(&token)
                .without("jti")
                .build(),
        ),
        (
            "no htm",
            key.proof("GET", &rs.htu())
                .access_token(&token)
                .without("htm")
                .build(),
        ),
        (
            "uri with a trailing slash",
            key.proof("GET", &format!("{}/", rs.htu()))
                .access_token(&token)
                .build(),
        ),
        (
            "uri with more path",
            key.proof("GET", &format!("{}x", rs.htu()))
                .access_token(&token)
                .build(),
        ),
        (
            "uri with user info",
            key.proof("GET", &format!("https://user@{}/orders", rs.authority))
                .access_token(&token)
                .build(),
        ),
    ];
    all_refused(&rs, &token, cases).await;
}

/// The claims are read as JSON is written: an escaped string is the same string; a claim named
/// twice (RFC 7515 §5.2) or of the wrong type refuses the proof.
#[tokio::test]
async fn dpop_proof_claims_escaped_duplicated_or_mistyped() {
    let idp = MockIdp::start().await;
    let rs = rs(&idp, Dpop::allowed()).await;
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    let proof = || key.proof("GET", &rs.htu()).access_token(&token);
    let cases = [
        (
            "htm twice",
            proof()
                .claims_text(|c| c.replace(r#""htm":"GET""#, r#""htm":"GET","htm":"POST""#))
                .build(),
        ),
        (
            "htm twice, the same",
            proof()
                .claims_text(|c| c.replace(r#""htm":"GET""#, r#""htm":"GET","htm":"GET""#))
                .build(),
        ),
        ("htm a number", proof().claim("htm", 1).build()),
        ("iat a string", proof().claim("iat", "1700000000").build()),
        (
            "jti an object",
            proof().claim("jti", serde_json::json!({"a": 1})).build(),
        ),
        (
            "claims an array",
            proof().claims_text(|_| "[]".into()).build(),
        ),
    ];
    all_refused(&rs, &token, cases).await;
    let escaped = proof().claims_text(|c| c.replace('/', r"\/")).build();
    let answer = rs.dpop(&token, &escaped).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // Claims longer than the checker reads on its stack are read all the same.
    let long = proof().claim("note", "n".repeat(2_000)).build();
    let answer = rs.dpop(&token, &long).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn dpop_htu_is_compared_after_normalisation_without_query_or_fragment() {
    let idp = MockIdp::start().await;
    let rs = rs(&idp, Dpop::allowed()).await;
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    let (host, port) = rs.authority.split_once(':').unwrap();
    for htu in [
        format!("HTTPS://{host}:{port}/orders?page=2#top"),
        format!("https://{host}:{port}/./%6Frders"),
        format!("https://{host}:{port}/x/../orders"),
    ] {
        let proof = key.proof("GET", &htu).access_token(&token).build();
        let answer = rs.dpop(&token, &proof).await;
        assert_eq!(answer.status, 200, "{htu}: {}", answer.body);
    }
}

#[tokio::test]
async fn dpop_external_url_is_what_the_proof_must_name_behind_a_proxy() {
    let idp = MockIdp::start().await;
    let rs = rs(
        &idp,
        Dpop::allowed().external_url("https://api.example.com/"),
    )
    .await;
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    let proof = key
        .proof("GET", "https://api.example.com:443/orders")
        .access_token(&token)
        .build();
    assert_eq!(rs.dpop(&token, &proof).await.status, 200);
    // What the service itself sees (its Host) is not what clients call.
    let proof = key.proof("GET", &rs.htu()).access_token(&token).build();
    let answer = rs.dpop(&token, &proof).await;
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.error_in("DPoP").as_deref(),
        Some("invalid_dpop_proof")
    );
}

#[tokio::test]
async fn dpop_proof_key_other_than_cnf_jkt_is_refused() {
    // Proof keys are kept prepared under the thumbprint the token is bound to, with the
    // header they came in: another key's proof for the token neither passes nor takes the
    // place of the owner's, and the owner's key under another header is prepared again.
    let idp = MockIdp::start().await;
    let rs = rs(&idp, Dpop::allowed()).await;
    let key = DpopKey::generate(Algorithm::ES256);
    let thief = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    let stolen = || thief.proof("GET", &rs.htu()).access_token(&token).build();
    let answer = rs.dpop(&token, &stolen()).await;
    refused(&rs, &answer, "invalid_token");
    assert!(answer.body.contains("another key"), "{}", answer.body);
    let owner = || key.proof("GET", &rs.htu()).access_token(&token);
    assert_eq!(rs.dpop(&token, &owner().build()).await.status, 200);
    let answer = rs.dpop(&token, &stolen()).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.error_in("DPoP").as_deref(), Some("invalid_token"));
    assert_eq!(rs.dpop(&token, &owner().build()).await.status, 200);
    let other_header = owner().header("kid", "client-key-1").build();
    assert_eq!(rs.dpop(&token, &other_header).await.status, 200);
    assert_eq!(rs.dpop(&token, &stolen()).await.status, 401);
    assert_eq!(rs.dpop(&token, &owner().build()).await.status, 200);
    assert_eq!(rs.hits(), 4);
}

#[tokio::test]
async fn dpop_proof_that_begins_with_a_known_header_is_still_checked_whole() {
    // A proof whose header is the text of one already checked skips reading it again: what
    // follows must still be `payload.signature`, each part base64url, and valid.
    let idp = MockIdp::start().await;
    let rs = rs(&idp, Dpop::allowed()).await;
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    let fresh = || key.proof("GET", &rs.htu()).access_token(&token).build();
    assert_eq!(rs.dpop(&token, &fresh()).await.status, 200);
    let proof = fresh();
    let (header, rest) = proof.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let other = fresh();
    let other_payload = other.split('.').nth(1).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no signature", format!("{header}.{payload}").into()),
        ("empty signature", format!("{header}.{payload}.").into()),
        ("a fourth part", format!("{proof}.{signature}").into()),
        ("header alone", format!("{header}.").into()),
        ("header, no dot", header.into()),
        (
            "the header twice",
            format!("{header}.{header}.{signature}").into(),
        ),
        (
            "another proof's payload",
            format!("{header}.{other_payload}.{signature}").into(),
        ),
        ("not text after the header", {
            let mut bytes = format!("{header}.").into_bytes();
            bytes.extend(b"\xff\xfe.");
            bytes.extend(signature.as_bytes());
            bytes
        }),
        ("not text in the signature", {
            let mut bytes = format!("{header}.{payload}.").into_bytes();
            bytes.extend(b"\xc3\xa9");
            bytes
        }),
    ];
    all_refused(&rs, &token, cases).await;
    assert_eq!(rs.hits(), 1);
    // The proof itself, never used, still passes: none of the above spent its jti.
    assert_eq!(rs.dpop(&token, &proof).await.status, 200);
}

#[tokio::test]
async fn dpop_iat_outside_the_window_is_refused() {
    let idp = MockIdp::start().await;
    let rs = rs(&idp, Dpop::allowed().proof_window(Duration::from_secs(30))).await;
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    for offset in [-31 * 2, 90] {
        let proof = key
            .proof("GET", &rs.htu())
            .access_token(&token)
            .issued_in(offset)
            .build();
        refused(&rs, &rs.dpop(&token, &proof).await, "invalid_dpop_proof");
    }
    let proof = key
        .proof("GET", &rs.htu())
        .access_token(&token)
        .issued_in(-20)
        .build();
    assert_eq!(rs.dpop(&token, &proof).await.status, 200);
}

#[tokio::test]
async fn dpop_proof_with_a_private_key_hmac_none_or_wrong_typ_is_refused() {
    let idp = MockIdp::start().await;
    let rs = rs(&idp, Dpop::allowed()).await;
    let key = DpopKey::generate(Algorithm::ES256);
    let other = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    let proof = || key.proof("GET", &rs.htu()).access_token(&token);
    let cases = [
        ("private key", proof().private_key_in_header().build()),
        ("hmac", proof().hmac().build()),
        ("none", proof().unsigned().build()),
        ("typ", proof().header("typ", "JWT").build()),
        (
            "no typ",
            proof().header("typ", serde_json::Value::Null).build(),
        ),
        (
            "no jwk",
            proof().header("jwk", serde_json::Value::Null).build(),
        ),
        ("signed by another key", proof().signed_by(&other).build()),
        (
            "alg of another family",
            proof().header("alg", "RS256").build(),
        ),
        ("not a JWT", "not-a-jwt".to_owned()),
    ];
    all_refused(&rs, &token, cases).await;
}

#[tokio::test]
async fn dpop_two_proof_headers_or_none_are_refused() {
    let idp = MockIdp::start().await;
    let rs = rs(&idp, Dpop::allowed()).await;
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    let a = key.proof("GET", &rs.htu()).access_token(&token).build();
    let b = key.proof("GET", &rs.htu()).access_token(&token).build();
    let auth = format!("DPoP {token}");
    refused(
        &rs,
        &rs.call("GET", &auth, &[&a, &b]).await,
        "invalid_dpop_proof",
    );
    refused(&rs, &rs.call("GET", &auth, &[]).await, "invalid_dpop_proof");
}

#[tokio::test]
async fn dpop_bound_token_as_bearer_is_refused_whatever_the_mode() {
    let idp = MockIdp::start().await;
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    for dpop in [Dpop::off(), Dpop::allowed(), Dpop::required()] {
        let rs = rs(&idp, dpop).await;
        // Even with a valid proof beside it: the scheme says bearer.
        let proof = key.proof("GET", &rs.htu()).access_token(&token).build();
        let answer = rs.call("GET", &format!("Bearer {token}"), &[&proof]).await;
        assert_eq!(answer.status, 401);
        assert_eq!(answer.error_in("Bearer").as_deref(), Some("invalid_token"));
        assert!(answer.body.contains("DPoP-bound"), "{}", answer.body);
        assert_eq!(rs.hits(), 0);
    }
}

#[tokio::test]
async fn dpop_required_refuses_unbound_tokens_and_off_refuses_the_scheme() {
    let idp = MockIdp::start().await;
    let plain = idp.token().sign();
    let rs_required = rs(&idp, Dpop::required()).await;
    let answer = rs_required
        .call("GET", &format!("Bearer {plain}"), &[])
        .await;
    assert_eq!(answer.status, 401);
    assert!(
        answer.body.contains("must be DPoP-bound"),
        "{}",
        answer.body
    );
    // The unbound token sent with the DPoP scheme and a proof.
    let key = DpopKey::generate(Algorithm::ES256);
    let proof = key
        .proof("GET", &rs_required.htu())
        .access_token(&plain)
        .build();
    refused(
        &rs_required,
        &rs_required.dpop(&plain, &proof).await,
        "invalid_token",
    );

    // DPoP off: the scheme is not read at all, and the challenge names only Bearer.
    let rs_off = rs(&idp, Dpop::off()).await;
    let bound = idp.token().dpop_bound(&key).sign();
    let proof = key.proof("GET", &rs_off.htu()).access_token(&bound).build();
    let answer = rs_off.dpop(&bound, &proof).await;
    assert_eq!(answer.status, 401);
    assert!(
        answer.challenges.iter().all(|c| c.starts_with("Bearer ")),
        "{:?}",
        answer.challenges
    );
    assert_eq!(rs_off.hits(), 0);
}

#[tokio::test]
async fn dpop_challenge_names_the_accepted_algorithms() {
    let idp = MockIdp::start().await;
    let rs = rs(
        &idp,
        Dpop::allowed().algorithms([Algorithm::ES256, Algorithm::EdDSA]),
    )
    .await;
    let answer = rs.call("GET", "Basic dXNlcjpwdw==", &[]).await;
    assert_eq!(answer.status, 401);
    let dpop = answer
        .challenges
        .iter()
        .find(|c| c.starts_with("DPoP "))
        .unwrap();
    assert!(dpop.contains(r#"algs="ES256 EdDSA""#), "{dpop}");
    // An ES384 proof is outside that list.
    let key = DpopKey::generate(Algorithm::ES384);
    let token = idp.token().dpop_bound(&key).sign();
    let proof = key.proof("GET", &rs.htu()).access_token(&token).build();
    refused(&rs, &rs.dpop(&token, &proof).await, "invalid_dpop_proof");
}

#[tokio::test]
async fn dpop_nonce_is_required_issued_and_accepted_on_retry() {
    let idp = MockIdp::start().await;
    let rs = rs(&idp, Dpop::allowed().nonces([42u8; 32])).await;
    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    let proof = key.proof("GET", &rs.htu()).access_token(&token).build();
    let answer = rs.dpop(&token, &proof).await;
    refused(&rs, &answer, "use_dpop_nonce");
    let nonce = answer.nonce.expect("a DPoP-Nonce header");

    let proof = key
        .proof("GET", &rs.htu())
        .access_token(&token)
        .nonce(&nonce)
        .build();
    assert_eq!(rs.dpop(&token, &proof).await.status, 200);

    // A nonce this server did not make is as good as none.
    let proof = key
        .proof("GET", &rs.htu())
        .access_token(&token)
        .nonce("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .build();
    let answer = rs.dpop(&token, &proof).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.error_in("DPoP").as_deref(), Some("use_dpop_nonce"));
    assert!(answer.nonce.is_some());
}

#[tokio::test]
async fn dpop_settings_that_are_not_safe_fail_the_build() {
    let idp = MockIdp::start().await;
    for dpop in [
        Dpop::allowed().algorithms([Algorithm::HS256]),
        Dpop::allowed().algorithms([]),
        Dpop::allowed().nonces(b"short"),
        Dpop::allowed().external_url("ftp://x"),
    ] {
        let built = JwtAuth::builder()
            .issuer(
                Issuer::jwks_url(idp.issuer(), idp.jwks_url())
                    .audience(DEFAULT_AUDIENCE)
                    .dpop(dpop),
            )
            .build()
            .await;
        assert!(built.is_err());
    }
}

#[tokio::test]
async fn dpop_bound_token_cannot_be_verified_without_its_request() {
    let idp = MockIdp::start().await;
    let auth = JwtAuth::builder()
        .issuer(
            Issuer::jwks_url(idp.issuer(), idp.jwks_url())
                .audience(DEFAULT_AUDIENCE)
                .dpop(Dpop::allowed()),
        )
        .build()
        .await
        .unwrap();
    let key = DpopKey::generate(Algorithm::ES256);
    assert!(
        auth.verify(&idp.token().dpop_bound(&key).sign())
            .await
            .is_err()
    );
    assert!(auth.verify(&idp.token().sign()).await.is_ok());
}
