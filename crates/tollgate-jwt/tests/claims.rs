//! Claim rules and scope mappings, with tokens in the shapes real issuers mint (GitHub
//! Actions, Keycloak, Auth0, Azure AD), through an axum app on 127.0.0.1.

use axum::Router;
use axum::routing::get;
use serde_json::json;
use tollgate_core::{AuthLayer, Principal};
use tollgate_jwt::{ClaimRule, Issuer, JwtAuth, ScopeMapping};
use tollgate_testkit::{DEFAULT_AUDIENCE, MockIdp, TokenBuilder};

async fn serve(issuer: Issuer) -> (String, reqwest::Client) {
    let auth = JwtAuth::builder().issuer(issuer).build().await.unwrap();
    let app = Router::new()
        .route(
            "/",
            get(|req: axum::extract::Request| async move {
                let p = req.extensions().get::<Principal>().unwrap();
                format!("{}|{}", p.subject(), p.scopes())
            }),
        )
        .layer(AuthLayer::new(auth));
    let addr = tollgate_testkit::serve(app).await;
    (format!("http://{addr}/"), reqwest::Client::new())
}

async fn call(url: &str, client: &reqwest::Client, token: String) -> (u16, String) {
    let res = client.get(url).bearer_auth(token).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// A token shaped like GitHub Actions' OIDC tokens.
fn github<'a>(idp: &'a MockIdp, repo: &str, git_ref: &str) -> TokenBuilder<'a> {
    let ref_type = if git_ref.starts_with("refs/tags/") {
        "tag"
    } else {
        "branch"
    };
    idp.token()
        .claim("sub", format!("repo:{repo}:ref:{git_ref}"))
        .claim("repository", repo)
        .claim("repository_owner", repo.split('/').next().unwrap())
        .claim("ref", git_ref)
        .claim("ref_type", ref_type)
        .claim("workflow", "deploy")
        .claim(
            "job_workflow_ref",
            format!("{repo}/.github/workflows/deploy.yml@{git_ref}"),
        )
        .claim("environment", "production")
}

