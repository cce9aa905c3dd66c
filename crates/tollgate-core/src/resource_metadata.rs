//! [`ResourceMetadata`]: the OAuth 2.0 protected-resource metadata of RFC 9728, served at
//! its well-known URL, so that a client refused with a 401 finds which authorization server
//! to get a token from (the MCP authorization spec requires it of every protected server).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};

use crate::{Authenticator, CredentialSource, ScopeSet};

/// Where the metadata of any resource is found, before the resource's own path (RFC 9728 §3).
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Why [`ResourceMetadataBuilder::build`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceMetadataError {
    /// The resource identifier is not an absolute `https` URL without query or fragment
    /// (`http` is allowed for `localhost` and loopback addresses only), RFC 9728 §2.
    #[error("the resource must be an https URL without query or fragment: {0}")]
    Resource(String),
    /// No authorization server: a client could not get a token.
    #[error("at least one authorization server is required")]
    NoAuthorizationServer,
}

/// The protected-resource metadata document of RFC 9728 and where it is served.
///
/// Build it from the layer's own configuration (the issuers it trusts, the scopes its routes
/// require, where it reads tokens), serve [`service`](Self::service) at [`path`](Self::path),
/// and give [`url`](Self::url) to `AuthLayer::resource_metadata`, so every 401 points to it
/// (RFC 9728 §5.1).
///
/// ```
/// use tollgate_core::{CredentialSource, ResourceMetadata, scopes};
///
/// scopes! { ToolsRead = "tools:read"; ToolsCall = "tools:call"; }
///
/// let metadata = ResourceMetadata::builder("https://mcp.example.com/mcp")
///     .authorization_server("https://login.example.com")
///     .scopes::<ToolsRead>()
///     .scopes::<ToolsCall>()
///     .bearer_methods_of(&CredentialSource::bearer())
///     .resource_name("Example MCP server")
///     .build()
///     .unwrap();
/// assert_eq!(metadata.path(), "/.well-known/oauth-protected-resource/mcp");
/// assert_eq!(metadata.url(), "https://mcp.example.com/.well-known/oauth-protected-resource/mcp");
/// let document: serde_json::Value = serde_json::from_str(metadata.document()).unwrap();
/// assert_eq!(document["authorization_servers"][0], "https://login.example.com");
/// assert_eq!(document["scopes_supported"], serde_json::json!(["tools:read", "tools:call"]));
/// assert_eq!(document["bearer_methods_supported"], serde_json::json!(["header"]));
/// ```
///
/// With axum: `Router::new().route_service(metadata.path(), metadata.service())`, outside
/// the auth layer (the metadata is public).
#[derive(Debug, Clone)]
pub struct ResourceMetadata {
    document: String,
    path: String,
    url: String,
}

/// Builds a [`ResourceMetadata`]; see [`ResourceMetadata::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct ResourceMetadataBuilder {
    resource: String,
    authorization_servers: Vec<String>,
    scopes: Vec<String>,
    bearer_methods: Vec<&'static str>,
    dpop_algs: Vec<String>,
    dpop_required: bool,
    certificate_bound: bool,
    resource_name: Option<String>,
    documentation: Option<String>,
}

/// The document's members (RFC 9728 §2), in its order.
#[derive(serde::Serialize)]
struct Document<'a> {
    resource: &'a str,
    authorization_servers: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    scopes_supported: &'a [String],
    bearer_methods_supported: &'a [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    dpop_signing_alg_values_supported: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dpop_bound_access_tokens_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls_client_certificate_bound_access_tokens: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_documentation: Option<&'a str>,
}

impl ResourceMetadata {
    /// Starts the metadata of the resource identified by `resource` (RFC 9728 §1.2: the URL
    /// clients use, and the audience its tokens are for).
    pub fn builder(resource: impl Into<String>) -> ResourceMetadataBuilder {
        ResourceMetadataBuilder {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            scopes: Vec::new(),
            bearer_methods: Vec::new(),
            dpop_algs: Vec::new(),
            dpop_required: false,
            certificate_bound: false,
            resource_name: None,
            documentation: None,
        }
    }

    /// The path to serve the document at: the well-known prefix, then the resource's own
    /// path (RFC 9728 §3.1).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The document's URL, for `AuthLayer::resource_metadata`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The JSON document.
    pub fn document(&self) -> &str {
        &self.document
    }

    /// A tower service answering `GET` (and `HEAD`) with the document, `405` otherwise.
    pub fn service(&self) -> ResourceMetadataService {
        ResourceMetadataService {
            document: self.document.clone(),
        }
    }
}

