//! [`Challenge`]: an authentication scheme and its parameters, as a `WWW-Authenticate` value
//! names it (RFC 9110 §11.6.1). Each authenticator says which it answers with.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::AuthError;

/// One challenge of a `WWW-Authenticate` header: a scheme (`Bearer`, `ApiKey`, `DPoP`) and its
/// own parameters. The layer adds `realm`, and for a refusal `error`, `error_description` and
/// `scope` (RFC 6750 §3), and `resource_metadata` when configured (RFC 9728 §5.1).
///
/// An authenticator declares its challenges
/// ([`Authenticator::challenges`](crate::Authenticator::challenges)); by default they follow
/// from its credential source: `Bearer` for `Authorization: Bearer` and query tokens,
/// `ApiKey header="x-api-key"` for a key header.
///
/// ```
/// use tollgate_core::Challenge;
///
/// let dpop = Challenge::new("DPoP").param("algs", "ES256 EdDSA");
/// assert_eq!(dpop.scheme(), "DPoP");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    scheme: Cow<'static, str>,
    params: Vec<(Cow<'static, str>, String)>,
}

impl Challenge {
    /// A challenge of `scheme`, with no parameters of its own.
    pub fn new(scheme: impl Into<Cow<'static, str>>) -> Self {
        Challenge {
            scheme: scheme.into(),
            params: Vec::new(),
        }
    }

    /// `Bearer` (RFC 6750 §3).
    pub fn bearer() -> Self {
        Self::new("Bearer")
    }

    /// `ApiKey header="<name>"`: a key expected in that header. There is no registered
    /// scheme for API keys; this one tells a client where the key goes, and never to send a
    /// bearer token.
    pub fn api_key(header: &HeaderName) -> Self {
        Self::new("ApiKey").param("header", header.as_str())
    }

    /// Adds a parameter (`algs="ES256"`). Values are sent as quoted strings; characters a
    /// quoted string cannot hold are dropped.
    pub fn param(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// The scheme.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The value of one of its own parameters.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Renders this challenge: `Scheme realm="…", <own params>[, error…][, resource_metadata]`.
    pub(crate) fn render(
        &self,
        realm: &str,
        error: Option<&AuthError>,
        resource_metadata: Option<&str>,
    ) -> Option<HeaderValue> {
        let mut out = String::with_capacity(96);
        out.push_str(&self.scheme);
        out.push_str(" realm=");
        push_quoted(&mut out, realm);
        for (name, value) in &self.params {
            out.push_str(", ");
            out.push_str(name);
            out.push('=');
            push_quoted(&mut out, value);
        }
        if let Some(error) = error
            && let Some(code) = error.kind().challenge_code()
        {
            out.push_str(", error=");
            push_quoted(&mut out, code);
            out.push_str(", error_description=");
            push_quoted(&mut out, error.description());
            if let Some(scope) = error.scope() {
                out.push_str(", scope=");
                push_quoted(&mut out, &scope.to_string());
            }
        }
        if let Some(url) = resource_metadata {
            out.push_str(", resource_metadata=");
            push_quoted(&mut out, url);
        }
        HeaderValue::from_str(&out).ok()
    }

    /// Whether this challenge is for how `headers` carry a credential: the `Authorization`
    /// scheme, or the header an `ApiKey` challenge names.
    pub(crate) fn matches_request(&self, headers: &HeaderMap) -> bool {
        if let Some(header) = self.get("header") {
            return headers.contains_key(header);
        }
        headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().split(|&b| b == b' ').next())
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case(self.scheme.as_bytes()))
    }
}

/// Appends `value` as an RFC 9110 quoted-string. Characters RFC 6750 §3 does not allow in
/// auth-param values (`"`, `\`, controls, non-ASCII) are dropped rather than escaped, so the
/// result is valid under both grammars.
fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    out.extend(
        value
            .chars()
            .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\'),
    );
    out.push('"');
}