#[tokio::test]
async fn github_actions_tokens_from_one_repository_and_ref_pattern() {
    let idp = MockIdp::start().await;
    let rule = ClaimRule::all([
        ClaimRule::equals("repository", "acme/api"),
        ClaimRule::any([
            ClaimRule::equals("ref", "refs/heads/main"),
            ClaimRule::glob("ref", "refs/tags/v*"),
        ]),
        ClaimRule::one_of("environment", ["production", "staging"]),
    ]);
    let (url, client) = serve(
        Issuer::discover(idp.issuer())
            .audience(DEFAULT_AUDIENCE)
            .require(rule)
            .scopes(ScopeMapping::none()),
    )
    .await;

    let (status, body) = call(
        &url,
        &client,
        github(&idp, "acme/api", "refs/heads/main").sign(),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "repo:acme/api:ref:refs/heads/main|")
    );
    assert_eq!(
        call(
            &url,
            &client,
            github(&idp, "acme/api", "refs/tags/v1.4.0").sign()
        )
        .await
        .0,
        200
    );

    for token in [
        github(&idp, "acme/api", "refs/heads/feature").sign(),
        github(&idp, "acme/api-fork", "refs/heads/main").sign(),
        github(&idp, "evil/api", "refs/tags/v1").sign(),
        github(&idp, "acme/api", "refs/heads/main")
            .claim("environment", "dev")
            .sign(),
        // Wrong types survive: a number or an array where a string is expected fails the rule.
        github(&idp, "acme/api", "refs/heads/main")
            .claim("repository", 42)
            .sign(),
        github(&idp, "acme/api", "refs/heads/main")
            .claim("ref", json!(["refs/heads/main"]))
            .sign(),
        github(&idp, "acme/api", "refs/heads/main")
            .without("ref")
            .sign(),
    ] {
        let (status, body) = call(&url, &client, token).await;
        assert_eq!(status, 401);
        assert!(
            body.contains("the token's claims do not meet this service's requirements"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn keycloak_realm_and_client_roles() {
    let idp = MockIdp::start().await;
    let (url, client) = serve(
        Issuer::discover(idp.issuer())
            .audience(DEFAULT_AUDIENCE)
            .scopes(ScopeMapping::claims([
                "realm_access.roles",
                "resource_access.orders-api.roles",
            ])),
    )
    .await;
    let token = idp
        .token()
        .claim(
            "realm_access",
            json!({"roles": ["offline_access", "admin"]}),
        )
        .claim(
            "resource_access",
            json!({
                "orders-api": {"roles": ["orders:write"]},
                "other-client": {"roles": ["not-ours"]}
            }),
        )
        .sign();
    assert_eq!(
        call(&url, &client, token).await.1,
        "user-1|admin offline_access orders:write"
    );
    let wrong = idp
        .token()
        .claim("realm_access", json!({"roles": "admin"}))
        .claim("resource_access", 7)
        .sign();
    assert_eq!(
        call(&url, &client, wrong).await,
        (200, "user-1|admin".to_owned())
    );
}

#[tokio::test]
async fn auth0_permissions_and_azure_scp_and_roles() {
    let idp = MockIdp::start().await;
    let (url, client) = serve(
        Issuer::discover(idp.issuer())
            .audience(DEFAULT_AUDIENCE)
            .scopes(ScopeMapping::default().and("permissions").and("roles")),
    )
    .await;
    let auth0 = idp
        .token()
        .claim("scope", "openid profile")
        .claim("permissions", json!(["read:orders", "write:orders"]))
        .sign();
    assert_eq!(
        call(&url, &client, auth0).await.1,
        "user-1|openid profile read:orders write:orders"
    );
    let azure = idp
        .token()
        .claim("scp", "Orders.Read User.Read")
        .claim("roles", json!(["Admin"]))
        .sign();
    assert_eq!(
        call(&url, &client, azure).await.1,
        "user-1|Admin Orders.Read User.Read"
    );
}

#[tokio::test]
async fn objects_of_booleans_and_of_arrays() {
    let idp = MockIdp::start().await;
    let (url, client) = serve(
        Issuer::discover(idp.issuer())
            .audience(DEFAULT_AUDIENCE)
            .scopes(ScopeMapping::claims(["flags", "services"]).separator("/")),
    )
    .await;
    let token = idp
        .token()
        .claim(
            "flags",
            json!({"profile.modify": true, "profile.delete": false, "odd": "yes"}),
        )
        .claim(
            "services",
            json!({"catalog.service": ["read", "write", "delete"], "bad": 5}),
        )
        .sign();
    assert_eq!(
        call(&url, &client, token).await.1,
        "user-1|catalog.service/delete catalog.service/read catalog.service/write profile.modify"
    );
}

#[tokio::test]
async fn scope_claims_of_hostile_shapes() {
    let idp = MockIdp::start().await;
    let (url, client) = serve(Issuer::discover(idp.issuer()).audience(DEFAULT_AUDIENCE)).await;
    let cases = [
        (json!(12), ""),
        (json!({"a": {"b": "c"}}), ""),
        (json!("  a\t\tb   c "), "a b c"),
        (json!(null), ""),
    ];
    for (scope, expected) in cases {
        let (status, body) = call(&url, &client, idp.token().claim("scope", scope).sign()).await;
        assert_eq!((status, body), (200, format!("user-1|{expected}")));
    }
    let many: Vec<String> = (0..100_000).map(|i| format!("s{i}")).collect();
    let token = idp.token().claim("scp", many).sign();
    // Over HTTP, 100 000 entries make a header past any limit: refused, never served.
    let status = call(&url, &client, token.clone()).await.0;
    assert!(status == 401 || status == 431, "{status}");
    // With the cap raised, the claim is read in full without trouble.
    let auth = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience(DEFAULT_AUDIENCE))
        .credential_source(tollgate_core::CredentialSource::bearer().max_len(4 << 20))
        .build()
        .await
        .unwrap();
    assert_eq!(auth.verify(&token).await.unwrap().scopes().len(), 100_000);
}
