//! Accept GitHub Actions OIDC tokens from one repository, and only from `main` or a release
//! tag, instead of a long-lived deploy secret.
//!
//! ```text
//! REPOSITORY=acme/api AUDIENCE=https://deploy.acme.example cargo run --example github_actions_oidc
//! ```
//!
//! In the workflow (`permissions: id-token: write`), fetch a token for that audience from
//! `$ACTIONS_ID_TOKEN_REQUEST_URL&audience=...` and send it as `Authorization: Bearer`.

use axum::Router;
use axum::routing::post;
use tollgate::Claims;
use tollgate::jwt::{ClaimRule, Issuer, JwtAuth, ScopeMapping};

/// GitHub's OIDC issuer.
const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

#[derive(serde::Deserialize)]
struct Workflow {
    repository: String,
    #[serde(rename = "ref")]
    git_ref: String,
    workflow: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repository = std::env::var("REPOSITORY").map_err(|_| "set REPOSITORY (owner/name)")?;
    let audience = std::env::var("AUDIENCE").map_err(|_| "set AUDIENCE")?;

    let auth = JwtAuth::builder()
        .issuer(
            Issuer::discover(GITHUB_ISSUER)
                .audience(audience)
                .require(ClaimRule::all([
                    ClaimRule::equals("repository", repository),
                    ClaimRule::any([
                        ClaimRule::equals("ref", "refs/heads/main"),
                        ClaimRule::glob("ref", "refs/tags/v*"),
                    ]),
                ]))
                // Workload tokens carry no scopes; the rule above is the authorization.
                .scopes(ScopeMapping::none()),
        )
        .build()
        .await?;

    let app = Router::new()
        .route(
            "/deploy",
            post(|Claims(w): Claims<Workflow>| async move {
                format!(
                    "deploying {} at {} (workflow {})\n",
                    w.repository, w.git_ref, w.workflow
                )
            }),
        )
        .layer(auth.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
