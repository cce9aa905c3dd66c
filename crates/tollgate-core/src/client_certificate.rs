//! [`ClientCertificate`]: the TLS client certificate a request came with, and
//! [`CertificateSource`]: where a resource server takes it from (its own TLS connection, or a
//! header set by a proxy it trusts), for certificate-bound tokens (RFC 8705 §3).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::HeaderName;
use http::request::Parts;
use sha2::{Digest, Sha256};

use crate::AuthError;

/// The longest forwarded certificate header read, in bytes: a PEM certificate with a chain.
const MAX_FORWARDED_LEN: usize = 16 * 1024;

/// Envoy's forwarded client certificate header.
static XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// The TLS client certificate of a request's connection, known by its SHA-256 thumbprint
/// (what a certificate-bound token's `cnf.x5t#S256` names, RFC 8705 §3.1). A server that
/// terminates TLS itself puts one in each request's extensions after the handshake;
/// [`CertificateSource::tls_connection`] reads it there.
///
/// With tokio-rustls, the certificates of the connection are
/// `tls_stream.get_ref().1.peer_certificates()`, the client's own first:
///
/// ```
/// use tollgate_core::ClientCertificate;
///
/// # let der: Vec<u8> = vec![0x30, 0x03, 0x02, 0x01, 0x01];
/// // What rustls hands over after the handshake: the chain, or none.
/// let chain: Option<&[Vec<u8>]> = Some(std::slice::from_ref(&der));
/// let certificate = ClientCertificate::from_chain(chain);
/// // ... then, for every request of that connection:
/// let mut request = http::Request::new(());
/// if let Some(certificate) = certificate {
///     request.extensions_mut().insert(certificate);
/// }
/// assert!(request.extensions().get::<ClientCertificate>().is_some());
/// ```
///
/// The `mtls` example serves an axum router this way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    thumbprint: Box<str>,
}

impl ClientCertificate {
    /// The certificate whose DER encoding is `der`.
    pub fn from_der(der: impl AsRef<[u8]>) -> Self {
        ClientCertificate {
            thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(der.as_ref())).into(),
        }
    }

    /// The client's certificate from a TLS connection's peer chain (the first, RFC 8446
    /// §4.4.2), or `None` when the client sent none.
    pub fn from_chain<C: AsRef<[u8]>>(chain: Option<&[C]>) -> Option<Self> {
        chain?.first().map(ClientCertificate::from_der)
    }

    /// The base64url SHA-256 of the certificate's DER encoding (`x5t#S256`).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    fn from_digest(digest: &[u8]) -> Self {
        ClientCertificate {
            thumbprint: URL_SAFE_NO_PAD.encode(digest).into(),
        }
    }
}

/// Where a resource server takes a request's TLS client certificate from, for
/// certificate-bound tokens (RFC 8705 §3). Which one is always explicit configuration: a
/// forwarded header is believed only when it is configured, and then only that header.
///
/// - [`tls_connection`](Self::tls_connection): the service terminates TLS itself and puts a
///   [`ClientCertificate`] in the request extensions. Any forwarded header is ignored.
/// - [`forwarded_pem`](Self::forwarded_pem): a proxy terminates TLS and forwards the
///   certificate as URL-encoded PEM in a header (nginx's `$ssl_client_escaped_cert`, AWS
///   ALB's `x-amzn-mtls-clientcert`).
/// - [`envoy`](Self::envoy): Envoy's `x-forwarded-client-cert` (its `Hash`, or else its
///   `Cert`), with exactly one element: configure Envoy with `SANITIZE_SET`.
///
/// A proxy named here must set or strip its header on every request, or a client could set
/// it. A header that appears twice or cannot be read refuses the request (`invalid_token`).
///
/// ```
/// use http::{HeaderName, Request};
/// use tollgate_core::CertificateSource;
///
/// let nginx = CertificateSource::forwarded_pem(HeaderName::from_static("ssl-client-cert"));
/// let (parts, ()) = Request::new(()).into_parts();
/// assert_eq!(nginx.certificate(&parts).unwrap(), None); // no certificate: none forwarded
///
/// let envoy = CertificateSource::envoy();
/// let hash = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688";
/// let (parts, ()) = Request::builder()
///     .header("x-forwarded-client-cert", format!("By=spiffe://api;Hash={hash};Subject=\"CN=a\""))
///     .body(())
///     .unwrap()
///     .into_parts();
/// let certificate = envoy.certificate(&parts).unwrap().unwrap();
/// assert_eq!(certificate.thumbprint(), "Ro7TO-dO7mVW2QwBScEwnpumHWQlMDRDwHSKAt2N5og");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSource(Source);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Connection,
    Pem(HeaderName),
    Envoy,
}

impl CertificateSource {
    /// The certificate of the request's own TLS connection: the [`ClientCertificate`] in its
    /// extensions, put there by the server that terminated TLS.
    pub fn tls_connection() -> Self {
        CertificateSource(Source::Connection)
    }

    /// The certificate a trusted proxy forwards in `header` as URL-encoded PEM (the first
    /// certificate when it forwards a chain).
    pub fn forwarded_pem(header: HeaderName) -> Self {
        CertificateSource(Source::Pem(header))
    }

    /// The certificate Envoy forwards in `x-forwarded-client-cert`.
    pub fn envoy() -> Self {
        CertificateSource(Source::Envoy)
    }

