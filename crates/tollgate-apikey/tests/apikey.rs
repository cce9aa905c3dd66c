//! The API-key layer in front of an axum app on 127.0.0.1, against a key service started by
//! the test (tollgate-testkit's `MockKeyService`), which counts its calls.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tollgate_apikey::{
    ApiKeyAuth, CachePolicy, DEFAULT_HEADER, JsonVerifier, KeyInfo, KeyVerifier, StaticKeys,
    UnkeyVerifier,
};
use tollgate_core::{AuthLayer, Authenticator, CredentialSource};
use tollgate_testkit::{Fault, MockKey, MockKeyService, ProtectedApp};

const ROOT: &str = "unkey_root_test";
const KEY: &str = "sk_test_0123456789abcdef";

async fn serve_app<A: Authenticator>(auth: A) -> ProtectedApp {
    ProtectedApp::start(AuthLayer::new(auth)).await
}

async fn service() -> MockKeyService {
    let service = MockKeyService::start_with_root_key(Some(ROOT.into())).await;
    service.add_key(
        KEY,
        MockKey::new("key_1")
            .permissions(["orders:read"])
            .roles(["reader"])
            .owner("acme"),
    );
    service
}

fn unkey(service: &MockKeyService) -> UnkeyVerifier {
    UnkeyVerifier::new(ROOT)
        .base_url(service.unkey_base_url())
        .timeout(Duration::from_millis(500))
}

async fn status_of(app: &ProtectedApp, key: &str) -> u16 {
    app.with_header("x-api-key", key).await.status().as_u16()
}

#[tokio::test]
async fn valid_key_becomes_a_principal_and_a_cache_hit_makes_no_call() {
    let service = service().await;
    let auth = ApiKeyAuth::builder(unkey(&service)).build();
    let app = serve_app(auth.clone()).await;

    let res = app.with_header("x-api-key", KEY).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "key_1 orders:read reader");
    assert_eq!(service.requests(), 1);

    for _ in 0..5 {
        assert_eq!(status_of(&app, KEY).await, 200);
    }
    assert_eq!(
        service.requests(),
        1,
        "cache hits must not call the key service"
    );
    let stats = auth.stats();
    assert_eq!((stats.hits, stats.misses, stats.upstream_calls), (5, 1, 1));
    assert_eq!(stats.outcomes.valid, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_for_one_key_make_exactly_one_call() {
    let service = service().await;
    service.fail_with(Fault::Delay(Duration::from_millis(200)));
    let app = Arc::new(serve_app(ApiKeyAuth::builder(unkey(&service)).build()).await);
    let requests = (0..100).map(|_| {
        let app = app.clone();
        tokio::spawn(async move { status_of(&app, KEY).await })
    });
    for r in requests {
        assert_eq!(r.await.unwrap(), 200);
    }
    assert_eq!(service.requests(), 1);
    assert_eq!(app.hits(), 100);
}

#[tokio::test]
async fn refusals_are_cached_for_the_negative_ttl() {
    let service = service().await;
    let auth = ApiKeyAuth::builder(unkey(&service))
        .cache(CachePolicy::default().negative_ttl(Duration::from_millis(1000)))
        .build();
    let app = serve_app(auth).await;
    assert_eq!(status_of(&app, "sk_test_unknown").await, 401);
    assert_eq!(status_of(&app, "sk_test_unknown").await, 401);
    assert_eq!(service.requests(), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(status_of(&app, "sk_test_unknown").await, 401);
    assert_eq!(service.requests(), 2);
    assert_eq!(app.hits(), 0);
}

#[tokio::test]
async fn a_cached_verdict_never_outlives_the_key() {
    let service = service().await;
    let expires = SystemTime::now() + Duration::from_millis(1500);
    service.add_key("sk_test_short", MockKey::new("key_short").expires(expires));
    let app = serve_app(ApiKeyAuth::builder(unkey(&service)).build()).await;
    assert_eq!(status_of(&app, "sk_test_short").await, 200);
    assert_eq!(status_of(&app, "sk_test_short").await, 200);
    assert_eq!(service.requests(), 1);
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let res = app.with_header("x-api-key", "sk_test_short").await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        service.requests(),
        2,
        "the expired entry must have been dropped"
    );
}

#[tokio::test]
async fn every_unkey_code_maps_to_its_status() {
    let service = service().await;
    let reset = SystemTime::now() + Duration::from_secs(30);
    let cases = [
        ("sk_nf", None, 401, "invalid_token"),
        (
            "sk_disabled",
            Some(MockKey::new("k").disabled()),
            401,
            "invalid_token",
        ),
        (
            "sk_expired",
            Some(MockKey::new("k").expires(SystemTime::now() - Duration::from_secs(5))),
            401,
            "invalid_token",
        ),
        (
            "sk_forbidden",
            Some(MockKey::new("k").code("FORBIDDEN")),
            403,
            "insufficient_scope",
        ),
        (
            "sk_perms",
            Some(MockKey::new("k").code("INSUFFICIENT_PERMISSIONS")),
            403,
            "insufficient_scope",
        ),
        (
            "sk_limited",
            Some(MockKey::new("k").code("RATE_LIMITED").reset_at(reset)),
            429,
            "rate_limited",
        ),
        (
            "sk_usage",
            Some(MockKey::new("k").code("USAGE_EXCEEDED")),
            429,
            "rate_limited",
        ),
        (
            "sk_future",
            Some(MockKey::new("k").code("SOME_NEW_CODE")),
            401,
            "invalid_token",
        ),
    ];
    for (key, mock, _, _) in &cases {
        if let Some(mock) = mock {
            service.add_key(*key, mock.clone());
        }
    }
    let app = serve_app(ApiKeyAuth::builder(unkey(&service)).build()).await;
    for (key, _, status, code) in cases {
        let res = app.with_header("x-api-key", key).await;
        assert_eq!(res.status(), status, "{key}");
        if status == 429 && key == "sk_limited" {
            let after: u64 = res.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                (25..=30).contains(&after),
                "Retry-After {after} from the reset"
            );
        }
        let json: serde_json::Value = res.json().await.unwrap();
        assert_eq!(json["error"], code, "{key}");
    }
    assert_eq!(app.hits(), 0);
}

