//! The extractors through an axum app served on 127.0.0.1, called over real HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use http::request::Parts;
use tollgate::{
    AuthError, AuthLayer, Authenticator, Challenge, Claims, CredentialKind, CredentialSource,
    Principal, RequireAnyScope, RequireScopes, RequireScopesLayer, ScopePolicy, Scopes, scopes,
};

scopes! {
    OrdersRead = "orders:read";
    OrdersWrite = "orders:write";
    ReadAndWrite = "orders:read", "orders:write";
    ReadOrAdmin = "orders:read", "admin";
    Billing = "billing:read";
}

/// `x-fake: <kind>~<scope>,<scope>`: `key~orders:read` yields an API-key principal holding
/// `orders:read`, `jwt~a,b` a JWT principal holding `a` and `b`.
struct Fake;

impl Authenticator for Fake {
    async fn authenticate(&self, parts: &Parts) -> Result<Option<Principal>, AuthError> {
        let Some(token) = self.credential_source().find(parts)? else {
            return Ok(None);
        };
        let (kind, scopes) = token.split_once('~').unwrap_or((&token, ""));
        let kind = match kind {
            "key" => CredentialKind::ApiKey,
            "jwt" => CredentialKind::Jwt,
            _ => return Err(AuthError::invalid_token("unknown")),
        };
        Ok(Some(
            Principal::builder(format!("{kind:?}"), kind)
                .scopes(scopes.split(',').collect::<Scopes>())
                .data(serde_json::json!({"tenant": "acme", "n": 3}))
                .build(),
        ))
    }

    fn credential_source(&self) -> CredentialSource {
        CredentialSource::header(http::HeaderName::from_static("x-fake"))
    }

    /// Its own challenge, not the `ApiKey` one its header source would give.
    fn challenges(&self) -> Vec<Challenge> {
        vec![Challenge::bearer()]
    }
}

