//! Interoperability with a real, independently written, certified OpenID provider:
//! `oidc-provider` (see `tests/interop/package.json` for the exact version), run with Node on
//! 127.0.0.1 by this test. tollgate is configured only by the issuer URL and the audience.
//!
//! Without Node/npm the test fails in CI (`CI` set) and is skipped, with the reason printed,
//! elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tollgate::AuthLayer;
use tollgate::jwt::{Issuer, JwtAuth};
use tollgate::{Claims, RequireScopes, scopes};

const AUDIENCE: &str = "https://api.tollgate.test";
const OTHER_AUDIENCE: &str = "https://other.tollgate.test";
/// The resource whose access tokens the provider makes opaque.
#[cfg(feature = "introspect")]
const OPAQUE_AUDIENCE: &str = "https://opaque.tollgate.test";

scopes! {
    OrdersRead = "orders:read";
    OrdersWrite = "orders:write";
}

#[derive(serde::Deserialize)]
struct AccessToken {
    client_id: String,
}

/// The provider process; killed when dropped, whatever happens in the test.
struct Provider {
    child: Child,
    issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs the provider's packages (`npm ci`, exact versions from the lock file) if needed,
/// and starts it on a free port. `None` (with the reason printed) when Node is missing
/// outside CI.
async fn start_provider() -> Option<Provider> {
    start_provider_with(&[]).await
}

/// [`start_provider`] with more environment for `provider.mjs` (its TLS settings, say).
async fn start_provider_with(env: &[(&str, String)]) -> Option<Provider> {
    if !have("node") || !have("npm") {
        let reason =
            "Node.js and npm are needed for the interoperability test (.ci/run installs them)";
        assert!(std::env::var_os("CI").is_none(), "{reason}");
        eprintln!("skipped: {reason}");
        return None;
    }
    let dir = interop_dir();
    // The tests of this file run in parallel: one `npm ci` for all of them, or they would
    // install into the same folder at once.
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    let installed = *INSTALLED.get_or_init(|| {
        dir.join("node_modules/oidc-provider").exists()
            || Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .status()
                .is_ok_and(|s| s.success())
    });
    assert!(installed, "npm ci failed in {}", dir.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("node")
        .arg("provider.mjs")
        .env("PORT", port.to_string())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(&dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("start node provider.mjs");
    let mut provider = Provider {
        child,
        issuer: format!("http://127.0.0.1:{port}"),
    };
    let discovery = format!("{}/.well-known/openid-configuration", provider.issuer);
    // Several providers start at once (the tests run in parallel) on a small CI machine:
    // give them time, but fail at once if one exits.
    for _ in 0..600 {
        if reqwest::get(&discovery)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Some(provider);
        }
        if let Ok(Some(status)) = provider.child.try_wait() {
            panic!("the provider exited ({status}) before it answered");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the provider did not start on {} within 60 s",
        provider.issuer
    );
}

impl Provider {
    /// A client-credentials access token from the token endpoint.
    async fn token(&self, client: &str, resource: &str, scope: &str) -> String {
        let res = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(client, Some(format!("{client}-secret-0123456789abcdef")))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", resource),
                ("scope", scope),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "token endpoint: {}",
            res.text().await.unwrap()
        );
        let body: serde_json::Value = res.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The JWT layer's authenticator for this provider: configured by `issuer` alone.
    async fn auth(&self, issuer: Issuer) -> JwtAuth {
        JwtAuth::builder().issuer(issuer).build().await.unwrap()
    }

    async fn admin(&self, action: &str) {
        let res = reqwest::Client::new()
            .post(format!("{}/__{action}", self.issuer))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }
}

/// The status of a GET to `url` with `token` as bearer.
async fn status(url: &str, token: &str) -> reqwest::StatusCode {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn serve(auth: impl tollgate::Authenticator) -> String {
    let addr = tollgate_testkit::serve(app(auth)).await;
    format!("http://{addr}/orders")
}

/// `/orders`: GET needs `orders:read` and answers subject, `client_id` and scopes; POST needs
/// `orders:write`.
fn app(auth: impl tollgate::Authenticator) -> Router {
    Router::new()
        .route(
            "/orders",
            get(
                |RequireScopes(who, ..): RequireScopes<OrdersRead>,
                 Claims(at): Claims<AccessToken>| async move {
                    format!("{} {} {}", who.subject(), at.client_id, who.scopes())
                },
            )
            .post(
                |RequireScopes(who, ..): RequireScopes<OrdersWrite>| async move {
                    who.subject().to_owned()
                },
            ),
        )
        .layer(AuthLayer::new(auth))
}

#[tokio::test]
async fn tokens_from_oidc_provider() {
    let Some(provider) = start_provider().await else {
        return;
    };
    // Configured by the issuer URL and the audience only (discovery does the rest).
    let auth = provider
        .auth(Issuer::discover(&provider.issuer).audience(AUDIENCE))
        .await;
    let url = serve(auth.clone()).await;
    let client = reqwest::Client::new();

    // RS256 (rs-client) and ES256 (es-client) access tokens, typ at+jwt.
    let rs = provider
        .token("rs-client", AUDIENCE, "orders:read orders:write")
        .await;
    let res = client.get(&url).bearer_auth(&rs).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.text().await.unwrap(),
        "rs-client rs-client orders:read orders:write"
    );
    let es = provider.token("es-client", AUDIENCE, "orders:read").await;
    let res = client.get(&url).bearer_auth(&es).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "es-client es-client orders:read");

    // Another audience: 401.
    let other = provider
        .token("rs-client", OTHER_AUDIENCE, "orders:read")
        .await;
    let res = client.get(&url).bearer_auth(&other).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );

    // A token without the scope the route needs: 403 with the RFC 6750 challenge.
    let res = client.post(&url).bearer_auth(&es).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="orders:write""#)
    );
    assert_eq!(
        client
            .post(&url)
            .bearer_auth(&rs)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn key_rotation_at_the_provider() {
    let Some(provider) = start_provider().await else {
        return;
    };
    let auth = provider
        .auth(Issuer::discover(&provider.issuer).audience(AUDIENCE))
        .await;
    // A second layer that refreshes its key set often, to see removed keys go.
    let refreshing = provider
        .auth(
            Issuer::discover(&provider.issuer)
                .audience(AUDIENCE)
                .refresh_interval(Duration::from_millis(300)),
        )
        .await;
    let (url, refreshing_url) = (serve(auth.clone()).await, serve(refreshing).await);
    let client = reqwest::Client::new();
    let old = provider.token("rs-client", AUDIENCE, "orders:read").await;
    assert_eq!(status(&url, &old).await, 200);

    // A new key signs; the old one is still published. The new kid costs one refetch.
    provider.admin("rotate").await;
    let new = provider.token("rs-client", AUDIENCE, "orders:read").await;
    let fetches = auth.stats().jwks_fetches;
    assert_eq!(status(&url, &new).await, 200);
    assert_eq!(status(&url, &new).await, 200);
    assert_eq!(
        auth.stats().jwks_fetches,
        fetches + 1,
        "exactly one JWKS refetch"
    );
    assert_eq!(status(&url, &old).await, 200);

    // The old key is dropped; once the key set is refreshed, its tokens are refused.
    provider.admin("drop_old").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let res = client
        .get(&refreshing_url)
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(status(&refreshing_url, &new).await, 200);
}

#[cfg(feature = "client")]
#[tokio::test]
async fn private_key_jwt_client_accepted_by_the_real_provider() {
    use tollgate::client::{
        Algorithm, ClientAuthLayer, ClientCredentials, EncodingKey, TokenSource,
    };
    use tower::{ServiceBuilder, ServiceExt};

    let Some(provider) = start_provider().await else {
        return;
    };
    let pem = reqwest::get(format!("{}/__client_key", provider.issuer))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let key = EncodingKey::from_ec_pem(&pem).unwrap();
    let tokens = TokenSource::new(
        ClientCredentials::new("pkjwt-client")
            .private_key_jwt(key, Algorithm::ES256, Some("pkjwt-1".into()))
            .discover(&provider.issuer)
            .audience_as_resource(),
    );
    let auth = provider
        .auth(Issuer::discover(&provider.issuer).audience(AUDIENCE))
        .await;
    let url = serve(auth).await;
    let client = ServiceBuilder::new()
        .layer(
            ClientAuthLayer::token(tokens.clone())
                .audience(AUDIENCE)
                .scope("orders:read"),
        )
        .service(reqwest::Client::new());
    for _ in 0..3 {
        let request = reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
        let res = client.clone().oneshot(request).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.text().await.unwrap(),
            "pkjwt-client pkjwt-client orders:read"
        );
    }
    assert_eq!(tokens.token_requests(), 1);
}

#[cfg(feature = "introspect")]
#[tokio::test]
async fn opaque_tokens_introspected_at_the_real_provider() {
    use tollgate::introspect::{CachePolicy, ClientCredentials, Introspection};

    let Some(provider) = start_provider().await else {
        return;
    };
    let introspector = |secret: &str| {
        Introspection::builder(&provider.issuer)
            .client_credentials(ClientCredentials::new("introspector").secret_basic(secret))
            .audience(OPAQUE_AUDIENCE)
            .cache(CachePolicy::default().ttl(Duration::from_millis(300)))
    };
    // Found by discovery, like the JWT path.
    let auth = introspector("introspector-secret-0123456789abcdef")
        .build()
        .await
        .unwrap();
    assert!(auth.endpoint().starts_with(&provider.issuer));
    let url = serve(auth).await;
    let token = provider
        .token("rs-client", OPAQUE_AUDIENCE, "orders:read")
        .await;
    assert!(!tollgate::is_jwt_shaped(&token), "the provider made a JWT");
    let res = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "rs-client rs-client orders:read");
    // Not the scope the write route needs: 403.
    let res = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // Revoked at the provider (RFC 7009): refused once the positive TTL has run out.
    let revoked = reqwest::Client::new()
        .post(format!("{}/token/revocation", provider.issuer))
        .basic_auth("rs-client", Some("rs-client-secret-0123456789abcdef"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());
    assert_eq!(status(&url, &token).await, 200, "still cached");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status(&url, &token).await, 401);

