//! The known attacks, thrown at a real axum app behind tollgate over real HTTP. For each: the
//! status, the RFC 6750 error code, and that the handler never ran. Then: nothing secret in
//! any log line or response of the whole suite.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use serde_json::{Value, json};
use tollgate::apikey::{ApiKeyAuth, UnkeyVerifier};
use tollgate::jwt::{Algorithm, Issuer, JwtAuth};
use tollgate::{AuthLayer, Authenticator};
use tollgate::{RequireScopes, scopes};
use tollgate_testkit::{DEFAULT_AUDIENCE, Fault, MockIdp, MockKey, MockKeyService, SigningKey};

scopes! { Read = "orders:read"; }

const KEY: &str = "sk_live_0123456789abcdefghijklmnop";

/// Everything logged by this test binary, at every level.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || Writer(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Suite {
    url: String,
    hits: Arc<AtomicUsize>,
    client: reqwest::Client,
    idp: MockIdp,
    keys: MockKeyService,
    /// Every response seen, headers and body, for the leak check.
    seen: Mutex<String>,
    /// Every secret sent, for the leak check.
    secrets: Mutex<Vec<String>>,
}

/// One attack: how to send it, and what must come back.
struct Case {
    name: String,
    headers: Vec<(&'static str, Vec<u8>)>,
    status: &'static [u16],
    code: Option<&'static str>,
}

fn case(
    name: impl Into<String>,
    headers: Vec<(&'static str, Vec<u8>)>,
    status: &'static [u16],
    code: Option<&'static str>,
) -> Case {
    Case {
        name: name.into(),
        headers,
        status,
        code,
    }
}

fn bearer(token: &str) -> Vec<(&'static str, Vec<u8>)> {
    vec![("authorization", format!("Bearer {token}").into_bytes())]
}

fn api_key(key: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    vec![("x-api-key", key.to_vec())]
}

impl Suite {
    async fn start() -> Suite {
        logs();
        let idp = MockIdp::start().await;
        let keys = MockKeyService::start().await;
        keys.add_key(KEY, MockKey::new("key_live").permissions(["orders:read"]));
        let api = ApiKeyAuth::builder(
            UnkeyVerifier::new("root")
                .base_url(keys.unkey_base_url())
                .timeout(Duration::from_secs(1)),
        )
        // Long enough that the 10 000-key flood below is refused from the cache on replay.
        .cache(tollgate::apikey::CachePolicy::default().negative_ttl(Duration::from_secs(300)))
        .build();
        let jwt = JwtAuth::builder()
            .issuer(
                Issuer::discover(idp.issuer())
                    .audience(DEFAULT_AUDIENCE)
                    .require_typ_at_jwt(),
            )
            .credential_source(tollgate::CredentialSource::bearer().also_cookie("session"))
            .build()
            .await
            .unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let app = Router::new()
            .route(
                "/",
                get(move |RequireScopes(p, ..): RequireScopes<Read>| {
                    h.fetch_add(1, Ordering::SeqCst);
                    async move { p.subject().to_owned() }
                }),
            )
            .layer(AuthLayer::new(api.or(jwt)));
        let addr = tollgate_testkit::serve(app).await;
        Suite {
            url: format!("http://{addr}/"),
            hits,
            client: reqwest::Client::new(),
            idp,
            keys,
            seen: Mutex::default(),
            secrets: Mutex::default(),
        }
    }

    fn token(&self) -> tollgate_testkit::TokenBuilder<'_> {
        self.idp.token().typ("at+jwt").claim("scope", "orders:read")
    }

    async fn send(&self, headers: &[(&'static str, Vec<u8>)]) -> Option<(u16, String, String)> {
        let mut req = self.client.get(&self.url);
        for (name, value) in headers {
            self.secrets
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(value).into_owned());
            let value = reqwest::header::HeaderValue::from_bytes(value).ok()?;
            req = req.header(*name, value);
        }
        let res = req.send().await.ok()?;
        let status = res.status().as_u16();
        let challenge = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let head = format!("{:?}", res.headers());
        let body = res.text().await.unwrap_or_default();
        self.seen
            .lock()
            .unwrap()
            .push_str(&format!("{head}\n{body}\n"));
        Some((status, challenge, body))
    }

    async fn run(&self, cases: Vec<Case>) {
        for case in cases {
            let before = self.hits.load(Ordering::SeqCst);
            let Some((status, challenge, body)) = self.send(&case.headers).await else {
                // The client itself refused to send it (bytes no header may hold): nothing
                // reached the server.
                continue;
            };
            assert!(
                case.status.contains(&status),
                "{}: status {status}, body {body}",
                case.name
            );
            if let Some(code) = case.code {
                let in_challenge = challenge.contains(&format!("error=\"{code}\""));
                let in_body =
                    serde_json::from_str::<Value>(&body).is_ok_and(|b| b["error"] == code);
                assert!(
                    in_challenge || in_body,
                    "{}: expected {code}, got {challenge} / {body}",
                    case.name
                );
            }
            assert_eq!(
                self.hits.load(Ordering::SeqCst),
                before,
                "{}: the handler ran",
                case.name
            );
        }
    }
}

fn forge(header: Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    )
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adversarial_suite() {
    let s = Suite::start().await;

    // The baseline: both credentials work, so every refusal below is the attack's doing.
    let good = s.token().sign();
    assert_eq!(s.send(&bearer(&good)).await.unwrap().0, 200);
    assert_eq!(s.send(&api_key(KEY.as_bytes())).await.unwrap().0, 200);
    let lowercase = vec![("authorization", format!("bearer {good}").into_bytes())];
    assert_eq!(
        s.send(&lowercase).await.unwrap().0,
        200,
        "the scheme is case-insensitive"
    );
    s.hits.store(0, Ordering::SeqCst);

    let iss = s.idp.issuer();
    let claims = json!({"iss": iss, "aud": DEFAULT_AUDIENCE, "sub": "mallory", "scope": "orders:read", "exp": 4_000_000_000u64});
    let rsa = s.idp.signing_key(Algorithm::RS256);
    let es = s.idp.signing_key(Algorithm::ES256);
    let stranger = SigningKey::generate("rs-1", Algorithm::RS256);
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    const T401: &[u16] = &[401];
    const T400: &[u16] = &[400];
    const INV: Option<&str> = Some("invalid_token");
    const REQ: Option<&str> = Some("invalid_request");

    let mut cases = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        for sig in ["", "c2lnbmF0dXJl"] {
            let token = forge(
                json!({"alg": alg, "typ": "at+jwt", "kid": "rs-1"}),
                &claims,
                sig,
            );
            cases.push(case(
                format!("alg {alg} sig {sig:?}"),
                bearer(&token),
                T401,
                INV,
            ));
        }
    }
    let hs = |secret: &[u8]| {
        let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
        header.kid = Some("rs-1".into());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let public_pem = pem("PUBLIC KEY", rsa.public_key_bytes());
    cases.push(case(
        "HS256 with the RSA public key DER",
        bearer(&hs(rsa.public_key_bytes())),
        T401,
        INV,
    ));
    cases.push(case(
        "HS256 with the RSA public key PEM",
        bearer(&hs(public_pem.as_bytes())),
        T401,
        INV,
    ));
    cases.push(case(
        "HS256 with the JWK n",
        bearer(&hs(rsa.jwk()["n"].as_str().unwrap().as_bytes())),
        T401,
        INV,
    ));
    cases.push(case(
        "signature stripped",
        bearer(&format!("{head}.{payload}.")),
        T401,
        INV,
    ));
    cases.push(case(
        "signature of another token",
        bearer(&format!(
            "{head}.{}.{signature}",
            B64.encode(claims.to_string())
        )),
        T401,
        INV,
    ));
    cases.push(case(
        "valid signature, key not in the JWKS",
        bearer(&s.token().key(stranger.clone()).sign()),
        T401,
        INV,
    ));
    cases.push(case(
        "unknown kid",
        bearer(&s.token().kid(Some("nope")).sign()),
        T401,
        INV,
    ));
    for kid in [
        "../../etc/passwd",
        "\" OR 1=1 --",
        "'; DROP TABLE keys; --",
        "rs-1\u{0}",
    ] {
        cases.push(case(
            format!("kid {kid:?}"),
            bearer(&s.token().kid(Some(kid)).sign()),
            T401,
            INV,
        ));
    }
    cases.push(case(
        "kid of 10 KB",
        bearer(&s.token().kid(Some(&"k".repeat(10_240))).sign()),
        T401,
        INV,
    ));
    let embedded: jsonwebtoken::jwk::Jwk = serde_json::from_value(stranger.jwk()).unwrap();
    cases.push(case(
        "embedded jwk with the attacker's key",
        bearer(
            &s.token()
                .key(stranger.clone())
                .kid(None)
                .header(|h| h.jwk = Some(embedded))
                .sign(),
        ),
        T401,
        INV,
    ));
    let attacker = MockIdp::start().await;
    let attacker_key = attacker.signing_key(Algorithm::RS256);
    cases.push(case(
        "jku and x5u pointing at the attacker",
        bearer(
            &s.token()
                .key(attacker_key)
                .header(|h| {
                    h.jku = Some(attacker.jwks_url());
                    h.x5u = Some(attacker.jwks_url());
                })
                .sign(),
        ),
        T401,
        INV,
    ));
    cases.push(case(
        "crit with an unknown name",
        bearer(
            &s.token()
                .header(|h| h.crit = Some(vec!["urn:x".into()]))
                .sign(),
        ),
        T401,
        INV,
    ));
    // ES256 with r = s = 0, and with r = n (the group order): invalid signatures (RFC 8725 §3.4).
    let es_token = s.token().alg(Algorithm::ES256).sign();
    let es_msg = es_token.rsplit_once('.').unwrap().0.to_owned();
    let n = hex_bytes("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    cases.push(case(
        "ES256 r = s = 0",
        bearer(&format!("{es_msg}.{}", B64.encode([0u8; 64]))),
        T401,
        INV,
    ));
    cases.push(case(
        "ES256 r = n",
        bearer(&format!(
            "{es_msg}.{}",
            B64.encode([n.as_slice(), &[1u8; 32]].concat())
        )),
        T401,
        INV,
    ));
    cases.push(case(
        "ES256 s = n",
        bearer(&format!(
            "{es_msg}.{}",
            B64.encode([&[1u8; 32], n.as_slice()].concat())
        )),
        T401,
        INV,
    ));
    cases.push(case(
        "PS256 under the RS256 key",
        bearer(&s.token().alg(Algorithm::PS256).kid(Some("rs-1")).sign()),
        T401,
        INV,
    ));
    cases.push(case(
        "RS256 under the PS256 key",
        bearer(&s.token().kid(Some("ps-1")).sign()),
        T401,
        INV,
    ));
    cases.push(case(
        "ES256 under the EdDSA key",
        bearer(&s.token().key(es.clone()).kid(Some("ed-1")).sign()),
        T401,
        INV,
    ));
    cases.push(case(
        "expired",
        bearer(&s.token().expires_in(-120).sign()),
        T401,
        INV,
    ));
    cases.push(case(
        "nbf in the future",
        bearer(&s.token().claim("nbf", 4_000_000_000u64).sign()),
        T401,
        INV,
    ));
    cases.push(case(
        "iat in the future",
        bearer(&s.token().claim("iat", 4_000_000_000u64).sign()),
        T401,
        INV,
    ));
    cases.push(case(
        "wrong iss",
        bearer(&s.token().claim("iss", "https://evil.example").sign()),
        T401,
        INV,
    ));
    cases.push(case(
        "iss with a trailing slash",
        bearer(&s.token().claim("iss", format!("{iss}/")).sign()),
        T401,
        INV,
    ));
    cases.push(case(
        "wrong aud",
        bearer(&s.token().claim("aud", "other").sign()),
        T401,
        INV,
    ));
    cases.push(case(
        "aud array without us",
        bearer(&s.token().claim("aud", json!(["a", "b"])).sign()),
        T401,
        INV,
    ));
    cases.push(case(
        "missing exp",
        bearer(&s.token().without("exp").sign()),
        T401,
        INV,
    ));
    cases.push(case(
        "typ JWT when at+jwt is required",
        bearer(&s.token().typ("JWT").sign()),
        T401,
        INV,
    ));
    let raw_claims = format!(
        r#"{{"iss":"{iss}","aud":"{DEFAULT_AUDIENCE}","sub":"a","scope":"orders:read","exp":4000000000}}"#
    );
    cases.push(case(
        "duplicate alg in the header",
        bearer(&rsa.sign_raw(
            r#"{"alg":"RS256","alg":"HS256","typ":"at+jwt","kid":"rs-1"}"#,
            &raw_claims,
        )),
        T401,
        INV,
    ));
    cases.push(case(
        "duplicate sub in the claims",
        bearer(&rsa.sign_raw(
            r#"{"alg":"RS256","typ":"at+jwt","kid":"rs-1"}"#,
            &raw_claims.replace("\"sub\":\"a\"", "\"sub\":\"a\",\"sub\":\"admin\""),
        )),
        T401,
        INV,
    ));
    let deep = format!(
        r#"{{"iss":"{iss}","aud":"{DEFAULT_AUDIENCE}","exp":4000000000,"x":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let deep_token = rsa.sign_raw(r#"{"alg":"RS256","typ":"at+jwt","kid":"rs-1"}"#, &deep);
    cases.push(case(
        "claims nested 10 000 deep",
        bearer(&deep_token),
        &[401],
        INV,
    ));
    cases.push(case(
        "1 MB token",
        bearer(&format!("{good}{}", "A".repeat(1 << 20))),
        &[401, 431],
        None,
    ));
    cases.push(case(
        "extra segments",
        bearer(&format!("{good}.{signature}")),
        T401,
        INV,
    ));
    cases.push(case(
        "a space inside",
        bearer(&format!("{head}. {payload}.{signature}")),
        T400,
        REQ,
    ));
    cases.push(case(
        "a line break inside",
        vec![(
            "authorization",
            format!("Bearer {head}.\n{payload}.{signature}").into_bytes(),
        )],
        &[400],
        REQ,
    ));
    cases.push(case(
        "non-ASCII bytes",
        vec![(
            "authorization",
            [b"Bearer ".as_slice(), head.as_bytes(), "é".as_bytes()].concat(),
        )],
        T400,
        REQ,
    ));
    cases.push(case(
        "two Authorization headers",
        vec![
            ("authorization", format!("Bearer {good}").into_bytes()),
            ("authorization", format!("Bearer {good}").into_bytes()),
        ],
        T400,
        REQ,
    ));
    cases.push(case(
        "token in the header and in the cookie",
        vec![
            ("authorization", format!("Bearer {good}").into_bytes()),
            ("cookie", format!("session={good}").into_bytes()),
        ],
        T400,
        REQ,
    ));
    // API keys.
    cases.push(case("empty key", api_key(b""), T400, REQ));
    cases.push(case("whitespace key", api_key(b"   "), T400, REQ));
    cases.push(case(
        "100 KB key",
        api_key(&vec![b'k'; 100 * 1024]),
        &[401, 431],
        None,
    ));
    cases.push(case(
        "non-UTF-8 key",
        api_key(b"sk_live_\xff\xfe"),
        T400,
        REQ,
    ));
    cases.push(case(
        "key in two headers",
        vec![("x-api-key", KEY.into()), ("x-api-key", KEY.into())],
        T400,
        REQ,
    ));
    let mut near = KEY.as_bytes().to_vec();
    *near.last_mut().unwrap() ^= 1;
    cases.push(case(
        "a valid key but for its last byte",
        api_key(&near),
        T401,
        INV,
    ));
    cases.push(case(
        "the valid key in upper case",
        api_key(KEY.to_uppercase().as_bytes()),
        T401,
        INV,
    ));
    // Scopes of hostile shapes: authenticated, but no usable scope, so 403.
    for (name, scope) in [
        ("a number", json!(5)),
        ("an object", json!({"orders:read": 1})),
        ("tabs", json!("orders:write\t\tadmin")),
    ] {
        cases.push(case(
            format!("scope claim as {name}"),
            bearer(&s.token().claim("scope", scope).sign()),
            &[403],
            Some("insufficient_scope"),
        ));
    }
    s.run(cases).await;
    assert_eq!(
        attacker.jwks_requests() + attacker.discovery_requests(),
        0,
        "jku/x5u were fetched"
    );

    // Tabs and repeated spaces still separate scopes.
    let spaced = s.token().claim("scope", "admin\t\torders:read   x").sign();
    assert_eq!(s.send(&bearer(&spaced)).await.unwrap().0, 200);

    // 10 000 distinct bad keys: one call each, and none again while the refusals are cached.
    let calls = s.keys.requests();
    for round in 0..2 {
        for batch in 0..50 {
            let mut set = tokio::task::JoinSet::new();
            for i in batch * 200..(batch + 1) * 200 {
                let req = s
                    .client
                    .get(&s.url)
                    .header("x-api-key", format!("sk_live_bad_{i:05}"))
                    .send();
                set.spawn(async move { req.await.unwrap().status().as_u16() });
            }
            assert!(
                set.join_all().await.iter().all(|st| *st == 401),
                "round {round}"
            );
        }
        assert_eq!(s.keys.requests() - calls, 10_000, "round {round}");
    }

    // The key service misbehaving: 503, never 200 or 401.
    for fault in [
        Fault::HugeBody,
        Fault::SlowBody,
        Fault::Html,
        Fault::WrongTypes,
    ] {
        s.keys.fail_with(fault.clone());
        let key = format!("sk_live_fresh_{fault:?}").replace(['(', ')', ' '], "");
        let (status, _, _) = s.send(&api_key(key.as_bytes())).await.unwrap();
        assert_eq!(status, 503, "{fault:?}");
    }
    assert_eq!(
        s.hits.load(Ordering::SeqCst),
        1,
        "only the tab-separated scope request ran"
    );

    // Nothing secret anywhere: not the keys, not the tokens, not their signatures.
    let logs = String::from_utf8(logs().lock().unwrap().clone()).unwrap();
    let seen = s.seen.lock().unwrap().clone();
    let mut secrets = s.secrets.lock().unwrap().clone();
    secrets.extend([KEY.to_owned(), good.clone(), signature.to_owned()]);
    for secret in secrets {
        let secret = secret
            .trim_start_matches("Bearer ")
            .trim_start_matches("bearer ")
            .trim_start_matches("session=");
        // Only credentials long enough to be recognisable (the empty and blank keys are not).
        let Some(probe) = secret
            .split('.')
            .filter(|p| p.len() >= 16)
            .max_by_key(|p| p.len())
        else {
            continue;
        };
        let probe = &probe[..probe.len().min(64)];
        assert!(
            !logs.contains(probe),
            "a log line holds a credential ({probe})"
        );
        assert!(
            !seen.contains(probe),
            "a response holds a credential ({probe})"
        );
    }
    assert!(
        logs.contains("key_live"),
        "key ids are logged, so the capture works"
    );
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}
