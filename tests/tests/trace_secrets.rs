//! A full sync, rotation and verification logged at TRACE level: no token
//! value reaches the log. In its own test binary, so no other test's
//! logging setup changes which log lines are enabled.

use std::sync::{Arc, Mutex};

use futures::stream;
use mattermost_tokens::*;
use mattermost_tokens_stand_in::StandIn;

fn users(n: i64) -> Vec<HostUser> {
    (1..=n)
        .map(|i| {
            HostUser::new(
                i,
                format!("user{i}@example.com"),
                &format!("User Number{i}"),
            )
        })
        .collect()
}

fn ids(n: i64) -> Vec<HostUserId> {
    (1..=n).map(HostUserId::Int).collect()
}

fn sync_for(server: &StandIn, store: Arc<dyn TokenStore>) -> UserSync {
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    UserSync::new(client, store, SyncOptions::new("e2e")).unwrap()
}

/// Collects everything written by a `tracing` fmt subscriber.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_full_sync_at_trace_level_logs_no_token() {
    let buf = Buf::default();
    let w = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        // Span fields are printed with every event inside a span, and again
        // when the span closes (with the fields recorded last).
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    let (server_admin, tokens) = tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let server = StandIn::start().await.unwrap();
            let store = Arc::new(MemoryStore::with_users(ids(5)));
            let sync = sync_for(&server, store.clone());
            sync.sync_all(stream::iter(users(5)), |_| {}).await.unwrap();
            sync.rotate(&1.into()).await.unwrap();
            sync.verify(&2.into(), false).await.unwrap();
            let mut tokens = Vec::new();
            for u in ids(5) {
                tokens.push(store.get(&u).await.unwrap().unwrap().token.unwrap());
            }
            // A rotation campaign: every token replaced, old and new kept
            // out of the log.
            let journal = std::env::temp_dir()
                .join(format!("mmt-trace-rotation-{}.jsonl", std::process::id()));
            let mut campaign = mattermost_tokens::rotation::RotationCampaign::begin(
                &journal,
                store.as_ref(),
                stream::iter(ids(5).into_iter().map(Ok)),
            )
            .await
            .unwrap();
            let r = sync
                .rotate_campaign(&mut campaign, 2, |_| {})
                .await
                .unwrap();
            assert_eq!(r.replaced, 5);
            let _ = std::fs::remove_file(&journal);
            for u in ids(5) {
                tokens.push(store.get(&u).await.unwrap().unwrap().token.unwrap());
            }
            (server.admin_token(), tokens)
        })
    });
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("minted token"),
        "the sync logged nothing useful:\n{log}"
    );
    assert!(log.lines().count() > 20);
    // One span per synced user and per request, with their outcome.
    assert!(
        log.contains("sync_user{host_user=3 outcome=\"minted\"}"),
        "{log}"
    );
    assert!(
        log.contains("mattermost_request{method=POST endpoint=/api/v4/users/{}/tokens identity=\"admin\" status=200 attempt=1}"),
        "{log}"
    );
    assert!(log.contains("rotate_user{host_user=1}"), "{log}");
    assert!(log.contains("verify_user{host_user=2}"), "{log}");
    assert!(log.contains("rotate_campaign_user{host_user=4}"), "{log}");
    assert!(
        !log.contains(server_admin.expose_secret()),
        "admin token in the log"
    );
    for t in tokens {
        assert!(
            !log.contains(t.expose_secret()),
            "a user token is in the log"
        );
    }
}