#[derive(serde::Deserialize)]
struct TenantClaims {
    tenant: String,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct NeedsMissingClaim {
    department: String,
}

struct App {
    base: String,
    hits: Arc<AtomicUsize>,
    client: reqwest::Client,
}

impl App {
    async fn start(layer: AuthLayer<Fake>) -> App {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let count = move || {
            h.fetch_add(1, Ordering::SeqCst);
        };
        let (c1, c2, c3, c4, c5, c6, c7) = (
            count.clone(),
            count.clone(),
            count.clone(),
            count.clone(),
            count.clone(),
            count.clone(),
            count.clone(),
        );
        let app = Router::new()
            .route(
                "/read",
                get(move |p: RequireScopes<OrdersRead>| async move {
                    c1();
                    p.subject().to_owned()
                }),
            )
            .route(
                "/both",
                get(
                    move |_: RequireScopes<OrdersRead>, p: RequireScopes<OrdersWrite>| async move {
                        c2();
                        p.0.subject().to_owned()
                    },
                ),
            )
            .route(
                "/all",
                get(move |_: RequireScopes<ReadAndWrite>| async move {
                    c3();
                    "ok"
                }),
            )
            .route(
                "/any",
                get(move |_: RequireAnyScope<ReadOrAdmin>| async move {
                    c4();
                    "ok"
                }),
            )
            .route(
                "/claims",
                get(
                    move |Claims(c): Claims<TenantClaims>, p: Principal| async move {
                        c5();
                        format!("{} {}", c.tenant, p.subject())
                    },
                ),
            )
            .route(
                "/claims-missing",
                get(move |_: Claims<NeedsMissingClaim>| async move {
                    c6();
                    "ok"
                }),
            )
            .route(
                "/me",
                get(move |p: Option<Principal>| async move {
                    c7();
                    p.map_or("anonymous".to_owned(), |p| p.subject().to_owned())
                }),
            )
            .route(
                "/layered",
                get(|| async { "layered" }).route_layer(RequireScopesLayer::all(["billing:read"])),
            )
            .layer(layer);
        let addr = tollgate_testkit::serve(app).await;
        App {
            base: format!("http://{addr}"),
            hits,
            client: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.header("x-fake", token);
        }
        req.send().await.unwrap()
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn challenge(res: &reqwest::Response) -> String {
    res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn api_key_and_jwt_principals_pass_the_same_extractor() {
    let app = App::start(AuthLayer::new(Fake)).await;
    let res = app.get("/read", Some("key~orders:read")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ApiKey");
    let res = app.get("/read", Some("jwt~orders:read")).await;
    assert_eq!(res.text().await.unwrap(), "Jwt");
    assert_eq!(app.hits(), 2);
}

#[tokio::test]
async fn missing_scope_is_403_with_the_rfc6750_challenge() {
    let app = App::start(AuthLayer::new(Fake)).await;
    let res = app.get("/read", Some("key~orders:write")).await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        challenge(&res),
        r#"Bearer realm="api", error="insufficient_scope", error_description="the credential does not grant the scope this request needs", scope="orders:read""#
    );
    let json: serde_json::Value = res.json().await.unwrap();
    assert_eq!(json["error"], "insufficient_scope");
    assert_eq!(app.hits(), 0);
}

#[tokio::test]
async fn several_extractors_in_one_handler() {
    let app = App::start(AuthLayer::new(Fake)).await;
    assert_eq!(
        app.get("/both", Some("jwt~orders:read,orders:write"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get("/both", Some("jwt~orders:read")).await.status(),
        403
    );
    assert_eq!(
        app.get("/claims", Some("jwt~")).await.text().await.unwrap(),
        "acme Jwt"
    );
    assert_eq!(app.hits(), 2);
}

#[tokio::test]
async fn all_of_and_any_of() {
    let app = App::start(AuthLayer::new(Fake)).await;
    assert_eq!(
        app.get("/all", Some("jwt~orders:read,orders:write"))
            .await
            .status(),
        200
    );
    let res = app.get("/all", Some("jwt~orders:read")).await;
    assert_eq!(res.status(), 403);
    assert!(challenge(&res).contains(r#"scope="orders:read orders:write""#));
    assert_eq!(app.get("/any", Some("jwt~admin")).await.status(), 200);
    assert_eq!(app.get("/any", Some("jwt~orders:read")).await.status(), 200);
    let res = app.get("/any", Some("jwt~orders:write")).await;
    assert_eq!(res.status(), 403);
    assert!(challenge(&res).contains(r#"scope="admin orders:read""#));
    assert_eq!(app.hits(), 3);
}

#[tokio::test]
async fn optional_auth_401_versus_403() {
    let app = App::start(AuthLayer::new(Fake).optional()).await;
    // No credential: the optional layer lets it through, Option<Principal> is None...
    assert_eq!(
        app.get("/me", None).await.text().await.unwrap(),
        "anonymous"
    );
    assert_eq!(
        app.get("/me", Some("key~")).await.text().await.unwrap(),
        "ApiKey"
    );
    // ...but a route that needs a scope answers 401 (not 403) without a principal.
    let res = app.get("/read", None).await;
    assert_eq!(res.status(), 401);
    assert_eq!(challenge(&res), r#"Bearer realm="api""#);
    // A bad credential is still refused by the layer.
    assert_eq!(app.get("/me", Some("bogus")).await.status(), 401);
    assert_eq!(app.hits(), 2);
}

#[tokio::test]
async fn claims_of_the_wrong_shape_are_refused() {
    let app = App::start(AuthLayer::new(Fake)).await;
    let res = app.get("/claims-missing", Some("jwt~")).await;
    assert_eq!(res.status(), 401);
    assert!(challenge(&res).contains(r#"error="invalid_token""#));
    assert_eq!(app.hits(), 0);
}

#[tokio::test]
async fn route_layer_checks_scopes_like_the_extractor() {
    let app = App::start(AuthLayer::new(Fake)).await;
    assert_eq!(
        app.get("/layered", Some("key~billing:read")).await.status(),
        200
    );
    let res = app.get("/layered", Some("key~orders:read")).await;
    assert_eq!(res.status(), 403);
    assert!(challenge(&res).contains(r#"scope="billing:read""#));
}

#[tokio::test]
async fn hierarchical_policy_set_on_the_layer_is_honored_everywhere() {
    let layer = AuthLayer::new(Fake).scope_policy(ScopePolicy::hierarchical(':'));
    let app = App::start(layer).await;
    assert_eq!(app.get("/read", Some("jwt~orders:*")).await.status(), 200);
    assert_eq!(app.get("/all", Some("jwt~orders:*")).await.status(), 200);
    assert_eq!(
        app.get("/layered", Some("jwt~billing:*")).await.status(),
        200
    );
    assert_eq!(app.get("/read", Some("jwt~billing:*")).await.status(), 403);
    // Without parent_grants_children a bare parent grants nothing below it.
    assert_eq!(app.get("/read", Some("jwt~orders")).await.status(), 403);

    let parents = ScopePolicy::hierarchical(':').parent_grants_children(true);
    let app = App::start(AuthLayer::new(Fake).scope_policy(parents)).await;
    assert_eq!(app.get("/read", Some("jwt~orders")).await.status(), 200);

    // The default exact policy does not expand wildcards.
    let app = App::start(AuthLayer::new(Fake)).await;
    assert_eq!(app.get("/read", Some("jwt~orders:*")).await.status(), 403);
}

#[tokio::test]
async fn custom_error_format_reaches_the_extractors() {
    let format = |err: &AuthError| {
        http::Response::new(bytes::Bytes::from(format!("custom:{}", err.kind().code())))
    };
    let app = App::start(AuthLayer::new(Fake).optional().error_format(format)).await;
    let res = app.get("/read", Some("jwt~nothing")).await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.text().await.unwrap(), "custom:insufficient_scope");
    let res = app.get("/read", None).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.text().await.unwrap(), "custom:unauthorized");
}

#[tokio::test]
async fn extractor_without_any_layer_is_401() {
    let app = Router::new().route(
        "/",
        get(|p: Principal| async move { p.subject().to_owned() }),
    );
    let addr = tollgate_testkit::serve(app).await;
    let res = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert_eq!(res.status(), 401);
}
