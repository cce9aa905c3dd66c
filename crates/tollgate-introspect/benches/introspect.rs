//! What introspection costs: a cached verdict against an API-key cache hit (the same engine;
//! paired), and a miss (cache off) against a bare `reqwest` POST of the same form to the same
//! local endpoint (paired), both through a tower service as a request would go.
//!
//! `cargo bench -p tollgate-introspect`

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use tollgate_apikey::{ApiKeyAuth, KeyInfo, StaticKeys};
use tollgate_client::ClientCredentials;
use tollgate_core::AuthLayer;
use tollgate_introspect::{CachePolicy, Introspection};
use tollgate_testkit::{DEFAULT_AUDIENCE, MockIdp, alternating, quartiles};
use tower::{Service, ServiceBuilder, ServiceExt};

fn trivial()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    })
}

fn request(header: &str, value: &str) -> Request<()> {
    Request::builder().header(header, value).body(()).unwrap()
}

fn report(what: &str, ratios: Vec<f64>) {
    let (p25, median, p75) = quartiles(ratios);
    println!("{what} = {median:.3} (interquartile {p25:.3}–{p75:.3})");
}

fn introspection(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let idp = rt.block_on(MockIdp::start());
    idp.register_client("bench", "bench-secret");
    let token = idp.opaque_token().claim("scope", "orders:read").issue();
    let build = |policy: CachePolicy| {
        rt.block_on(
            Introspection::builder(idp.issuer())
                .client_credentials(ClientCredentials::new("bench").secret_basic("bench-secret"))
                .audience(DEFAULT_AUDIENCE)
                .cache(policy)
                .build(),
        )
        .unwrap()
    };
    let cached = ServiceBuilder::new()
        .layer(AuthLayer::new(build(CachePolicy::default())))
        .service(trivial());
    let uncached = ServiceBuilder::new()
        .layer(AuthLayer::new(build(CachePolicy::disabled())))
        .service(trivial());
    let key = "sk_live_0123456789abcdefghij";
    let keys = StaticKeys::new().key(key, KeyInfo::new("key").scopes(["orders:read"]));
    let api_key = ServiceBuilder::new()
        .layer(AuthLayer::new(ApiKeyAuth::builder(keys).build()))
        .service(trivial());
    let bearer = format!("Bearer {token}");

    let introspect_hit = async || {
        let res = cached
            .clone()
            .oneshot(request("authorization", &bearer))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        black_box(res);
    };
    let api_key_hit = async || {
        let res = api_key
            .clone()
            .oneshot(request("x-api-key", key))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        black_box(res);
    };
    let client = reqwest::Client::new();
    let url = idp.introspection_url();
    let bare_post = async || {
        let res = client
            .post(&url)
            .basic_auth("bench", Some("bench-secret"))
            .header("accept", "application/json")
            .form(&[
                ("token", token.as_str()),
                ("token_type_hint", "access_token"),
            ])
            .send()
            .await
            .unwrap();
        black_box(res.bytes().await.unwrap());
    };
    // The same POST with the per-request timeout the fetch path sets, for the part of the
    // gap that is the timer (tokio wakes its driver whenever a timer lands in an empty wheel).
    let bare_post_timeout = async || {
        let res = client
            .post(&url)
            .timeout(std::time::Duration::from_secs(2))
            .basic_auth("bench", Some("bench-secret"))
            .header("accept", "application/json")
            .form(&[
                ("token", token.as_str()),
                ("token_type_hint", "access_token"),
            ])
            .send()
            .await
            .unwrap();
        black_box(res.bytes().await.unwrap());
    };
    let miss = async || {
        let res = uncached
            .clone()
            .oneshot(request("authorization", &bearer))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        black_box(res);
    };
    rt.block_on(async {
        introspect_hit().await;
        api_key_hit().await;
    });

    let mut group = c.benchmark_group("introspect");
    group.bench_function("API-key cache hit (baseline)", |b| {
        b.to_async(&rt).iter(api_key_hit)
    });
    group.bench_function("introspection cache hit", |b| {
        b.to_async(&rt).iter(introspect_hit)
    });
    group.bench_function("bare reqwest POST of the form (baseline)", |b| {
        b.to_async(&rt).iter(bare_post)
    });
    group.bench_function("introspection miss, cache off", |b| {
        b.to_async(&rt).iter(miss)
    });
    group.finish();

    let rounds = rt.block_on(alternating(api_key_hit, introspect_hit, 5_000, 40));
    report(
        "introspect/hit, paired: introspection / API-key hit",
        rounds.iter().map(|(a, b)| b / a).collect(),
    );
    let rounds = rt.block_on(alternating(&bare_post, miss, 200, 40));
    report(
        "introspect/miss over loopback, paired: layer / bare POST",
        rounds.iter().map(|(a, b)| b / a).collect(),
    );
    let rounds = rt.block_on(alternating(&bare_post, bare_post_timeout, 200, 40));
    report(
        "introspect/miss over loopback, paired: bare POST with a timeout / bare POST",
        rounds.iter().map(|(a, b)| b / a).collect(),
    );
}

criterion_group!(benches, introspection);
criterion_main!(benches);
