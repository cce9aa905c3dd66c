//! What JWT verification costs through tollgate against bare `jsonwebtoken::decode` of the
//! same token with the right key, per algorithm; a verified-token-cache hit against a full
//! RS256 verification; and the memory of a cached verified token. The per-algorithm ratios
//! are also measured in alternating rounds and printed as `paired` lines.
//!
//! `cargo bench -p tollgate-jwt`

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use jsonwebtoken::{DecodingKey, Header, Validation};
use serde_json::{Value, json};
use tollgate_core::AuthLayer;
use tollgate_jwt::{Algorithm, Issuer, JwtAuth, LocalKeys};
use tollgate_testkit::{SigningKey, alternating, quartiles};
use tower::{ServiceBuilder, ServiceExt};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const ISS: &str = "https://issuer.bench";
const AUD: &str = "bench-api";

fn claims(sub: &str) -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": sub, "exp": 4_000_000_000u64, "iat": 1_700_000_000u64,
        "scope": "orders:read orders:write", "client_id": "bench-client", "jti": "abc-123"
    })
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg());
    header.kid = Some(key.kid().to_owned());
    key.sign(header, claims)
}

async fn auth_for(key: &SigningKey, cache: bool) -> JwtAuth {
    let jwks = json!({ "keys": [key.jwk()] }).to_string();
    let mut builder = JwtAuth::builder()
        .issuer(Issuer::local_keys(ISS, LocalKeys::new().jwks(&jwks).unwrap()).audience(AUD));
    if cache {
        builder = builder.verified_token_cache(200_000, Duration::from_secs(3600));
    }
    builder.build().await.unwrap()
}

fn bare_validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_audience(&[AUD]);
    v.set_issuer(&[ISS]);
    v.validate_nbf = true;
    v
}

fn verification(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (alg, name) in [
        (Algorithm::RS256, "RS256"),
        (Algorithm::PS256, "PS256"),
        (Algorithm::ES256, "ES256"),
        (Algorithm::EdDSA, "EdDSA"),
    ] {
        let key = SigningKey::generate("k1", alg);
        let token = sign(&key, &claims("user-1"));
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk()).unwrap();
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        let validation = bare_validation(alg);
        let auth = rt.block_on(auth_for(&key, false));
        let svc = ServiceBuilder::new()
            .layer(AuthLayer::new(auth.clone()))
            .service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>(Response::new(bytes::Bytes::new()))
            });
        let request = || {
            Request::builder()
                .header("authorization", format!("Bearer {token}"))
                .body(())
                .unwrap()
        };
        assert!(jsonwebtoken::decode::<Value>(&token, &decoding, &validation).is_ok());
        assert!(rt.block_on(auth.verify(&token)).is_ok());

        let mut group = c.benchmark_group(format!("jwt/{name}"));
        group.bench_function("bare jsonwebtoken::decode (baseline)", |b| {
            b.iter(|| {
                black_box(
                    jsonwebtoken::decode::<Value>(black_box(&token), &decoding, &validation)
                        .unwrap(),
                )
            })
        });
        group.bench_function("tollgate JwtAuth::verify", |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(auth.verify(black_box(&token)).await.unwrap()) })
        });
        group.bench_function("request through JwtLayer", |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(svc.clone().oneshot(request()).await.unwrap()) })
        });
        group.finish();

        // The same ratios in alternating rounds, which cancel the machine's drift between
        // criterion's runs of the two sides. The request through the layer is compared with
        // the same request whose token a bare middleware would take from the header and
        // decode.
        let mut bare = async || {
            black_box(
                jsonwebtoken::decode::<Value>(black_box(&token), &decoding, &validation).unwrap(),
            );
        };
        let mut bare_request = async || {
            let req = request();
            let header = req.headers()["authorization"].to_str().unwrap();
            let token = header.strip_prefix("Bearer ").unwrap();
            black_box(jsonwebtoken::decode::<Value>(token, &decoding, &validation).unwrap());
        };
        let verify = async || {
            black_box(auth.verify(black_box(&token)).await.unwrap());
        };
        let through_layer = async || {
            black_box(svc.clone().oneshot(request()).await.unwrap());
        };
        let ratio =
            |rounds: Vec<(f64, f64)>| quartiles(rounds.iter().map(|(a, b)| b / a).collect()).1;
        let verify = ratio(rt.block_on(alternating(&mut bare, verify, 100, 40)));
        let layer = ratio(rt.block_on(alternating(&mut bare_request, through_layer, 100, 40)));
        println!(
            "jwt/{name}, paired: JwtAuth::verify / bare decode = {verify:.3}, request through JwtLayer / the same request decoded bare = {layer:.3}"
        );
    }
}

fn cached(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = SigningKey::generate("k1", Algorithm::RS256);
    let token = sign(&key, &claims("user-1"));
    let full = rt.block_on(auth_for(&key, false));
    let with_cache = rt.block_on(auth_for(&key, true));
    rt.block_on(with_cache.verify(&token)).unwrap();
    let mut group = c.benchmark_group("jwt/verified-token cache");
    group.bench_function("full RS256 verification (baseline)", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(full.verify(&token).await.unwrap()) })
    });
    group.bench_function("cache hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(with_cache.verify(&token).await.unwrap()) })
    });
    group.finish();
}

fn memory(_: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let key = SigningKey::generate("k1", Algorithm::EdDSA);
        let auth = auth_for(&key, true).await;
        let tokens: Vec<String> = (0..100_000)
            .map(|i| sign(&key, &claims(&format!("user-{i}"))))
            .collect();
        // The claims JSON held by each principal is the token's own data; measure it apart.
        let claims_bytes = {
            let before = LIVE.load(Ordering::Relaxed);
            let kept: Vec<Value> = (0..1000).map(|i| claims(&format!("user-{i}"))).collect();
            let per = (LIVE.load(Ordering::Relaxed) - before) / 1000;
            drop(kept);
            per
        };
        let before = LIVE.load(Ordering::Relaxed);
        for t in &tokens {
            auth.verify(t).await.unwrap();
        }
        let per = (LIVE.load(Ordering::Relaxed) - before) / 100_000;
        println!(
            "jwt/memory: {per} bytes per cached verified token, of which {claims_bytes} are the \
             token's claims (8 claims) and {} tollgate's own",
            per - claims_bytes
        );
    });
}

criterion_group!(benches, verification, cached, memory);
criterion_main!(benches);
