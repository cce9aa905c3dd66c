//! The DPoP proof check (RFC 9449 §4.3) with a DPoP-bound token of a fixed key set: any
//! `DPoP` header is refused or accepted, never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tollgate_core::Authenticator;
use tollgate_jwt::{Algorithm, Dpop, Issuer, JwtAuth, LocalKeys};

/// HS256 under the secret below: `iss`/`aud` "fuzz", `exp` in 2096, `cnf.jkt` set.
const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImhzIn0.eyJpc3MiOiJmdXp6IiwiYXVkIjoiZnV6eiIsInN1YiI6ImEiLCJleHAiOjQwMDAwMDAwMDAsImNuZiI6eyJqa3QiOiIwWmNPQ09SWk5ZeS1EV3BxcTMwalp5SkdIVE4wZDJIZ2xCVjN1aWd1QTRJIn19.RByhvXzBiyfQCM6siJ8NggUTqv5MrHFRWZG8UMGPwUY";

fn setup() -> &'static (tokio::runtime::Runtime, JwtAuth) {
    static SETUP: OnceLock<(tokio::runtime::Runtime, JwtAuth)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let keys = LocalKeys::new()
            .hmac("hs", Algorithm::HS256, b"0123456789abcdef0123456789abcdef")
            .unwrap();
        let issuer = Issuer::local_keys("fuzz", keys)
            .audience("fuzz")
            .dpop(Dpop::required().nonces([7u8; 32]));
        let auth = rt.block_on(JwtAuth::builder().issuer(issuer).build()).unwrap();
        (rt, auth)
    })
}

fuzz_target!(|data: &[u8]| {
    let (rt, auth) = setup();
    let Ok(proof) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let request = http::Request::builder()
        .uri("https://api.fuzz/orders")
        .header("authorization", format!("DPoP {TOKEN}"))
        .header("dpop", proof)
        .body(())
        .unwrap();
    let (parts, ()) = request.into_parts();
    let _ = rt.block_on(auth.authenticate(&parts));
});
