//! The TLS crypto provider of tollgate's HTTP client: aws-lc-rs (feature `aws_lc_rs`, the
//! default, through reqwest's `rustls`), or ring (feature `rust_crypto`), so that a RustCrypto
//! build links no aws-lc. rustls has no stable RustCrypto provider; ring is the other one
//! rustls ships.

/// Installs ring as the process's rustls provider when no provider is installed and aws-lc
/// is not built in (an application's own choice is kept).
pub(crate) fn ensure_provider() {
    #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
