//! The server `scripts/loadtest.sh` drives: the quickstart app (`examples/quickstart/app.rs`,
//! the same routes, layers and mock services) plus the baselines the load test compares it
//! with, on 127.0.0.1 (`PORT`, default 3100). It prints the credentials to use as `KEY=...`
//! and `TOKEN=...` lines, then `READY`.
//!
//! | route | in front of the handler |
//! |---|---|
//! | `/health` | nothing (the quickstart's public route) |
//! | `/empty` | the same handler behind an empty middleware (`from_fn` that only calls `next`) |
//! | `/sha-moka` | the same handler behind a middleware that only hashes `x-api-key` (SHA-256) and finds it in a moka cache: the floor under any API-key route that caches as the product requires |
//! | `/bare-jwt` | the same handler behind a middleware calling bare `jsonwebtoken::decode` (RS256, the IdP's key) |
//! | `/orders` | the quickstart's route: API key or JWT, `RequireScopes<OrdersRead>` |
//! | `/orders-cached` | the same handler behind `JwtAuth` for the same IdP with the verified-token cache |

#[path = "quickstart/app.rs"]
mod app;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jsonwebtoken::{DecodingKey, Validation};
use tollgate::CredentialDigest;
use tollgate::jwt::{Algorithm, Issuer, JwtAuth};
use tollgate_testkit::DEFAULT_AUDIENCE;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3100);
    let demo = app::demo().await?;
    let token = demo
        .idp
        .token()
        .claim("sub", "load")
        .claim("scope", "orders:read")
        .expires_in(3600)
        .sign();

    let cached = JwtAuth::builder()
        .issuer(Issuer::discover(demo.idp.issuer()).audience(DEFAULT_AUDIENCE))
        .verified_token_cache(10_000, Duration::from_secs(3600))
        .build()
        .await?;

    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(demo.idp.signing_key(Algorithm::RS256).jwk())?;
    let bare = Arc::new((DecodingKey::from_jwk(&jwk)?, {
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[DEFAULT_AUDIENCE]);
        v.set_issuer(&[demo.idp.issuer()]);
        v
    }));
    let bare_mw = move |req: Request, next: Next| {
        let bare = bare.clone();
        async move {
            let token = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            match token.map(|t| jsonwebtoken::decode::<serde_json::Value>(t, &bare.0, &bare.1)) {
                Some(Ok(_)) => next.run(req).await,
                _ => http::StatusCode::UNAUTHORIZED.into_response(),
            }
        }
    };

    let known: moka::future::Cache<CredentialDigest, ()> = moka::future::Cache::new(100_000);
    known
        .insert(CredentialDigest::of("sk_test_reader"), ())
        .await;
    let sha_moka_mw = move |req: Request, next: Next| {
        let known = known.clone();
        async move {
            let key = req.headers().get("x-api-key").and_then(|v| v.to_str().ok());
            match key {
                Some(key) if known.get(&CredentialDigest::of(key)).await.is_some() => {
                    next.run(req).await
                }
                _ => http::StatusCode::UNAUTHORIZED.into_response(),
            }
        }
    };

    let app = demo
        .router
        .merge(
            Router::new()
                .route("/empty", get(app::health))
                .layer(from_fn(|req: Request, next: Next| async move {
                    let res: Response = next.run(req).await;
                    res
                })),
        )
        .merge(
            Router::new()
                .route("/sha-moka", get(app::health))
                .layer(from_fn(sha_moka_mw)),
        )
        .merge(
            Router::new()
                .route("/bare-jwt", get(app::health))
                .layer(from_fn(bare_mw)),
        )
        .merge(
            Router::new()
                .route("/orders-cached", get(app::list_orders))
                .layer(cached.layer()),
        );

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("KEY=sk_test_reader");
    println!("TOKEN={token}");
    println!("READY http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
