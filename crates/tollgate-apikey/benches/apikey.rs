//! What the API-key layer costs: a cache hit against the same service without the layer
//! (one hot key, and 100 000 keys hit at random, with SHA-256 and moka's own lookup as the
//! floor), a miss against a local key service against a bare `reqwest` POST of the same body,
//! and the memory of a cached entry. Besides criterion's figures, the random hit and the miss
//! are measured in alternating rounds (see [`alternating`]), printed as `paired` lines.
//!
//! `cargo bench -p tollgate-apikey`

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use tollgate_apikey::{
    ApiKeyAuth, CachePolicy, KeyInfo, KeyVerifier, UnkeyVerifier, UpstreamError, Verdict,
};
use tollgate_core::{AuthLayer, Authenticator, CredentialDigest};
use tollgate_testkit::{MockKey, MockKeyService, alternating, quartiles};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Counts live heap bytes, to measure the memory of cache entries.
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

/// Says every key is valid, without I/O (so misses measure the cache, not a network).
struct AllValid;

impl KeyVerifier for AllValid {
    async fn verify(&self, key: &str) -> Result<Verdict, UpstreamError> {
        Ok(Verdict::Valid(
            KeyInfo::new(format!("key_{}", &key[key.len() - 6..])).scopes(["orders:read"]),
        ))
    }
}

fn trivial()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    })
}

fn request(key: &str) -> Request<()> {
    Request::builder()
        .header("x-api-key", key)
        .body(())
        .unwrap()
}

fn key(i: usize) -> String {
    format!("sk_live_{i:032}")
}

fn cache_hits(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let auth = ApiKeyAuth::builder(AllValid).build();
    let bare = trivial();
    let layered = ServiceBuilder::new()
        .layer(AuthLayer::new(auth.clone()))
        .service(trivial());
    let hot = key(7);
    rt.block_on(async {
        for i in 0..100_000 {
            let res = layered.clone().oneshot(request(&key(i))).await.unwrap();
            assert_eq!(res.status(), 200);
        }
    });

    let mut group = c.benchmark_group("apikey/hit");
    group.bench_function("no layer (baseline)", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(bare.clone().oneshot(request(&hot)).await.unwrap()) })
    });
    group.bench_function("layer, one hot key", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(layered.clone().oneshot(request(&hot)).await.unwrap()) })
    });
    // The same random requests with and without the layer. Each key is formatted afresh, as
    // a server's header bytes arrive fresh from the socket: read from a table of 100 000
    // strings, the key itself would be a cache miss that the layer's own memory traffic makes
    // several times slower, and that would be counted as the layer's cost.
    let mut random_key = scrambler();
    group.bench_function("no layer, random key (baseline)", |b| {
        b.to_async(&rt).iter(|| {
            let req = request(&random_key());
            let svc = bare.clone();
            async move { black_box(svc.oneshot(req).await.unwrap()) }
        })
    });
    group.bench_function("layer, random key of 100 000", |b| {
        b.to_async(&rt).iter(|| {
            let req = request(&random_key());
            let svc = layered.clone();
            async move { black_box(svc.oneshot(req).await.unwrap()) }
        })
    });
    group.finish();

    // The floor under the random-key line: what any API-key check that caches as the product
    // requires pays, the SHA-256 of the key and one moka lookup among 100 000 (the same
    // random requests, the key read from the header, no layer).
    let floor: moka::future::Cache<CredentialDigest, Arc<u64>> =
        moka::future::Cache::builder().max_capacity(100_000).build();
    rt.block_on(async {
        for i in 0..100_000 {
            floor
                .insert(CredentialDigest::of(&key(i)), Arc::new(i as u64))
                .await;
        }
        floor.run_pending_tasks().await;
    });

    // Criterion's runs of the two sides are minutes apart, and random lookups in 50 MB of
    // cache entries swing by ±30 % over minutes on a shared VM (memory latency), more than
    // the overhead measured: the overheads are also measured in alternating rounds of 5 000.
    let (mut base_key, mut layer_key, mut floor_key) = (scrambler(), scrambler(), scrambler());
    let mut baseline = async || {
        black_box(bare.clone().oneshot(request(&base_key())).await.unwrap());
    };
    let through_layer = async || {
        black_box(
            layered
                .clone()
                .oneshot(request(&layer_key()))
                .await
                .unwrap(),
        );
    };
    let sha_and_moka = async || {
        let req = request(&floor_key());
        let key = req.headers()["x-api-key"].to_str().unwrap();
        black_box(floor.get(&CredentialDigest::of(key)).await.unwrap());
        black_box(req);
    };
    let rounds = rt.block_on(alternating(&mut baseline, through_layer, 5_000, 40));
    report(
        "apikey/hit, random key, paired: layer − no layer",
        &overheads(&rounds),
    );

    // The hot key, paired; and the same behind a boxed authenticator (the object-safe form,
    // for setups chosen at run time), paired against the plain one.
    let boxed = ServiceBuilder::new()
        .layer(AuthLayer::new(auth.clone().boxed()))
        .service(trivial());
    let bare_hot = async || {
        black_box(bare.clone().oneshot(request(&hot)).await.unwrap());
    };
    let mut layer_hot = async || {
        black_box(layered.clone().oneshot(request(&hot)).await.unwrap());
    };
    let boxed_hot = async || {
        black_box(boxed.clone().oneshot(request(&hot)).await.unwrap());
    };
    let rounds = rt.block_on(alternating(bare_hot, &mut layer_hot, 5_000, 40));
    report(
        "apikey/hit, hot key, paired: layer − no layer",
        &overheads(&rounds),
    );
    let rounds = rt.block_on(alternating(&mut layer_hot, boxed_hot, 5_000, 40));
    report(
        "apikey/hit, hot key, paired: boxed authenticator − plain",
        &overheads(&rounds),
    );
    let rounds = rt.block_on(alternating(&mut baseline, sha_and_moka, 5_000, 40));
    report(
        "apikey/hit, random key, paired: SHA-256 + moka get − no layer (the floor)",
        &overheads(&rounds),
    );
}

