//! The same layers on a plain hyper service, without axum: `AuthLayer` and
//! `RequireScopesLayer` wrap any tower service over `http` types.
//!
//! ```text
//! cargo run --example hyper_service
//! curl -H 'x-api-key: sk_test_demo' http://127.0.0.1:3000/
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tollgate::apikey::{ApiKeyAuth, KeyInfo, StaticKeys};
use tollgate::{AuthLayer, Principal, RequireScopesLayer};
use tower::ServiceBuilder;

async fn handler(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let who = req
        .extensions()
        .get::<Principal>()
        .map(|p| p.subject().to_owned());
    Ok(Response::new(Full::from(format!(
        "hello, {}\n",
        who.unwrap_or_default()
    ))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys = StaticKeys::new().key("sk_test_demo", KeyInfo::new("demo").scopes(["greet"]));
    let service = ServiceBuilder::new()
        .layer(AuthLayer::new(ApiKeyAuth::builder(keys).build()))
        .layer(RequireScopesLayer::all(["greet"]))
        .service_fn(handler);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
