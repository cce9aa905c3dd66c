//! Metrics through real HTTP: requests of every outcome to an axum app behind API keys and
//! JWTs, then its `/metrics` (metrics-exporter-prometheus) scraped, the series and values
//! asserted, and no credential, subject or key id found in the scrape.
#![cfg(feature = "metrics")]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tollgate::apikey::{ApiKeyAuth, UnkeyVerifier};
use tollgate::jwt::{Issuer, JwtAuth};
use tollgate::{
    AuthError, AuthLayer, Authenticator, CredentialKind, CredentialSource, Principal,
    RequireScopes, scopes,
};
use tollgate_testkit::{
    DEFAULT_AUDIENCE, Fault, MockIdp, MockKey, MockKeyService, prometheus_series as series, serve,
};

scopes! {
    OrdersRead = "orders:read";
    OrdersWrite = "orders:write";
}

const READER: &str = "sk_live_reader_0123456789";
const LIMITED: &str = "sk_live_limited_0123456789";
const UNKNOWN: &str = "sk_live_unknown_0123456789";
const SUBJECT: &str = "alice-the-subject";

/// `app` with its scrape on `/metrics`, outside the auth layers.
fn with_metrics(app: Router, prometheus: PrometheusHandle) -> Router {
    app.route(
        "/metrics",
        get(move || std::future::ready(prometheus.render())),
    )
}

/// The text of `base`'s `/metrics`, fetched over HTTP.
async fn scrape(http: &reqwest::Client, base: &str) -> String {
    let res = http.get(format!("{base}/metrics")).send().await.unwrap();
    res.text().await.unwrap()
}

/// The process's recorder, installed once for the tests of this file.
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap())
        .clone()
}

