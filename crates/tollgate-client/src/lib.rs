//! The other end of machine-to-machine auth: a tower layer that adds credentials to the
//! requests a service sends.
//!
//! - [`ClientCredentials`]: the OAuth 2.0 client (RFC 6749 §4.4): `client_secret_basic`,
//!   `client_secret_post`, `private_key_jwt` (RFC 7523) or the TLS client certificate
//!   (`tls_client_auth`, RFC 8705), the token endpoint given or
//!   discovered, audience/resource and scope parameters; on tollgate's fetch path (no
//!   redirects, a capped read, a timeout, a breaker), retried with backoff only when no
//!   server was reached; typed [`TokenError`]s.
//! - [`TokenSource`]: tokens cached per (audience, scope) until `expires_in` minus a skew,
//!   refreshed ahead of expiry in the background, one token request at a time per key.
//! - [`ClientAuthLayer`]: puts the token (or a static API key) on every request of any tower
//!   HTTP client (`reqwest::Client` directly, hyper-util's client, ...); a request is never sent
//!   without one, and a `401 invalid_token` answer gets one refresh and one retry.
//! - [`DpopKey`]: sender-constrained tokens (RFC 9449): proofs on token requests, so the
//!   token is bound to the key, and `Authorization: DPoP` with a fresh proof per request;
//!   server nonces remembered and retried with once.
//!
//! The client secret and the tokens are kept out of every `Debug`, log line and error.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod crypto;
mod dpop;
mod layer;
mod source;
mod token;

pub use dpop::{DpopKey, InvalidDpopKey};
pub use jsonwebtoken::{Algorithm, EncodingKey};
pub use layer::{
    BoxError, ClientAuthLayer, ClientAuthService, IncomingResponse, OutgoingRequest, ReplayBody,
};
pub use source::TokenSource;
pub use token::{ClientCredentials, TokenError};
pub use tollgate_upstream::BreakerPolicy;