    // Wrong credentials for introspection: the provider refuses *us*; not the client's fault.
    let wrong = introspector("not-the-secret").build().await.unwrap();
    let url = serve(wrong).await;
    let fresh = provider
        .token("rs-client", OPAQUE_AUDIENCE, "orders:read")
        .await;
    assert_eq!(status(&url, &fresh).await, 503);
}

/// The `Authorization` of the last request a [`recording`] transport sent.
#[cfg(feature = "client")]
type Sent = std::sync::Arc<std::sync::Mutex<Option<String>>>;

/// A transport for `ClientAuthLayer` that sends with `http` (to `to` instead of the
/// request's URL, when given) and keeps the `Authorization` it sent.
#[cfg(feature = "client")]
fn recording(
    http: reqwest::Client,
    to: Option<reqwest::Url>,
) -> (
    impl tower::Service<
        reqwest::Request,
        Response = reqwest::Response,
        Error = reqwest::Error,
        Future = impl Send,
    > + Clone,
    Sent,
) {
    let sent = Sent::default();
    let kept = sent.clone();
    let transport = tower::service_fn(move |mut req: reqwest::Request| {
        let (http, kept, to) = (http.clone(), kept.clone(), to.clone());
        async move {
            let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
            *kept.lock().unwrap() = Some(auth);
            if let Some(to) = to {
                *req.url_mut() = to;
            }
            http.execute(req).await
        }
    });
    (transport, sent)
}

