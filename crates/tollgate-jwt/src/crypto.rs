//! Selecting jsonwebtoken's crypto backend once, so that enabling both backends (cargo
//! features unify across a dependency graph) can never panic at verification time; and
//! public keys parsed once, for the backend that allows it.

#[cfg(not(any(feature = "aws_lc_rs", feature = "rust_crypto")))]
compile_error!("tollgate-jwt needs one of the features `aws_lc_rs` (default) or `rust_crypto`");

use jsonwebtoken::Algorithm;
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::jwk::Jwk;

/// Installs the process-wide provider if none is installed yet; aws-lc-rs wins when both
/// features are on. An already-installed provider (the application's own choice) is kept,
/// and returned: it is the one jsonwebtoken verifies with.
pub(crate) fn ensure_provider() -> &'static CryptoProvider {
    #[cfg(feature = "aws_lc_rs")]
    let provider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
    #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
    let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
    match provider.install_default() {
        Ok(()) => provider,
        Err(installed) => installed,
    }
}

/// A public key parsed once by aws-lc-rs for each algorithm it may verify. jsonwebtoken
/// parses its key again for every signature; for RSA that is the modulus and its Montgomery
/// context, about 14 % of an RS256 verification. Empty where jsonwebtoken verifies instead:
/// HMAC secrets, the RustCrypto build, and a provider the application installed itself
/// (its choice is kept).
#[derive(Clone, Default)]
pub(crate) struct ParsedKey {
    #[cfg(feature = "aws_lc_rs")]
    parsed: Vec<(Algorithm, aws_lc_rs::signature::ParsedPublicKey)>,
}

#[cfg(feature = "aws_lc_rs")]
impl ParsedKey {
    /// `jwk` parsed for each of `algorithms`, those aws-lc-rs refuses left to jsonwebtoken
    /// (which then refuses their signatures just the same).
    pub(crate) fn of(jwk: &Jwk, algorithms: &[Algorithm]) -> Self {
        use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents};
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use jsonwebtoken::jwk::AlgorithmParameters;

        if !std::ptr::eq(
            ensure_provider(),
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        ) {
            return ParsedKey::default();
        }
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
        let parse = |alg: Algorithm| -> Option<ParsedPublicKey> {
            match &jwk.algorithm {
                AlgorithmParameters::RSA(rsa) => {
                    let (n, e) = (decode(&rsa.n)?, decode(&rsa.e)?);
                    RsaPublicKeyComponents { n, e }
                        .to_parsed_public_key(rsa_parameters(alg)?)
                        .ok()
                }
                AlgorithmParameters::EllipticCurve(ec) => {
                    // The uncompressed point, as jsonwebtoken builds it.
                    let mut point = vec![0x04];
                    point.extend(decode(&ec.x)?);
                    point.extend(decode(&ec.y)?);
                    ParsedPublicKey::new(signature_algorithm(alg)?, point).ok()
                }
                AlgorithmParameters::OctetKeyPair(okp) => {
                    ParsedPublicKey::new(signature_algorithm(alg)?, decode(&okp.x)?).ok()
                }
                _ => None,
            }
        };
        ParsedKey {
            parsed: algorithms
                .iter()
                .filter_map(|&alg| Some((alg, parse(alg)?)))
                .collect(),
        }
    }

    /// Whether `signature` (base64url) is a valid signature of `message` for `alg`; `None`
    /// when no key was parsed for `alg`.
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &str) -> Option<bool> {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;

        let (_, key) = self.parsed.iter().find(|(a, _)| *a == alg)?;
        // Room for the longest signature of an accepted key (RSA-8192: 1 024 bytes) and the
        // decoder's estimate; a longer one cannot be valid.
        let mut bytes = [0u8; 1032];
        let Ok(len) = URL_SAFE_NO_PAD.decode_slice(signature, &mut bytes) else {
            return Some(false);
        };
        Some(key.verify_sig(message, &bytes[..len]).is_ok())
    }
}

#[cfg(not(feature = "aws_lc_rs"))]
impl ParsedKey {
    pub(crate) fn of(_: &Jwk, _: &[Algorithm]) -> Self {
        ParsedKey::default()
    }

    pub(crate) fn verify(&self, _: Algorithm, _: &[u8], _: &str) -> Option<bool> {
        None
    }
}

/// aws-lc-rs's parameters for an RSA `alg`: those jsonwebtoken's aws-lc backend uses.
#[cfg(feature = "aws_lc_rs")]
fn rsa_parameters(alg: Algorithm) -> Option<&'static aws_lc_rs::signature::RsaParameters> {
    use aws_lc_rs::signature::*;
    Some(match alg {
        Algorithm::RS256 => &RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// aws-lc-rs's algorithm for an ECDSA or EdDSA `alg`: the one jsonwebtoken's backend uses.
#[cfg(feature = "aws_lc_rs")]
fn signature_algorithm(
    alg: Algorithm,
) -> Option<&'static dyn aws_lc_rs::signature::VerificationAlgorithm> {
    use aws_lc_rs::signature::*;
    Some(match alg {
        Algorithm::ES256 => &ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &ED25519,
        _ => return None,
    })
}

#[cfg(all(test, feature = "aws_lc_rs"))]
mod tests {
    use super::*;
    use tollgate_testkit::SigningKey;

    /// Every algorithm family's key is parsed once and judges signatures as jsonwebtoken
    /// does: valid, altered message, altered or truncated signature, not base64url, another
    /// algorithm than the key's.
    #[test]
    fn parsed_keys_judge_signatures_as_jsonwebtoken_does() {
        for alg in [
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::RS512,
        ] {
            let signer = SigningKey::generate("k", alg);
            let jwk: Jwk = serde_json::from_value(signer.jwk()).unwrap();
            let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let parsed = ParsedKey::of(&jwk, &[alg]);
            let token = signer.sign(
                jsonwebtoken::Header::new(alg),
                &serde_json::json!({"sub": "a"}),
            );
            let (message, signature) = token.rsplit_once('.').unwrap();
            let flipped = {
                let mut s = signature.to_owned().into_bytes();
                s[2] = if s[2] == b'A' { b'B' } else { b'A' };
                String::from_utf8(s).unwrap()
            };
            let cases: [(&[u8], &str); 5] = [
                (message.as_bytes(), signature),
                (b"another message", signature),
                (message.as_bytes(), &flipped),
                (message.as_bytes(), &signature[..signature.len() - 4]),
                (message.as_bytes(), "not base64url!"),
            ];
            for (i, (message, signature)) in cases.into_iter().enumerate() {
                let expected = jsonwebtoken::crypto::verify(signature, message, &decoding, alg)
                    .unwrap_or(false);
                assert_eq!(expected, i == 0, "{alg:?} case {i}");
                assert_eq!(
                    parsed.verify(alg, message, signature),
                    Some(expected),
                    "{alg:?} case {i}"
                );
            }
            // A key is parsed for its own algorithms only; others are jsonwebtoken's to refuse.
            assert_eq!(parsed.verify(Algorithm::HS256, b"m", signature), None);
        }
    }
}
