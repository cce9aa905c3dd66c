//! Wycheproof's JWS and JWK vectors with jsonwebtoken's aws-lc-rs backend.

mod wycheproof;

#[test]
fn wycheproof_vectors_with_aws_lc_rs() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    wycheproof::run("aws-lc-rs");
}
