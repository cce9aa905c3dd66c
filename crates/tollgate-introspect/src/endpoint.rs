//! [`Endpoint`]: one RFC 7662 §2.1 introspection request per token, on tollgate's fetch path,
//! as the verdict engine asks it.

use http::HeaderValue;
use http::header::{ACCEPT, AUTHORIZATION};
use serde_json::{Map, Value};
use tollgate_client::ClientCredentials;
use tollgate_core::{AuthError, Principal};
use tollgate_upstream::{RemoteVerifier, Upstream, UpstreamError};
use tracing::Instrument;

use crate::answer::Rules;

/// How the resource server authenticates to the introspection endpoint.
#[derive(Clone)]
pub(crate) enum EndpointAuth {
    /// As an OAuth client: `client_secret_basic`, `client_secret_post`, `private_key_jwt`,
    /// `tls_client_auth`.
    Client(Box<ClientCredentials>),
    /// With a bearer token of its own (sensitive).
    Bearer(HeaderValue),
}

pub(crate) struct Endpoint {
    pub(crate) upstream: Upstream,
    /// As configured or discovered: shown, and the audience of a client assertion.
    pub(crate) url: String,
    /// The same, parsed once.
    pub(crate) target: reqwest::Url,
    pub(crate) auth: EndpointAuth,
    pub(crate) rules: Rules,
}

impl RemoteVerifier for Endpoint {
    async fn verify(&self, token: &str) -> Result<Result<Principal, AuthError>, UpstreamError> {
        let mut form: Vec<(&'static str, String)> = vec![
            ("token", token.to_owned()),
            ("token_type_hint", "access_token".to_owned()),
        ];
        let request = self
            .upstream
            .post(self.target.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        let request = match &self.auth {
            EndpointAuth::Client(client) => client
                .authenticate(request, &mut form, &self.url)
                .map_err(|e| UpstreamError::Other(e.to_string()))?,
            EndpointAuth::Bearer(value) => request.header(AUTHORIZATION, value.clone()),
        };
        // Any status but 200 (the server refusing *our* credentials included), a redirect, a
        // body that is not a JSON object or is too large: the server's trouble, never the
        // client's (503).
        self.upstream
            .send(request.form(&form), |answer| {
                let answer: Map<String, Value> = answer.success()?.json()?;
                Ok(self.rules.judge(answer))
            })
            .instrument(tracing::debug_span!("token_introspection"))
            .await
    }
}
