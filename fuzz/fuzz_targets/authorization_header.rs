//! The credential extraction every crate shares: any bytes in `Authorization`, `x-api-key`
//! and `Cookie`, alone or twice, must give a credential, none, or an error; never a panic.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tollgate_core::CredentialSource;

fuzz_target!(|data: &[u8]| {
    let (first, second) = data.split_at(data.len() / 2);
    let source = CredentialSource::bearer()
        .also_header(HeaderName::from_static("x-api-key"))
        .also_cookie("session")
        .max_len(256);
    for (name, values) in [
        ("authorization", vec![data]),
        ("authorization", vec![first, second]),
        ("x-api-key", vec![data]),
        ("cookie", vec![first, second]),
    ] {
        let mut headers = HeaderMap::new();
        for v in values {
            if let Ok(v) = HeaderValue::from_bytes(v) {
                headers.append(HeaderName::from_static(name), v);
            }
        }
        if let Ok(Some(found)) = source.find(&headers) {
            assert!(found.len() <= 256 && found.bytes().all(|b| b.is_ascii_graphic()));
        }
        source.guard(&mut headers, true);
    }
});
