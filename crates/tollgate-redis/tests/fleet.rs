//! Three replicas (three tollgate stacks, each served on its own port) sharing one real
//! `redis-server` started by the test, in front of one key service: verdicts shared,
//! revocations fanned out, Redis killed and started again, forged entries refused.

use fred::prelude::{ClientLike, KeysInterface};
use std::time::{Duration, Instant};

use tollgate_apikey::{ApiKeyAuth, UnkeyVerifier};
use tollgate_client::ClientCredentials;
use tollgate_core::{AuthLayer, Remembered, ReplayStore};
use tollgate_introspect::Introspection;
use tollgate_jwt::{Issuer, JwtAuth};
use tollgate_redis::{RedisStore, RevocationList};
use tollgate_testkit::{
    DEFAULT_AUDIENCE, MockIdp, MockKey, MockKeyService, ProtectedApp, RedisServer, quartiles,
};

const SECRET: &str = "a fleet secret of at least 32 bytes, from the environment";

struct Replica {
    auth: ApiKeyAuth<UnkeyVerifier>,
    store: RedisStore,
    app: ProtectedApp,
}

impl Replica {
    async fn start(redis: &RedisServer, keys: &MockKeyService) -> Replica {
        let store = RedisStore::builder(redis.url())
            .secret(SECRET)
            .build()
            .unwrap();
        let auth = ApiKeyAuth::builder(
            UnkeyVerifier::new("root")
                .base_url(keys.unkey_base_url())
                .timeout(Duration::from_secs(2)),
        )
        .store(store.clone())
        .build();
        let app = ProtectedApp::start(AuthLayer::new(auth.clone())).await;
        Replica { auth, store, app }
    }

    async fn status(&self, key: &str) -> u16 {
        self.app
            .with_header("x-api-key", key)
            .await
            .status()
            .as_u16()
    }
}

async fn fleet(redis: &RedisServer, keys: &MockKeyService) -> [Replica; 3] {
    let replicas = [
        Replica::start(redis, keys).await,
        Replica::start(redis, keys).await,
        Replica::start(redis, keys).await,
    ];
    listening(&replicas).await;
    replicas
}

/// Waits until every replica hears revocations.
async fn listening(replicas: &[Replica]) {
    let all = until(Duration::from_secs(5), async || {
        replicas.iter().all(|r| r.store.is_listening())
    });
    assert!(all.await.is_some(), "the replicas did not subscribe");
}

fn key(n: usize) -> String {
    format!("sk_live_fleet_{n:04}_0123456789")
}

async fn until(deadline: Duration, mut done: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if done().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    None
}

#[tokio::test]
async fn fleet_one_key_used_on_three_replicas_costs_one_verification() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let keys = MockKeyService::start().await;
    keys.add_key(key(1), MockKey::new("key_1").permissions(["orders:read"]));
    let [a, b, c] = fleet(&redis, &keys).await;

    assert_eq!(a.status(&key(1)).await, 200);
    assert_eq!(b.status(&key(1)).await, 200);
    assert_eq!(c.status(&key(1)).await, 200);
    assert_eq!(keys.requests(), 1, "B and C found A's verdict in Redis");
    assert_eq!(
        (b.auth.stats().store_hits, c.auth.stats().store_hits),
        (1, 1)
    );

    // A refusal is shared too (for its short negative TTL).
    assert_eq!(a.status("sk_live_unknown_0123456789").await, 401);
    assert_eq!(b.status("sk_live_unknown_0123456789").await, 401);
    assert_eq!(keys.requests(), 2);
}

#[tokio::test]
async fn fleet_invalidate_on_one_replica_is_refused_on_the_others() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let keys = MockKeyService::start().await;
    let [a, b, c] = fleet(&redis, &keys).await;

    let mut delays = Vec::new();
    for n in 0..50 {
        let key = key(100 + n);
        keys.add_key(&key, MockKey::new(format!("key_{n}")));
        for replica in [&a, &b, &c] {
            assert_eq!(replica.status(&key).await, 200);
        }
        keys.revoke(&key);
        let start = Instant::now();
        a.auth.invalidate(&key).await;
        assert_eq!(a.status(&key).await, 401);
        let refused = until(Duration::from_secs(2), async || {
            b.status(&key).await == 401 && c.status(&key).await == 401
        })
        .await;
        assert!(refused.is_some(), "B and C still accept revoked key {n}");
        delays.push(start.elapsed().as_secs_f64() * 1e3);
    }
    delays.sort_by(f64::total_cmp);
    let (_, p50, _) = quartiles(delays.clone());
    let p99 = delays[(delays.len() * 99).div_ceil(100) - 1];
    println!(
        "fleet revocation fan-out, invalidate on A until B and C refuse: p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
}

