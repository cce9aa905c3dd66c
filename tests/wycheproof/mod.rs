//! Project Wycheproof's JWS and JWK vectors through tollgate's signature path: every valid
//! case accepted, every invalid one refused. Read from `../shared/testdata/wycheproof` (or
//! the folder `WYCHEPROOF_DIR` names); skipped, with the reason printed, only when that
//! folder is absent outside CI.

use std::path::PathBuf;

use serde_json::{Value, json};

/// Algorithms tollgate does not implement: their valid vectors cannot be accepted, and are
/// counted as skipped (their invalid ones must still be refused).
const UNSUPPORTED: &[&str] = &["ES512", "ES521"];

/// Vectors marked valid that tollgate refuses by design, each with its rule (asserted
/// refused, and counted apart).
const REFUSED_BY_DESIGN: &[(u64, &str)] = &[
    // RFC 7520 Figure 20 signs PS384 with a key whose JWK says `alg: PS256`.
    (346, "a key verifies only its own JWK alg (RFC 8725 §3.1)"),
    (350, "a key verifies only its own JWK alg (RFC 8725 §3.1)"),
    // A `?` inserted into the header or payload.
    (
        372,
        "outside base64url and the b64token syntax (RFC 7515 §2, RFC 6750 §2.1)",
    ),
    (
        373,
        "outside base64url and the b64token syntax (RFC 7515 §2, RFC 6750 §2.1)",
    ),
];

/// Vectors marked invalid that tollgate accepts, with why: named for bad padding, they carry
/// none (in this copy, both are the same token); header, payload and MAC are canonical
/// base64url and the MAC is over exactly those bytes (RFC 7515 §5.2). Asserted accepted, and
/// counted apart.
const ACCEPTED_BY_DESIGN: &[(u64, &str)] = &[
    (
        367,
        "no padding in it: canonical base64url, MAC valid over the encoded bytes",
    ),
    (
        370,
        "no padding in it: canonical base64url, MAC valid over the encoded bytes",
    ),
];

fn folder() -> Option<PathBuf> {
    let dir = std::env::var_os("WYCHEPROOF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/wycheproof")
        });
    if dir.join("json_web_signature_test.json").exists() {
        return Some(dir);
    }
    let reason = format!("the Wycheproof vectors are not in {}", dir.display());
    assert!(std::env::var_os("CI").is_none(), "{reason}");
    eprintln!("skipped: {reason}");
    None
}

/// The header `alg` of a compact JWS, if it has one.
fn alg_of(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let header: Value = serde_json::from_slice(&bytes).ok()?;
    header["alg"].as_str().map(str::to_owned)
}

/// The keys of a group, as a JWK Set document, and whether they are loaded as a fetched JWKS
/// (public keys) or as configured keys (secrets, or a set of them).
fn key_set(group: &Value) -> (String, bool) {
    let set = |key: &Value| match key.get("keys") {
        Some(_) => key.clone(),
        None => json!({ "keys": [key] }),
    };
    match (group.get("public"), group.get("private")) {
        (Some(public), _) => (set(public).to_string(), true),
        (None, Some(private)) => (set(private).to_string(), false),
        (None, None) => (json!({"keys": []}).to_string(), true),
    }
}

