//! The whole JWT verification path (split, header and claims parsing, issuer and key choice,
//! signature, claims) with a fixed key set: any input is refused or accepted, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_jwt::{Algorithm, Issuer, JwtAuth, LocalKeys};

fn setup() -> &'static (tokio::runtime::Runtime, JwtAuth) {
    static SETUP: OnceLock<(tokio::runtime::Runtime, JwtAuth)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
        let keys = LocalKeys::new()
            .jwks(jwks)
            .unwrap()
            .hmac("hs", Algorithm::HS256, b"0123456789abcdef0123456789abcdef")
            .unwrap();
        let auth = rt
            .block_on(JwtAuth::builder().issuer(Issuer::local_keys("fuzz", keys).audience("fuzz")).build())
            .unwrap();
        (rt, auth)
    })
}

fuzz_target!(|data: &[u8]| {
    let (rt, auth) = setup();
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = rt.block_on(auth.verify(token));
    }
});
