//! JWTs from any OpenID provider, found by discovery.
//!
//! ```text
//! ISSUER=https://login.example.com/realms/acme AUDIENCE=orders-api cargo run --example jwt_oidc
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/me
//! ```

use axum::Router;
use axum::routing::get;
use tollgate::Principal;
use tollgate::jwt::{Issuer, JwtAuth, ScopeMapping};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("ISSUER").map_err(|_| "set ISSUER (the issuer URL)")?;
    let audience = std::env::var("AUDIENCE").map_err(|_| "set AUDIENCE")?;
    let auth = JwtAuth::builder()
        .issuer(
            Issuer::discover(issuer)
                .audience(audience)
                // Scopes from `scope`/`scp`, plus Keycloak realm roles and Auth0 permissions.
                .scopes(
                    ScopeMapping::default()
                        .and("realm_access.roles")
                        .and("permissions"),
                ),
        )
        .build()
        .await?;

    let app = Router::new()
        .route(
            "/me",
            get(|who: Principal| async move {
                format!(
                    "{} from {:?}, scopes: {}\n",
                    who.subject(),
                    who.issuer(),
                    who.scopes()
                )
            }),
        )
        .layer(auth.layer());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
