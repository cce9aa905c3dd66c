//! One tollgate-protected service calling another: `orders` (open to anonymous callers in this
//! demo, behind an optional layer) calls `billing` (JWTs required) with a client-credentials
//! token that the outbound layer fetches, caches and refreshes. Runs against a mock identity
//! provider and prints what happens.
//!
//! ```text
//! cargo run --example m2m_client --features client
//! ```

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use tollgate::AuthLayer;
use tollgate::client::{BoxError, ClientAuthLayer, ClientCredentials, TokenSource};
use tollgate::jwt::{Issuer, JwtAuth};
use tollgate::{Principal, RequireScopes, scopes};
use tollgate_testkit::MockIdp;
use tower::{ServiceBuilder, ServiceExt, util::BoxCloneSyncService};

scopes! { InvoicesRead = "invoices:read"; }

type Billing = BoxCloneSyncService<reqwest::Request, reqwest::Response, BoxError>;

async fn serve(app: Router) -> Result<String, std::io::Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let idp = MockIdp::start().await;
    idp.register_client("orders-service", "orders-secret");

    // billing: accepts JWTs for its audience, needs invoices:read.
    let billing_auth = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience("https://billing.internal"))
        .build()
        .await?;
    let billing = Router::new()
        .route(
            "/invoices",
            get(
                |RequireScopes(caller, ..): RequireScopes<InvoicesRead>| async move {
                    format!("3 invoices, for {}", caller.subject())
                },
            ),
        )
        .layer(billing_auth.clone().layer());
    let billing_url = serve(billing).await?;

    // orders: calls billing with tokens from the identity provider.
    let tokens = TokenSource::new(
        ClientCredentials::new("orders-service")
            .secret_basic("orders-secret")
            .discover(idp.issuer())
            .timeout(Duration::from_secs(2)),
    );
    let to_billing: Billing = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(
                ClientAuthLayer::token(tokens.clone())
                    .audience("https://billing.internal")
                    .scope("invoices:read"),
            )
            .service(reqwest::Client::new()),
    );
    let orders = Router::new()
        .route(
            "/summary",
            get(|caller: Option<Principal>, State((billing, url)): State<(Billing, String)>| async move {
                let request = reqwest::Request::new(reqwest::Method::GET, format!("{url}/invoices").parse().unwrap());
                let answer = match billing.oneshot(request).await {
                    Ok(res) => res.text().await.unwrap_or_default(),
                    Err(e) => format!("billing unavailable: {e}"),
                };
                format!("orders summary for {:?}: {answer}", caller.map(|p| p.subject().to_owned()))
            }),
        )
        .with_state((to_billing, billing_url))
        .layer(AuthLayer::new(billing_auth).optional());
    let orders_url = serve(orders).await?;

    for _ in 0..3 {
        let text = reqwest::get(format!("{orders_url}/summary"))
            .await?
            .text()
            .await?;
        println!("{text}");
    }
    println!(
        "token requests made by orders: {} (one, then cached)",
        tokens.token_requests()
    );
    Ok(())
}
