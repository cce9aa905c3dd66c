//! Two credential kinds on one route, as users combine them: which authenticator a request
//! reaches, through real HTTP against a key service and an identity provider on 127.0.0.1.

use tollgate::apikey::{ApiKeyAuth, DEFAULT_HEADER, UnkeyVerifier};
use tollgate::jwt::{Algorithm, Issuer, JwtAuth};
use tollgate::{AuthLayer, Authenticator, CredentialSource};
use tollgate_testkit::{DEFAULT_AUDIENCE, MockIdp, MockKey, MockKeyService, ProtectedApp};

const KEY: &str = "sk_live_0123456789abcdef";

async fn stack(jwt_shaped_keys: bool) -> (ProtectedApp, MockKeyService, MockIdp) {
    let keys = MockKeyService::start().await;
    keys.add_key(KEY, MockKey::new("key_1").permissions(["orders:read"]));
    let idp = MockIdp::start().await;
    // Bearer keys without a prefix: the configuration that used to send every JWT to the
    // key service.
    let mut api = ApiKeyAuth::builder(UnkeyVerifier::new("root").base_url(keys.unkey_base_url()))
        .credential_source(CredentialSource::header(DEFAULT_HEADER).also_bearer());
    if jwt_shaped_keys {
        api = api.jwt_shaped_keys();
    }
    let jwt = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience(DEFAULT_AUDIENCE))
        .build()
        .await
        .unwrap();
    let app = ProtectedApp::start(AuthLayer::new(api.build().or(jwt))).await;
    (app, keys, idp)
}

#[tokio::test]
async fn jwt_shaped_bearer_tokens_go_to_the_jwt_authenticator_not_the_key_service() {
    let (app, keys, idp) = stack(false).await;
    for alg in [Algorithm::ES256, Algorithm::RS256, Algorithm::PS256] {
        let token = idp.token().alg(alg).claim("scope", "orders:read").sign();
        let res = app.bearer(&token).await;
        assert_eq!(res.status(), 200, "{alg:?}");
        assert_eq!(res.text().await.unwrap(), "user-1 orders:read");
    }
    // A bad JWT is refused by the JWT authenticator, still without a key-service call.
    let forged = idp.token().expires_in(-3600).sign();
    assert_eq!(app.bearer(&forged).await.status(), 401);
    assert_eq!(keys.requests(), 0, "a JWT was sent to the key service");

    // API keys, as a bearer token or in their header, still reach the key service.
    assert_eq!(
        app.bearer(KEY).await.text().await.unwrap(),
        "key_1 orders:read"
    );
    assert_eq!(app.with_header("x-api-key", KEY).await.status(), 200);
    assert_eq!(keys.requests(), 1);
}

#[tokio::test]
async fn jwt_shaped_keys_only_when_the_user_says_so() {
    let (app, keys, idp) = stack(true).await;
    let token = idp
        .token()
        .alg(Algorithm::ES256)
        .claim("scope", "orders:read")
        .sign();
    assert_eq!(
        app.bearer(&token).await.status(),
        401,
        "judged as an API key"
    );
    assert_eq!(keys.requests(), 1);
}
