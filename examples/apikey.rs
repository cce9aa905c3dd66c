//! API keys verified by Unkey (or any Unkey-compatible service), cached in-process.
//!
//! ```text
//! UNKEY_ROOT_KEY=unkey_... [UNKEY_BASE_URL=https://api.unkey.com] cargo run --example apikey
//! curl -H 'x-api-key: <a key of your API>' http://127.0.0.1:3000/orders
//! ```

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tollgate::apikey::{ApiKeyAuth, CachePolicy, UNKEY_BASE_URL, UnkeyVerifier};
use tollgate::{RequireScopes, scopes};

scopes! { OrdersRead = "orders.read"; }

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root_key = std::env::var("UNKEY_ROOT_KEY").map_err(|_| "set UNKEY_ROOT_KEY")?;
    let base = std::env::var("UNKEY_BASE_URL").unwrap_or_else(|_| UNKEY_BASE_URL.to_owned());
    let auth = ApiKeyAuth::builder(
        UnkeyVerifier::new(root_key)
            .base_url(base)
            .timeout(Duration::from_secs(2)),
    )
    .cache(
        CachePolicy::default()
            // Valid verdicts for 30 s (never past the key's own expiry), refusals for 10 s.
            .ttl(Duration::from_secs(30))
            .negative_ttl(Duration::from_secs(10))
            // Serve from cache while refreshing in the background after 20 s.
            .stale_while_revalidate(Duration::from_secs(20))
            // While Unkey is down, keep accepting keys that were valid, for at most 2 minutes.
            .serve_stale_on_error(Duration::from_secs(120)),
    )
    .build();

    let app = Router::new()
        .route(
            "/orders",
            get(
                |RequireScopes(who, ..): RequireScopes<OrdersRead>| async move {
                    format!("orders of {}\n", who.subject())
                },
            ),
        )
        .layer(auth.clone().layer());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
