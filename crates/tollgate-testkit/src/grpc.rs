//! A small gRPC service for tests and examples (feature `grpc`): `orders.v1.Orders` with the
//! unary methods `List` and `Create`. Messages use prost's derive (no `protoc`), and server and
//! client are written on tonic's generic pieces, as its code generator would write them.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http::uri::PathAndQuery;
use tollgate_core::Principal;
use tonic::body::Body;
use tonic::client::GrpcService;
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// The path of `List`.
pub const LIST: &str = "/orders.v1.Orders/List";
/// The path of `Create`.
pub const CREATE: &str = "/orders.v1.Orders/Create";

/// `List`'s request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListRequest {}

/// `Create`'s request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateRequest {
    /// What to order.
    #[prost(string, tag = "1")]
    pub item: String,
}

/// The answer of both methods: who called, with which scopes (from the request's
/// [`Principal`], which a tollgate layer in front put there).
#[derive(Clone, PartialEq, prost::Message)]
pub struct OrderReply {
    /// The principal's subject.
    #[prost(string, tag = "1")]
    pub subject: String,
    /// The principal's scopes, space-separated.
    #[prost(string, tag = "2")]
    pub scopes: String,
    /// The item ordered (`Create`).
    #[prost(string, tag = "3")]
    pub item: String,
}

/// The server: counts the calls its handlers got, so a test can assert that a refused call
/// never reached one.
#[derive(Debug, Clone, Default)]
pub struct OrdersServer {
    calls: Arc<AtomicUsize>,
}

impl OrdersServer {
    /// A server that has handled no call.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many calls reached a handler.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl NamedService for OrdersServer {
    const NAME: &'static str = "orders.v1.Orders";
}

/// The handler of both methods.
struct Handler(Arc<AtomicUsize>);

fn reply<T>(request: &Request<T>, item: String) -> Result<Response<OrderReply>, Status> {
    let principal = request
        .extensions()
        .get::<Principal>()
        .ok_or_else(|| Status::internal("no principal: no tollgate layer in front"))?;
    Ok(Response::new(OrderReply {
        subject: principal.subject().to_owned(),
        scopes: principal.scopes().to_string(),
        item,
    }))
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<OrderReply>, Status>> + Send>>;

impl UnaryService<ListRequest> for Handler {
    type Response = OrderReply;
    type Future = Answer;

    fn call(&mut self, request: Request<ListRequest>) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::ready(reply(&request, String::new())))
    }
}

impl UnaryService<CreateRequest> for Handler {
    type Response = OrderReply;
    type Future = Answer;

    fn call(&mut self, request: Request<CreateRequest>) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        let item = request.get_ref().item.clone();
        Box::pin(std::future::ready(reply(&request, item)))
    }
}

impl tower_service::Service<http::Request<Body>> for OrdersServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let handler = Handler(self.calls.clone());
        Box::pin(async move {
            Ok(match request.uri().path() {
                LIST => {
                    let codec = ProstCodec::<OrderReply, ListRequest>::default();
                    tonic::server::Grpc::new(codec)
                        .unary(handler, request)
                        .await
                }
                CREATE => {
                    let codec = ProstCodec::<OrderReply, CreateRequest>::default();
                    tonic::server::Grpc::new(codec)
                        .unary(handler, request)
                        .await
                }
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

/// A client of the service over any gRPC transport (a tonic `Channel`, with tollgate-client's
/// `ClientAuthLayer` in front, say).
#[derive(Debug, Clone)]
pub struct OrdersClient<T> {
    inner: tonic::client::Grpc<T>,
}

impl<T> OrdersClient<T>
where
    T: GrpcService<Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    /// A client over `transport`.
    pub fn new(transport: T) -> Self {
        OrdersClient {
            inner: tonic::client::Grpc::new(transport),
        }
    }

    async fn unary<M: prost::Message + Send + Sync + 'static>(
        &mut self,
        path: &'static str,
        request: Request<M>,
    ) -> Result<OrderReply, Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("not ready: {}", e.into())))?;
        let codec = ProstCodec::<M, OrderReply>::default();
        self.inner
            .unary(request, PathAndQuery::from_static(path), codec)
            .await
            .map(Response::into_inner)
    }

    /// Calls `List`, with `request`'s metadata (`x-api-key`, `authorization`).
    pub async fn list(&mut self, request: Request<ListRequest>) -> Result<OrderReply, Status> {
        self.unary(LIST, request).await
    }

    /// Calls `Create`.
    pub async fn create(&mut self, request: Request<CreateRequest>) -> Result<OrderReply, Status> {
        self.unary(CREATE, request).await
    }
}