#[tokio::test]
async fn upstream_faults_are_503_with_retry_after_never_401_or_200() {
    let service = service().await;
    let faults = [
        Fault::Status(500),
        Fault::Status(502),
        Fault::Status(401), // Unkey refusing *our* root key is not the client's fault
        Fault::Status(429), // Unkey's own API rate limit
        Fault::Delay(Duration::from_secs(2)),
        Fault::Garbage,
        Fault::NotUtf8,
        Fault::Html,
        Fault::WrongTypes,
        Fault::HugeBody,
    ];
    for fault in faults {
        service.fail_with(fault.clone());
        // A fresh authenticator each time, so nothing is cached.
        let app = serve_app(ApiKeyAuth::builder(unkey(&service)).build()).await;
        let res = app.with_header("x-api-key", KEY).await;
        assert_eq!(res.status(), 503, "{fault:?}");
        assert_eq!(res.headers()["retry-after"], "5", "{fault:?}");
        let json: serde_json::Value = res.json().await.unwrap();
        assert_eq!(json["error"], "temporarily_unavailable");
        assert_eq!(app.hits(), 0, "{fault:?}");
    }
}

#[tokio::test]
async fn the_same_goes_for_the_generic_protocol() {
    let service = service().await;
    for fault in [
        Fault::Status(503),
        Fault::Garbage,
        Fault::NotUtf8,
        Fault::WrongTypes,
        Fault::Html,
    ] {
        service.fail_with(fault.clone());
        let app =
            serve_app(ApiKeyAuth::builder(JsonVerifier::new(service.json_url())).build()).await;
        assert_eq!(status_of(&app, KEY).await, 503, "{fault:?}");
    }
}

#[tokio::test]
async fn key_service_down_or_wrong_root_key_is_503() {
    // A port nobody listens on: connection refused.
    let url = tollgate_testkit::unreachable_url("");
    let auth = ApiKeyAuth::builder(UnkeyVerifier::new(ROOT).base_url(&url)).build();
    let app = serve_app(auth.clone()).await;
    assert_eq!(status_of(&app, KEY).await, 503);
    assert_eq!(auth.stats().upstream_errors.connect, 1);

    let service = service().await;
    let wrong_root = UnkeyVerifier::new("not-the-root-key").base_url(service.unkey_base_url());
    let auth = ApiKeyAuth::builder(wrong_root).build();
    let app = serve_app(auth.clone()).await;
    assert_eq!(status_of(&app, KEY).await, 503);
    assert_eq!(auth.stats().upstream_errors.status, 1);
}

