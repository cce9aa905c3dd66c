//! The fleet on the two other Redis topologies, each started by the test: a Redis Cluster of
//! three primaries, and a primary with a replica behind a Sentinel that fails over when the
//! primary is killed. Replicas are configured by URL alone; the client follows the cluster's
//! slots and the Sentinel's failover.

use std::time::{Duration, Instant, SystemTime};

use tollgate_apikey::{ApiKeyAuth, UnkeyVerifier};
use tollgate_core::{AuthLayer, Remembered, ReplayStore};
use tollgate_jwt::{Issuer, JwtAuth};
use tollgate_redis::RedisStore;
use tollgate_testkit::{
    DEFAULT_AUDIENCE, MockIdp, MockKey, MockKeyService, ProtectedApp, RedisCluster, RedisSentinel,
};

const SECRET: &str = "a fleet secret of at least 32 bytes, from the environment";

/// A replica: API keys and JWTs (with fleet-wide revocation), on one store.
struct Replica {
    keys: ApiKeyAuth<UnkeyVerifier>,
    store: RedisStore,
    api: ProtectedApp,
    jwts: ProtectedApp,
}

impl Replica {
    async fn start(url: &str, keys: &MockKeyService, idp: &MockIdp) -> Replica {
        let store = RedisStore::builder(url).secret(SECRET).build().unwrap();
        let auth = ApiKeyAuth::builder(
            UnkeyVerifier::new("root")
                .base_url(keys.unkey_base_url())
                .timeout(Duration::from_secs(2)),
        )
        .store(store.clone())
        .build();
        let jwts = JwtAuth::builder()
            .issuer(Issuer::discover(idp.issuer()).audience(DEFAULT_AUDIENCE))
            .revocations(store.revocations())
            .build()
            .await
            .unwrap();
        Replica {
            api: ProtectedApp::start(AuthLayer::new(auth.clone())).await,
            jwts: ProtectedApp::start(AuthLayer::new(jwts)).await,
            keys: auth,
            store,
        }
    }

    async fn status(&self, key: &str) -> u16 {
        self.api
            .with_header("x-api-key", key)
            .await
            .status()
            .as_u16()
    }

    async fn bearer(&self, token: &str) -> u16 {
        self.jwts.bearer(token).await.status().as_u16()
    }
}

fn key(n: usize) -> String {
    format!("sk_live_topology_{n:04}_0123456789")
}

async fn until(deadline: Duration, mut done: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

async fn listening(replicas: &[&Replica]) {
    let all = until(Duration::from_secs(15), async || {
        replicas.iter().all(|r| r.store.is_listening())
    });
    assert!(all.await, "the replicas did not subscribe");
}

/// What every topology must do: one verification for a key used on both replicas, an
/// invalidation and a JWT revocation heard by the other, one-time values shared.
async fn shares_and_fans_out(
    a: &Replica,
    b: &Replica,
    keys: &MockKeyService,
    idp: &MockIdp,
    n: usize,
) {
    let shared = key(n);
    keys.add_key(&shared, MockKey::new(format!("key_{n}")));
    let before = keys.requests();
    assert_eq!(a.status(&shared).await, 200);
    assert_eq!(b.status(&shared).await, 200);
    assert_eq!(keys.requests(), before + 1, "B found A's verdict in Redis");

    keys.revoke(&shared);
    a.keys.invalidate(&shared).await;
    let refused = until(Duration::from_secs(2), async || {
        b.status(&shared).await == 401
    });
    assert!(refused.await, "B still accepts the invalidated key");

    let jti = format!("jti-{n}");
    let token = idp.token().claim("jti", jti.as_str()).sign();
    assert_eq!(a.bearer(&token).await, 200);
    let exp = SystemTime::now() + Duration::from_secs(3600);
    b.store
        .revocations()
        .revoke_token(&idp.issuer(), &jti, exp)
        .await
        .unwrap();
    let revoked = until(Duration::from_secs(2), async || {
        a.bearer(&token).await == 401
    });
    assert!(revoked.await, "A still accepts the revoked jti");

    let once = format!("proof-{n}");
    let minute = Duration::from_secs(60);
    assert_eq!(a.store.first_use(&once, minute).await, Remembered::New);
    assert_eq!(
        b.store.first_use(&once, minute).await,
        Remembered::Replayed,
        "replayed to B"
    );
}

#[tokio::test]
async fn fleet_on_a_redis_cluster_shares_verdicts_revocations_and_one_time_values() {
    let Some(cluster) = RedisCluster::start().await else {
        return;
    };
    let (keys, idp) = (MockKeyService::start().await, MockIdp::start().await);
    let a = Replica::start(&cluster.url(), &keys, &idp).await;
    let b = Replica::start(&cluster.url(), &keys, &idp).await;
    listening(&[&a, &b]).await;
    shares_and_fans_out(&a, &b, &keys, &idp, 1).await;

    // A replica started later reads the revocations stored so far (SCAN and MGET, on the
    // node of the fleet's slot).
    let token = idp.token().claim("jti", "jti-1").sign();
    let c = Replica::start(&cluster.url(), &keys, &idp).await;
    listening(&[&c]).await;
    assert_eq!(
        c.bearer(&token).await,
        401,
        "C's snapshot lacks the revocation"
    );

    // invalidate_all empties the shared verdicts across the cluster.
    keys.add_key(key(2), MockKey::new("key_2"));
    assert_eq!(a.status(&key(2)).await, 200);
    a.keys.invalidate_all().await;
    let before = keys.requests();
    assert_eq!(c.status(&key(2)).await, 200);
    assert_eq!(
        keys.requests(),
        before + 1,
        "the shared verdict outlived invalidate_all"
    );
}

#[tokio::test]
async fn fleet_behind_sentinel_follows_a_failover_without_a_restart() {
    let Some(mut set) = RedisSentinel::start().await else {
        return;
    };
    let (keys, idp) = (MockKeyService::start().await, MockIdp::start().await);
    let a = Replica::start(&set.url(), &keys, &idp).await;
    let b = Replica::start(&set.url(), &keys, &idp).await;
    listening(&[&a, &b]).await;
    shares_and_fans_out(&a, &b, &keys, &idp, 1).await;

    // The primary dies; the Sentinel promotes the replica. Nothing fails because of Redis
    // meanwhile.
    keys.add_key(key(2), MockKey::new("key_2"));
    set.kill_primary().await;
    assert_eq!(a.status(&key(2)).await, 200);
    assert_eq!(b.status(&key(2)).await, 200);

    // Both replicas find the new primary by themselves, and the fleet works again.
    listening(&[&a, &b]).await;
    let mut n = 100;
    let healed = until(Duration::from_secs(20), async || {
        n += 1;
        let probe = key(n);
        keys.add_key(&probe, MockKey::new("probe"));
        let before = keys.requests();
        let shared = a.status(&probe).await == 200
            && b.status(&probe).await == 200
            && keys.requests() == before + 1;
        keys.revoke(&probe);
        a.keys.invalidate(&probe).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        shared && b.status(&probe).await == 401
    });
    assert!(healed.await, "the fleet did not follow the failover");
    shares_and_fans_out(&a, &b, &keys, &idp, 500).await;
}
