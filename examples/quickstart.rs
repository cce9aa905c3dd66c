//! The demo: an API on 127.0.0.1:3000 (or `PORT`, or the first argument) protected by API
//! keys and JWTs, with a mock OpenID provider and a mock key service embedded, so it runs
//! with nothing else. It prints ready-to-paste `curl` commands.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tollgate::AuthLayer;
use tollgate::apikey::{ApiKeyAuth, UnkeyVerifier};
use tollgate::axum::{Principal, RequireScopes, scopes};
use tollgate::jwt::{Issuer, JwtAuth};
use tollgate::{Authenticator, CredentialKind};
use tollgate_testkit::{DEFAULT_AUDIENCE, MockIdp, MockKey, MockKeyService};

scopes! {
    OrdersRead = "orders:read";
    OrdersWrite = "orders:write";
}

async fn list_orders(RequireScopes(who, ..): RequireScopes<OrdersRead>) -> String {
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

fn kind(p: &Principal) -> &'static str {
    match p.kind() {
        CredentialKind::ApiKey => "API key",
        CredentialKind::Jwt => "JWT",
        _ => "other",
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .map_or(Ok(3000), |p| p.parse())?;

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
    .cache_ttl(Duration::from_secs(30))
    .build();
    let jwts = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience(DEFAULT_AUDIENCE))
        .build()
        .await?;

    let app = Router::new()
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
        );

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let token = idp
        .token()
        .claim("sub", "alice")
        .claim("scope", "orders:read")
        .expires_in(3600)
        .sign();
    println!("tollgate demo listening on {base}\n");
    println!("# 200: an API key with orders:read");
    println!("curl -i -H 'x-api-key: sk_test_reader' {base}/orders\n");
    println!("# 200: a JWT from the (mock) identity provider");
    println!("curl -i -H 'Authorization: Bearer {token}' {base}/orders\n");
    println!("# 401: no credential (WWW-Authenticate: Bearer realm=\"api\")");
    println!("curl -i {base}/orders\n");
    println!("# 403: the key lacks orders:write (error=\"insufficient_scope\")");
    println!("curl -i -X POST -H 'x-api-key: sk_test_reader' {base}/orders\n");
    println!("# 200: a key that has it");
    println!("curl -i -X POST -H 'x-api-key: sk_test_writer' {base}/orders\n");
    println!("Also: /whoami (either credential), /key-only, /jwt-only. Ctrl-C to stop.");
    axum::serve(listener, app).await?;
    Ok(())
}
