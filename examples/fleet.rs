//! Two replicas of one service sharing a Redis: a key verified by one is known to the other,
//! and a revocation on either is refused by both. A mock key service and identity provider
//! stand in for Unkey and your IdP; Redis is yours (`redis-server` on the default port, or
//! `REDIS_URL`).
//!
//! ```text
//! redis-server --save '' &
//! cargo run --example fleet --features redis
//! curl -s -H 'x-api-key: sk_test_reader' localhost:3001/orders   # verified by the key service
//! curl -s -H 'x-api-key: sk_test_reader' localhost:3002/orders   # from Redis: no second call
//! curl -s -X POST localhost:3001/admin/revoke-key                 # revoked on both
//! curl -s -H 'x-api-key: sk_test_reader' localhost:3002/orders   # 401
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::routing::{get, post};
use tollgate::apikey::{ApiKeyAuth, UnkeyVerifier};
use tollgate::jwt::{Issuer, JwtAuth};
use tollgate::redis::RedisStore;
use tollgate::{AuthLayer, Authenticator, Principal};
use tollgate_testkit::{DEFAULT_AUDIENCE, MockIdp, MockKey, MockKeyService};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    // The same on every replica, from your secret store (at least 32 bytes).
    let secret = std::env::var("TOLLGATE_REDIS_SECRET")
        .unwrap_or_else(|_| "demo secret, at least 32 bytes long, never in production".into());
    let idp = MockIdp::start().await;
    let keys = Arc::new(MockKeyService::start().await);
    keys.add_key(
        "sk_test_reader",
        MockKey::new("key_reader").permissions(["orders:read"]),
    );
    let token = idp
        .token()
        .claim("sub", "alice")
        .claim("jti", "demo-jti")
        .expires_in(3600)
        .sign();
    println!("a JWT to try: {token}");

    for port in [3001, 3002] {
        let store = RedisStore::builder(&redis).secret(&secret).build()?;
        let api_keys =
            ApiKeyAuth::builder(UnkeyVerifier::new("root").base_url(keys.unkey_base_url()))
                .store(store.clone())
                .build();
        let revocations = store.revocations();
        let jwts = JwtAuth::builder()
            .issuer(Issuer::discover(idp.issuer()).audience(DEFAULT_AUDIENCE))
            .revocations(revocations.clone())
            .build()
            .await?;
        let admin = Arc::new((api_keys.clone(), revocations, idp.issuer(), keys.clone()));
        let app = Router::new()
            .route(
                "/orders",
                get(move |who: Principal| async move {
                    format!("orders for {} on :{port}\n", who.subject())
                }),
            )
            .layer(AuthLayer::new(api_keys.or(jwts)))
            // An operator's endpoints, unauthenticated for the demo only.
            .route(
                "/admin/revoke-key",
                post({
                    let admin = admin.clone();
                    move || async move {
                        // Revoked where keys live (Unkey's dashboard or API), then dropped
                        // from every replica's cache at once.
                        admin.3.revoke("sk_test_reader");
                        admin.0.invalidate("sk_test_reader").await;
                        "key revoked on every replica\n"
                    }
                }),
            )
            .route(
                "/admin/revoke-jwt",
                post(move || async move {
                    let exp = SystemTime::now() + Duration::from_secs(3600);
                    match admin.1.revoke_token(&admin.2, "demo-jti", exp).await {
                        Ok(()) => "token revoked on every replica\n".to_owned(),
                        Err(e) => format!("{e}\n"),
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("replica on http://127.0.0.1:{port}");
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    // The replicas serve until the process is stopped.
    std::future::pending::<()>().await;
    Ok(())
}
