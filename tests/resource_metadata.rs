//! RFC 9728 protected-resource metadata through real HTTP, the way an MCP client finds its
//! authorization server: a 401 whose challenge points to the metadata, the metadata naming
//! the issuer and the scopes, a token from that issuer, the tool routes with their scopes.

use axum::Router;
use axum::routing::post;
use tollgate::jwt::{Issuer, JwtAuth};
use tollgate::{
    AuthLayer, Authenticator, RequireScopes, ResourceMetadata, ResourceMetadataError, scopes,
};
use tollgate_testkit::MockIdp;

scopes! {
    ToolsRead = "tools:read";
    ToolsCall = "tools:call";
}

#[tokio::test]
async fn resource_metadata_is_served_and_every_challenge_points_to_it() {
    let idp = MockIdp::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let resource = format!("{base}/mcp");
    let jwts = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience(&resource))
        .build()
        .await
        .unwrap();
    let metadata = ResourceMetadata::builder(&resource)
        .authorization_servers(jwts.issuers())
        .scopes::<ToolsRead>()
        .scopes::<ToolsCall>()
        .bearer_methods_of(&jwts.credential_source())
        .resource_name("tollgate test MCP server")
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/mcp/tools/list",
            post(|_: RequireScopes<ToolsRead>| async { "tools" }),
        )
        .route(
            "/mcp/tools/call",
            post(|_: RequireScopes<ToolsCall>| async { "called" }),
        )
        .layer(AuthLayer::new(jwts).resource_metadata(metadata.url()))
        .route_service(metadata.path(), metadata.service());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();

    // 1. No token: 401, and the challenge says where the metadata is (RFC 9728 §5.1).
    let res = http
        .post(format!("{base}/mcp/tools/list"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let url = format!("{base}/.well-known/oauth-protected-resource/mcp");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{url}\"")),
        "{challenge}"
    );

    // 2. The metadata, at the path-suffixed well-known URL (RFC 9728 §3.1).
    let res = http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let document: serde_json::Value = res.json().await.unwrap();
    assert_eq!(document["resource"], resource.as_str());
    assert_eq!(
        document["authorization_servers"],
        serde_json::json!([idp.issuer()])
    );
    assert_eq!(
        document["scopes_supported"],
        serde_json::json!(["tools:read", "tools:call"])
    );
    assert_eq!(
        document["bearer_methods_supported"],
        serde_json::json!(["header"])
    );
    assert_eq!(document["resource_name"], "tollgate test MCP server");
    let res = http.post(&url).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD");

    // 3. A token of that server, for this resource: each tool route asks for its scope; a
    // refusal for scope points to the metadata too.
    let token = idp
        .token()
        .claim("aud", resource.as_str())
        .claim("scope", "tools:read")
        .sign();
    let call = async |path: &str| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
    };
    assert_eq!(call("/mcp/tools/list").await.status(), 200);
    let res = call("/mcp/tools/call").await;
    assert_eq!(res.status(), 403);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("insufficient_scope") && challenge.contains("tools:call"));
    assert!(challenge.contains("resource_metadata="), "{challenge}");
}

#[test]
fn resource_metadata_refuses_identifiers_rfc_9728_does_not_allow() {
    let build = |resource: &str| {
        ResourceMetadata::builder(resource)
            .authorization_server("https://login.example.com")
            .build()
    };
    for bad in [
        "http://api.example.com/mcp",
        "https://api.example.com/mcp?tenant=1",
        "https://api.example.com/mcp#part",
        "/mcp",
        "not a url",
    ] {
        assert!(
            matches!(build(bad), Err(ResourceMetadataError::Resource(_))),
            "{bad}"
        );
    }
    let root = build("https://api.example.com").unwrap();
    assert_eq!(root.path(), "/.well-known/oauth-protected-resource");
    assert_eq!(
        root.url(),
        "https://api.example.com/.well-known/oauth-protected-resource"
    );
    assert!(build("http://localhost:8080/mcp").is_ok());
    assert_eq!(
        ResourceMetadata::builder("https://api.example.com")
            .build()
            .unwrap_err(),
        ResourceMetadataError::NoAuthorizationServer
    );
}