#[tokio::test]
async fn fleet_keeps_answering_while_redis_is_down_and_fans_out_again_once_it_is_back() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let keys = MockKeyService::start().await;
    keys.add_key(key(1), MockKey::new("key_1"));
    let replicas = fleet(&redis, &keys).await;
    let [a, b, c] = &replicas;
    for replica in [a, b, c] {
        assert_eq!(replica.status(&key(1)).await, 200);
    }

    redis.stop();
    keys.add_key(key(2), MockKey::new("key_2"));
    let before = keys.requests();
    for _ in 0..5 {
        for replica in [a, b, c] {
            // No 5xx because of Redis: cached keys from the local cache, others from the
            // key service, as without Redis.
            assert_eq!(replica.status(&key(1)).await, 200);
            assert_eq!(replica.status(&key(2)).await, 200);
            assert_eq!(replica.status("sk_live_unknown_0123456789").await, 401);
        }
    }
    assert_eq!(
        keys.requests(),
        before + 6,
        "key 2 and the unknown key, once per replica"
    );
    assert!(replicas.iter().all(|r| !r.store.is_listening()));

    redis.start_again().await;
    // The replicas reconnect and resubscribe by themselves, and drop what they could not
    // prove current: key 1 is verified again.
    listening(&replicas).await;
    let before = keys.requests();
    assert_eq!(a.status(&key(1)).await, 200);
    assert_eq!(keys.requests(), before + 1);
    // A revocation on A reaches B and C again, without a restart.
    let mut n = 0;
    let healed = until(Duration::from_secs(15), async || {
        n += 1;
        let key = key(1000 + n);
        keys.add_key(&key, MockKey::new("key_probe"));
        for replica in [a, b, c] {
            assert_eq!(replica.status(&key).await, 200);
        }
        keys.revoke(&key);
        a.auth.invalidate(&key).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        b.status(&key).await == 401 && c.status(&key).await == 401
    })
    .await;
    assert!(healed.is_some(), "no fan-out after Redis came back");
}

#[tokio::test]
async fn fleet_never_trusts_an_entry_written_without_the_secret() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let keys = MockKeyService::start().await;
    keys.add_key(key(1), MockKey::new("key_1"));
    let a = Replica::start(&redis, &keys).await;
    // Another client, as anyone with access to Redis.
    let raw = fred::prelude::Client::new(
        fred::prelude::Config::from_url(&redis.url()).unwrap(),
        None,
        None,
        None,
    );
    raw.init().await.unwrap();
    let entries = async |raw: &fred::prelude::Client| -> Vec<String> {
        raw.custom(fred::cmd!("KEYS"), vec!["{tollgate}:v:*"])
            .await
            .unwrap()
    };

    // A valid key's entry, then a refused one's.
    assert_eq!(a.status(&key(1)).await, 200);
    let valid = entries(&raw).await;
    assert_eq!(valid.len(), 1);
    assert_eq!(a.status("sk_live_not_a_key_0123456789").await, 401);
    let refused: Vec<String> = entries(&raw)
        .await
        .into_iter()
        .filter(|k| !valid.contains(k))
        .collect();
    assert_eq!(refused.len(), 1);
    let (valid, refused) = (&valid[0], &refused[0]);

    // No credential in Redis: not in a key, not in a value.
    let value: Vec<u8> = raw.get(valid.as_str()).await.unwrap();
    for k in [valid, refused] {
        assert!(!k.contains("fleet") && !k.contains("not_a_key"));
    }
    assert!(!String::from_utf8_lossy(&value).contains(&key(1)));

    // The valid entry copied onto the refused key's name, then a hand-written verdict: a
    // replica with an empty local cache asks the key service, which refuses.
    let b = Replica::start(&redis, &keys).await;
    let forged_json = br#"{"valid":{"subject":"admin","kind":"api_key","scopes":["*"]}}"#;
    let mut forged_sealed = vec![0u8; 40];
    forged_sealed.extend_from_slice(forged_json);
    for forgery in [value.clone(), forged_json.to_vec(), forged_sealed] {
        let _: () = raw
            .set(refused.as_str(), forgery, None, None, false)
            .await
            .unwrap();
        b.auth.invalidate_all().await;
        let before = keys.requests();
        assert_eq!(b.status("sk_live_not_a_key_0123456789").await, 401);
        assert_eq!(
            keys.requests(),
            before + 1,
            "the forged entry was not trusted"
        );
        assert_eq!(b.app.hits(), 0);
    }
}

