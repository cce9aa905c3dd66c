//! API-key extraction and the local checks (length, charset, prefix) in front of a static key
//! list: any header bytes are refused or accepted, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_apikey::{ApiKeyAuth, DEFAULT_HEADER, KeyInfo, StaticKeys};
use tollgate_core::{Authenticator, CredentialSource};

fn setup() -> &'static (tokio::runtime::Runtime, ApiKeyAuth<StaticKeys>) {
    static SETUP: OnceLock<(tokio::runtime::Runtime, ApiKeyAuth<StaticKeys>)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let keys = StaticKeys::new().key("sk_live_fuzz", KeyInfo::new("fuzz"));
        let auth = ApiKeyAuth::builder(keys)
            .prefix("sk_live_")
            .credential_source(CredentialSource::header(DEFAULT_HEADER).also_bearer())
            .build();
        (rt, auth)
    })
}

fuzz_target!(|data: &[u8]| {
    let (rt, auth) = setup();
    let (a, b) = data.split_at(data.len() / 2);
    let mut request = http::Request::builder();
    if let Ok(v) = http::HeaderValue::from_bytes(a) {
        request = request.header("x-api-key", v);
    }
    if let Ok(v) = http::HeaderValue::from_bytes(b) {
        request = request.header("authorization", v);
    }
    if let Ok(request) = request.body(()) {
        let (parts, ()) = request.into_parts();
        let _ = rt.block_on(auth.authenticate(&parts));
    }
});