#[tokio::test]
async fn invalidate_forgets_a_revoked_key() {
    let service = service().await;
    let auth = ApiKeyAuth::builder(unkey(&service)).build();
    let app = serve_app(auth.clone()).await;
    assert_eq!(status_of(&app, KEY).await, 200);
    service.revoke(KEY);
    assert_eq!(status_of(&app, KEY).await, 200, "still cached");
    auth.invalidate(KEY).await;
    assert_eq!(status_of(&app, KEY).await, 401);

    service.add_key(KEY, MockKey::new("key_1"));
    auth.invalidate_all().await;
    assert_eq!(status_of(&app, KEY).await, 200);
    assert_eq!(service.requests(), 3);
}

#[tokio::test]
async fn stale_while_revalidate_serves_and_refreshes_in_the_background() {
    let service = service().await;
    let auth = ApiKeyAuth::builder(unkey(&service))
        .cache(CachePolicy::default().stale_while_revalidate(Duration::from_millis(200)))
        .build();
    let app = serve_app(auth.clone()).await;
    assert_eq!(status_of(&app, KEY).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    service.revoke(KEY);
    // The refresh takes a while, so the burst below surely lands before it ends.
    service.fail_with(Fault::Delay(Duration::from_millis(300)));
    // Older than fresh_for: served as is, while one background call refreshes it. Requests
    // made at once all get the stale verdict and start no further call.
    let burst = futures_join(&app, 5).await;
    assert!(burst.iter().all(|s| *s == 200), "{burst:?}");
    for _ in 0..50 {
        if service.requests() == 2 && auth.stats().outcomes.invalid == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        service.requests(),
        2,
        "one revalidation, not one per request"
    );
    // The refreshed verdict (revoked) is what is served now.
    assert_eq!(status_of(&app, KEY).await, 401);
    assert!(auth.stats().stale_served >= 1);
}

/// `n` requests with `KEY` sent together.
async fn futures_join(app: &ProtectedApp, n: usize) -> Vec<u16> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let req = app.get().header("x-api-key", KEY).send();
        set.spawn(async move { req.await.unwrap().status().as_u16() });
    }
    set.join_all().await
}

#[tokio::test]
async fn serve_stale_on_error_is_bounded_and_only_for_valid_keys() {
    let service = service().await;
    let auth = ApiKeyAuth::builder(unkey(&service))
        .cache(
            CachePolicy::default()
                .ttl(Duration::from_millis(200))
                .negative_ttl(Duration::from_millis(200))
                .serve_stale_on_error(Duration::from_millis(600)),
        )
        .build();
    let app = serve_app(auth.clone()).await;
    assert_eq!(status_of(&app, KEY).await, 200);
    assert_eq!(status_of(&app, "sk_test_bad").await, 401);

    service.fail_with(Fault::Status(500));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Past the TTL, the service down: the valid key is served stale...
    assert_eq!(status_of(&app, KEY).await, 200);
    assert_eq!(auth.stats().stale_served, 1);
    // ...but a refusal is never served stale.
    assert_eq!(status_of(&app, "sk_test_bad").await, 503);
    // Past ttl + grace: fail closed.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(status_of(&app, KEY).await, 503);
}

#[tokio::test]
async fn without_serve_stale_an_outage_after_expiry_is_503() {
    let service = service().await;
    let auth = ApiKeyAuth::builder(unkey(&service))
        .cache(CachePolicy::default().ttl(Duration::from_millis(100)))
        .build();
    let app = serve_app(auth).await;
    assert_eq!(status_of(&app, KEY).await, 200);
    service.fail_with(Fault::Status(500));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(status_of(&app, KEY).await, 503);
}

#[tokio::test]
async fn bypass_cache_calls_upstream_every_time() {
    let service = service().await;
    let auth = ApiKeyAuth::builder(unkey(&service)).build();
    let app = serve_app(auth.bypass_cache()).await;
    for _ in 0..3 {
        assert_eq!(status_of(&app, KEY).await, 200);
    }
    assert_eq!(service.requests(), 3);
    // The answers were stored: the cached route is a hit.
    let cached = serve_app(auth).await;
    assert_eq!(status_of(&cached, KEY).await, 200);
    assert_eq!(service.requests(), 3);
}

