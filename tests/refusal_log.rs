//! Refusal logs and the authentication span, through real HTTP: `RefusalLog::info_every`
//! writes one `info` line per reason per interval, the rest at `debug`; the
//! `tollgate.authenticate` span closes with the outcome; nothing secret is logged.

use std::time::Duration;

use tollgate::apikey::{ApiKeyAuth, UnkeyVerifier};
use tollgate::{AuthLayer, RefusalLog};
use tollgate_testkit::{MockKey, MockKeyService, ProtectedApp};

const READER: &str = "sk_live_reader_0123456789";
const UNKNOWN: &str = "sk_live_unknown_0123456789";

#[tokio::test]
async fn refusals_are_logged_at_info_once_per_reason_per_interval_and_spans_say_why() {
    let (logs, _guard) = tollgate_testkit::capture_logs(tracing::Level::DEBUG);

    let keys = MockKeyService::start().await;
    keys.add_key(READER, MockKey::new("key_reader_id"));
    let api_keys =
        ApiKeyAuth::builder(UnkeyVerifier::new("root").base_url(keys.unkey_base_url())).build();
    let layer =
        AuthLayer::new(api_keys).refusal_log(RefusalLog::info_every(Duration::from_secs(3600)));
    let app = ProtectedApp::start(layer).await;
    for _ in 0..3 {
        assert_eq!(app.get().send().await.unwrap().status(), 401);
        let refused = app.with_header("x-api-key", UNKNOWN).await;
        assert_eq!(refused.status(), 401);
    }
    assert_eq!(app.with_header("x-api-key", READER).await.status(), 200);

    let text = logs.text();
    let info: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" INFO ") && l.contains("request refused"))
        .collect();
    // One line per reason in the hour, the first refusal of each.
    assert_eq!(info.len(), 2, "{text}");
    assert!(
        info.iter()
            .any(|l| l.contains("reason=\"missing_credential\"") && l.contains("refusals=1"))
    );
    assert!(
        info.iter()
            .any(|l| l.contains("reason=\"invalid_token\"") && l.contains("refusals=1"))
    );
    let debug = text
        .lines()
        .filter(|l| l.contains("DEBUG") && l.contains("request refused"))
        .count();
    assert_eq!(debug, 4, "{text}");
    // The authentication's span, closed with its outcome.
    assert!(
        text.lines().any(|l| l.contains("tollgate.authenticate")
            && l.contains("tollgate.outcome=\"authenticated\"")
            && l.contains("tollgate.credential.kind=\"api_key\"")
            && l.contains("tollgate.key_id=\"key_reader_id\"")),
        "{text}"
    );
    for secret in [READER, UNKNOWN] {
        assert!(!text.contains(secret), "{secret} logged:\n{text}");
    }
}
