//! Wycheproof's JWS and JWK vectors with jsonwebtoken's RustCrypto backend (a process of its
//! own: the provider is chosen once per process).

mod wycheproof;

#[test]
fn wycheproof_vectors_with_rust_crypto() {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    wycheproof::run("RustCrypto");
}
