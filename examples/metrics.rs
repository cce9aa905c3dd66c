//! The quickstart app with its metrics on `/metrics`, in Prometheus' text format, by
//! `metrics-exporter-prometheus`. The recorder is installed first, so that every series
//! tollgate registers goes to it.
//!
//! ```text
//! cargo run --example metrics --features metrics
//! curl -s -H 'x-api-key: sk_test_reader' localhost:3000/orders
//! curl -s localhost:3000/orders
//! curl -s localhost:3000/metrics | grep tollgate_
//! ```

#[path = "quickstart/app.rs"]
mod app;

use axum::routing::get;
use metrics_exporter_prometheus::PrometheusBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .map_or(Ok(3000), |p| p.parse())?;
    // Before anything of tollgate's counts.
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    let demo = app::demo().await?;
    let token = demo
        .idp
        .token()
        .claim("sub", "alice")
        .claim("scope", "orders:read")
        .expires_in(3600)
        .sign();

    // `/metrics` outside the auth layers: scrapers carry no credential (put it on a port of
    // its own, or behind your network's rules, in production).
    let router = demo.router.route(
        "/metrics",
        get(move || {
            let prometheus = prometheus.clone();
            async move { prometheus.render() }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("tollgate metrics demo listening on {base}\n");
    println!("curl -s -H 'x-api-key: sk_test_reader' {base}/orders");
    println!("curl -s -H 'Authorization: Bearer {token}' {base}/orders");
    println!("curl -s {base}/orders");
    println!("curl -s {base}/metrics | grep tollgate_");
    axum::serve(listener, router).await?;
    Ok(())
}
