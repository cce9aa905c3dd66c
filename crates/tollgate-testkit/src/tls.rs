//! [`TestCa`]: a certificate authority of the test's own, its [`TestCertificate`]s, and an
//! HTTPS server that asks clients for certificates (mutual TLS, RFC 8705).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use sha2::{Digest, Sha256};
use tollgate_core::ClientCertificate;
use tower::ServiceExt;

/// A certificate authority for one test: it issues the server certificate of
/// [`serve`](Self::serve) (for `127.0.0.1` and `localhost`) and client certificates, and
/// [`client`](Self::client) builds HTTP clients that trust it.
///
/// ```
/// use tollgate_core::ClientCertificate;
/// use tollgate_testkit::TestCa;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let ca = TestCa::new();
/// let alice = ca.client_certificate("alice");
/// let app = axum::Router::new().route(
///     "/",
///     axum::routing::get(|cert: Option<axum::Extension<ClientCertificate>>| async move {
///         cert.map_or("none".to_owned(), |c| c.thumbprint().to_owned())
///     }),
/// );
/// let addr = ca.serve(app).await;
/// let url = format!("https://127.0.0.1:{}/", addr.port());
/// let seen = ca.client(Some(&alice)).get(&url).send().await.unwrap().text().await.unwrap();
/// assert_eq!(seen, alice.thumbprint());
/// let seen = ca.client(None).get(&url).send().await.unwrap().text().await.unwrap();
/// assert_eq!(seen, "none");
/// # }
/// ```
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A certificate and its private key (ECDSA P-256), issued by a [`TestCa`].
#[derive(Clone)]
pub struct TestCertificate {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for TestCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCertificate")
            .field("thumbprint", &self.thumbprint())
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new authority with a fresh key.
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "tollgate test CA");
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// The authority's certificate, PEM, for clients and servers that should trust it.
    pub fn certificate_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The authority's certificate as a `reqwest` root.
    pub fn root_certificate(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_der(self.issuer.der()).expect("CA certificate")
    }

    /// A client certificate (extended key usage `clientAuth`) with subject `CN=<common_name>`.
    pub fn client_certificate(&self, common_name: &str) -> TestCertificate {
        self.issue(Vec::new(), common_name, ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A server certificate for `127.0.0.1` and `localhost`.
    pub fn server_certificate(&self) -> TestCertificate {
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        self.issue(names, "127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn issue(
        &self,
        names: Vec<String>,
        common_name: &str,
        usage: ExtendedKeyUsagePurpose,
    ) -> TestCertificate {
        let mut params = CertificateParams::new(names).expect("certificate parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("certificate key");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        TestCertificate {
            cert_pem: cert.pem(),
            der: cert.der().clone(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }

    /// An HTTP client that trusts this authority, presents `certificate` when given, and
    /// follows no redirects.
    pub fn client(&self, certificate: Option<&TestCertificate>) -> reqwest::Client {
        let mut client = reqwest::Client::builder()
            .tls_certs_only([self.root_certificate()])
            .redirect(reqwest::redirect::Policy::none());
        if let Some(certificate) = certificate {
            client = client.identity(certificate.identity());
        }
        client.build().expect("HTTP client")
    }

    /// Serves `app` over HTTPS on a random 127.0.0.1 port, for as long as the Tokio runtime
    /// runs, with a certificate of this authority. Clients may present a certificate of this
    /// authority (others fail the handshake) or none; each request of a connection with one
    /// carries its [`ClientCertificate`] in its extensions.
    pub async fn serve(&self, app: Router) -> SocketAddr {
        let server = self.server_certificate();
        let mut roots = RootCertStore::empty();
        roots.add(self.issuer.der().clone()).expect("CA root");
        // aws-lc-rs by name: a build with ring too has no process default.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .expect("client verifier");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![server.der.clone()], server.private_key())
            .expect("server TLS configuration");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let certificate =
                        ClientCertificate::from_chain(tls.get_ref().1.peer_certificates());
                    let service = app.map_request(move |mut request: Request<_>| {
                        if let Some(certificate) = &certificate {
                            request.extensions_mut().insert(certificate.clone());
                        }
                        request
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
                        .await;
                });
            }
        });
        addr
    }
}

impl TestCertificate {
    /// The certificate's `x5t#S256`: base64url SHA-256 of its DER encoding (RFC 8705 §3.1).
    pub fn thumbprint(&self) -> String {
        ClientCertificate::from_der(&self.der)
            .thumbprint()
            .to_owned()
    }

    /// The `cnf` claim of a token bound to this certificate.
    pub fn cnf(&self) -> serde_json::Value {
        serde_json::json!({ "x5t#S256": self.thumbprint() })
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PKCS #8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The certificate and key as a `reqwest` client identity.
    pub fn identity(&self) -> reqwest::Identity {
        let pem = format!("{}{}", self.cert_pem, self.key_pem);
        reqwest::Identity::from_pem(pem.as_bytes()).expect("client identity")
    }

    /// The certificate as a proxy forwards it in a header: URL-encoded PEM (nginx's
    /// `$ssl_client_escaped_cert`).
    pub fn escaped_pem(&self) -> String {
        percent_encoding::utf8_percent_encode(&self.cert_pem, percent_encoding::NON_ALPHANUMERIC)
            .to_string()
    }

    /// Envoy's `x-forwarded-client-cert` value for this certificate (`Hash`, `Subject`).
    pub fn xfcc(&self) -> String {
        let hash: String = Sha256::digest(&self.der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("By=spiffe://tollgate.test/api;Hash={hash};Subject=\"CN=client\"")
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}