    /// The request's client certificate, `None` when it has none, or `invalid_token` when a
    /// forwarded one is ambiguous or malformed.
    pub fn certificate(&self, parts: &Parts) -> Result<Option<ClientCertificate>, AuthError> {
        let header = match &self.0 {
            Source::Connection => return Ok(parts.extensions.get().cloned()),
            Source::Pem(name) => name,
            Source::Envoy => &XFCC,
        };
        let mut values = parts.headers.get_all(header).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(AuthError::invalid_token(
                "more than one client certificate was forwarded",
            ));
        }
        let unreadable =
            || AuthError::invalid_token("the forwarded client certificate could not be read");
        if value.len() > MAX_FORWARDED_LEN {
            return Err(unreadable());
        }
        let value = value.to_str().map_err(|_| unreadable())?;
        let certificate = match &self.0 {
            Source::Envoy => from_xfcc(value)?,
            _ => from_escaped_pem(value),
        };
        certificate.map(Some).ok_or_else(unreadable)
    }
}

/// The first certificate of URL-encoded PEM.
fn from_escaped_pem(escaped: &str) -> Option<ClientCertificate> {
    let pem = percent_encoding::percent_decode_str(escaped)
        .decode_utf8()
        .ok()?;
    let (_, rest) = pem.split_once("-----BEGIN CERTIFICATE-----")?;
    let (body, _) = rest.split_once("-----END CERTIFICATE-----")?;
    let body: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD.decode(body).ok()?;
    Some(ClientCertificate::from_der(der))
}

/// Envoy's `x-forwarded-client-cert`: elements split by `,`, pairs by `;`, values quoted or
/// not. One element only (several mean several proxies appended theirs: which is the
/// client's?); its `Hash` (hex SHA-256 of the DER), or else its `Cert` (URL-encoded PEM).
fn from_xfcc(value: &str) -> Result<Option<ClientCertificate>, AuthError> {
    let elements = split_unquoted(value, ',');
    let [element] = elements.as_slice() else {
        return Err(AuthError::invalid_token(
            "more than one client certificate was forwarded",
        ));
    };
    let mut hash = None;
    let mut cert = None;
    for pair in split_unquoted(element, ';') {
        let Some((key, value)) = pair.split_once('=') else {
            return Ok(None);
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        match key.trim().to_ascii_lowercase().as_str() {
            "hash" => hash = Some(value),
            "cert" => cert = Some(value),
            _ => {}
        }
    }
    if let Some(hash) = hash {
        let mut digest = [0u8; 32];
        return Ok(hex::decode_to_slice(hash, &mut digest)
            .ok()
            .map(|()| ClientCertificate::from_digest(&digest)));
    }
    Ok(cert.and_then(from_escaped_pem))
}

/// `value` split at each `separator` outside double quotes (a quote escaped with `\` stays
/// inside).
fn split_unquoted(value: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    const DER: &[u8] = &[0x30, 0x03, 0x02, 0x01, 0x01];

    fn escaped_pem() -> String {
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            STANDARD.encode(DER)
        );
        percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    #[test]
    fn a_forwarded_pem_gives_the_thumbprint_of_its_der() {
        let source = CertificateSource::forwarded_pem(HeaderName::from_static("ssl-client-cert"));
        let found = source
            .certificate(&parts(&[("ssl-client-cert", &escaped_pem())]))
            .unwrap();
        assert_eq!(found, Some(ClientCertificate::from_der(DER)));
    }

    #[test]
    fn envoy_hash_and_cert_agree_and_quotes_hide_separators() {
        let hash = hex::encode(Sha256::digest(DER));
        let source = CertificateSource::envoy();
        let by_hash = format!("By=spiffe://a;Hash={hash};Subject=\"CN=a, O=b; c\"");
        let by_cert = format!("Cert=\"{}\";URI=spiffe://client", escaped_pem());
        for value in [by_hash, by_cert] {
            let found = source
                .certificate(&parts(&[("x-forwarded-client-cert", &value)]))
                .unwrap();
            assert_eq!(found, Some(ClientCertificate::from_der(DER)), "{value}");
        }
    }

    #[test]
    fn ambiguous_or_malformed_forwarded_certificates_are_refused() {
        let hash = hex::encode(Sha256::digest(DER));
        let envoy = CertificateSource::envoy();
        let two = format!("Hash={hash},Hash={hash}");
        for value in [two.as_str(), "Hash=zz", "Subject=\"CN=a\"", "garbage"] {
            let err = envoy
                .certificate(&parts(&[("x-forwarded-client-cert", value)]))
                .unwrap_err();
            assert_eq!(err.status(), 401, "{value}");
        }
        let pem = CertificateSource::forwarded_pem(HeaderName::from_static("ssl-client-cert"));
        let twice = parts(&[("ssl-client-cert", "a"), ("ssl-client-cert", "b")]);
        assert!(pem.certificate(&twice).is_err());
        assert!(
            pem.certificate(&parts(&[("ssl-client-cert", "not pem")]))
                .is_err()
        );
    }

    #[test]
    fn the_connection_source_ignores_forwarded_headers() {
        let hash = hex::encode(Sha256::digest(DER));
        let forged = parts(&[("x-forwarded-client-cert", &format!("Hash={hash}"))]);
        assert_eq!(
            CertificateSource::tls_connection()
                .certificate(&forged)
                .unwrap(),
            None
        );
    }
}