#[tokio::test]
async fn generic_json_protocol() {
    let service = service().await;
    service.add_key(
        "sk_json",
        MockKey::new("key_json")
            .permissions(["a", "b"])
            .owner("team-x")
            .meta(serde_json::json!({"plan": "pro"})),
    );
    let verifier = JsonVerifier::new(service.json_url());
    let verdict = verifier.verify("sk_json").await.unwrap();
    let tollgate_apikey::Verdict::Valid(info) = verdict else {
        panic!("expected valid")
    };
    assert_eq!(info.key_id(), "key_json");

    let app = serve_app(ApiKeyAuth::builder(verifier).build()).await;
    let res = app.with_header("x-api-key", "sk_json").await;
    assert_eq!(res.text().await.unwrap(), "key_json a b");
    assert_eq!(status_of(&app, "sk_nope").await, 401);
}

#[tokio::test]
async fn local_checks_cost_no_call() {
    let service = service().await;
    let auth = ApiKeyAuth::builder(unkey(&service))
        .prefix("sk_test_")
        .build();
    let app = serve_app(auth.clone()).await;
    assert_eq!(status_of(&app, "pk_live_wrongprefix").await, 401);
    assert_eq!(
        status_of(&app, &format!("sk_test_{}", "a".repeat(600))).await,
        401
    );
    assert_eq!(status_of(&app, "").await, 400);
    assert_eq!(status_of(&app, "   ").await, 400);
    let two = app
        .get()
        .header("x-api-key", KEY)
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(two.status(), 400);
    let none = app.get().send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(service.requests(), 0);
    assert_eq!(auth.stats().rejected_locally, 1);
}

#[tokio::test]
async fn bearer_keys_when_enabled() {
    let service = service().await;
    let auth = ApiKeyAuth::builder(unkey(&service))
        .credential_source(CredentialSource::header(DEFAULT_HEADER).also_bearer())
        .build();
    let app = serve_app(auth).await;
    let res = app.get().bearer_auth(KEY).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let both = app
        .get()
        .bearer_auth(KEY)
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 400, "one credential, one way (RFC 6750 §2)");
}

#[tokio::test]
async fn static_keys_through_the_layer() {
    let keys = StaticKeys::new().key(KEY, KeyInfo::new("ci").scopes(["deploy"]));
    let app = serve_app(ApiKeyAuth::builder(keys).build()).await;
    assert_eq!(
        app.with_header("x-api-key", KEY)
            .await
            .text()
            .await
            .unwrap(),
        "ci deploy"
    );
    // Differs in the last byte only: a miss, not a hit on a truncated or folded cache key.
    let mut near = KEY.to_owned();
    near.pop();
    near.push('0');
    assert_eq!(status_of(&app, &near).await, 401);
    assert_eq!(status_of(&app, &KEY.to_uppercase()).await, 401);
    assert_eq!(status_of(&app, KEY).await, 200);
}

/// Captures everything logged at every level while the test's requests run.
#[tokio::test]
async fn logs_and_responses_never_contain_the_key() {
    let (logs, _guard) = tollgate_testkit::capture_logs(tracing::Level::TRACE);

    let service = service().await;
    let auth = ApiKeyAuth::builder(unkey(&service)).build();
    let app = serve_app(auth.clone()).await;
    let mut bodies = String::new();
    for key in [KEY, "sk_test_secret_unknown"] {
        let res = app.with_header("x-api-key", key).await;
        bodies.push_str(&format!("{:?}", res.headers()));
        bodies.push_str(&res.text().await.unwrap());
    }
    service.fail_with(Fault::WrongTypes);
    auth.invalidate_all().await;
    let res = app.with_header("x-api-key", KEY).await;
    bodies.push_str(&res.text().await.unwrap());
    bodies.push_str(&format!("{auth:?}"));

    let logs = logs.text();
    assert!(logs.contains("key_1"), "the key id is logged: {logs}");
    for secret in [KEY, "sk_test_secret_unknown", ROOT] {
        assert!(!logs.contains(secret), "logs leak {secret}");
        assert!(!bodies.contains(secret), "responses leak {secret}");
    }
}

#[tokio::test]
async fn usage_exceeded_is_429_without_retry_after() {
    let service = service().await;
    service.add_key("sk_usage", MockKey::new("k").code("USAGE_EXCEEDED"));
    let app = serve_app(ApiKeyAuth::builder(unkey(&service)).build()).await;
    let res = app.with_header("x-api-key", "sk_usage").await;
    assert_eq!(res.status(), 429);
    // Unkey gives no reset time for credits: no Retry-After is made up.
    assert!(res.headers().get("retry-after").is_none());
}