impl ResourceMetadataBuilder {
    /// Adds an authorization server clients may get tokens from (its issuer identifier, as
    /// configured for the JWT or introspection authenticator). At least one is required.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        if !self.authorization_servers.contains(&issuer) {
            self.authorization_servers.push(issuer);
        }
        self
    }

    /// Adds several authorization servers (`JwtAuth::issuers()`, say).
    pub fn authorization_servers<I: IntoIterator<Item = S>, S: Into<String>>(
        self,
        issuers: I,
    ) -> Self {
        issuers
            .into_iter()
            .fold(self, |builder, issuer| builder.authorization_server(issuer))
    }

    /// Adds the scopes of `S` to `scopes_supported` (each once; default: none listed): the
    /// scopes the routes require, as their `RequireScopes<S>` name them.
    pub fn scopes<S: ScopeSet>(mut self) -> Self {
        for scope in S::scopes().iter() {
            if !self.scopes.iter().any(|s| s == scope) {
                self.scopes.push(scope.to_owned());
            }
        }
        self
    }

    /// Sets `bearer_methods_supported` from where `source` reads tokens (`header` for
    /// `Authorization: Bearer`, `query` for the query parameter; default: `header`).
    pub fn bearer_methods_of(mut self, source: &CredentialSource) -> Self {
        self.bearer_methods = source.bearer_methods();
        self
    }

    /// Sets `dpop_signing_alg_values_supported` from the `algs` of `authenticator`'s `DPoP`
    /// challenge (default: none listed, as for an authenticator without DPoP).
    ///
    /// ```
    /// use tollgate_core::{Authenticator, Challenge, ResourceMetadata};
    /// # use tollgate_core::{AuthError, CredentialSource, Principal};
    /// # struct Tokens;
    /// # impl Authenticator for Tokens {
    /// #     async fn authenticate(&self, _: &http::request::Parts) -> Result<Option<Principal>, AuthError> { Ok(None) }
    /// #     fn credential_source(&self) -> CredentialSource { CredentialSource::bearer().also_dpop() }
    /// #     fn challenges(&self) -> Vec<Challenge> {
    /// #         vec![Challenge::bearer(), Challenge::new("DPoP").param("algs", "ES256 EdDSA")]
    /// #     }
    /// # }
    /// let metadata = ResourceMetadata::builder("https://api.example.com")
    ///     .authorization_server("https://login.example.com")
    ///     .dpop_algorithms_of(&Tokens)
    ///     .dpop_bound_access_tokens_required(true)
    ///     .build()
    ///     .unwrap();
    /// let document: serde_json::Value = serde_json::from_str(metadata.document()).unwrap();
    /// assert_eq!(document["dpop_signing_alg_values_supported"], serde_json::json!(["ES256", "EdDSA"]));
    /// assert_eq!(document["dpop_bound_access_tokens_required"], true);
    /// ```
    pub fn dpop_algorithms_of<A: Authenticator>(mut self, authenticator: &A) -> Self {
        self.dpop_algs = authenticator
            .challenges()
            .iter()
            .filter(|c| c.scheme() == "DPoP")
            .filter_map(|c| c.get("algs"))
            .flat_map(str::split_whitespace)
            .map(str::to_owned)
            .collect();
        self
    }

    /// Sets `dpop_bound_access_tokens_required` (default: `false`, and left out): whether
    /// the resource accepts DPoP-bound tokens only (`JwtAuth::dpop_required()`).
    pub fn dpop_bound_access_tokens_required(mut self, required: bool) -> Self {
        self.dpop_required = required;
        self
    }

    /// Sets `tls_client_certificate_bound_access_tokens` (default: `false`, and left out):
    /// whether the resource accepts tokens bound to a TLS client certificate (RFC 8705;
    /// `JwtAuth::mtls_enabled()`).
    pub fn tls_client_certificate_bound_access_tokens(mut self, supported: bool) -> Self {
        self.certificate_bound = supported;
        self
    }

    /// A human-readable name of the resource (`resource_name`, default: none).
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// A URL of the resource's documentation for developers (default: none).
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.documentation = Some(url.into());
        self
    }

    /// Checks the resource identifier and renders the document.
    pub fn build(self) -> Result<ResourceMetadata, ResourceMetadataError> {
        let bad = || ResourceMetadataError::Resource(self.resource.clone());
        let uri: Uri = self.resource.parse().map_err(|_| bad())?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(bad());
        };
        let loopback = matches!(authority.host(), "localhost" | "127.0.0.1" | "[::1]");
        if uri.query().is_some()
            || self.resource.contains('#')
            || !(scheme == "https" || (scheme == "http" && loopback))
        {
            return Err(bad());
        }
        if self.authorization_servers.is_empty() {
            return Err(ResourceMetadataError::NoAuthorizationServer);
        }
        // `/orders/` and `/orders` name the same suffix; `/` none.
        let suffix = uri.path().trim_end_matches('/');
        let path = format!("{WELL_KNOWN}{suffix}");
        let bearer_methods = match self.bearer_methods.is_empty() {
            true => vec!["header"],
            false => self.bearer_methods,
        };
        let document = serde_json::to_string(&Document {
            resource: &self.resource,
            authorization_servers: &self.authorization_servers,
            scopes_supported: &self.scopes,
            bearer_methods_supported: &bearer_methods,
            dpop_signing_alg_values_supported: &self.dpop_algs,
            dpop_bound_access_tokens_required: self.dpop_required,
            tls_client_certificate_bound_access_tokens: self.certificate_bound,
            resource_name: self.resource_name.as_deref(),
            resource_documentation: self.documentation.as_deref(),
        })
        .expect("the document serializes");
        Ok(ResourceMetadata {
            url: format!("{scheme}://{authority}{path}"),
            path,
            document,
        })
    }
}

/// The tower service of [`ResourceMetadata::service`].
#[derive(Debug, Clone)]
pub struct ResourceMetadataService {
    document: String,
}

impl<B> tower_service::Service<Request<B>> for ResourceMetadataService {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let mut res = match *req.method() {
            Method::GET => Response::new(self.document.clone()),
            Method::HEAD => Response::new(String::new()),
            _ => {
                let mut res = Response::new(String::new());
                *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                res.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
                return ready(Ok(res));
            }
        };
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        // Public and rarely changed; a client may keep it for a while.
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        ready(Ok(res))
    }
}
