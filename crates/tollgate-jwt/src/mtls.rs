//! [`Mtls`]: certificate-bound access tokens on the resource server (RFC 8705 §3): whether an
//! issuer's tokens may or must be bound to the client's TLS certificate, and where that
//! certificate is read from.

use http::request::Parts;
use tollgate_core::{AuthError, Binding, CertificateSource, Principal};

/// Whether an issuer's tokens may be bound to a TLS client certificate (RFC 8705 §3), and
/// where the resource server finds the certificate. Set per issuer with
/// [`Issuer::mtls`](crate::Issuer::mtls) (and on `tollgate-introspect`'s `Introspection`);
/// the default is [`off`](Self::off).
///
/// A token whose `cnf.x5t#S256` names a certificate is accepted only from a request whose
/// client certificate, read from the [`CertificateSource`], has that SHA-256 thumbprint:
/// without a certificate, or with another one, it is a 401 `invalid_token`. With mTLS off, a
/// certificate-bound token is always refused (never taken as a plain bearer token). The
/// principal says the token was bound, and to which certificate:
/// [`Principal::binding`](tollgate_core::Principal::binding).
///
/// ```
/// use http::HeaderName;
/// use tollgate_core::CertificateSource;
/// use tollgate_jwt::{Issuer, Mtls};
///
/// // The service terminates TLS itself and puts each connection's ClientCertificate in
/// // the request extensions (see the `mtls` example).
/// let direct = Issuer::discover("https://idp.example.com")
///     .audience("orders-api")
///     .mtls(Mtls::allowed(CertificateSource::tls_connection()));
///
/// // Behind nginx, which forwards `$ssl_client_escaped_cert` and strips clients' copies.
/// let proxied = Issuer::discover("https://idp.example.com")
///     .audience("orders-api")
///     .mtls(Mtls::required(CertificateSource::forwarded_pem(
///         HeaderName::from_static("ssl-client-cert"),
///     )));
/// # let _ = (direct, proxied);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Mtls {
    source: Option<CertificateSource>,
    required: bool,
}

impl Mtls {
    /// Certificate-bound tokens are refused (the default): this service checks no client
    /// certificate.
    pub fn off() -> Self {
        Mtls::default()
    }

    /// Certificate-bound tokens are accepted from the certificate they are bound to, read
    /// from `source`; tokens bound to nothing are accepted too.
    pub fn allowed(source: CertificateSource) -> Self {
        Mtls {
            source: Some(source),
            required: false,
        }
    }

    /// Only certificate-bound tokens are accepted, from the certificate they are bound to,
    /// read from `source`.
    pub fn required(source: CertificateSource) -> Self {
        Mtls {
            source: Some(source),
            required: true,
        }
    }

    /// Whether certificate-bound tokens are accepted.
    pub fn is_enabled(&self) -> bool {
        self.source.is_some()
    }

    /// Whether only certificate-bound tokens are accepted.
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// Checks that `principal`'s token, presented in `parts`, fits these settings: a
    /// certificate-bound token came with its certificate, and, when required, the token is
    /// bound to one. Every authenticator calls this after verifying a token, cached or not.
    pub fn check(&self, parts: &Parts, principal: &Principal) -> Result<(), AuthError> {
        let bound_to = match principal.binding() {
            Some(Binding::Certificate { x5t_s256 }) => x5t_s256,
            _ if self.required => {
                return Err(AuthError::invalid_token(
                    "this issuer's tokens must be bound to a client certificate",
                ));
            }
            _ => return Ok(()),
        };
        let Some(source) = &self.source else {
            return Err(AuthError::invalid_token(
                "the token is bound to a client certificate, which this service does not check",
            ));
        };
        match source.certificate(parts)? {
            Some(certificate) if certificate.thumbprint() == &**bound_to => Ok(()),
            Some(_) => Err(AuthError::invalid_token(
                "the token is bound to another client certificate",
            )),
            None => Err(AuthError::invalid_token(
                "the token is bound to a client certificate, and the request has none",
            )),
        }
    }

    /// Checks a token used without a request (no certificate): it must not be bound to one,
    /// and binding must not be required.
    pub(crate) fn check_without_request(&self, principal: &Principal) -> Result<(), AuthError> {
        match principal.binding() {
            Some(Binding::Certificate { .. }) => Err(AuthError::invalid_token(
                "the token is bound to a client certificate: use it in a request",
            )),
            _ if self.required => Err(AuthError::invalid_token(
                "this issuer's tokens must be bound to a client certificate",
            )),
            _ => Ok(()),
        }
    }
}
