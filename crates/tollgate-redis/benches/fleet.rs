//! What the fleet costs, against a real `redis-server` started by the bench: the local hit
//! with the Redis store configured against the same without it; a shared-verdict hit (a local
//! miss answered by Redis) against a bare `GET` with the same client crate; the revocation
//! fan-out delay across replicas; and the JWT revocation check on the hot path. Paired lines
//! come from alternating rounds ([`alternating`]).
//!
//! `cargo bench -p tollgate-redis` (needs `redis-server` on the PATH)

use std::collections::HashSet;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use fred::prelude::{ClientLike, KeysInterface};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, Header};
use serde_json::json;
use tollgate_apikey::{
    ApiKeyAuth, CachePolicy, Denial, KeyInfo, KeyVerifier, UpstreamError, Verdict,
};
use tollgate_core::{AuthLayer, Authenticator};
use tollgate_jwt::{Issuer, JwtAuth, LocalKeys};
use tollgate_redis::{RedisStore, RevocationList};
use tollgate_testkit::{RedisServer, SigningKey, alternating, quartiles};
use tower::{Service, ServiceBuilder, ServiceExt};

const SECRET: &str = "a fleet secret of at least 32 bytes for the benches";

/// Valid unless revoked, without I/O: the key service is not what is measured.
#[derive(Default)]
struct Keys(Mutex<HashSet<String>>);

impl KeyVerifier for &'static Keys {
    async fn verify(&self, key: &str) -> Result<Verdict, UpstreamError> {
        Ok(match self.0.lock().unwrap().contains(key) {
            true => Verdict::Invalid(Denial::from_code("NOT_FOUND", None)),
            false => Verdict::Valid(KeyInfo::new("key_bench").scopes(["orders:read"])),
        })
    }
}

/// A service answering with its response's status.
trait Http:
    Service<Request<()>, Response = StatusCode, Error = Infallible, Future: Send> + Clone + Sync
{
}

impl<S> Http for S where
    S: Service<Request<()>, Response = StatusCode, Error = Infallible, Future: Send> + Clone + Sync
{
}

fn behind(auth: impl Authenticator) -> impl Http {
    ServiceBuilder::new()
        .map_response(|res: Response<_>| res.status())
        .layer(AuthLayer::new(auth))
        .service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        })
}

async fn call(svc: &impl Http, header: (&str, &str)) -> StatusCode {
    let req = Request::builder()
        .header(header.0, header.1)
        .body(())
        .unwrap();
    svc.clone().oneshot(req).await.unwrap()
}

fn store(redis: &RedisServer) -> RedisStore {
    RedisStore::builder(redis.url())
        .secret(SECRET)
        .build()
        .unwrap()
}

async fn listening(stores: &[&RedisStore]) {
    while !stores.iter().all(|s| s.is_listening()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn report(what: &str, values: Vec<f64>, unit: &str) {
    let (p25, median, p75) = quartiles(values);
    println!("{what} = {median:.3}{unit} (interquartile {p25:.3}–{p75:.3})");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Some(redis) = RedisServer::start().await else {
            return;
        };
        let keys: &'static Keys = Box::leak(Box::default());
        local_hit(&redis, keys).await;
        shared_hit(&redis, keys).await;
        fan_out(&redis, keys).await;
        revocation_check(&redis).await;
    });
}

/// The local hit, with and without the store: the store is not asked on a hit.
async fn local_hit(redis: &RedisServer, keys: &'static Keys) {
    let with = behind(ApiKeyAuth::builder(keys).store(store(redis)).build());
    let without = behind(ApiKeyAuth::builder(keys).build());
    let key = ("x-api-key", "sk_live_hot_0123456789");
    assert_eq!(call(&with, key).await, 200);
    assert_eq!(call(&without, key).await, 200);
    let rounds = alternating(
        async || {
            black_box(call(&without, key).await);
        },
        async || {
            black_box(call(&with, key).await);
        },
        5_000,
        40,
    )
    .await;
    report(
        "fleet/local hit, paired: with the Redis store / without",
        rounds.iter().map(|(a, b)| b / a).collect(),
        "×",
    );
}