#[tokio::test]
async fn metrics_of_every_outcome_are_scraped_from_a_real_endpoint() {
    let prometheus = prometheus();
    let keys = MockKeyService::start().await;
    keys.add_key(
        READER,
        MockKey::new("key_reader_id").permissions(["orders:read"]),
    );
    keys.add_key(LIMITED, MockKey::new("key_limited_id").code("RATE_LIMITED"));
    let idp = MockIdp::start().await;
    let api_keys = ApiKeyAuth::builder(
        UnkeyVerifier::new("root")
            .base_url(keys.unkey_base_url())
            .timeout(Duration::from_millis(300)),
    )
    .build();
    let jwts = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience(DEFAULT_AUDIENCE))
        .build()
        .await
        .unwrap();
    let app = Router::new()
        .route(
            "/read",
            get(|_: RequireScopes<OrdersRead>| async { "read" }),
        )
        .route(
            "/write",
            get(|_: RequireScopes<OrdersWrite>| async { "written" }),
        )
        .layer(AuthLayer::new(api_keys.or(jwts)));
    let app = with_metrics(app, prometheus);
    let base = format!("http://{}", serve(app).await);
    let http = reqwest::Client::new();
    let get = |path: &str, header: Option<(&str, String)>| {
        let mut request = http.get(format!("{base}{path}"));
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let key = |k: &str| Some(("x-api-key", k.to_owned()));
    let bearer = |t: &str| Some(("authorization", format!("Bearer {t}")));

    let token = idp
        .token()
        .claim("sub", SUBJECT)
        .claim("scope", "orders:read")
        .sign();
    let expired = idp.token().claim("sub", SUBJECT).expires_in(-600).sign();
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();

    assert_eq!(get("/read", key(READER)).await, 200); // a miss
    assert_eq!(get("/read", key(READER)).await, 200); // a hit
    assert_eq!(get("/write", key(READER)).await, 403); // a hit, then the scope check
    assert_eq!(get("/read", None).await, 401);
    assert_eq!(get("/read", key(UNKNOWN)).await, 401);
    assert_eq!(get("/read", key(UNKNOWN)).await, 401); // a cached refusal
    assert_eq!(get("/read", key(LIMITED)).await, 429);
    assert_eq!(get("/read", bearer(&token)).await, 200);
    assert_eq!(get("/read", bearer(&expired)).await, 401);
    // The key service hangs: one timeout opens the breaker, the next is answered at once.
    keys.fail_with(Fault::Delay(Duration::from_secs(2)));
    assert_eq!(get("/read", key("sk_live_new_one_0123456789")).await, 503);
    assert_eq!(get("/read", key("sk_live_new_two_0123456789")).await, 503);

    let scrape = scrape(&http, &base).await;
    let values = series(&scrape);
    let issuer = idp.issuer();
    let expect = |name: String, value: f64| {
        assert_eq!(
            values.get(name.as_str()).copied(),
            Some(value),
            "{name} in\n{scrape}"
        );
    };
    let decision = |outcome: &str, reason: &str, kind: &str, issuer: &str| {
        format!(
            "tollgate_decisions_total{{outcome=\"{outcome}\",reason=\"{reason}\",kind=\"{kind}\",issuer=\"{issuer}\"}}"
        )
    };
    expect(decision("authenticated", "none", "api_key", ""), 2.0);
    expect(
        decision("refused", "insufficient_scope", "api_key", ""),
        1.0,
    );
    expect(decision("refused", "missing_credential", "none", ""), 1.0);
    expect(decision("refused", "invalid_token", "api_key", ""), 2.0);
    expect(decision("rate_limited", "rate_limited", "api_key", ""), 1.0);
    expect(decision("unavailable", "unavailable", "api_key", ""), 2.0);
    expect(decision("authenticated", "none", "jwt", &issuer), 1.0);
    expect(decision("refused", "invalid_token", "jwt", &issuer), 1.0);

    let cache = |result: &str| {
        format!("tollgate_verdict_cache_total{{kind=\"api_key\",result=\"{result}\"}}")
    };
    expect(cache("hit"), 2.0);
    expect(cache("negative_hit"), 1.0);
    expect(cache("miss"), 5.0);

    let upstream = |target: &str, issuer: &str, result: &str| {
        format!(
            "tollgate_upstream_requests_total{{target=\"{target}\",issuer=\"{issuer}\",result=\"{result}\"}}"
        )
    };
    expect(upstream("key_service", "", "ok"), 3.0);
    expect(upstream("key_service", "", "timeout"), 1.0);
    expect(upstream("key_service", "", "unavailable"), 1.0);
    // Discovery and the JWKS.
    expect(upstream("jwks", &issuer, "ok"), 2.0);
    expect(
        "tollgate_upstream_request_duration_seconds_count{target=\"key_service\",issuer=\"\"}"
            .into(),
        4.0,
    );
    expect(
        "tollgate_breaker_transitions_total{target=\"key_service\",issuer=\"\",state=\"open\"}"
            .into(),
        1.0,
    );
    expect(
        "tollgate_breaker_open{target=\"key_service\",issuer=\"\"}".into(),
        1.0,
    );
    expect(
        format!("tollgate_jwks_loads_total{{issuer=\"{issuer}\",result=\"ok\"}}"),
        1.0,
    );
    let loaded = format!("tollgate_jwks_last_success_timestamp_seconds{{issuer=\"{issuer}\"}}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        values
            .get(loaded.as_str())
            .is_some_and(|at| (now - at).abs() < 60.0),
        "{loaded} in\n{scrape}"
    );

    // Bounded labels only: no credential, subject, key id or kid.
    for secret in [
        READER,
        LIMITED,
        UNKNOWN,
        "sk_live_new",
        &token,
        SUBJECT,
        "key_reader_id",
        "key_limited_id",
        &kid,
    ] {
        assert!(
            !scrape.contains(secret),
            "{secret} in the scrape:\n{scrape}"
        );
    }
}

/// Refuses every request, naming as its issuer the tenant the request says: a label value
/// that is not bounded, as a careless custom authenticator would make one.
struct PerTenant;

impl Authenticator for PerTenant {
    async fn authenticate(
        &self,
        parts: &http::request::Parts,
    ) -> Result<Option<Principal>, AuthError> {
        let tenant = parts.headers["x-tenant"].to_str().unwrap();
        Err(AuthError::invalid_token("no")
            .with_origin(CredentialKind::Other("tenant"), Some(Arc::from(tenant))))
    }

    fn credential_source(&self) -> CredentialSource {
        CredentialSource::header(http::HeaderName::from_static("x-tenant"))
    }
}

#[tokio::test]
async fn metrics_labels_stay_bounded_when_an_authenticator_names_unbounded_issuers() {
    let prometheus = prometheus();
    let app = Router::new()
        .route("/", get(|| async { "never" }))
        .layer(AuthLayer::new(PerTenant));
    let app = with_metrics(app, prometheus);
    let base = format!("http://{}", serve(app).await);
    let http = reqwest::Client::new();
    for tenant in 0..40 {
        let res = http
            .get(&base)
            .header("x-tenant", format!("tenant-{tenant}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let scrape = scrape(&http, &base).await;
    let values = series(&scrape);
    let tenants = values
        .keys()
        .filter(|name| name.contains("kind=\"tenant\""))
        .count();
    assert_eq!(tenants, 32, "{scrape}");
    let other = "tollgate_decisions_total{outcome=\"refused\",reason=\"invalid_token\",kind=\"other\",issuer=\"other\"}";
    assert_eq!(values.get(other), Some(&8.0), "{scrape}");
}
