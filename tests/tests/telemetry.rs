//! The library's metrics (`mattermost_tokens::telemetry`), as a recorder
//! sees them: mints, revokes, fallbacks to the admin token, 401s on user
//! tokens, 429s, retries and request latency by endpoint, with labels that
//! carry no id, email or token.
//!
//! One test: the recorder is global to the process.

use std::collections::HashMap;
use std::sync::Arc;

use mattermost_tokens::telemetry::names;
use mattermost_tokens::*;
use mattermost_tokens_stand_in::{Fault, FaultRule, StandIn};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// A metric's name, a label's key and its value.
type Label = (String, String, String);

/// What the recorder saw so far (a snapshot drains it).
#[derive(Default)]
struct Seen {
    counters: HashMap<String, u64>,
    labels: Vec<Label>,
}

/// Counter totals by name (labels summed), and every label value seen, so
/// far.
fn read(snapshotter: &Snapshotter, seen: &mut Seen) -> (HashMap<String, u64>, Vec<Label>) {
    let Seen { counters, labels } = seen;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let name = key.key().name().to_owned();
        for l in key.key().labels() {
            labels.push((name.clone(), l.key().to_owned(), l.value().to_owned()));
        }
        if let DebugValue::Counter(n) = value {
            *counters.entry(name).or_default() += n;
        }
    }
    (counters.clone(), labels.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_library_counts_what_operators_watch() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    let mut seen = Seen::default();

    let server = StandIn::start().await.unwrap();
    let store = Arc::new(MemoryStore::with_users((1..=6).map(HostUserId::Int)));
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    let sync = UserSync::new(client.clone(), store.clone(), SyncOptions::new("telemetry")).unwrap();
    let users: Vec<HostUser> = (1..=6)
        .map(|i| HostUser::new(i, format!("u{i}@example.com"), &format!("User {i}")))
        .collect();
    let r = sync
        .sync_all(futures::stream::iter(users), |_| {})
        .await
        .unwrap();
    assert_eq!(r.summary.minted, 6);
    let (c, _) = read(&snapshotter, &mut seen);
    assert_eq!(c.get(names::MINTS), Some(&6));
    assert_eq!(c.get(names::REVOKES), None);

    // A revoke, a rotation (one mint, one revoke).
    sync.revoke(&HostUserId::Int(1)).await.unwrap();
    sync.rotate(&HostUserId::Int(2)).await.unwrap();
    let (c, _) = read(&snapshotter, &mut seen);
    assert_eq!((c[names::MINTS], c[names::REVOKES]), (7, 2));

    // A fallback to the admin token for the user without one.
    let selector = TokenSelector::new(store.clone(), Policy::FallbackToAdmin);
    let (actor, _) = selector
        .call(
            &client,
            Operation::UserScoped,
            &HostUserId::Int(1),
            |a| async move { a.me().await },
        )
        .await
        .unwrap();
    assert!(matches!(actor, Actor::AdminFallback(_)));
    assert_eq!(
        read(&snapshotter, &mut seen).0.get(names::ADMIN_FALLBACKS),
        Some(&1)
    );

    // A user token the server refuses.
    let rec = store.get(&HostUserId::Int(3)).await.unwrap().unwrap();
    server.revoke_token_directly(rec.token_id.as_ref().unwrap());
    let e = client.as_user(rec.token.unwrap()).me().await.unwrap_err();
    assert!(matches!(e, Error::Unauthorized(_)));
    assert_eq!(
        read(&snapshotter, &mut seen)
            .0
            .get(names::USER_TOKEN_UNAUTHORIZED),
        Some(&1)
    );

    // A 429 and a 503, each retried once.
    server.add_fault(FaultRule::next(
        "GET /api/v4/system/ping",
        Fault::Status(429),
    ));
    client.ping().await.unwrap();
    server.add_fault(FaultRule::next(
        "GET /api/v4/system/ping",
        Fault::Status(503),
    ));
    client.ping().await.unwrap();
    let (c, labels) = read(&snapshotter, &mut seen);
    assert_eq!(c.get(names::RATE_LIMITED), Some(&1));
    assert_eq!(c.get(names::RETRIES), Some(&2));
    let reasons: Vec<&str> = labels
        .iter()
        .filter(|(n, k, _)| n == names::RETRIES && k == "reason")
        .map(|(_, _, v)| v.as_str())
        .collect();
    assert!(
        reasons.contains(&"rate_limited") && reasons.contains(&"server_error"),
        "{reasons:?}"
    );

    // Latency by endpoint: templates, never an id, email or token.
    let endpoints: Vec<&str> = labels
        .iter()
        .filter(|(n, k, _)| n == names::REQUEST_DURATION && k == "endpoint")
        .map(|(_, _, v)| v.as_str())
        .collect();
    assert!(
        endpoints.contains(&"/api/v4/users/{}/tokens"),
        "{endpoints:?}"
    );
    assert!(endpoints.contains(&"/api/v4/system/ping"), "{endpoints:?}");
    let statuses: Vec<&str> = labels
        .iter()
        .filter(|(n, k, _)| n == names::REQUEST_DURATION && k == "status")
        .map(|(_, _, v)| v.as_str())
        .collect();
    assert!(statuses.contains(&"2xx") && statuses.contains(&"4xx") && statuses.contains(&"5xx"));
    let secrets: Vec<String> = server
        .tokens()
        .iter()
        .flat_map(|t| [t.id.to_string(), t.user_id.to_string()])
        .chain(
            server
                .tokens()
                .iter()
                .filter_map(|t| server.token_value(&t.id))
                .map(|v| v.expose_secret().to_owned()),
        )
        .chain((1..=6).map(|i| format!("u{i}@example.com")))
        .collect();
    for (name, key, value) in &labels {
        for s in &secrets {
            assert!(
                !value.contains(s.as_str()),
                "{name} {key}={value} carries {s}"
            );
        }
    }
}