/// A local miss answered by Redis (local entries expire at once), against a bare `GET` of
/// the same entry with the same client crate.
async fn shared_hit(redis: &RedisServer, keys: &'static Keys) {
    let writer = behind(ApiKeyAuth::builder(keys).store(store(redis)).build());
    let key = ("x-api-key", "sk_live_shared_0123456789");
    assert_eq!(call(&writer, key).await, 200);
    let reader_auth = ApiKeyAuth::builder(keys)
        .cache(CachePolicy::default().ttl(Duration::from_nanos(1)))
        .store(store(redis))
        .build();
    let reader = behind(reader_auth.clone());
    assert_eq!(call(&reader, key).await, 200);
    let before = reader_auth.stats().store_hits;
    // The same client as the store's, alone.
    let bare = fred::prelude::Client::new(
        fred::prelude::Config::from_url(&redis.url()).unwrap(),
        None,
        None,
        None,
    );
    bare.init().await.unwrap();
    let entry: String = bare
        .custom::<Vec<String>, _>(fred::cmd!("KEYS"), vec!["{tollgate}:v:*"])
        .await
        .unwrap()
        .remove(0);
    let rounds = alternating(
        async || {
            let value: Option<Vec<u8>> = bare.get(entry.as_str()).await.unwrap();
            black_box(value.unwrap());
        },
        async || {
            black_box(call(&reader, key).await);
        },
        500,
        40,
    )
    .await;
    assert!(
        reader_auth.stats().store_hits >= before + 20_000,
        "the reader's requests were answered by Redis"
    );
    report(
        "fleet/shared hit (local miss) through the layer, paired: / bare GET",
        rounds.iter().map(|(a, b)| b / a).collect(),
        "×",
    );
}

/// From `invalidate` on one replica until the two others refuse.
async fn fan_out(redis: &RedisServer, keys: &'static Keys) {
    let replicas: Vec<_> = (0..3)
        .map(|_| {
            let store = store(redis);
            (
                ApiKeyAuth::builder(keys).store(store.clone()).build(),
                store,
            )
        })
        .collect();
    listening(&replicas.iter().map(|(_, s)| s).collect::<Vec<_>>()).await;
    let services: Vec<_> = replicas.iter().map(|(a, _)| behind(a.clone())).collect();
    let mut delays = Vec::new();
    for n in 0..300 {
        let key = format!("sk_live_fanout_{n:06}_0123456789");
        for svc in &services {
            assert_eq!(call(svc, ("x-api-key", &key)).await, 200);
        }
        keys.0.lock().unwrap().insert(key.clone());
        let start = Instant::now();
        replicas[0].0.invalidate(&key).await;
        for svc in &services[1..] {
            while call(svc, ("x-api-key", &key)).await != 401 {
                tokio::task::yield_now().await;
            }
        }
        delays.push(start.elapsed().as_secs_f64() * 1e3);
    }
    delays.sort_by(f64::total_cmp);
    let p99 = delays[delays.len() * 99 / 100];
    let (_, p50, _) = quartiles(delays);
    println!(
        "fleet/revocation fan-out, invalidate on one replica until two others refuse (300 runs): p50 {p50:.3} ms, p99 {p99:.3} ms"
    );
}

/// The JWT revocation check on a cached token: the layer with a revocation list of 10 000
/// tokens and 1 000 subjects against the same layer without one.
async fn revocation_check(redis: &RedisServer) {
    const ISS: &str = "https://issuer.bench";
    let signing = SigningKey::generate("k1", Algorithm::ES256);
    let jwks = json!({ "keys": [signing.jwk()] }).to_string();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    let token = signing.sign(
        header,
        &json!({"iss": ISS, "aud": "bench", "sub": "user-1", "exp": 4_000_000_000u64,
                "iat": 1_700_000_000u64, "jti": "jti-live"}),
    );
    let revocations = store(redis).revocations();
    let exp = SystemTime::now() + Duration::from_secs(3600);
    for i in 0..10_000 {
        let jti = format!("jti-{i}");
        revocations.revoke_token(ISS, &jti, exp).await.unwrap();
    }
    for i in 0..1_000 {
        let subject = format!("user-{}", i + 2);
        revocations
            .revoke_subject(ISS, &subject, SystemTime::now())
            .await
            .unwrap();
    }
    let jwt = async |revocations: Option<RevocationList>| {
        let issuer = Issuer::local_keys(ISS, LocalKeys::new().jwks(&jwks).unwrap());
        let mut builder = JwtAuth::builder()
            .issuer(issuer.audience("bench"))
            .verified_token_cache(1_000, Duration::from_secs(3600));
        if let Some(revocations) = revocations {
            builder = builder.revocations(revocations);
        }
        behind(builder.build().await.unwrap())
    };
    let (plain, checked) = (jwt(None).await, jwt(Some(revocations)).await);
    let bearer = format!("Bearer {token}");
    let header = ("authorization", bearer.as_str());
    assert_eq!(call(&plain, header).await, 200);
    assert_eq!(call(&checked, header).await, 200);
    let rounds = alternating(
        async || {
            black_box(call(&plain, header).await);
        },
        async || {
            black_box(call(&checked, header).await);
        },
        5_000,
        40,
    )
    .await;
    report(
        "fleet/JWT revocation check (10 000 jti, 1 000 subjects revoked), cached JWT, paired: with − without",
        rounds.iter().map(|(a, b)| (b - a) * 1e9).collect(),
        " ns",
    );
}