/// Random key indices among 100 000, a cheap scramble: consecutive calls touch distant
/// entries.
fn scrambler() -> impl FnMut() -> String {
    let mut n = 0usize;
    move || {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        key((n >> 33) % 100_000)
    }
}

fn misses(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let service = rt.block_on(MockKeyService::start());
    service.add_key(
        "sk_live_bench",
        MockKey::new("key_bench").permissions(["orders:read"]),
    );
    let url = format!("{}/v2/keys.verifyKey", service.unkey_base_url());
    let client = reqwest::Client::new();
    let auth = ApiKeyAuth::builder(UnkeyVerifier::new("root").base_url(service.unkey_base_url()))
        .cache(CachePolicy::disabled())
        .build();
    let layered = ServiceBuilder::new()
        .layer(AuthLayer::new(auth))
        .service(trivial());

    let bare_post = async || {
        let res = client
            .post(&url)
            .bearer_auth("root")
            .json(&serde_json::json!({"key": "sk_live_bench"}))
            .send()
            .await
            .unwrap();
        black_box(res.bytes().await.unwrap());
    };
    let through_layer = async || {
        let res = layered
            .clone()
            .oneshot(request("sk_live_bench"))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        black_box(res);
    };

    let mut group = c.benchmark_group("apikey/miss over loopback");
    group.bench_function("bare reqwest POST (baseline)", |b| {
        b.to_async(&rt).iter(bare_post)
    });
    group.bench_function("layer, cache off", |b| b.to_async(&rt).iter(through_layer));
    group.finish();

    let rounds = rt.block_on(alternating(bare_post, through_layer, 200, 40));
    let ratios = rounds.iter().map(|(a, b)| b / a).collect();
    let (p25, median, p75) = quartiles(ratios);
    println!(
        "apikey/miss over loopback, paired: layer / bare POST = {median:.3} (interquartile {p25:.3}–{p75:.3})"
    );
}

/// What `b` costs more than `a` per call, in µs, round by round.
fn overheads(rounds: &[(f64, f64)]) -> Vec<f64> {
    rounds.iter().map(|(a, b)| (b - a) * 1e6).collect()
}

fn report(what: &str, overheads: &[f64]) {
    let (p25, median, p75) = quartiles(overheads.to_vec());
    println!("{what} = {median:.2} µs (interquartile {p25:.2}–{p75:.2})");
}

fn memory(_: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let auth = ApiKeyAuth::builder(AllValid).build();
        let svc = ServiceBuilder::new().layer(AuthLayer::new(auth.clone())).service(trivial());
        let keys: Vec<String> = (0..100_000).map(|i| key(i + 1_000_000)).collect();
        let before = LIVE.load(Ordering::Relaxed);
        for k in &keys {
            svc.clone().oneshot(request(k)).await.unwrap();
        }
        assert_eq!(auth.cached_entries().await, 100_000);
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        println!(
            "apikey/memory: {} bytes per cached entry (100 000 entries; principal with a key id and one scope)",
            bytes / 100_000
        );
    });
}

criterion_group!(benches, cache_hits, misses, memory);
criterion_main!(benches);
