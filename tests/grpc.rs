//! A real tonic server on 127.0.0.1 behind tollgate's layers, called by a real tonic client
//! over HTTP/2: refusals come back as gRPC statuses, scopes are checked per method, and the
//! outbound `ClientAuthLayer` puts a client-credentials token on a tonic `Channel`.
#![cfg(all(feature = "grpc", feature = "client"))]

use std::time::Duration;

use tollgate::apikey::{ApiKeyAuth, UnkeyVerifier};
use tollgate::client::{ClientAuthLayer, ClientCredentials, TokenSource};
use tollgate::jwt::{Issuer, JwtAuth};
use tollgate::{AuthLayer, Authenticator, GrpcStatus, RequireScopesLayer, scopes};
use tollgate_testkit::grpc::{
    CREATE, CreateRequest, LIST, ListRequest, OrdersClient, OrdersServer,
};
use tollgate_testkit::{Fault, MockIdp, MockKey, MockKeyService};
use tonic::transport::{Channel, Server};
use tonic::{Code, Request};
use tower::ServiceBuilder;

scopes! {
    OrdersRead = "orders:read";
    OrdersWrite = "orders:write";
}

const READER: &str = "sk_live_reader_0123456789";
const LIMITED: &str = "sk_live_limited_0123456789";
const AUDIENCE: &str = "orders-grpc";

struct Stack {
    channel: Channel,
    server: OrdersServer,
    keys: MockKeyService,
    idp: MockIdp,
}

/// The service behind API keys or JWTs, with `GrpcStatus` errors and a scope per method.
async fn stack() -> Stack {
    let keys = MockKeyService::start().await;
    keys.add_key(
        READER,
        MockKey::new("key_reader").permissions(["orders:read"]),
    );
    keys.add_key(LIMITED, MockKey::new("key_limited").code("RATE_LIMITED"));
    let idp = MockIdp::start().await;
    idp.register_client("billing", "billing-secret");
    let api_keys = ApiKeyAuth::builder(
        UnkeyVerifier::new("root")
            .base_url(keys.unkey_base_url())
            .timeout(Duration::from_millis(300)),
    )
    .build();
    let jwts = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience(AUDIENCE))
        .build()
        .await
        .unwrap();
    let server = OrdersServer::new();
    let layers = ServiceBuilder::new()
        .layer(AuthLayer::new(api_keys.or(jwts)).error_format(GrpcStatus))
        .layer(
            RequireScopesLayer::by_path()
                .path(LIST, OrdersRead)
                .path(CREATE, OrdersWrite),
        )
        .into_inner();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Server::builder().layer(layers).add_service(server.clone());
    tokio::spawn(
        router.serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Stack {
        channel,
        server,
        keys,
        idp,
    }
}

fn with_key<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-api-key", key.parse().unwrap());
    request
}

#[tokio::test]
async fn grpc_calls_through_the_layers_get_grpc_statuses() {
    let stack = stack().await;
    let mut client = OrdersClient::new(stack.channel.clone());

    // A valid key holding the method's scope: OK, and the handler sees the principal.
    let reply = client.list(with_key(ListRequest {}, READER)).await.unwrap();
    assert_eq!(
        (reply.subject.as_str(), reply.scopes.as_str()),
        ("key_reader", "orders:read")
    );

    // No credential: UNAUTHENTICATED, the RFC 6750 challenge kept as metadata.
    let status = client.list(Request::new(ListRequest {})).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let challenge = status
        .metadata()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(challenge.starts_with("ApiKey realm=\"api\""), "{challenge}");

    // A bad one: UNAUTHENTICATED with the reason, never the key.
    let status = client
        .list(with_key(ListRequest {}, "sk_live_unknown_key"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "the API key is not valid");

    // The scope of another method: PERMISSION_DENIED, naming the scope.
    let create = CreateRequest {
        item: "book".into(),
    };
    let status = client.create(with_key(create, READER)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("orders:write"),
        "{}",
        status.message()
    );

    // Over its rate limit: RESOURCE_EXHAUSTED.
    let status = client
        .list(with_key(ListRequest {}, LIMITED))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);

    // The key service down: UNAVAILABLE, with Retry-After as metadata.
    stack.keys.fail_with(Fault::Status(503));
    let status = client
        .list(with_key(ListRequest {}, "sk_live_fresh_key_01"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.metadata().get("retry-after").is_some());

    assert_eq!(stack.server.calls(), 1, "a refused call reached a handler");
}

#[tokio::test]
async fn grpc_client_layer_gets_one_token_for_many_calls() {
    let stack = stack().await;
    let tokens = TokenSource::new(
        ClientCredentials::new("billing")
            .secret_basic("billing-secret")
            .discover(stack.idp.issuer()),
    );
    let channel = ServiceBuilder::new()
        .layer(
            ClientAuthLayer::token(tokens.clone())
                .audience(AUDIENCE)
                .scope("orders:read orders:write"),
        )
        .service(stack.channel.clone());
    let mut client = OrdersClient::new(channel);
    for i in 0..5 {
        let reply = client
            .create(Request::new(CreateRequest {
                item: format!("item-{i}"),
            }))
            .await
            .unwrap();
        assert_eq!(reply.subject, "billing");
        assert_eq!(reply.item, format!("item-{i}"));
    }
    assert_eq!(tokens.token_requests(), 1);
    assert_eq!(stack.idp.token_requests(), 1);
    assert_eq!(stack.server.calls(), 5);
}
