//! A tonic service behind tollgate: API keys or JWTs, gRPC statuses for refusals, a scope per
//! method; and a client calling it through `ClientAuthLayer` with client-credentials tokens.
//! Runs against a mock key service and a mock identity provider, and prints what each call got.
//!
//! ```text
//! cargo run --example grpc --features grpc
//! ```

use tollgate::apikey::{ApiKeyAuth, UnkeyVerifier};
use tollgate::client::{ClientAuthLayer, ClientCredentials, TokenSource};
use tollgate::jwt::{Issuer, JwtAuth};
use tollgate::{AuthLayer, Authenticator, GrpcStatus, RequireScopesLayer, scopes};
use tollgate_testkit::grpc::{
    CREATE, CreateRequest, LIST, ListRequest, OrdersClient, OrdersServer,
};
use tollgate_testkit::{MockIdp, MockKey, MockKeyService};
use tonic::Request;
use tonic::transport::{Channel, Server};
use tower::ServiceBuilder;

scopes! {
    OrdersRead = "orders:read";
    OrdersWrite = "orders:write";
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The stand-ins for Unkey and your identity provider.
    let keys = MockKeyService::start().await;
    keys.add_key(
        "sk_test_reader",
        MockKey::new("key_reader").permissions(["orders:read"]),
    );
    let idp = MockIdp::start().await;
    idp.register_client("billing", "billing-secret");

    let api_keys =
        ApiKeyAuth::builder(UnkeyVerifier::new("root").base_url(keys.unkey_base_url())).build();
    let jwts = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience("orders-grpc"))
        .build()
        .await?;
    let layers = ServiceBuilder::new()
        // Refusals as gRPC statuses: UNAUTHENTICATED, PERMISSION_DENIED, UNAVAILABLE, ...
        .layer(AuthLayer::new(api_keys.or(jwts)).error_format(GrpcStatus))
        // A scope per method; any other method is refused.
        .layer(
            RequireScopesLayer::by_path()
                .path(LIST, OrdersRead)
                .path(CREATE, OrdersWrite),
        )
        .into_inner();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        Server::builder()
            .layer(layers)
            .add_service(OrdersServer::new())
            .serve_with_incoming(incoming),
    );
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;

    // An API key in the metadata.
    let mut client = OrdersClient::new(channel.clone());
    let mut request = Request::new(ListRequest {});
    request
        .metadata_mut()
        .insert("x-api-key", "sk_test_reader".parse()?);
    println!("List with a reader key: {:?}", client.list(request).await);
    let mut request = Request::new(CreateRequest {
        item: "book".into(),
    });
    request
        .metadata_mut()
        .insert("x-api-key", "sk_test_reader".parse()?);
    println!(
        "Create with a reader key: {:?}",
        client
            .create(request)
            .await
            .map_err(|s| (s.code(), s.message().to_owned()))
    );
    println!(
        "List without a credential: {:?}",
        client
            .list(Request::new(ListRequest {}))
            .await
            .map_err(|s| s.code())
    );

    // Another service calling this one with client-credentials tokens.
    let tokens = TokenSource::new(
        ClientCredentials::new("billing")
            .secret_basic("billing-secret")
            .discover(idp.issuer()),
    );
    let authenticated = ServiceBuilder::new()
        .layer(
            ClientAuthLayer::token(tokens.clone())
                .audience("orders-grpc")
                .scope("orders:write"),
        )
        .service(channel);
    let mut billing = OrdersClient::new(authenticated);
    for item in ["paper", "ink"] {
        let reply = billing
            .create(Request::new(CreateRequest { item: item.into() }))
            .await?;
        println!("Create {item} as {}: ok", reply.subject);
    }
    println!("token requests: {}", tokens.token_requests());
    Ok(())
}
