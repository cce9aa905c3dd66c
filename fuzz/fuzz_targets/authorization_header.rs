//! The credential extraction every crate shares: any bytes in `Authorization`, `x-api-key`,
//! `Cookie` and the query, alone or twice, must give a credential, none, or an error; never a
//! panic.
#![no_main]

use http::{HeaderName, HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use tollgate_core::CredentialSource;

fuzz_target!(|data: &[u8]| {
    let (first, second) = data.split_at(data.len() / 2);
    let source = CredentialSource::bearer()
        .also_header(HeaderName::from_static("x-api-key"))
        .also_cookie("session")
        .also_query("access_token")
        .max_len(256);
    for (name, values) in [
        ("authorization", vec![data]),
        ("authorization", vec![first, second]),
        ("x-api-key", vec![data]),
        ("cookie", vec![first, second]),
    ] {
        let query = String::from_utf8_lossy(first).replace(['#', ' '], "");
        let uri = format!("/?access_token={query}");
        let Ok(request) = Request::builder().uri(uri.as_str()).body(()) else {
            continue;
        };
        let (mut parts, ()) = request.into_parts();
        for v in values {
            if let Ok(v) = HeaderValue::from_bytes(v) {
                parts.headers.append(HeaderName::from_static(name), v);
            }
        }
        if let Ok(Some(found)) = source.find(&parts) {
            assert!(found.len() <= 256 && found.bytes().all(|b| b.is_ascii_graphic()));
        }
        let _ = source.is_present(&parts);
        source.guard(&mut parts, true);
    }
});