#[cfg(feature = "client")]
#[tokio::test]
async fn dpop_bound_tokens_from_the_real_provider_through_tollgate_client() {
    use tollgate::client::{ClientAuthLayer, ClientCredentials, DpopKey, TokenSource};
    use tollgate::jwt::Dpop;
    use tower::{ServiceBuilder, ServiceExt};

    let Some(provider) = start_provider().await else {
        return;
    };
    let auth = provider
        .auth(
            Issuer::discover(&provider.issuer)
                .audience(AUDIENCE)
                .dpop(Dpop::required().external_url("https://api.tollgate.test")),
        )
        .await;
    let url = serve(auth).await;
    // The service is reached at its loopback address; clients call it by its public name,
    // which the proofs name (what a proxy in front would forward).
    let public = "https://api.tollgate.test/orders";
    let key = DpopKey::generate().unwrap();
    let tokens = TokenSource::new(
        ClientCredentials::new("dpop-client")
            .secret_basic("dpop-client-secret-0123456789abcdef")
            .discover(&provider.issuer)
            .audience_as_resource()
            .dpop(key.clone()),
    );
    // A transport that sends to the loopback address what the layer prepared for the
    // public URL, and keeps what it sent.
    let (transport, sent) = recording(reqwest::Client::new(), Some(url.parse().unwrap()));
    let client = ServiceBuilder::new()
        .layer(
            ClientAuthLayer::token(tokens.clone())
                .audience(AUDIENCE)
                .scope("orders:read"),
        )
        .service(transport);
    for _ in 0..2 {
        let request = reqwest::Request::new(reqwest::Method::GET, public.parse().unwrap());
        let res = client.clone().oneshot(request).await.unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        assert_eq!(
            res.text().await.unwrap(),
            "dpop-client dpop-client orders:read"
        );
    }
    assert_eq!(tokens.token_requests(), 1);

    // The same token without the key: as a bearer token, or with another key's proof.
    let sent = sent.lock().unwrap().clone().unwrap();
    let token = sent.strip_prefix("DPoP ").expect("a DPoP-bound token");
    assert_eq!(status(&url, token).await, 401);
    let thief = DpopKey::generate().unwrap();
    let res = reqwest::Client::new()
        .get(&url)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", thief.proof("GET", public, Some(token)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[cfg(feature = "client")]
#[tokio::test]
async fn mtls_bound_tokens_from_the_real_provider_through_tollgate_client() {
    use base64::Engine;
    use tollgate::CertificateSource;
    use tollgate::client::{ClientAuthLayer, ClientCredentials, TokenSource};
    use tollgate::jwt::Mtls;
    use tollgate_testkit::TestCa;
    use tower::{ServiceBuilder, ServiceExt};

    // The provider over HTTPS too, with a server certificate of the test's CA, asking
    // clients for one of the same CA.
    let ca = TestCa::new();
    let server = ca.server_certificate();
    let dir = std::env::temp_dir().join(format!("tollgate-interop-mtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path.to_string_lossy().into_owned()
    };
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = [
        ("TLS_PORT", tls_port.to_string()),
        ("TLS_CERT", file("server.pem", server.cert_pem())),
        ("TLS_KEY", file("server-key.pem", server.key_pem())),
        ("TLS_CA", file("ca.pem", &ca.certificate_pem())),
    ];
    let provider = start_provider_with(&env).await;
    let _ = std::fs::remove_dir_all(&dir);
    let Some(provider) = provider else {
        return;
    };
    // The resource terminates TLS itself and takes certificates from the connection.
    let auth = provider
        .auth(
            Issuer::discover(&provider.issuer)
                .audience(AUDIENCE)
                .mtls(Mtls::required(CertificateSource::tls_connection())),
        )
        .await;
    let addr = ca.serve(app(auth)).await;
    let url = format!("https://127.0.0.1:{}/orders", addr.port());

    // One HTTP client with the client's certificate, for the token endpoint and the calls.
    let certificate = ca.client_certificate("tollgate-mtls-client");
    let http = ca.client(Some(&certificate));
    let tokens = TokenSource::new(
        ClientCredentials::new("mtls-client")
            .tls_client_auth()
            .token_endpoint(format!("https://127.0.0.1:{tls_port}/token"))
            .audience_as_resource()
            .http_client(http.clone()),
    );
    let (transport, sent) = recording(http, None);
    let client = ServiceBuilder::new()
        .layer(
            ClientAuthLayer::token(tokens.clone())
                .audience(AUDIENCE)
                .scope("orders:read"),
        )
        .service(transport);
    for _ in 0..2 {
        let request = reqwest::Request::new(reqwest::Method::GET, url.parse().unwrap());
        let res = client.clone().oneshot(request).await.unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        assert_eq!(
            res.text().await.unwrap(),
            "mtls-client mtls-client orders:read"
        );
    }
    assert_eq!(tokens.token_requests(), 1);

    // The provider bound the token to the certificate (RFC 8705 §3.1).
    let sent = sent.lock().unwrap().clone().unwrap();
    let token = sent.strip_prefix("Bearer ").expect("a bearer token");
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["cnf"]["x5t#S256"], certificate.thumbprint());

    // The same token from a connection with another certificate, or none: refused.
    let thief = ca.client_certificate("tollgate-mtls-client");
    for http in [ca.client(Some(&thief)), ca.client(None)] {
        let res = http.get(&url).bearer_auth(token).send().await.unwrap();
        assert_eq!(res.status(), 401);
    }
}