/// A second key service that would call every key valid: where a redirect points.
async fn attacker() -> MockKeyService {
    let evil = MockKeyService::start().await;
    evil.add_key(KEY, MockKey::new("evil").permissions(["admin"]));
    evil
}

#[tokio::test]
async fn a_redirecting_key_service_is_an_outage_and_the_key_goes_nowhere_else() {
    let evil = attacker().await;
    let service = service().await;
    for status in [301, 302, 303, 307, 308] {
        for to in [
            evil.unkey_base_url() + "/v2/keys.verifyKey",
            evil.json_url(),
        ] {
            service.fail_with(Fault::Redirect(status, to));
            for verifier in [
                ApiKeyAuth::builder(unkey(&service)).build().boxed(),
                ApiKeyAuth::builder(JsonVerifier::new(service.json_url()).header(
                    http::HeaderName::from_static("x-service-token"),
                    http::HeaderValue::from_static("s3cret"),
                ))
                .build()
                .boxed(),
            ] {
                let app = ProtectedApp::start(AuthLayer::new(verifier)).await;
                let res = app.with_header("x-api-key", KEY).await;
                assert_eq!(res.status(), 503, "{status}");
                assert!(res.headers().contains_key("retry-after"));
                assert_eq!(app.hits(), 0);
            }
        }
    }
    assert_eq!(
        evil.requests(),
        0,
        "the key was sent to the redirect's target"
    );
}

#[tokio::test]
async fn a_client_that_follows_redirects_is_caught_and_never_retried() {
    let evil = attacker().await;
    let service = service().await;
    let following = reqwest::Client::new(); // reqwest's default follows up to 10
    service.fail_with(Fault::Redirect(307, evil.json_url()));
    let auth = ApiKeyAuth::builder(JsonVerifier::new(service.json_url()).client(following.clone()))
        .build();
    let app = serve_app(auth.clone()).await;
    let res = app.with_header("x-api-key", KEY).await;
    assert_eq!(res.status(), 503, "a followed redirect is refused");
    assert_eq!(auth.stats().upstream_errors.redirect, 1);

    // A redirect whose target refuses the connection: the request reached the first server,
    // so it is not sent again.
    let before = service.requests();
    service.fail_with(Fault::Redirect(
        307,
        tollgate_testkit::unreachable_url("/verify"),
    ));
    let auth = ApiKeyAuth::builder(JsonVerifier::new(service.json_url()).client(following)).build();
    let app = serve_app(auth).await;
    assert_eq!(status_of(&app, KEY).await, 503);
    assert_eq!(service.requests(), before + 1, "sent once, not retried");
}

#[tokio::test]
async fn a_refused_connection_is_retried_once_a_timeout_never() {
    let url = tollgate_testkit::unreachable_url("");
    let auth = ApiKeyAuth::builder(UnkeyVerifier::new(ROOT).base_url(&url)).build();
    let app = serve_app(auth.clone()).await;
    assert_eq!(status_of(&app, KEY).await, 503);
    // One verification, counted once, its connection tried twice (nothing reached a server).
    assert_eq!(auth.stats().upstream_calls, 1);

    let service = service().await;
    service.fail_with(Fault::Delay(Duration::from_secs(2)));
    let app = serve_app(ApiKeyAuth::builder(unkey(&service)).build()).await;
    assert_eq!(status_of(&app, KEY).await, 503);
    assert_eq!(
        service.requests(),
        1,
        "a request that may have arrived is never resent"
    );
}

#[tokio::test]
async fn once_the_key_service_is_known_down_requests_are_answered_at_once() {
    use tollgate_apikey::BreakerPolicy;
    let service = service().await;
    service.add_key("sk_test_other", MockKey::new("key_2"));
    let verifier = unkey(&service)
        .breaker(BreakerPolicy::default().probe_interval(Duration::from_millis(300)));
    let auth = ApiKeyAuth::builder(verifier)
        .cache(
            CachePolicy::default()
                .ttl(Duration::from_millis(100))
                .serve_stale_on_error(Duration::from_secs(60)),
        )
        .build();
    let app = serve_app(auth.clone()).await;
    assert_eq!(status_of(&app, KEY).await, 200);
    tokio::time::sleep(Duration::from_millis(150)).await; // past the TTL

    // The service hangs: the first request waits its timeout (and is served stale); the
    // breaker opens; every later one is answered without asking.
    service.fail_with(Fault::Delay(Duration::from_secs(10)));
    let before = service.requests();
    assert_eq!(status_of(&app, KEY).await, 200, "served stale");
    for _ in 0..20 {
        assert_eq!(status_of(&app, KEY).await, 200, "stale, at once");
        let res = app.with_header("x-api-key", "sk_test_other").await;
        assert_eq!(res.status(), 503, "uncached: 503 at once");
        let after: u64 = res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            after <= 1,
            "Retry-After is the time until the next probe: {after}"
        );
    }
    assert_eq!(
        service.requests(),
        before + 1,
        "one call, then none while open"
    );
    assert_eq!(auth.stats().upstream_errors.timeout, 1);

    // The service is back: the first request after the probe interval probes and closes it.
    service.heal();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(status_of(&app, "sk_test_other").await, 200);
    assert_eq!(status_of(&app, KEY).await, 200);
}

