//! Verification keys prepared once, when a key set is loaded: each bound to the algorithms it
//! may verify (RFC 8725 §3.1), so that a token's `alg` can never pick how its key is used;
//! found by `kid` and the token's algorithm family (RFC 7517 §4.5 lets keys of different
//! types share a `kid`).

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;

use crate::crypto::ParsedKey;

/// The smallest RSA modulus accepted, in bits.
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// A key ready to verify, with the algorithms it may verify.
#[derive(Clone)]
pub(crate) struct PreparedKey {
    pub(crate) kid: Option<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) key: DecodingKey,
    /// The same key parsed once for its algorithms, where the backend allows it (derived
    /// from `key` by [`PreparedKey::new`]).
    parsed: ParsedKey,
    /// What identifies the key material (its RFC 7638 thumbprint; for a secret, empty):
    /// a key replaced under an unchanged `kid` changes it.
    pub(crate) material: String,
}

impl PreparedKey {
    pub(crate) fn new(
        kid: Option<String>,
        algorithms: Vec<Algorithm>,
        key: DecodingKey,
        material: String,
    ) -> Self {
        PreparedKey {
            parsed: ParsedKey::of(&key, &algorithms),
            kid,
            algorithms,
            key,
            material,
        }
    }

    /// Whether this key verifies `signature` (base64url) of `message` for `alg`: with the
    /// key parsed once where there is one, else by jsonwebtoken.
    pub(crate) fn verifies(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.parsed
            .verify(alg, message, signature)
            .unwrap_or_else(|| {
                // Not base64url when not text.
                std::str::from_utf8(signature).is_ok_and(|signature| {
                    jsonwebtoken::crypto::verify(signature, message, &self.key, alg)
                        .unwrap_or(false)
                })
            })
    }

    fn family(&self) -> Option<AlgorithmFamily> {
        self.algorithms.first().map(|a| a.family())
    }
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
    by_kid: HashMap<String, Vec<usize>>,
    /// `(kid, material)` of every key, sorted: equal for two sets of the same keys.
    material: Vec<(Option<String>, String)>,
}

/// What a key set holds for a token.
pub(crate) enum Lookup<'a> {
    /// The one key that may have signed it.
    Key(&'a PreparedKey),
    /// The token names a `kid` the set does not hold.
    UnknownKid,
    /// The `kid` is known, but none of its keys verifies the token's algorithm.
    WrongAlgorithm,
    /// The token names no `kid` and no key of the set fits its algorithm.
    NoKey,
    /// The token names no `kid` and several keys fit its algorithm.
    Ambiguous,
}

impl KeySet {
    /// The set of `keys`. A second key with the `kid` and algorithm family of an earlier one
    /// is skipped (logged): at most one key may answer for a `kid` and a token's algorithm.
    pub(crate) fn new(keys: Vec<PreparedKey>) -> Self {
        let mut set = KeySet::default();
        for key in keys {
            if let Some(kid) = &key.kid {
                let taken = set
                    .by_kid
                    .get(kid)
                    .is_some_and(|same| same.iter().any(|&i| set.keys[i].family() == key.family()));
                if taken {
                    tracing::warn!(kid = %kid, "skipping a JWK: another key of its type has its kid");
                    continue;
                }
                set.by_kid
                    .entry(kid.clone())
                    .or_default()
                    .push(set.keys.len());
            }
            set.material.push((key.kid.clone(), key.material.clone()));
            set.keys.push(key);
        }
        set.material.sort();
        set
    }

    /// The key for a token with `kid` (if any) and `alg`: by `kid` and the algorithm; without
    /// a `kid`, the one key of the set that fits `alg`, if exactly one does.
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        let fits = |k: &&PreparedKey| k.algorithms.contains(&alg);
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                None => Lookup::UnknownKid,
                Some(indexes) => indexes
                    .iter()
                    .map(|&i| &self.keys[i])
                    .find(fits)
                    .map_or(Lookup::WrongAlgorithm, Lookup::Key),
            },
            None => {
                let mut fitting = self.keys.iter().filter(fits);
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Lookup::Key(key),
                    (None, _) => Lookup::NoKey,
                    (Some(_), Some(_)) => Lookup::Ambiguous,
                }
            }
        }
    }

    /// Whether a key with this `kid` is in the set (whatever its algorithms).
    #[cfg(test)]
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Whether `other` holds exactly the same key material under the same kids.
    pub(crate) fn same_keys(&self, other: &KeySet) -> bool {
        self.material == other.material
    }

    pub(crate) fn into_keys(self) -> Vec<PreparedKey> {
        self.keys
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
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
    #[error("RSA key generated with the ROCA flaw (CVE-2017-15361)")]
    RocaRsa,
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

/// The exact bit length of a big-endian unsigned integer (leading zero bits not counted).
pub(crate) fn bit_length(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        Some(i) => (be.len() - i) * 8 - be[i].leading_zeros() as usize,
        None => 0,
    }
}

