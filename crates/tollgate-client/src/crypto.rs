//! Selecting jsonwebtoken's crypto backend for the client assertions this crate signs, as
//! tollgate-jwt does for what it verifies: enabling both backends (features unify across a
//! dependency graph) never panics.

#[cfg(not(any(feature = "aws_lc_rs", feature = "rust_crypto")))]
compile_error!("tollgate-client needs one of the features `aws_lc_rs` (default) or `rust_crypto`");

/// Installs the process-wide provider if none is installed yet; aws-lc-rs wins when both
/// features are on. An already-installed provider (the application's own choice) is kept.
pub(crate) fn ensure_provider() {
    #[cfg(feature = "aws_lc_rs")]
    let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
    #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
    let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
    let _ = provider.install_default();
}
