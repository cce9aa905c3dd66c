//! Test doubles for tollgate, for tollgate's own tests and for yours: real HTTP servers on
//! 127.0.0.1 (a random port each) that you control from the test.
//!
//! - [`MockIdp`]: an OpenID provider serving discovery and a JWKS, minting tokens with any
//!   claims, algorithm (RS256, PS256, ES256, EdDSA, HS256) and key, rotating keys, opaque
//!   tokens answered by an RFC 7662 introspection endpoint, and failing on demand (status,
//!   delay, garbage, HTML, huge bodies, redirects), with request counters.
//! - [`MockKeyService`]: a key-verification service speaking Unkey's v2 protocol and
//!   tollgate's generic JSON one, with keys added, revoked and expired at run time, injected
//!   faults and a request counter.
//!
//! - [`DpopKey`]: a client's DPoP key, whose `cnf` binds a minted token to it, and
//!   [`ProofBuilder`]: its proofs, good or broken (replayed, for another method, URI or
//!   token, stale, HMAC or unsigned, a private key in the header).
//! - [`TestCa`]: a certificate authority of the test's own, its client certificates
//!   ([`TestCertificate`], whose `cnf` binds a minted token to it), an HTTPS server that asks
//!   for them and puts each request's [`ClientCertificate`](tollgate_core::ClientCertificate)
//!   in its extensions, and clients that present them (mutual TLS, RFC 8705).
//! - [`ProtectedApp`]: one route behind your layer, served, counting its handler's runs;
//!   [`serve`]: your own router on a random 127.0.0.1 port, for real HTTP calls in tests;
//!   [`unreachable_url`]: a URL where nothing listens; [`prometheus_series`]: a scrape read
//!   into its series.
//! - [`grpc`] (feature `grpc`): a small tonic service and client, for tests of tollgate's
//!   layers in front of gRPC.
//! - [`RedisServer`]: a real `redis-server` of the test's own, stopped and started again at
//!   will; [`RedisCluster`] (three primaries) and [`RedisSentinel`] (a primary, a replica and
//!   a Sentinel that fails over when the primary is killed).
//! - [`capture_logs`]: what the code under test logs on the test's thread, for tests that
//!   check what is and is not logged.
//! - [`alternating`] and [`quartiles`]: two operations timed in alternating rounds, for
//!   benchmarks on machines that drift more than the effect measured.
//!
//! ```
//! use tollgate_testkit::{MockKey, MockKeyService};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let service = MockKeyService::start().await;
//! service.add_key("sk_test_1", MockKey::new("key_1").permissions(["orders:read"]));
//! let answer: serde_json::Value = reqwest::Client::new()
//!     .post(service.json_url())
//!     .json(&serde_json::json!({"key": "sk_test_1"}))
//!     .send().await.unwrap()
//!     .json().await.unwrap();
//! assert_eq!(answer["valid"], true);
//! assert_eq!(service.requests(), 1);
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod app;
mod dpop;
#[cfg(feature = "grpc")]
pub mod grpc;
mod idp;
mod key_service;
mod logs;
mod paired;
mod redis;
mod server;
mod tls;

pub use app::ProtectedApp;
pub use dpop::{DpopKey, ProofBuilder};
pub use idp::{DEFAULT_AUDIENCE, IdpFault, MockIdp, OpaqueTokenBuilder, SigningKey, TokenBuilder};
pub use key_service::{Fault, MockKey, MockKeyService};
pub use logs::{CapturedLogs, capture_logs};
pub use paired::{alternating, quartiles};
pub use redis::{RedisCluster, RedisSentinel, RedisServer};
pub use server::{prometheus_series, serve, unreachable_url};
pub use tls::{TestCa, TestCertificate};
