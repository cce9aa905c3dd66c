//! The demo: an API on 127.0.0.1:3000 (or `PORT`, or the first argument) protected by API
//! keys and JWTs, with a mock OpenID provider and a mock key service embedded, so it runs
//! with nothing else. It prints ready-to-paste `curl` commands. The app itself is in
//! `app.rs`.
//!
//! ```text
//! cargo run --example quickstart
//! ```

mod app;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .map_or(Ok(3000), |p| p.parse())?;
    let demo = app::demo().await?;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let token = demo
        .idp
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
    println!(
        "Also: /whoami (either credential), /key-only, /jwt-only, /health (public). Ctrl-C to stop."
    );
    axum::serve(listener, demo.router).await?;
    Ok(())
}
