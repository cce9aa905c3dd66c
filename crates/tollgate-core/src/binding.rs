//! [`Binding`]: the key a sender-constrained token is bound to (its `cnf` claim, RFC 7800),
//! which the request must prove it holds.

use serde_json::Value;

use crate::AuthError;

/// What a sender-constrained token is bound to, read from its confirmation claim `cnf`
/// (RFC 7800 §3.1). A [`Principal`](crate::Principal) carries it once the request has proved
/// the binding: a handler can see that the token was DPoP-bound, and by which key.
///
/// ```
/// use serde_json::json;
/// use tollgate_core::Binding;
///
/// let cnf = json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" });
/// let binding = Binding::from_cnf(Some(&cnf)).unwrap().unwrap();
/// assert_eq!(binding.dpop_thumbprint(), Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"));
///
/// assert_eq!(Binding::from_cnf(None).unwrap(), None); // a plain bearer token
/// assert!(Binding::from_cnf(Some(&json!({ "kid": "k1" }))).is_err()); // bound, but to what?
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Binding {
    /// Bound to a DPoP key (RFC 9449 §6): `cnf.jkt`, the key's RFC 7638 SHA-256 thumbprint,
    /// base64url.
    Dpop {
        /// The thumbprint.
        jkt: Box<str>,
    },
    /// Bound to a TLS client certificate (RFC 8705 §3.1): `cnf.x5t#S256`, the SHA-256 of
    /// the certificate's DER, base64url.
    Certificate {
        /// The thumbprint.
        x5t_s256: Box<str>,
    },
}

impl Binding {
    /// Reads a `cnf` claim: `Ok(None)` for none, the binding for `jkt` (checked first when a
    /// token has both) or `x5t#S256`, and `invalid_token` for a `cnf` that binds the token to
    /// something tollgate cannot check (a `jwk`, a `kid`, a value that is not a string): a
    /// token bound to a key must never be taken as a bearer token.
    pub fn from_cnf(cnf: Option<&Value>) -> Result<Option<Binding>, AuthError> {
        let Some(cnf) = cnf else { return Ok(None) };
        let unsupported = || {
            AuthError::invalid_token(
                "the token is bound to a key in a way this service cannot check",
            )
        };
        let member = |name| match cnf.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(Box::<str>::from(s.as_str()))),
            Some(_) => Err(unsupported()),
        };
        if !cnf.is_object() {
            return Err(unsupported());
        }
        if let Some(jkt) = member("jkt")? {
            return Ok(Some(Binding::Dpop { jkt }));
        }
        if let Some(x5t_s256) = member("x5t#S256")? {
            return Ok(Some(Binding::Certificate { x5t_s256 }));
        }
        Err(unsupported())
    }

    /// The DPoP key thumbprint, for a DPoP-bound token.
    pub fn dpop_thumbprint(&self) -> Option<&str> {
        match self {
            Binding::Dpop { jkt } => Some(jkt),
            Binding::Certificate { .. } => None,
        }
    }

    /// The certificate thumbprint, for a certificate-bound token.
    pub fn certificate_thumbprint(&self) -> Option<&str> {
        match self {
            Binding::Certificate { x5t_s256 } => Some(x5t_s256),
            Binding::Dpop { .. } => None,
        }
    }
}
