//! JWTs and opaque tokens from one issuer on one route: JWT-shaped bearer tokens are verified
//! locally against the issuer's keys, the others asked of its RFC 7662 introspection endpoint
//! (cached). Runs against a mock provider and prints what each request got.
//!
//! ```text
//! cargo run --example introspection --features introspect
//! ```

use axum::Router;
use axum::routing::get;
use tollgate::introspect::{ClientCredentials, Introspection};
use tollgate::jwt::{Issuer, JwtAuth};
use tollgate::{AuthLayer, Authenticator, RequireScopes, scopes};
use tollgate_testkit::{DEFAULT_AUDIENCE, MockIdp};

scopes! { OrdersRead = "orders:read"; }

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let idp = MockIdp::start().await;
    // The resource server's own client at the provider, for introspection requests.
    idp.register_client("orders-api", "orders-api-secret");

    let jwts = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience(DEFAULT_AUDIENCE))
        .build()
        .await?;
    let opaque = Introspection::builder(idp.issuer())
        .client_credentials(ClientCredentials::new("orders-api").secret_basic("orders-api-secret"))
        .audience(DEFAULT_AUDIENCE)
        .build()
        .await?;

    let app = Router::new()
        .route(
            "/orders",
            get(
                |RequireScopes(who, ..): RequireScopes<OrdersRead>| async move {
                    format!("orders of {} (via {:?})", who.subject(), who.kind())
                },
            ),
        )
        .layer(AuthLayer::new(jwts.or(opaque.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/orders", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let revoked = idp.opaque_token().claim("scope", "orders:read").issue();
    idp.revoke(&revoked);
    let tokens = [
        ("a JWT", idp.token().claim("scope", "orders:read").sign()),
        (
            "an opaque token",
            idp.opaque_token().claim("scope", "orders:read").issue(),
        ),
        (
            "an opaque token without the scope",
            idp.opaque_token().claim("scope", "profile").issue(),
        ),
        ("a revoked opaque token", revoked),
    ];
    let client = reqwest::Client::new();
    for (what, token) in tokens {
        let res = client.get(&url).bearer_auth(token).send().await?;
        println!("{what}: {} {}", res.status(), res.text().await?);
    }
    println!(
        "introspection requests: {} (none for the JWT)",
        idp.introspection_requests()
    );
    Ok(())
}
