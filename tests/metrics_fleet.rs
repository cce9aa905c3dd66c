//! The fleet's metrics through real HTTP: two replicas on a real `redis-server`, a key shared
//! and invalidated, then the scrape (its own test binary: its own recorder, its own counts).
#![cfg(all(feature = "metrics", feature = "redis"))]

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusBuilder;
use tollgate::AuthLayer;
use tollgate::apikey::{ApiKeyAuth, UnkeyVerifier};
use tollgate::redis::RedisStore;
use tollgate_testkit::{MockKey, MockKeyService, RedisServer, prometheus_series as series, serve};

const READER: &str = "sk_live_reader_0123456789";

#[tokio::test]
async fn metrics_of_a_fleet_on_redis_are_scraped() {
    let prometheus = PrometheusBuilder::new().install_recorder().unwrap();
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let keys = MockKeyService::start().await;
    keys.add_key(READER, MockKey::new("key_reader_id"));
    let secret = "a fleet secret of at least 32 bytes, for the test";
    let replica = || {
        let store = RedisStore::builder(redis.url())
            .secret(secret)
            .namespace("metrics-test")
            .build()
            .unwrap();
        let auth = ApiKeyAuth::builder(UnkeyVerifier::new("root").base_url(keys.unkey_base_url()))
            .store(store.clone())
            .build();
        (store, auth)
    };
    let ((a_store, a), (b_store, b)) = (replica(), replica());
    while !(a_store.is_listening() && b_store.is_listening()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let app = |auth: ApiKeyAuth<UnkeyVerifier>| {
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(AuthLayer::new(auth))
    };
    let (a_url, b_url) = (serve(app(a.clone())).await, serve(app(b)).await);
    let http = reqwest::Client::new();
    for url in [a_url, b_url] {
        let res = http
            .get(format!("http://{url}/"))
            .header("x-api-key", READER)
            .send()
            .await;
        assert_eq!(res.unwrap().status(), 200);
    }
    a.invalidate(READER).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let scrape = prometheus.render();
    let values = series(&scrape);
    let expect = |name: &str, value: f64| {
        assert_eq!(
            values.get(name).copied(),
            Some(value),
            "{name} in\n{scrape}"
        );
    };
    expect(
        "tollgate_verdict_cache_total{kind=\"api_key\",result=\"store_hit\"}",
        1.0,
    );
    expect(
        "tollgate_fleet_messages_total{message=\"invalidate\",direction=\"sent\"}",
        1.0,
    );
    // Both replicas hear it, the sender included.
    expect(
        "tollgate_fleet_messages_total{message=\"invalidate\",direction=\"received\"}",
        2.0,
    );
    expect("tollgate_fleet_listening", 1.0);
    assert!(
        values
            .get("tollgate_upstream_requests_total{target=\"redis\",issuer=\"\",result=\"ok\"}")
            .is_some_and(|n| *n >= 3.0),
        "Redis commands in\n{scrape}"
    );
    assert!(!scrape.contains(READER) && !scrape.contains("key_reader_id"));
}
