//! Verification keys prepared once, when a key set is loaded: each bound to the algorithms it
//! may verify (RFC 8725 §3.1), so that a token's `alg` can never pick how its key is used.

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;

/// The smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// A key ready to verify, with the algorithms it may verify.
#[derive(Clone)]
pub(crate) struct PreparedKey {
    pub(crate) kid: Option<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) key: DecodingKey,
}

impl fmt::Debug for PreparedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The keys of one issuer, by `kid`.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeySet {
    keys: Vec<PreparedKey>,
    by_kid: HashMap<String, usize>,
}

impl KeySet {
    pub(crate) fn new(keys: Vec<PreparedKey>) -> Self {
        let by_kid = keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| Some((k.kid.clone()?, i)))
            .collect();
        KeySet { keys, by_kid }
    }

    /// The candidates for a token: the key named by `kid`, or, without a `kid`, every key
    /// that may verify `alg`.
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a PreparedKey> {
        let named = kid.map(|kid| self.by_kid.get(kid).map(|&i| &self.keys[i]));
        let all = match named {
            Some(_) => &[][..],
            None => &self.keys[..],
        };
        named
            .flatten()
            .into_iter()
            .chain(all.iter())
            .filter(move |k| k.algorithms.contains(&alg))
    }

    /// Whether a key with this `kid` is in the set (whatever its algorithms).
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    pub(crate) fn into_keys(self) -> Vec<PreparedKey> {
        self.keys
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The kids, for noticing when a rotation removed one.
    pub(crate) fn kids(&self) -> impl Iterator<Item = &str> {
        self.by_kid.keys().map(String::as_str)
    }
}

/// Why a JWK was skipped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SkipReason {
    #[error("not a signature key (use or key_ops)")]
    NotForSignatures,
    #[error("symmetric keys are not accepted from a JWKS")]
    Symmetric,
    #[error("unsupported key type or curve")]
    Unsupported,
    #[error("its alg is not allowed or does not fit its key type")]
    AlgorithmMismatch,
    #[error("RSA modulus shorter than 2048 bits")]
    WeakRsa,
    #[error("its parameters are not valid")]
    BadParameters,
}

/// The algorithms a key of this type may verify, narrowed to its own `alg` when it has one
/// and to `allowed`.
fn algorithms_for(jwk: &Jwk, allowed: &[Algorithm]) -> Result<Vec<Algorithm>, SkipReason> {
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa.algorithms(),
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return Err(SkipReason::Unsupported),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => &[Algorithm::EdDSA],
            _ => return Err(SkipReason::Unsupported),
        },
        AlgorithmParameters::OctetKey(_) => return Err(SkipReason::Symmetric),
        _ => return Err(SkipReason::Unsupported),
    };
    let own = match jwk.common.key_algorithm {
        Some(alg) => Some(
            alg.to_string()
                .parse::<Algorithm>()
                .map_err(|_| SkipReason::AlgorithmMismatch)?,
        ),
        None => None,
    };
    let algs: Vec<Algorithm> = family
        .iter()
        .copied()
        .filter(|a| own.is_none_or(|own| own == *a) && allowed.contains(a))
        .collect();
    if algs.is_empty() {
        return Err(SkipReason::AlgorithmMismatch);
    }
    Ok(algs)
}

/// Prepares one JWK for verification, or says why it cannot be used. `from_jwk` ignores
/// `use`, `key_ops` and `alg`; they are checked here.
pub(crate) fn prepare(jwk: &Jwk, allowed: &[Algorithm]) -> Result<PreparedKey, SkipReason> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return Err(SkipReason::NotForSignatures);
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err(SkipReason::NotForSignatures);
    }
    let algorithms = algorithms_for(jwk, allowed)?;
    if let AlgorithmParameters::RSA(rsa) = &jwk.algorithm {
        let n = URL_SAFE_NO_PAD
            .decode(&rsa.n)
            .map_err(|_| SkipReason::BadParameters)?;
        let bits = n
            .iter()
            .position(|&b| b != 0)
            .map_or(0, |i| (n.len() - i) * 8);
        if bits < MIN_RSA_BITS {
            return Err(SkipReason::WeakRsa);
        }
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| SkipReason::BadParameters)?;
    Ok(PreparedKey {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key,
    })
}

/// Reads a JWK Set document: every usable key, each unusable one skipped with a log line
/// (RFC 7517 §5: members not understood are ignored, not fatal). `Err` only when the
/// document itself is not a JWK Set.
pub(crate) fn parse_jwks(bytes: &[u8], allowed: &[Algorithm]) -> Result<KeySet, String> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|_| "the JWKS is not JSON".to_owned())?;
    let Some(entries) = doc.get("keys").and_then(Value::as_array) else {
        return Err("the JWKS has no \"keys\" array".into());
    };
    let mut keys = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let kid = entry
            .get("kid")
            .and_then(Value::as_str)
            .map(|k| k.chars().take(64).collect::<String>());
        let prepared = serde_json::from_value::<Jwk>(entry.clone())
            .map_err(|_| SkipReason::Unsupported)
            .and_then(|jwk| prepare(&jwk, allowed));
        match prepared {
            Ok(key) => keys.push(key),
            Err(reason) => tracing::warn!(index = i, kid, %reason, "skipping a JWK"),
        }
    }
    Ok(KeySet::new(keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Algorithm] = &[
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    #[test]
    fn unusable_keys_are_skipped_and_the_rest_load() {
        let doc = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ops", "key_ops": ["encrypt"], "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "wrongalg", "alg": "RS256", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "XYZ", "kid": "unknown"},
            {"kty": "RSA", "kid": "small", "n": "sXch", "e": "AQAB"},
            "not even an object"
        ]});
        let set = parse_jwks(doc.to_string().as_bytes(), ALL).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.has_kid("ed"));
        assert!(!set.has_kid("enc") && !set.has_kid("hmac") && !set.has_kid("small"));
    }

    #[test]
    fn a_key_only_verifies_its_own_algorithms() {
        let doc = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]});
        let set = parse_jwks(doc.to_string().as_bytes(), ALL).unwrap();
        assert_eq!(set.candidates(Some("ed"), Algorithm::EdDSA).count(), 1);
        assert_eq!(set.candidates(Some("ed"), Algorithm::HS256).count(), 0);
        assert_eq!(set.candidates(None, Algorithm::RS256).count(), 0);
        assert_eq!(set.candidates(Some("other"), Algorithm::EdDSA).count(), 0);
    }

    #[test]
    fn not_a_jwks() {
        assert!(parse_jwks(b"<html>", ALL).is_err());
        assert!(parse_jwks(br#"{"keys": 5}"#, ALL).is_err());
    }
}