#[tokio::test]
async fn a_flood_of_refusals_never_evicts_valid_verdicts() {
    let service = service().await;
    let auth = ApiKeyAuth::builder(unkey(&service))
        .cache(CachePolicy::default().max_entries(10).max_refusals(5))
        .build();
    let app = serve_app(auth.clone()).await;
    assert_eq!(status_of(&app, KEY).await, 200);
    for i in 0..200 {
        assert_eq!(status_of(&app, &format!("sk_test_flood_{i}")).await, 401);
    }
    let calls = service.requests();
    assert_eq!(status_of(&app, KEY).await, 200);
    assert_eq!(service.requests(), calls, "the valid key is still cached");
    assert_eq!(auth.stats().outcomes.invalid, 200);
}

#[tokio::test]
async fn a_disabled_cache_stays_disabled_whatever_else_is_set() {
    let service = service().await;
    let policy = CachePolicy::disabled().ttl(Duration::from_secs(60));
    let app = serve_app(ApiKeyAuth::builder(unkey(&service)).cache(policy).build()).await;
    for _ in 0..3 {
        assert_eq!(status_of(&app, KEY).await, 200);
    }
    assert_eq!(service.requests(), 3);
}

/// A shared store in memory: the seam a fleet's Redis store implements.
#[derive(Clone, Default)]
struct SharedMemory(Arc<std::sync::Mutex<std::collections::HashMap<[u8; 32], Vec<u8>>>>);

impl tollgate_apikey::VerdictStore for SharedMemory {
    async fn get(&self, key: &tollgate_core::CredentialDigest) -> Option<Vec<u8>> {
        self.0.lock().unwrap().get(key.as_bytes()).cloned()
    }
    async fn put(&self, key: &tollgate_core::CredentialDigest, value: Vec<u8>, _: Duration) {
        let text = String::from_utf8_lossy(&value).into_owned();
        assert!(!text.contains(KEY), "a stored verdict holds no credential");
        self.0.lock().unwrap().insert(*key.as_bytes(), value);
    }
    async fn invalidate(&self, key: &tollgate_core::CredentialDigest) {
        self.0.lock().unwrap().remove(key.as_bytes());
    }
    async fn invalidate_all(&self) {
        self.0.lock().unwrap().clear();
    }
}

#[tokio::test]
async fn a_second_level_store_is_asked_before_the_key_service() {
    let service = service().await;
    let store = SharedMemory::default();
    let replica = || {
        ApiKeyAuth::builder(unkey(&service))
            .store(store.clone())
            .build()
    };
    let (a, b) = (replica(), replica());
    let (app_a, app_b) = (serve_app(a.clone()).await, serve_app(b.clone()).await);
    assert_eq!(
        app_a
            .with_header("x-api-key", KEY)
            .await
            .text()
            .await
            .unwrap(),
        "key_1 orders:read reader"
    );
    assert_eq!(
        app_b
            .with_header("x-api-key", KEY)
            .await
            .text()
            .await
            .unwrap(),
        "key_1 orders:read reader",
        "the principal round-trips through the store"
    );
    assert_eq!(status_of(&app_a, "sk_test_unknown").await, 401);
    assert_eq!(status_of(&app_b, "sk_test_unknown").await, 401);
    assert_eq!(service.requests(), 2, "one call per key for both replicas");
    assert_eq!(b.stats().store_hits, 2);

    // Invalidation reaches the store: the next replica to miss asks the service again.
    service.revoke(KEY);
    a.invalidate(KEY).await;
    let c = replica();
    assert_eq!(status_of(&serve_app(c).await, KEY).await, 401);
}
