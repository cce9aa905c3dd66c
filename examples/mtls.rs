//! A service that terminates TLS itself and accepts certificate-bound tokens (RFC 8705 §3).
//! tokio-rustls asks each client for a certificate, the connection's certificate goes into
//! every request's extensions as a `ClientCertificate`, and the layer checks it against the
//! token's `cnf.x5t#S256`. A test CA and a mock identity provider stand in for yours; the
//! example then calls itself with a bound token, from its certificate and from another.
//!
//! ```text
//! cargo run --example mtls
//! ```
//!
//! Behind a proxy that terminates TLS, none of the TLS part is yours: use
//! `CertificateSource::forwarded_pem` (nginx, AWS ALB) or `CertificateSource::envoy()`.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::WebPkiClientVerifier;
use tollgate::jwt::{Issuer, JwtAuth, Mtls};
use tollgate::{AuthLayer, CertificateSource, ClientCertificate, Principal};
use tollgate_testkit::{MockIdp, TestCa};
use tower::ServiceExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (idp, ca) = (MockIdp::start().await, TestCa::new());
    let jwts = JwtAuth::builder()
        .issuer(
            Issuer::discover(idp.issuer())
                .audience("orders-api")
                .mtls(Mtls::required(CertificateSource::tls_connection())),
        )
        .build()
        .await?;
    let app = Router::new()
        .route(
            "/orders",
            get(|who: Principal| async move {
                let bound = who.binding().and_then(|b| b.certificate_thumbprint());
                format!(
                    "orders of {}, certificate {}\n",
                    who.subject(),
                    bound.unwrap_or("-")
                )
            }),
        )
        .layer(AuthLayer::new(jwts));

    // The TLS server: your certificate and key, and the CA your clients' certificates are
    // issued by. `allow_unauthenticated`: clients without a certificate still connect (and
    // are refused by the layer if their token is bound).
    let server = ca.server_certificate();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(
        ca.certificate_pem().as_bytes(),
    )?)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let clients = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(clients)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(
                server.cert_pem().as_bytes(),
            )?],
            PrivateKeyDer::from_pem_slice(server.key_pem().as_bytes())?,
        )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                // The piece tollgate needs: the connection's certificate, on every request.
                let certificate =
                    ClientCertificate::from_chain(tls.get_ref().1.peer_certificates());
                let app = app.map_request(move |mut request: Request<Incoming>| {
                    if let Some(certificate) = &certificate {
                        request.extensions_mut().insert(certificate.clone());
                    }
                    request
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });

    // A client with its certificate, and a token bound to it (your authorization server
    // does the binding when the client gets its token over mTLS).
    let url = format!("https://127.0.0.1:{port}/orders");
    let alice = ca.client_certificate("alice");
    let token = idp
        .token()
        .claim("aud", "orders-api")
        .certificate_bound(&alice)
        .sign();
    for (who, client) in [
        ("alice's certificate", ca.client(Some(&alice))),
        (
            "another certificate",
            ca.client(Some(&ca.client_certificate("mallory"))),
        ),
        ("no certificate", ca.client(None)),
    ] {
        let res = client.get(&url).bearer_auth(&token).send().await?;
        println!("{who}: {} {}", res.status(), res.text().await?.trim_end());
    }
    Ok(())
}