/// Runs every vector; `backend` names the crypto provider installed, for the report.
pub fn run(backend: &str) {
    let Some(dir) = folder() else { return };
    signatures(&dir, backend);
    let (mut accepted, mut refused, mut skipped) = (0, 0, 0);
    let mut wrong = Vec::new();
    let mut by_design = Vec::new();
    for file in ["json_web_signature_test.json", "json_web_key_test.json"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        for group in doc["testGroups"].as_array().unwrap() {
            let (jwks, remote) = key_set(group);
            for case in group["tests"].as_array().unwrap() {
                // JSON-serialized JWS is not a bearer token: refused by construction.
                let token = match &case["jws"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let valid = case["result"] == "valid";
                if valid && alg_of(&token).is_some_and(|a| UNSUPPORTED.contains(&a.as_str())) {
                    skipped += 1;
                    continue;
                }
                let ok =
                    tollgate_jwt::__conformance::verifies(&jwks, remote, &token).unwrap_or(false);
                let id = case["tcId"].as_u64().unwrap_or_default();
                let exception = match valid {
                    true => REFUSED_BY_DESIGN,
                    false => ACCEPTED_BY_DESIGN,
                };
                if file == "json_web_signature_test.json"
                    && let Some((_, rule)) = exception.iter().find(|(tc, _)| *tc == id)
                {
                    assert_eq!(ok, !valid, "tc {id}: {rule}");
                    by_design.push(format!("tc {id}: {rule}"));
                    continue;
                }
                match (valid, ok) {
                    (true, true) => accepted += 1,
                    (false, false) => refused += 1,
                    _ => wrong.push(format!(
                        "{file} tc {} ({}, {}): expected {}",
                        case["tcId"], group["comment"], case["comment"], case["result"]
                    )),
                }
            }
        }
    }
    println!(
        "wycheproof ({backend}): {} cases: {accepted} valid accepted, {refused} invalid refused, {skipped} valid skipped (unsupported algorithm), {} decided otherwise by design:\n  {}",
        accepted + refused + skipped + by_design.len() + wrong.len(),
        by_design.len(),
        by_design.join("\n  ")
    );
    assert!(
        wrong.is_empty(),
        "{} cases wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Wycheproof's signature vectors (raw messages, one public JWK per group) through the same
/// key preparation and verification as a JWKS key's, for each algorithm family tollgate
/// verifies: valid cases accepted, invalid ones refused, "acceptable" ones counted apart.
fn signatures(dir: &std::path::Path, backend: &str) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::Algorithm;

    let hex = |s: &str| -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    };
    let files = [
        ("ecdsa_secp256r1_sha256_p1363_test.json", Algorithm::ES256),
        ("ecdsa_secp384r1_sha384_p1363_test.json", Algorithm::ES384),
        ("ed25519_test.json", Algorithm::EdDSA),
        ("rsa_pss_2048_sha256_mgf1_32_test.json", Algorithm::PS256),
        ("rsa_signature_2048_sha256_test.json", Algorithm::RS256),
    ];
    let (mut accepted, mut refused, mut acceptable) = (0, 0, 0);
    let mut wrong = Vec::new();
    for (file, alg) in files {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        for group in doc["testGroups"].as_array().unwrap() {
            // A few EC groups come without a JWK: built from the uncompressed point.
            let jwk = match group.get("publicKeyJwk").or_else(|| group.get("keyJwk")) {
                Some(jwk) => jwk.to_string(),
                None => {
                    let point = hex(group["publicKey"]["uncompressed"].as_str().unwrap());
                    let (x, y) = point[1..].split_at(point.len() / 2);
                    let crv = if alg == Algorithm::ES256 {
                        "P-256"
                    } else {
                        "P-384"
                    };
                    json!({
                        "kty": "EC", "crv": crv,
                        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
                    })
                    .to_string()
                }
            };
            for case in group["tests"].as_array().unwrap() {
                let message = hex(case["msg"].as_str().unwrap());
                let signature = URL_SAFE_NO_PAD.encode(hex(case["sig"].as_str().unwrap()));
                let ok = tollgate_jwt::__conformance::verifies_signature(
                    &jwk, alg, &message, &signature,
                )
                .unwrap_or(false);
                match (case["result"].as_str().unwrap(), ok) {
                    ("acceptable", _) => acceptable += 1,
                    ("valid", true) => accepted += 1,
                    ("invalid", false) => refused += 1,
                    (expected, _) => wrong.push(format!(
                        "{file} tc {} ({}): expected {expected}",
                        case["tcId"], case["comment"]
                    )),
                }
            }
        }
    }
    println!(
        "wycheproof signatures ({backend}): {accepted} valid accepted, {refused} invalid refused, {acceptable} acceptable (either way)"
    );
    assert!(accepted > 0 && refused > 0);
    assert!(
        wrong.is_empty(),
        "{} signature cases wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
