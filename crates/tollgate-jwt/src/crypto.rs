//! Selecting jsonwebtoken's crypto backend once, so that enabling both backends (cargo
//! features unify across a dependency graph) can never panic at verification time; and
//! public keys parsed once, for the backend that allows it.

#[cfg(not(any(feature = "aws_lc_rs", feature = "rust_crypto")))]
compile_error!("tollgate-jwt needs one of the features `aws_lc_rs` (default) or `rust_crypto`");

#[cfg(feature = "aws_lc_rs")]
use jsonwebtoken::DecodingKeyKind;
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::{Algorithm, DecodingKey};

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
    /// `key` parsed for each of `algorithms`, from the bytes jsonwebtoken holds for it;
    /// those aws-lc-rs refuses are left to jsonwebtoken (which then refuses their signatures
    /// just the same), and so are secrets (no algorithm here fits them).
    pub(crate) fn of(key: &DecodingKey, algorithms: &[Algorithm]) -> Self {
        use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents};

        if !std::ptr::eq(
            ensure_provider(),
            &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
        ) {
            return ParsedKey::default();
        }
        let parse = |alg: Algorithm| match key.kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => RsaPublicKeyComponents { n, e }
                .to_parsed_public_key(rsa_parameters(alg)?)
                .ok(),
            // A DER or PEM RSA key, an EC point, an Ed25519 key: what jsonwebtoken's own
            // aws-lc backend hands to aws-lc-rs for `alg`.
            DecodingKeyKind::SecretOrDer(bytes) => {
                let algorithm: &'static dyn aws_lc_rs::signature::VerificationAlgorithm =
                    match rsa_parameters(alg) {
                        Some(rsa) => rsa,
                        None => signature_algorithm(alg)?,
                    };
                ParsedPublicKey::new(algorithm, bytes).ok()
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
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> Option<bool> {
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
    pub(crate) fn of(_: &DecodingKey, _: &[Algorithm]) -> Self {
        ParsedKey::default()
    }

    pub(crate) fn verify(&self, _: Algorithm, _: &[u8], _: &[u8]) -> Option<bool> {
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
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(signer.jwk()).unwrap();
            let decoding = DecodingKey::from_jwk(&jwk).unwrap();
            let parsed = ParsedKey::of(&decoding, &[alg]);
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
                    parsed.verify(alg, message, signature.as_bytes()),
                    Some(expected),
                    "{alg:?} case {i}"
                );
            }
            // A key is parsed for its own algorithms only; others are jsonwebtoken's to refuse.
            assert_eq!(
                parsed.verify(Algorithm::HS256, b"m", signature.as_bytes()),
                None
            );
        }
    }

    /// Keys configured as PEM (`LocalKeys::pem`) are parsed too, from the DER jsonwebtoken
    /// keeps of them, and judge as jsonwebtoken does.
    #[test]
    fn pem_keys_are_parsed_too() {
        use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
        use base64::Engine;

        let pem = |der: PublicKeyX509Der<'_>| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
            format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
        };
        let message = b"header.payload";
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let mut rsa_signature = vec![0; rsa.public_modulus_len()];
        rsa.sign(
            &sig::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            message,
            &mut rsa_signature,
        )
        .unwrap();
        let ec = EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let ec_signature = ec.sign(&SystemRandom::new(), message).unwrap();
        let ed = Ed25519KeyPair::generate().unwrap();
        let keys = [
            (
                Algorithm::RS256,
                DecodingKey::from_rsa_pem(pem(rsa.public_key().as_der().unwrap()).as_bytes()),
                rsa_signature,
            ),
            (
                Algorithm::ES256,
                DecodingKey::from_ec_pem(pem(ec.public_key().as_der().unwrap()).as_bytes()),
                ec_signature.as_ref().to_vec(),
            ),
            (
                Algorithm::EdDSA,
                DecodingKey::from_ed_pem(pem(ed.public_key().as_der().unwrap()).as_bytes()),
                ed.sign(message).as_ref().to_vec(),
            ),
        ];
        for (alg, key, signature) in keys {
            let key = key.unwrap();
            let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature);
            let parsed = ParsedKey::of(&key, &[alg]);
            for message in [&message[..], b"another message"] {
                let expected =
                    jsonwebtoken::crypto::verify(&signature, message, &key, alg).unwrap();
                assert_eq!(
                    parsed.verify(alg, message, signature.as_bytes()),
                    Some(expected),
                    "{alg:?}"
                );
            }
        }
    }
}
