//! The quickstart's app: the routes, the layers, and the mock services behind them. Shared
//! with `examples/loadtest_server.rs`, so that the load test measures this very app.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tollgate::AuthLayer;
use tollgate::apikey::{ApiKeyAuth, CachePolicy, UnkeyVerifier};
use tollgate::jwt::{Issuer, JwtAuth};
use tollgate::{Authenticator, CredentialKind};
use tollgate::{Principal, RequireScopes, scopes};
use tollgate_testkit::{DEFAULT_AUDIENCE, MockIdp, MockKey, MockKeyService};

scopes! {
    pub OrdersRead = "orders:read";
    pub OrdersWrite = "orders:write";
}

pub async fn list_orders(RequireScopes(who, ..): RequireScopes<OrdersRead>) -> String {
    format!("orders for {} (via {})\n", who.subject(), kind(&who))
}

async fn create_order(RequireScopes(who, ..): RequireScopes<OrdersWrite>) -> String {
    format!("order created by {}\n", who.subject())
}

async fn whoami(who: Principal) -> String {
    format!(
        "{} via {}, scopes: {}\n",
        who.subject(),
        kind(&who),
        who.scopes()
    )
}

pub async fn health() -> &'static str {
    "ok\n"
}

fn kind(p: &Principal) -> &'static str {
    match p.kind() {
        CredentialKind::ApiKey => "API key",
        CredentialKind::Jwt => "JWT",
        _ => "other",
    }
}

/// The demo app: its router and the stand-ins for Unkey and your identity provider.
pub struct Demo {
    pub router: Router,
    pub idp: MockIdp,
    /// Kept so that the mock key service runs as long as the demo.
    pub _key_service: MockKeyService,
}

/// Starts the mock services and builds the app.
pub async fn demo() -> Result<Demo, Box<dyn std::error::Error>> {
    // The stand-ins for Unkey and your identity provider.
    let idp = MockIdp::start().await;
    let key_service = MockKeyService::start().await;
    key_service.add_key(
        "sk_test_reader",
        MockKey::new("key_reader").permissions(["orders:read"]),
    );
    key_service.add_key(
        "sk_test_writer",
        MockKey::new("key_writer").permissions(["orders:read", "orders:write"]),
    );

    let api_keys = ApiKeyAuth::builder(
        UnkeyVerifier::new("demo-root-key").base_url(key_service.unkey_base_url()),
    )
    .cache(CachePolicy::default().ttl(Duration::from_secs(30)))
    .build();
    let jwts = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience(DEFAULT_AUDIENCE))
        .build()
        .await?;

    let router = Router::new()
        .route("/orders", get(list_orders).post(create_order))
        .route("/whoami", get(whoami))
        // Either credential on these routes: the one the request carries is checked.
        .layer(AuthLayer::new(api_keys.clone().or(jwts.clone())))
        .merge(
            Router::new()
                .route("/key-only", get(whoami))
                .layer(api_keys.layer()),
        )
        .merge(
            Router::new()
                .route("/jwt-only", get(whoami))
                .layer(jwts.layer()),
        )
        // Public: no credential needed.
        .route("/health", get(health));
    Ok(Demo {
        router,
        idp,
        _key_service: key_service,
    })
}
