//! What a DPoP-bound request costs over the same request with a plain bearer token (both
//! tokens in the verified-token cache, so what differs is the proof), against the bare cost
//! of verifying one signature of the proof's algorithm, per algorithm: by `jsonwebtoken`
//! (which parses its key for every signature), and by aws-lc-rs with the key parsed once (the
//! floor, and what tollgate does). The goal: the extra cost (one proof verification,
//! a thumbprint, a replay-store insert) ≤ 1.05 × that one signature. Measured by criterion,
//! and in alternating rounds printed as `paired` lines.
//!
//! `cargo bench -p tollgate-jwt --bench dpop`

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::Request;
use http::request::Parts;
use jsonwebtoken::DecodingKey;
use serde_json::json;
use tollgate_core::Authenticator;
use tollgate_jwt::{Algorithm, Dpop, Issuer, JwtAuth, LocalKeys};
use tollgate_testkit::{DpopKey, SigningKey, alternating, quartiles};

const ISS: &str = "https://issuer.bench";
const AUD: &str = "bench-api";
const HTU: &str = "https://api.bench/orders";

fn parts(authorization: &str, proof: Option<&str>) -> Parts {
    let mut req = Request::builder()
        .uri("/orders")
        .header("host", "api.bench")
        .header("authorization", authorization);
    if let Some(proof) = proof {
        req = req.header("dpop", proof);
    }
    req.body(()).unwrap().into_parts().0
}

