//! [`ServerMetadata::discover`]: an authorization server's metadata by OpenID Connect
//! Discovery 1.0 or RFC 8414, on the fetch path, with the exact-issuer check.

use serde::Deserialize;

use crate::{Upstream, UpstreamError};

/// The members of an authorization server's metadata that tollgate uses (OIDC Discovery §3,
/// RFC 8414 §2). Unknown members are ignored.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerMetadata {
    /// The issuer, equal to the one asked for (checked).
    pub issuer: String,
    /// The JWK Set URL.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The token endpoint.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// The RFC 7662 introspection endpoint.
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    /// Where clients that authenticate with a TLS certificate, or want certificate-bound
    /// tokens, send their requests instead (RFC 8705 §5).
    #[serde(default)]
    pub mtls_endpoint_aliases: MtlsEndpointAliases,
}

/// `mtls_endpoint_aliases` (RFC 8705 §5): the endpoints of an authorization server for
/// clients over mutual TLS, where they differ from the others.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct MtlsEndpointAliases {
    /// The token endpoint for mutual-TLS clients.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// The introspection endpoint for mutual-TLS clients.
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
}

/// Why discovery failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// No metadata document could be fetched.
    #[error("no discovery document could be fetched: {0}")]
    Unreachable(UpstreamError),
    /// The document is not valid metadata.
    #[error("the discovery document is not valid")]
    Invalid,
    /// The document names another issuer (OIDC Discovery §4.3, RFC 8414 §3.3).
    #[error("the discovery document names another issuer: {named}")]
    IssuerMismatch {
        /// The issuer the document names (at most 200 characters of it).
        named: String,
    },
    /// The document lacks a member this use needs.
    #[error("the discovery document has no {0}")]
    Missing(&'static str),
}

impl ServerMetadata {
    /// Fetches `issuer`'s metadata: `{issuer}/.well-known/openid-configuration` (OIDC), then
    /// the RFC 8414 location `{origin}/.well-known/oauth-authorization-server{path}`. The
    /// document's `issuer` must equal `issuer` exactly. A document that is not metadata, or
    /// names another issuer, ends the search; a missing one (any non-2xx) moves on to the
    /// next location. Redirects are never followed.
    pub async fn discover(upstream: &Upstream, issuer: &str) -> Result<Self, DiscoveryError> {
        let mut last = UpstreamError::Status(404);
        for url in well_known_urls(issuer) {
            let fetched = upstream.send(upstream.get(&url), Ok).await;
            let fetched = match fetched.and_then(|f| f.success()) {
                Ok(fetched) => fetched,
                Err(e @ UpstreamError::Status(_)) => {
                    last = e;
                    continue;
                }
                Err(e) => return Err(DiscoveryError::Unreachable(e)),
            };
            let meta: ServerMetadata = fetched.json().map_err(|_| DiscoveryError::Invalid)?;
            if meta.issuer != issuer {
                return Err(DiscoveryError::IssuerMismatch {
                    named: meta.issuer.chars().take(200).collect(),
                });
            }
            return Ok(meta);
        }
        Err(DiscoveryError::Unreachable(last))
    }
}

/// Where the metadata of `issuer` may be, in the order they are tried.
fn well_known_urls(issuer: &str) -> Vec<String> {
    let base = issuer.trim_end_matches('/');
    let mut urls = vec![format!("{base}/.well-known/openid-configuration")];
    // RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path.
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let (origin, path) = match base[after_scheme..].find('/') {
        Some(i) => base.split_at(after_scheme + i),
        None => (base, ""),
    };
    let rfc8414 = format!("{origin}/.well-known/oauth-authorization-server{path}");
    if !urls.contains(&rfc8414) {
        urls.push(rfc8414);
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8414_puts_the_well_known_segment_before_the_path() {
        assert_eq!(
            well_known_urls("https://login.example.com/tenant/"),
            [
                "https://login.example.com/tenant/.well-known/openid-configuration",
                "https://login.example.com/.well-known/oauth-authorization-server/tenant",
            ]
        );
        assert_eq!(
            well_known_urls("http://127.0.0.1:9"),
            [
                "http://127.0.0.1:9/.well-known/openid-configuration",
                "http://127.0.0.1:9/.well-known/oauth-authorization-server",
            ]
        );
    }
}