#[tokio::test]
async fn fleet_shares_introspection_verdicts_and_their_revocations() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let idp = MockIdp::start().await;
    idp.register_client("orders-api", "orders-api-secret");
    let replica = async || {
        let store = RedisStore::builder(redis.url())
            .secret(SECRET)
            .build()
            .unwrap();
        let auth = Introspection::builder(idp.issuer())
            .client_credentials(
                ClientCredentials::new("orders-api").secret_basic("orders-api-secret"),
            )
            .audience(DEFAULT_AUDIENCE)
            .store(store.clone())
            .build()
            .await
            .unwrap();
        let app = ProtectedApp::start(AuthLayer::new(auth.clone())).await;
        (auth, store, app)
    };
    let (a, a_store, a_app) = replica().await;
    let (_b, b_store, b_app) = replica().await;
    assert!(
        until(Duration::from_secs(5), async || a_store.is_listening()
            && b_store.is_listening())
        .await
        .is_some()
    );

    let token = idp.opaque_token().issue();
    assert_eq!(a_app.bearer(&token).await.status(), 200);
    assert_eq!(b_app.bearer(&token).await.status(), 200);
    assert_eq!(
        idp.introspection_requests(),
        1,
        "B found A's verdict in Redis"
    );

    idp.revoke(&token);
    a.invalidate(&token).await;
    let refused = until(Duration::from_secs(2), async || {
        b_app.bearer(&token).await.status() == 401
    });
    assert!(refused.await.is_some(), "B still accepts the revoked token");
}

/// A replica behind JWTs of `idp` with the fleet's revocation list.
async fn jwt_replica(
    redis: &RedisServer,
    idp: &MockIdp,
    tune: impl FnOnce(RevocationList) -> RevocationList,
) -> (RedisStore, RevocationList, ProtectedApp, JwtAuth) {
    let store = RedisStore::builder(redis.url())
        .secret(SECRET)
        .build()
        .unwrap();
    let revocations = tune(store.revocations());
    let auth = JwtAuth::builder()
        .issuer(Issuer::discover(idp.issuer()).audience(DEFAULT_AUDIENCE))
        .verified_token_cache(1_000, Duration::from_secs(600))
        .revocations(revocations.clone())
        .build()
        .await
        .unwrap();
    let app = ProtectedApp::start(AuthLayer::new(auth.clone())).await;
    (store, revocations, app, auth)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn fleet_revokes_jwts_by_jti_and_by_subject_on_every_replica() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let idp = MockIdp::start().await;
    let (a_store, _, a, a_auth) = jwt_replica(&redis, &idp, |r| r).await;
    let (b_store, b_list, b, _) = jwt_replica(&redis, &idp, |r| r).await;
    let (c_store, _, c, _) = jwt_replica(&redis, &idp, |r| r).await;
    let listening = until(Duration::from_secs(5), async || {
        [&a_store, &b_store, &c_store]
            .iter()
            .all(|s| s.is_listening())
    });
    assert!(listening.await.is_some());
    let status = async |app: &ProtectedApp, token: &str| app.bearer(token).await.status().as_u16();

    let stolen = idp
        .token()
        .claim("jti", "jti-stolen")
        .claim("sub", "bob")
        .sign();
    let other = idp
        .token()
        .claim("jti", "jti-other")
        .claim("sub", "bob")
        .sign();
    for app in [&a, &b, &c] {
        assert_eq!(status(app, &stolen).await, 200); // now in each verified-token cache
    }
    let exp = std::time::SystemTime::now() + Duration::from_secs(3600);
    b_list
        .revoke_token(&idp.issuer(), "jti-stolen", exp)
        .await
        .unwrap();
    assert_eq!(
        status(&b, &stolen).await,
        401,
        "refused at once where revoked"
    );
    let everywhere = until(Duration::from_secs(2), async || {
        status(&a, &stolen).await == 401 && status(&c, &stolen).await == 401
    });
    assert!(
        everywhere.await.is_some(),
        "A and C still accept the revoked jti"
    );
    // A's verified-token cache no longer holds it (the check refused it anyway).
    let purged = until(Duration::from_secs(2), async || {
        a_auth.cached_tokens().await == 0
    });
    assert!(purged.await.is_some(), "A still caches the revoked token");
    assert_eq!(
        status(&a, &other).await,
        200,
        "another token of the same subject"
    );

    // Every token of alice issued before a time; a newer one still works.
    let old = idp
        .token()
        .claim("sub", "alice")
        .claim("iat", now() - 120)
        .sign();
    let newer = idp
        .token()
        .claim("sub", "alice")
        .claim("iat", now() - 10)
        .sign();
    assert_eq!(status(&a, &old).await, 200);
    let cutoff = std::time::UNIX_EPOCH + Duration::from_secs(now() - 60);
    b_list
        .revoke_subject(&idp.issuer(), "alice", cutoff)
        .await
        .unwrap();
    let refused = until(Duration::from_secs(2), async || {
        status(&a, &old).await == 401
    });
    assert!(
        refused.await.is_some(),
        "A still accepts alice's older token"
    );
    assert_eq!(status(&c, &newer).await, 200);

    // A replica started later reads what was revoked before it.
    let (_, _, late, _) = jwt_replica(&redis, &idp, |r| r).await;
    let read = until(Duration::from_secs(5), async || {
        status(&late, &stolen).await == 401
    });
    assert!(
        read.await.is_some(),
        "the late replica did not read the revocations"
    );
    assert_eq!(status(&late, &old).await, 401);
    assert_eq!(status(&late, &other).await, 200);
}

