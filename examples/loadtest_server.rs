//! The server `scripts/loadtest.sh` drives: one hello-world handler behind each of the
//! configurations compared, on 127.0.0.1 (`PORT`, default 3100). It prints the credentials to
//! use as `KEY=...` and `TOKEN=...` lines, then `READY`.
//!
//! | route | in front of the handler |
//! |---|---|
//! | `/none` | nothing |
//! | `/empty` | an empty middleware (`axum::middleware::from_fn` that only calls `next`) |
//! | `/key` | `ApiKeyAuth` (one hot key, answered from the cache) |
//! | `/bare-jwt` | a middleware calling bare `jsonwebtoken::decode` (RS256) with the right key |
//! | `/jwt` | `JwtAuth` (RS256), no verified-token cache |
//! | `/jwt-cached` | `JwtAuth` (RS256) with the verified-token cache |

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::json;
use tollgate::apikey::{ApiKeyAuth, KeyInfo, StaticKeys};
use tollgate::jwt::{Algorithm, Issuer, JwtAuth, LocalKeys};
use tollgate_testkit::SigningKey;

const ISS: &str = "https://issuer.load";
const AUD: &str = "load-api";

async fn hello() -> &'static str {
    "hello"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3100);
    let key = SigningKey::generate("load-1", Algorithm::RS256);
    let jwks = json!({ "keys": [key.jwk()] }).to_string();
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = Some("load-1".into());
    let token = key.sign(
        header,
        &json!({"iss": ISS, "aud": AUD, "sub": "load", "exp": 4_000_000_000u64, "scope": "a b c"}),
    );
    let api_key = "sk_live_loadtest_0123456789abcdef";

    let jwt = |cache: bool| {
        let jwks = jwks.clone();
        async move {
            let mut b = JwtAuth::builder().issuer(
                Issuer::local_keys(ISS, LocalKeys::new().jwks(&jwks).unwrap()).audience(AUD),
            );
            if cache {
                b = b.verified_token_cache(10_000, Duration::from_secs(3600));
            }
            b.build().await.unwrap()
        }
    };
    let keys = ApiKeyAuth::builder(StaticKeys::new().key(api_key, KeyInfo::new("load"))).build();

    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk())?;
    let bare = Arc::new((DecodingKey::from_jwk(&jwk)?, {
        let mut v = Validation::new(Algorithm::RS256);
        v.set_audience(&[AUD]);
        v.set_issuer(&[ISS]);
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

    let app = Router::new()
        .route("/none", get(hello))
        .merge(Router::new().route("/empty", get(hello)).layer(from_fn(
            |req: Request, next: Next| async move {
                let res: Response = next.run(req).await;
                res
            },
        )))
        .merge(Router::new().route("/key", get(hello)).layer(keys.layer()))
        .merge(
            Router::new()
                .route("/bare-jwt", get(hello))
                .layer(from_fn(bare_mw)),
        )
        .merge(
            Router::new()
                .route("/jwt", get(hello))
                .layer(jwt(false).await.layer()),
        )
        .merge(
            Router::new()
                .route("/jwt-cached", get(hello))
                .layer(jwt(true).await.layer()),
        );

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("KEY={api_key}");
    println!("TOKEN={token}");
    println!("READY http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
