//! Two issuers on one layer (multi-tenant): each token is routed to its issuer by `iss`,
//! checked against that issuer's keys, audience and scope mapping. Runs against two mock
//! providers and prints what each request got.
//!
//! ```text
//! cargo run --example multi_tenant
//! ```

use axum::Router;
use axum::routing::get;
use tollgate::Principal;
use tollgate::jwt::{Issuer, JwtAuth, ScopeMapping};
use tollgate_testkit::MockIdp;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (tenant_a, tenant_b, stranger) = (
        MockIdp::start().await,
        MockIdp::start().await,
        MockIdp::start().await,
    );

    let auth = JwtAuth::builder()
        .issuer(Issuer::discover(tenant_a.issuer()).audience("orders-api"))
        .issuer(
            Issuer::discover(tenant_b.issuer())
                .audience("api://orders")
                .scopes(ScopeMapping::claims(["roles"])),
        )
        .build()
        .await?;

    let app = Router::new()
        .route(
            "/",
            get(|who: Principal| async move {
                format!(
                    "{} of {} with [{}]",
                    who.subject(),
                    who.issuer().unwrap_or("?"),
                    who.scopes()
                )
            }),
        )
        .layer(auth.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::new();
    let tokens = [
        (
            "tenant A",
            tenant_a
                .token()
                .claim("aud", "orders-api")
                .claim("scope", "orders:read")
                .sign(),
        ),
        (
            "tenant B",
            tenant_b
                .token()
                .claim("aud", "api://orders")
                .claim("roles", vec!["admin"])
                .sign(),
        ),
        (
            "tenant A's token for B's audience",
            tenant_a.token().claim("aud", "api://orders").sign(),
        ),
        (
            "an issuer not configured",
            stranger.token().claim("aud", "orders-api").sign(),
        ),
    ];
    for (who, token) in tokens {
        let res = client.get(&url).bearer_auth(token).send().await?;
        println!("{who}: {} {}", res.status(), res.text().await?);
    }
    Ok(())
}
