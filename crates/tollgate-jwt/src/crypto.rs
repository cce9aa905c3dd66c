//! Selecting jsonwebtoken's crypto backend once, so that enabling both backends (cargo
//! features unify across a dependency graph) can never panic at verification time.

#[cfg(not(any(feature = "aws_lc_rs", feature = "rust_crypto")))]
compile_error!("tollgate-jwt needs one of the features `aws_lc_rs` (default) or `rust_crypto`");

/// Installs the process-wide provider if none is installed yet; aws-lc-rs wins when both
/// features are on. An already-installed provider (the application's own choice) is kept.
pub(crate) fn ensure_provider() {
    #[cfg(feature = "aws_lc_rs")]
    let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
    #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
    let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
    let _ = provider.install_default();
}