fn dpop(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer_key = SigningKey::generate("k1", Algorithm::ES256);
    let jwks = json!({ "keys": [issuer_key.jwk()] }).to_string();
    let token = |cnf: Option<serde_json::Value>| {
        let mut claims = json!({
            "iss": ISS, "aud": AUD, "sub": "user-1", "exp": 4_000_000_000u64,
            "iat": 1_700_000_000u64, "scope": "orders:read",
        });
        if let Some(cnf) = cnf {
            claims["cnf"] = cnf;
        }
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        issuer_key.sign(header, &claims)
    };
    let plain = token(None);
    let bearer = format!("Bearer {plain}");
    for (alg, name) in [
        (Algorithm::ES256, "ES256"),
        (Algorithm::EdDSA, "EdDSA"),
        (Algorithm::PS256, "PS256"),
        (Algorithm::RS256, "RS256"),
    ] {
        // A fresh authenticator for each algorithm: every one starts with an empty replay
        // memory, and none measures in the memory the ones before it filled.
        let auth = rt
            .block_on(
                JwtAuth::builder()
                    .issuer(
                        Issuer::local_keys(ISS, LocalKeys::new().jwks(&jwks).unwrap())
                            .audience(AUD)
                            .dpop(Dpop::allowed().proof_window(Duration::from_secs(600))),
                    )
                    .verified_token_cache(1_000, Duration::from_secs(600))
                    .build(),
            )
            .unwrap();
        let key = DpopKey::generate(alg);
        let bound = token(Some(key.cnf()));
        let scheme = format!("DPoP {bound}");
        let proof = || key.proof("GET", HTU).access_token(&bound).build();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk().clone()).unwrap();
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        let parsed = parsed_key(key.jwk(), alg);
        // The signature of a proof never seen before, as the DPoP side verifies one: by
        // jsonwebtoken, which parses its key for every signature, or by aws-lc-rs with the
        // key parsed once (the floor, and what tollgate does).
        let bare_verify = |proof: &str| {
            let (message, signature) = proof.rsplit_once('.').unwrap();
            assert!(
                jsonwebtoken::crypto::verify(signature, message.as_bytes(), &decoding, alg)
                    .unwrap()
            )
        };
        let parsed_verify = |proof: &str| {
            let (message, signature) = proof.rsplit_once('.').unwrap();
            let mut bytes = [0u8; 1032];
            let len = URL_SAFE_NO_PAD.decode_slice(signature, &mut bytes).unwrap();
            assert!(parsed.verify_sig(message.as_bytes(), &bytes[..len]).is_ok())
        };
        // Both tokens cached, so neither side pays for the token's own signature.
        rt.block_on(async {
            assert!(
                auth.authenticate(&parts(&bearer, None))
                    .await
                    .unwrap()
                    .is_some()
            );
            let first = auth.authenticate(&parts(&scheme, Some(&proof()))).await;
            assert!(first.unwrap().is_some());
        });

        let mut group = c.benchmark_group(format!("dpop/{name}"));
        group.bench_function("bare signature verification (baseline)", |b| {
            b.iter_batched(proof, |p| bare_verify(&p), BatchSize::SmallInput)
        });
        group.bench_function("bare signature verification, key parsed once", |b| {
            b.iter_batched(proof, |p| parsed_verify(&p), BatchSize::SmallInput)
        });
        group.bench_function("bearer request (cached token)", |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(auth.authenticate(&parts(&bearer, None)).await) })
        });
        group.bench_function("DPoP request (cached token, fresh proof)", |b| {
            b.to_async(&rt).iter_batched(
                || parts(&scheme, Some(&proof())),
                |parts| {
                    let auth = &auth;
                    async move { black_box(auth.authenticate(&parts).await.unwrap()) }
                },
                BatchSize::SmallInput,
            )
        });
        group.finish();

        // Paired: the extra cost of DPoP (DPoP − bearer per round) against the cost of one
        // signature (bearer + one bare verification − bearer per round), by jsonwebtoken and
        // with the key parsed once. Every request and proof is made before the rounds and
        // used once, so each side reads its own from memory alike; each is set aside after
        // use and freed after the rounds, as a server frees a request after its handler and
        // not in the authenticator (hyper's header values share its read buffer, where the
        // bench's each have their own allocation).
        let calls = 50;
        let rounds = 100;
        let pool = |n: usize, make: &dyn Fn() -> Parts| {
            RefCell::new((0..n).map(|_| make()).collect::<Vec<_>>())
        };
        let bearers = pool(5 * calls * rounds, &|| parts(&bearer, None));
        let dpops = pool(calls * rounds, &|| parts(&scheme, Some(&proof())));
        let proofs = RefCell::new((0..2 * calls * rounds).map(|_| proof()).collect::<Vec<_>>());
        let spent_requests = RefCell::new(Vec::with_capacity(6 * calls * rounds));
        let spent_proofs = RefCell::new(Vec::with_capacity(2 * calls * rounds));
        let request = |pool: &RefCell<Vec<Parts>>| {
            let parts = pool.borrow_mut().pop().unwrap();
            let auth = &auth;
            let spent = &spent_requests;
            async move {
                black_box(auth.authenticate(&parts).await.unwrap());
                spent.borrow_mut().push(parts);
            }
        };
        let plain_request = async || request(&bearers).await;
        let dpop_request = async || request(&dpops).await;
        // All differences from the same stretch of time, a round of each in turn: the
        // machine's speed drifts by more than the few percent measured.
        let (mut extra, mut jwt_sig, mut parsed_sig) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let verifiers = [
                (&mut jwt_sig, &bare_verify as &dyn Fn(&str)),
                (&mut parsed_sig, &parsed_verify),
            ];
            for (series, verify) in verifiers {
                let plain_and_signature = async || {
                    request(&bearers).await;
                    let proof = proofs.borrow_mut().pop().unwrap();
                    verify(&proof);
                    spent_proofs.borrow_mut().push(proof);
                };
                for (a, b) in rt.block_on(alternating(
                    plain_request,
                    plain_and_signature,
                    calls as u32,
                    1,
                )) {
                    series.push(b - a);
                }
            }
            for (a, b) in rt.block_on(alternating(plain_request, dpop_request, calls as u32, 1)) {
                extra.push(b - a);
            }
        }
        let per_round =
            |sig: &[f64]| quartiles(extra.iter().zip(sig).map(|(e, s)| e / s).collect());
        let (by_jwt, by_parsed) = (per_round(&jwt_sig), per_round(&parsed_sig));
        let (extra, jwt_sig, parsed_sig) =
            (quartiles(extra), quartiles(jwt_sig), quartiles(parsed_sig));
        println!(
            "dpop/{name}, paired: extra cost of a DPoP request {:.2} µs (quartiles {:.2}–{:.2}); one bare {name} verification by jsonwebtoken {:.2} µs, ratio {:.3} (per round {:.3}, quartiles {:.3}–{:.3}); key parsed once {:.2} µs, ratio {:.3} (per round {:.3}, quartiles {:.3}–{:.3})",
            extra.1 * 1e6,
            extra.0 * 1e6,
            extra.2 * 1e6,
            jwt_sig.1 * 1e6,
            extra.1 / jwt_sig.1,
            by_jwt.1,
            by_jwt.0,
            by_jwt.2,
            parsed_sig.1 * 1e6,
            extra.1 / parsed_sig.1,
            by_parsed.1,
            by_parsed.0,
            by_parsed.2,
        );
    }
}

/// The proof key as aws-lc-rs parses it once, with jsonwebtoken's parameters for `alg`.
fn parsed_key(jwk: &serde_json::Value, alg: Algorithm) -> ParsedPublicKey {
    let part = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    match alg {
        Algorithm::ES256 => {
            let point = [&[4][..], &part("x"), &part("y")].concat();
            ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).unwrap()
        }
        Algorithm::EdDSA => ParsedPublicKey::new(&signature::ED25519, part("x")).unwrap(),
        Algorithm::PS256 | Algorithm::RS256 => {
            let params = match alg {
                Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                _ => &signature::RSA_PKCS1_2048_8192_SHA256,
            };
            signature::RsaPublicKeyComponents {
                n: part("n"),
                e: part("e"),
            }
            .to_parsed_public_key(params)
            .unwrap()
        }
        _ => unreachable!("not benched"),
    }
}

criterion_group!(benches, dpop);
criterion_main!(benches);