#[tokio::test]
async fn resource_metadata_of_a_dpop_resource_names_its_algorithms_and_requirement() {
    use tollgate::jwt::{Algorithm, Dpop};
    use tollgate_testkit::DpopKey;

    let idp = MockIdp::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let jwts = JwtAuth::builder()
        .issuer(
            Issuer::discover(idp.issuer()).audience(&base).dpop(
                Dpop::required()
                    .algorithms([Algorithm::ES256, Algorithm::EdDSA])
                    .external_url(&base),
            ),
        )
        .build()
        .await
        .unwrap();
    let metadata = ResourceMetadata::builder(&base)
        .authorization_servers(jwts.issuers())
        .bearer_methods_of(&jwts.credential_source())
        .dpop_algorithms_of(&jwts)
        .dpop_bound_access_tokens_required(jwts.dpop_required())
        .build()
        .unwrap();
    let document: serde_json::Value = serde_json::from_str(metadata.document()).unwrap();
    assert_eq!(
        document["dpop_signing_alg_values_supported"],
        serde_json::json!(["ES256", "EdDSA"])
    );
    assert_eq!(document["dpop_bound_access_tokens_required"], true);
    assert_eq!(
        document["bearer_methods_supported"],
        serde_json::json!(["header"])
    );

    let app = Router::new()
        .route("/tools", post(|| async { "tools" }))
        .layer(AuthLayer::new(jwts).resource_metadata(metadata.url()))
        .route_service(metadata.path(), metadata.service());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let res = http.post(format!("{base}/tools")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let challenges: Vec<_> = res
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let dpop = challenges.iter().find(|c| c.starts_with("DPoP ")).unwrap();
    assert!(dpop.contains(r#"algs="ES256 EdDSA""#), "{dpop}");
    assert!(dpop.contains("resource_metadata="), "{dpop}");

    let key = DpopKey::generate(Algorithm::ES256);
    let token = idp
        .token()
        .claim("aud", base.as_str())
        .dpop_bound(&key)
        .sign();
    let proof = key
        .proof("POST", &format!("{base}/tools"))
        .access_token(&token)
        .build();
    let res = http
        .post(format!("{base}/tools"))
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn resource_metadata_of_an_mtls_resource_says_it_takes_certificate_bound_tokens() {
    use tollgate::CertificateSource;
    use tollgate::jwt::Mtls;
    use tollgate_testkit::TestCa;

    let (idp, ca) = (MockIdp::start().await, TestCa::new());
    let jwts = JwtAuth::builder()
        .issuer(
            Issuer::discover(idp.issuer())
                .audience("https://api.example.com")
                .mtls(Mtls::allowed(CertificateSource::tls_connection())),
        )
        .build()
        .await
        .unwrap();
    let metadata = ResourceMetadata::builder("https://api.example.com")
        .authorization_servers(jwts.issuers())
        .tls_client_certificate_bound_access_tokens(jwts.mtls_enabled())
        .build()
        .unwrap();
    let app = Router::new()
        .route("/tools", post(|| async { "tools" }))
        .layer(AuthLayer::new(jwts).resource_metadata(metadata.url()))
        .route_service(metadata.path(), metadata.service());
    let addr = ca.serve(app).await;
    let http = ca.client(None);
    let base = format!("https://127.0.0.1:{}", addr.port());
    let document: serde_json::Value = http
        .get(format!("{base}/.well-known/oauth-protected-resource"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["tls_client_certificate_bound_access_tokens"], true);
    assert!(document.get("dpop_bound_access_tokens_required").is_none());
    let res = http.post(format!("{base}/tools")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("resource_metadata="), "{challenge}");
}
