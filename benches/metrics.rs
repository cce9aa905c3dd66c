//! What the feature `metrics` costs per request, on the two hottest paths: an API-key cache
//! hit and a JWT request answered by the verified-token cache (a full signature check is
//! 30–1 000 times slower, so any cost shows most there). Each is paired in alternating rounds
//! (see [`alternating`]) against the same service without the layer.
//!
//! Run it twice and compare the `layer − no layer` lines: once without the feature, once
//! with it, where the layer's handles are Prometheus's (`metrics-exporter-prometheus`, the
//! recorder installed before the first request). Built with the feature, it also pairs the
//! Prometheus-backed layer against a second one whose handles were registered with no
//! recorder installed, the cost of the counting itself.
//!
//! `cargo bench --bench metrics` and `cargo bench --bench metrics --features metrics`

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, Header};
use serde_json::json;
use tollgate::apikey::{ApiKeyAuth, KeyInfo, KeyVerifier, UpstreamError, Verdict};
use tollgate::jwt::{Issuer, JwtAuth, LocalKeys};
use tollgate::{AuthLayer, Authenticator};
use tollgate_testkit::{SigningKey, alternating, quartiles};
use tower::{Service, ServiceBuilder, ServiceExt};

const ISS: &str = "https://issuer.bench";
const AUD: &str = "bench-api";
const KEY: &str = "sk_live_00000000000000000000000000000007";

/// Says every key is valid, without I/O: a hit is measured, not a network.
struct AllValid;

impl KeyVerifier for AllValid {
    async fn verify(&self, _key: &str) -> Result<Verdict, UpstreamError> {
        Ok(Verdict::Valid(
            KeyInfo::new("key_bench").scopes(["orders:read"]),
        ))
    }
}

/// The service behind the layer.
fn ok()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    })
}

/// A service answering with the response's status (both sides alike).
trait Http:
    Service<Request<()>, Response = StatusCode, Error = Infallible, Future: Send> + Clone + Sync
{
}

impl<S> Http for S where
    S: Service<Request<()>, Response = StatusCode, Error = Infallible, Future: Send> + Clone + Sync
{
}

fn bare() -> impl Http {
    ServiceBuilder::new()
        .map_response(|res: Response<_>| res.status())
        .service(ok())
}

fn behind(auth: impl Authenticator) -> impl Http {
    ServiceBuilder::new()
        .map_response(|res: Response<_>| res.status())
        .layer(AuthLayer::new(auth))
        .service(ok())
}

fn api_keys() -> impl Http {
    behind(ApiKeyAuth::builder(AllValid).build())
}

async fn jwts(key: &SigningKey) -> impl Http {
    let jwks = json!({ "keys": [key.jwk()] }).to_string();
    let auth = JwtAuth::builder()
        .issuer(Issuer::local_keys(ISS, LocalKeys::new().jwks(&jwks).unwrap()).audience(AUD))
        .verified_token_cache(1_000, Duration::from_secs(3600))
        .build()
        .await
        .unwrap();
    behind(auth)
}

/// Not inlined, so `valgrind --tool=callgrind` can count one call of each side.
#[inline(never)]
async fn call(svc: &impl Http, header: (&'static str, &str)) -> StatusCode {
    let req = Request::builder()
        .header(header.0, header.1)
        .body(())
        .unwrap();
    svc.clone().oneshot(req).await.unwrap()
}

/// One request that must get through: also what registers a layer's handles.
async fn first(svc: &impl Http, header: (&'static str, &str)) {
    assert_eq!(call(svc, header).await, StatusCode::OK);
}

async fn pair(what: &str, header: (&'static str, &str), a: &impl Http, b: &impl Http) {
    let rounds = alternating(
        async || {
            black_box(call(a, header).await);
        },
        async || {
            black_box(call(b, header).await);
        },
        5_000,
        60,
    )
    .await;
    let (p25, median, p75) = quartiles(rounds.iter().map(|(a, b)| (b - a) * 1e9).collect());
    println!("{what} = {median:.0} ns (interquartile {p25:.0}–{p75:.0})");
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let signing = SigningKey::generate("k1", Algorithm::ES256);
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    let token = signing.sign(
        header,
        &json!({"iss": ISS, "aud": AUD, "sub": "user-1", "exp": 4_000_000_000u64,
                "scope": "orders:read"}),
    );
    let bearer = format!("Bearer {token}");
    let (api_key, jwt) = (("x-api-key", KEY), ("authorization", bearer.as_str()));
    let feature = if cfg!(feature = "metrics") {
        "metrics on"
    } else {
        "metrics off"
    };

    rt.block_on(async {
        // Handles registered now, with no recorder: they count nowhere.
        let (keys_unrecorded, jwts_unrecorded) = (api_keys(), jwts(&signing).await);
        first(&keys_unrecorded, api_key).await;
        first(&jwts_unrecorded, jwt).await;

        #[cfg(feature = "metrics")]
        let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .unwrap();
        let (keys, tokens, bare) = (api_keys(), jwts(&signing).await, bare());
        first(&keys, api_key).await;
        first(&tokens, jwt).await;

        pair(
            &format!("metrics/apikey hit, {feature}, paired: layer − no layer"),
            api_key,
            &bare,
            &keys,
        )
        .await;
        pair(
            &format!("metrics/jwt cached, {feature}, paired: layer − no layer"),
            jwt,
            &bare,
            &tokens,
        )
        .await;
        #[cfg(feature = "metrics")]
        {
            pair(
                "metrics/apikey hit, paired: Prometheus handles − unrecorded handles",
                api_key,
                &keys_unrecorded,
                &keys,
            )
            .await;
            pair(
                "metrics/jwt cached, paired: Prometheus handles − unrecorded handles",
                jwt,
                &jwts_unrecorded,
                &tokens,
            )
            .await;
            let scrape = prometheus.render();
            assert!(scrape.contains("tollgate_decisions_total"), "{scrape}");
        }
        #[cfg(not(feature = "metrics"))]
        black_box((keys_unrecorded, jwts_unrecorded));
    });
}
