//! What a key-service outage costs the requests that need it: latencies with the key
//! service hanging (Unkey timeout 1 s, stale-on-error on), for keys cached but past their TTL
//! (served stale) and keys never seen (503), while the first calls wait out their timeout and
//! once the breaker has opened; then how soon a recovered service is used again.
//!
//! `cargo bench -p tollgate-apikey --bench outage`

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tollgate_apikey::{ApiKeyAuth, BreakerPolicy, CachePolicy, UnkeyVerifier};
use tollgate_core::AuthLayer;
use tollgate_testkit::{Fault, MockKey, MockKeyService, quartiles};
use tower::{ServiceBuilder, ServiceExt};

const TIMEOUT: Duration = Duration::from_secs(1);
const PROBE: Duration = Duration::from_secs(2);

fn request(key: &str) -> Request<()> {
    Request::builder()
        .header("x-api-key", key)
        .body(())
        .unwrap()
}

/// p50 and p99 of `times`, in ms.
fn p50_p99(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let service = MockKeyService::start().await;
        let cached: Vec<String> = (0..50).map(|i| format!("sk_live_cached_{i:04}")).collect();
        for key in &cached {
            service.add_key(key.clone(), MockKey::new("k").permissions(["orders:read"]));
        }
        let verifier = UnkeyVerifier::new("root")
            .base_url(service.unkey_base_url())
            .timeout(TIMEOUT)
            .breaker(BreakerPolicy::default().probe_interval(PROBE));
        let auth = ApiKeyAuth::builder(verifier)
            .cache(
                CachePolicy::default()
                    .ttl(Duration::from_millis(100))
                    .serve_stale_on_error(Duration::from_secs(600)),
            )
            .build();
        let svc = ServiceBuilder::new().layer(AuthLayer::new(auth.clone())).service(
            tower::service_fn(|_: Request<()>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }),
        );
        let timed = |key: String| {
            let svc = svc.clone();
            async move {
                let start = Instant::now();
                let res = svc.oneshot(request(&key)).await.unwrap();
                (start.elapsed(), res.status().as_u16())
            }
        };
        for key in &cached {
            assert_eq!(timed(key.clone()).await.1, 200);
        }
        tokio::time::sleep(Duration::from_millis(150)).await; // past the TTL

        // The service hangs. The requests already under way when it does wait their timeout.
        service.fail_with(Fault::Delay(Duration::from_secs(3600)));
        let mut first = tokio::task::JoinSet::new();
        for (i, key) in cached.iter().enumerate().take(10) {
            first.spawn(timed(key.clone()));
            first.spawn(timed(format!("sk_live_new_{i:04}")));
        }
        let first: Vec<(Duration, u16)> = first.join_all().await;
        let (stale_before, new_before): (Vec<_>, Vec<_>) =
            first.into_iter().partition(|(_, status)| *status == 200);

        // Once the breaker is open, every request is answered at once.
        let (mut stale_after, mut new_after) = (Vec::new(), Vec::new());
        for round in 0..20 {
            for (i, key) in cached.iter().enumerate().skip(10) {
                let (t, status) = timed(key.clone()).await;
                assert_eq!(status, 200, "served stale");
                stale_after.push(t);
                let (t, status) = timed(format!("sk_live_other_{round}_{i}")).await;
                assert_eq!(status, 503);
                new_after.push(t);
            }
        }
        let row = |what: &str, times: Vec<Duration>| {
            let n = times.len();
            let (p50, p99) = p50_p99(times);
            println!("outage/{what}: n {n}, p50 {p50:.3} ms, p99 {p99:.3} ms");
        };
        row("cached key (stale), before the breaker opens", stale_before.into_iter().map(|r| r.0).collect());
        row("new key (503), before the breaker opens", new_before.into_iter().map(|r| r.0).collect());
        row("cached key (stale), breaker open", stale_after);
        row("new key (503), breaker open", new_after);
        println!(
            "outage/requests that reached the key service while it hung: {} of {} (the first ones; none once the breaker was open)",
            service.requests() - cached.len(),
            20 + 2 * 800
        );

        // The service returns: how long until a new key is verified again.
        let mut recoveries = Vec::new();
        for attempt in 0..5 {
            service.fail_with(Fault::Delay(Duration::from_secs(3600)));
            let _ = timed(format!("sk_live_trip_{attempt}")).await; // a timeout: open
            tokio::time::sleep(Duration::from_millis(300 * attempt)).await;
            service.heal();
            let healed = Instant::now();
            let key = format!("sk_live_back_{attempt}");
            service.add_key(key.clone(), MockKey::new("back"));
            while timed(key.clone()).await.1 != 200 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            recoveries.push(healed.elapsed().as_secs_f64());
        }
        let (p25, median, p75) = quartiles(recoveries.clone());
        println!(
            "outage/recovery after the service returns: median {median:.2} s (interquartile {p25:.2}–{p75:.2}, max {:.2}), probe interval {:.0} s",
            recoveries.iter().copied().fold(0.0, f64::max),
            PROBE.as_secs_f64()
        );
    });
}