#[tokio::test]
async fn fleet_revocations_out_of_sync_serve_by_default_and_refuse_when_asked() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let idp = MockIdp::start().await;
    let (lenient_store, _, lenient, _) = jwt_replica(&redis, &idp, |r| r).await;
    let (strict_store, _, strict, _) = jwt_replica(&redis, &idp, |r| {
        r.refuse_when_out_of_sync_for(Duration::from_millis(200))
    })
    .await;
    let listening = until(Duration::from_secs(5), async || {
        lenient_store.is_listening() && strict_store.is_listening()
    });
    assert!(listening.await.is_some());
    let token = idp.token().sign();
    assert_eq!(strict.bearer(&token).await.status(), 200);

    redis.stop();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        lenient.bearer(&token).await.status(),
        200,
        "the last known list"
    );
    let res = strict.bearer(&token).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(strict.hits(), 1, "the handler never ran on the 503");

    redis.start_again().await;
    let back = until(Duration::from_secs(15), async || {
        strict.bearer(&token).await.status() == 200
    });
    assert!(back.await.is_some(), "the strict replica did not resync");
}

#[tokio::test]
async fn fleet_refuses_a_one_time_value_replayed_to_another_replica() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let store = || {
        RedisStore::builder(redis.url())
            .secret(SECRET)
            .build()
            .unwrap()
    };
    let (a, b) = (store(), store());
    let minute = Duration::from_secs(60);
    assert_eq!(a.first_use("proof-jti-1", minute).await, Remembered::New);
    assert_eq!(
        b.first_use("proof-jti-1", minute).await,
        Remembered::Replayed,
        "replayed to B"
    );
    assert_eq!(
        a.first_use("proof-jti-1", minute).await,
        Remembered::Replayed,
        "replayed to A"
    );
    assert_eq!(b.first_use("proof-jti-2", minute).await, Remembered::New);
    // Remembered for its TTL only.
    assert_eq!(
        a.first_use("proof-jti-3", Duration::from_millis(50)).await,
        Remembered::New
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(b.first_use("proof-jti-3", minute).await, Remembered::New);

    // Redis down: each replica's own memory still refuses what it has seen.
    redis.stop();
    assert_eq!(a.first_use("proof-jti-4", minute).await, Remembered::New);
    assert_eq!(
        a.first_use("proof-jti-4", minute).await,
        Remembered::Replayed
    );
}

#[tokio::test]
async fn fleet_refuses_a_dpop_proof_replayed_to_another_replica() {
    use tollgate_jwt::Dpop;
    use tollgate_testkit::DpopKey;

    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let idp = MockIdp::start().await;
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let store = RedisStore::builder(redis.url())
            .secret(SECRET)
            .build()
            .unwrap();
        let dpop = Dpop::allowed()
            .external_url("https://api.example.com")
            .replay_store(store);
        let auth = JwtAuth::builder()
            .issuer(
                Issuer::discover(idp.issuer())
                    .audience(DEFAULT_AUDIENCE)
                    .dpop(dpop),
            )
            .build()
            .await
            .unwrap();
        replicas.push(ProtectedApp::start(AuthLayer::new(auth)).await);
    }
    let key = DpopKey::generate(tollgate_jwt::Algorithm::ES256);
    let token = idp.token().dpop_bound(&key).sign();
    let proof = key
        .proof("GET", "https://api.example.com/")
        .access_token(&token)
        .build();
    let call = |app: &ProtectedApp| {
        reqwest::Client::new()
            .get(app.url())
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", &proof)
            .send()
    };
    assert_eq!(call(&replicas[0]).await.unwrap().status(), 200);
    let replayed = call(&replicas[1]).await.unwrap();
    assert_eq!(replayed.status(), 401, "replayed to the other replica");
    let challenge = replayed.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
    assert_eq!(replicas[1].hits(), 0);
}
