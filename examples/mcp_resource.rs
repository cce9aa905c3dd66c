//! A protected endpoint shaped like an MCP server's: the RFC 9728 metadata at its well-known
//! URL, a 401 whose challenge points to it, and a scope per tool route. A mock identity
//! provider stands in for your authorization server.
//!
//! ```text
//! cargo run --example mcp_resource
//! curl -si -X POST localhost:3000/mcp/tools/list | grep -i www-authenticate
//! curl -s localhost:3000/.well-known/oauth-protected-resource/mcp
//! curl -s -X POST -H "authorization: Bearer $TOKEN" localhost:3000/mcp/tools/list
//! ```

use axum::Router;
use axum::routing::post;
use tollgate::jwt::{Issuer, JwtAuth};
use tollgate::{AuthLayer, Authenticator, RequireScopes, ResourceMetadata, scopes};
use tollgate_testkit::MockIdp;

scopes! {
    ToolsRead = "tools:read";
    ToolsCall = "tools:call";
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT").map_or(Ok(3000), |p| p.parse())?;
    // The resource identifier: the URL clients use, and the audience of its tokens.
    let resource = format!("http://localhost:{port}/mcp");
    let idp = MockIdp::start().await;
    let jwts = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience(&resource))
        .build()
        .await?;
    // Built from the layer's own configuration: its issuers, its routes' scopes, where it
    // reads tokens.
    let metadata = ResourceMetadata::builder(&resource)
        .authorization_servers(jwts.issuers())
        .scopes::<ToolsRead>()
        .scopes::<ToolsCall>()
        .bearer_methods_of(&jwts.credential_source())
        .resource_name("tollgate example MCP server")
        .build()?;

    let app = Router::new()
        .route(
            "/mcp/tools/list",
            post(|_: RequireScopes<ToolsRead>| async { "[\"search\", \"summarize\"]\n" }),
        )
        .route(
            "/mcp/tools/call",
            post(
                |RequireScopes(who, ..): RequireScopes<ToolsCall>| async move {
                    format!("called by {}\n", who.subject())
                },
            ),
        )
        .layer(AuthLayer::new(jwts).resource_metadata(metadata.url()))
        // Public: a client reads it before it has a token.
        .route_service(metadata.path(), metadata.service());

    let token = idp
        .token()
        .claim("aud", resource.as_str())
        .claim("scope", "tools:read")
        .expires_in(3600)
        .sign();
    println!("metadata: {}", metadata.url());
    println!("TOKEN={token}  (tools:read only: tools/call answers 403)");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