/// Refuses an RSA key whose modulus (base64url `n`) is under [`MIN_RSA_BITS`], counted
/// exactly, or bears the fingerprint of the ROCA flaw.
pub(crate) fn check_rsa_modulus(n_b64: &str) -> Result<(), SkipReason> {
    let n = URL_SAFE_NO_PAD
        .decode(n_b64)
        .map_err(|_| SkipReason::BadParameters)?;
    if bit_length(&n) < MIN_RSA_BITS {
        return Err(SkipReason::WeakRsa);
    }
    if has_roca_fingerprint(&n) {
        return Err(SkipReason::RocaRsa);
    }
    Ok(())
}

/// Whether modulus `n` (big-endian) has the structure of a key made by the Infineon library
/// flawed by ROCA (Nemec et al., CCS 2017, whose published test this is): for each small
/// prime `p` below, `n mod p` lies in the subgroup that 65537 generates modulo `p`. A random
/// modulus passes all these at once with negligible probability; such keys are factorable.
fn has_roca_fingerprint(n: &[u8]) -> bool {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let residue = n.iter().fold(0u32, |r, &b| (r * 256 + u32::from(b)) % p);
        let generator = 65537 % p;
        let mut power = 1;
        // The subgroup generated by 65537 mod p has at most p - 1 elements.
        (0..p).any(|_| {
            let hit = power == residue;
            power = power * generator % p;
            hit
        })
    })
}

/// The RFC 7638 thumbprint of a public JWK.
pub(crate) fn thumbprint(jwk: &Jwk) -> Result<String, SkipReason> {
    crate::crypto::ensure_provider();
    jwk.thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| SkipReason::BadParameters)
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
        check_rsa_modulus(&rsa.n)?;
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| SkipReason::BadParameters)?;
    Ok(PreparedKey::new(
        jwk.common.key_id.clone(),
        algorithms,
        key,
        thumbprint(jwk)?,
    ))
}

/// Reads a JWK Set document: every usable key, each unusable one skipped with a log line
/// (RFC 7517 §5: members not understood are ignored, not fatal). `Err` when the document
/// itself is not a JWK Set, or holds no usable key: a set that would refuse every token is
/// treated as a failed fetch, never swapped in.
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
    let set = KeySet::new(keys);
    if set.len() == 0 {
        return Err("the JWKS has no usable key".into());
    }
    Ok(set)
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
    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn unusable_keys_are_skipped_and_the_rest_load() {
        let doc = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": ED_X},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": ED_X},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ops", "key_ops": ["encrypt"], "x": ED_X},
            {"kty": "OKP", "crv": "Ed25519", "kid": "wrongalg", "alg": "RS256", "x": ED_X},
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
        let doc =
            serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": ED_X}]});
        let set = parse_jwks(doc.to_string().as_bytes(), ALL).unwrap();
        assert!(matches!(
            set.lookup(Some("ed"), Algorithm::EdDSA),
            Lookup::Key(_)
        ));
        assert!(matches!(
            set.lookup(Some("ed"), Algorithm::HS256),
            Lookup::WrongAlgorithm
        ));
        assert!(matches!(set.lookup(None, Algorithm::RS256), Lookup::NoKey));
        assert!(matches!(set.lookup(None, Algorithm::EdDSA), Lookup::Key(_)));
        assert!(matches!(
            set.lookup(Some("other"), Algorithm::EdDSA),
            Lookup::UnknownKid
        ));
    }

    #[test]
    fn a_set_with_no_usable_key_is_an_error() {
        assert!(parse_jwks(b"<html>", ALL).is_err());
        assert!(parse_jwks(br#"{"keys": 5}"#, ALL).is_err());
        assert!(parse_jwks(br#"{"keys": []}"#, ALL).is_err());
        assert!(parse_jwks(br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#, ALL).is_err());
    }

    #[test]
    fn the_roca_fingerprint_is_seen_and_random_moduli_pass() {
        // A modulus without that structure is not flagged...
        assert!(!has_roca_fingerprint(&[0xff; 256]));
        // ...one that is a power of 65537 lies in every subgroup, as a ROCA modulus does.
        let n: u128 = 65537u128.pow(3);
        assert!(has_roca_fingerprint(&n.to_be_bytes()));
    }

    #[test]
    fn bits_are_counted_exactly() {
        assert_eq!(bit_length(&[0x00, 0x01]), 1);
        assert_eq!(bit_length(&[0x80, 0x00]), 16);
        assert_eq!(bit_length(&[0x00, 0x7f, 0xff]), 15);
        assert_eq!(bit_length(&[]), 0);
        // 256 bytes whose first byte is 0x01: 2041 bits, under the floor.
        let mut n = vec![0xffu8; 256];
        n[0] = 0x01;
        assert_eq!(bit_length(&n), 2041);
        assert!(check_rsa_modulus(&URL_SAFE_NO_PAD.encode(&n)).is_err());
        n[0] = 0x80;
        assert!(check_rsa_modulus(&URL_SAFE_NO_PAD.encode(&n)).is_ok());
    }
}
