//! The forwarded client certificate readers (RFC 8705 behind a proxy): any
//! `x-forwarded-client-cert` (Envoy) or URL-encoded PEM header gives a certificate, none,
//! or a refusal, never a panic.
#![no_main]

use http::{HeaderName, HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use tollgate_core::CertificateSource;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let sources = [
        ("x-forwarded-client-cert", CertificateSource::envoy()),
        (
            "ssl-client-cert",
            CertificateSource::forwarded_pem(HeaderName::from_static("ssl-client-cert")),
        ),
    ];
    for (name, source) in sources {
        let (parts, ()) = Request::builder()
            .header(name, value.clone())
            .body(())
            .unwrap()
            .into_parts();
        if let Ok(Some(certificate)) = source.certificate(&parts) {
            // A thumbprint is always a base64url SHA-256: 43 characters.
            assert_eq!(certificate.thumbprint().len(), 43);
        }
    }
});
