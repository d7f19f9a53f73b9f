//! The `CodeStore` conformance suite for the SQL code stores.
//!
//! An adapter provides a [`CodeStoreFactory`] whose fresh databases
//! ([`CodeDb`]) hold a migrated code table, and instantiates every case with
//! [`code_conformance_tests!`](crate::code_conformance_tests):
//!
//! ```ignore
//! mattermost_tokens_tests::code_conformance_tests!(postgres, SqlxCodes(Kind::Postgres));
//! ```
//!
//! The cases look at the table itself through [`CodeDb::table`]: a store
//! keeps the code's hash, never the code, and deletes what it consumes or
//! purges. [`magic_links_end_to_end`] runs the magic-link flow over an
//! adapter's token store and code store.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mattermost_tokens::magic_link::{CodeHash, CodeStore, MagicLinkConfig, MagicLinks};
use mattermost_tokens::{
    AccessToken, Error, HostUserId, MattermostClient, NewToken, StoreError, TokenId, TokenStore,
    UserId,
};

use crate::scratch::Rows;

/// A fresh database with a migrated code table (the default name), and the
/// suite's views of it.
#[async_trait]
pub trait CodeDb: Send + Sync {
    /// A store on the code table. Every call makes a new instance; all of
    /// them share the database.
    fn store(&self) -> Arc<dyn CodeStore>;

    /// A store on the same table through connections that refuse writes.
    async fn read_only_store(&self) -> Arc<dyn CodeStore>;

    /// The code table's column names, in order, and every column of every
    /// row, as text.
    async fn table(&self) -> (Vec<String>, Rows);

    /// Drops what the test made (namespace or file).
    async fn finish(self: Box<Self>);
}

/// Makes fresh databases for the suite.
#[async_trait]
pub trait CodeStoreFactory: Send + Sync {
    /// A fresh database for the case `test`, or `None` when the backend is
    /// unavailable and the test should be skipped (the factory has printed
    /// why).
    async fn fresh(&self, test: &str) -> Option<Box<dyn CodeDb>>;
}

/// Now-ish, in whole seconds (the cases choose their own clock).
pub const T: u64 = 1_769_428_800; // 2026-01-26T12:00:00Z

/// A point in time, `secs` after the epoch (plus `millis`), for the
/// `DateTime<Utc>` parameters (`.into()`).
pub fn at(secs: u64, millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
}

/// The hash a store keeps for `code`.
pub fn hash(code: &str) -> CodeHash {
    CodeHash::of_code(code)
}

/// Integer and text users come back as they went in; a code works once and
/// is deleted when consumed; unknown codes are nothing; a text key too long
/// for the column is refused before any SQL.
pub async fn round_trip(f: &dyn CodeStoreFactory) {
    let Some(db) = f.fresh("round_trip").await else {
        return;
    };
    let codes = db.store();
    let users = [
        HostUserId::Int(42),
        HostUserId::Int(-7),
        HostUserId::Int(i64::MAX),
        HostUserId::Int(i64::MIN),
        HostUserId::Text("7f1c2a9e-0000-4000-8000-000000000001".into()),
        // Looks like an integer, is text: the kind column keeps it text.
        HostUserId::Text("42".into()),
        HostUserId::Text(" padded ".into()),
        HostUserId::Text("ünïcødé-用户-✓".into()),
        HostUserId::Text("x".repeat(255)),
    ];
    let now = at(T, 0);
    for (i, u) in users.iter().enumerate() {
        let h = hash(&format!("code-{i}"));
        codes.insert(&h, u, at(T + 300, 0).into()).await.unwrap();
        assert!(codes.peek(&h, now.into()).await.unwrap(), "{u:?}");
    }
    for (i, u) in users.iter().enumerate() {
        let h = hash(&format!("code-{i}"));
        assert_eq!(
            codes.consume(&h, now.into()).await.unwrap().as_ref(),
            Some(u)
        );
        assert_eq!(codes.consume(&h, now.into()).await.unwrap(), None);
        assert!(!codes.peek(&h, now.into()).await.unwrap());
    }
    // Consumed codes are deleted.
    let (_, rows) = db.table().await;
    assert!(rows.is_empty(), "{rows:?}");
    // Unknown codes: nothing.
    assert_eq!(
        codes.consume(&hash("never"), now.into()).await.unwrap(),
        None
    );
    assert!(!codes.peek(&hash("never"), now.into()).await.unwrap());
    // A text key too long for the column: refused before SQL, nothing stored.
    let e = codes
        .insert(
            &hash("long"),
            &HostUserId::Text("x".repeat(256)),
            at(T + 300, 0).into(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Config(_)), "{e:?}");
    let (_, rows) = db.table().await;
    assert!(rows.is_empty(), "{rows:?}");
    db.finish().await;
}

/// A code works while `now < expires_at`, and not at or after it; failed
/// attempts on an expired code do not change it; an expiry between seconds
/// is rounded down, so a code never works past its `expires_at`.
pub async fn expiry(f: &dyn CodeStoreFactory) {
    let Some(db) = f.fresh("expiry").await else {
        return;
    };
    let codes = db.store();
    let u = HostUserId::Int(1);
    let h = hash("expiring");
    codes.insert(&h, &u, at(T, 0).into()).await.unwrap();
    assert!(codes.peek(&h, at(T - 1, 999).into()).await.unwrap());
    // At and after expiry: neither peek nor consume.
    for late in [
        at(T, 0),
        at(T, 500),
        at(T, 700),
        at(T + 1, 0),
        at(T + 3600, 0),
        at(T + 86_400, 0),
    ] {
        assert!(!codes.peek(&h, late.into()).await.unwrap());
        assert_eq!(codes.consume(&h, late.into()).await.unwrap(), None);
    }
    // Still stored (until purged), and a millisecond before expiry the
    // refused code still works.
    let (_, rows) = db.table().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        codes.consume(&h, at(T - 1, 999).into()).await.unwrap(),
        Some(u.clone())
    );

    // A fresh code just before its expiry works.
    let h2 = hash("just-in-time");
    codes.insert(&h2, &u, at(T, 0).into()).await.unwrap();
    assert_eq!(
        codes.consume(&h2, at(T - 1, 999).into()).await.unwrap(),
        Some(u.clone())
    );

    // An already expired code is never consumable.
    codes
        .insert(&hash("old"), &u, at(T - 1, 0).into())
        .await
        .unwrap();
    assert_eq!(
        codes.consume(&hash("old"), at(T, 0).into()).await.unwrap(),
        None
    );

    // Expiries with milliseconds: kept in whole seconds, rounded down.
    let h3 = hash("sub-second");
    codes.insert(&h3, &u, at(T + 10, 500).into()).await.unwrap();
    assert!(!codes.peek(&h3, at(T + 10, 600).into()).await.unwrap());
    assert!(codes.peek(&h3, at(T + 9, 999).into()).await.unwrap());
    let h4 = hash("ms");
    codes.insert(&h4, &u, at(T + 10, 700).into()).await.unwrap();
    assert!(!codes.peek(&h4, at(T + 10, 200).into()).await.unwrap());
    assert!(codes.peek(&h4, at(T + 9, 999).into()).await.unwrap());
    db.finish().await;
}

/// 20 concurrent consumers of one code: exactly one gets the user. Five
/// codes are raced at once on one store instance.
pub async fn consume_exactly_once(f: &dyn CodeStoreFactory) {
    let Some(db) = f.fresh("consume_exactly_once").await else {
        return;
    };
    let codes = db.store();
    const CODES: usize = 5;
    const RACERS: usize = 20;
    for c in 0..CODES {
        codes
            .insert(
                &hash(&format!("race-{c}")),
                &HostUserId::Int(c as i64),
                at(T + 300, 0).into(),
            )
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (0..CODES * RACERS)
        .map(|i| {
            let codes = codes.clone();
            let c = i % CODES;
            tokio::spawn(async move {
                let got = codes
                    .consume(&hash(&format!("race-{c}")), at(T, 0).into())
                    .await
                    .unwrap();
                (c, got)
            })
        })
        .collect();
    let mut winners: HashMap<usize, Vec<HostUserId>> = HashMap::new();
    for t in tasks {
        let (c, got) = t.await.unwrap();
        if let Some(u) = got {
            winners.entry(c).or_default().push(u);
        }
    }
    for c in 0..CODES {
        assert_eq!(
            winners.get(&c).map(Vec::as_slice),
            Some(&[HostUserId::Int(c as i64)][..]),
            "code {c}: {winners:?}"
        );
    }
    let (_, rows) = db.table().await;
    assert!(rows.is_empty(), "{rows:?}");
    db.finish().await;
}

/// 20 consumers of one code, started together on four store instances
/// sharing the database: exactly one gets the user, round after round.
pub async fn consume_exactly_once_across_instances(f: &dyn CodeStoreFactory) {
    let Some(db) = f.fresh("consume_exactly_once_across_instances").await else {
        return;
    };
    let stores: Vec<Arc<dyn CodeStore>> = (0..4).map(|_| db.store()).collect();
    for round in 0..10 {
        let code = format!("race-{round}");
        let user = HostUserId::Text(format!("user-{round}"));
        stores[0]
            .insert(&hash(&code), &user, at(T + 60, 0).into())
            .await
            .unwrap();
        let start = Arc::new(tokio::sync::Barrier::new(20));
        let racers = (0..20).map(|i| {
            let codes = stores[i % stores.len()].clone();
            let code = code.clone();
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                codes.consume(&hash(&code), at(T, 0).into()).await
            })
        });
        let results: Vec<Option<HostUserId>> = futures::future::join_all(racers)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        let winners: Vec<_> = results.iter().flatten().collect();
        assert_eq!(winners, [&user], "round {round}: {results:?}");
    }
    let (_, rows) = db.table().await;
    assert!(rows.is_empty(), "{rows:?}");
    db.finish().await;
}

/// `peek` changes nothing, however often and concurrently it runs, and an
/// expired peek deletes nothing either.
pub async fn peek_consumes_nothing(f: &dyn CodeStoreFactory) {
    let Some(db) = f.fresh("peek_consumes_nothing").await else {
        return;
    };
    let codes = db.store();
    let u = HostUserId::Text("user-a".into());
    let h = hash("peeked");
    codes.insert(&h, &u, at(T + 60, 0).into()).await.unwrap();
    let before = db.table().await;
    let peeks = (0..10).map(|_| {
        let codes = codes.clone();
        tokio::spawn(async move { codes.peek(&hash("peeked"), at(T, 0).into()).await })
    });
    for p in futures::future::join_all(peeks).await {
        assert!(p.unwrap().unwrap());
    }
    assert!(!codes.peek(&h, at(T + 60, 0).into()).await.unwrap());
    assert_eq!(db.table().await, before);
    assert_eq!(codes.consume(&h, at(T, 0).into()).await.unwrap(), Some(u));
    db.finish().await;
}

/// `purge_expired` deletes codes with `expires_at <= now` and says how many.
pub async fn purge_counts(f: &dyn CodeStoreFactory) {
    let Some(db) = f.fresh("purge_counts").await else {
        return;
    };
    let codes = db.store();
    let u = HostUserId::Int(9);
    for (name, expires) in [
        ("old-1", T - 3600),
        ("old-2", T - 1),
        ("boundary", T),
        ("live-1", T + 1),
        ("live-2", T + 300),
    ] {
        codes
            .insert(&hash(name), &u, at(expires, 0).into())
            .await
            .unwrap();
    }
    assert_eq!(codes.purge_expired(at(T, 0).into()).await.unwrap(), 3);
    assert_eq!(codes.purge_expired(at(T, 0).into()).await.unwrap(), 0);
    let (_, rows) = db.table().await;
    assert_eq!(rows.len(), 2);
    for live in ["live-1", "live-2"] {
        assert_eq!(
            codes.consume(&hash(live), at(T, 0).into()).await.unwrap(),
            Some(u.clone())
        );
    }
    assert_eq!(
        codes.purge_expired(at(T + 10_000, 0).into()).await.unwrap(),
        0
    );
    db.finish().await;
}

/// The table holds the code's hash (lowercase hex), never the code, with
/// the user's key, its kind (`i` or `t`) and the expiry in seconds.
pub async fn table_holds_only_the_hash(f: &dyn CodeStoreFactory) {
    let Some(db) = f.fresh("table_holds_only_the_hash").await else {
        return;
    };
    let codes = db.store();
    // Codes of the issued shape (43 base64url characters).
    let code = "Zm9vYmFyLWJhei1xdXV4LWNvZGUtMTIzNDU2Nzg5MDE";
    let text_code = "dGV4dC11c2VyLWNvZGUtYWJjZGVmZ2hpamtsbW5vcHE";
    codes
        .insert(&hash(code), &HostUserId::Int(5), at(T + 300, 0).into())
        .await
        .unwrap();
    codes
        .insert(
            &hash(text_code),
            &HostUserId::Text("ada@example.com".into()),
            at(T + 600, 0).into(),
        )
        .await
        .unwrap();
    let (columns, rows) = db.table().await;
    assert_eq!(
        columns,
        ["code_hash", "host_user_id", "host_user_kind", "expires_at"]
    );
    assert_eq!(rows.len(), 2);
    for row in &rows {
        for value in row.iter().flatten() {
            for c in [code, text_code] {
                assert!(!value.contains(c), "{value}");
                assert!(!value.contains(&c[..16]), "{value}");
            }
        }
    }
    let by_hash: HashMap<String, &Vec<Option<String>>> =
        rows.iter().map(|r| (r[0].clone().unwrap(), r)).collect();
    let int_row = by_hash[&hash(code).to_hex()];
    assert_eq!(int_row[1].as_deref(), Some("5"));
    assert_eq!(int_row[2].as_deref(), Some("i"));
    assert_eq!(int_row[3].as_deref(), Some((T + 300).to_string().as_str()));
    let text_row = by_hash[&hash(text_code).to_hex()];
    assert_eq!(text_row[1].as_deref(), Some("ada@example.com"));
    assert_eq!(text_row[2].as_deref(), Some("t"));
    assert_eq!(text_row[3].as_deref(), Some((T + 600).to_string().as_str()));
    db.finish().await;
}

/// Writes through a read-only connection fail with `StoreError::ReadOnly`
/// (a purge too, whether or not it has anything to delete) and consume
/// nothing; `peek` works.
pub async fn read_only(f: &dyn CodeStoreFactory) {
    let Some(db) = f.fresh("read_only").await else {
        return;
    };
    let codes = db.store();
    codes
        .insert(&hash("ro"), &HostUserId::Int(1), at(T + 60, 0).into())
        .await
        .unwrap();
    let ro = db.read_only_store().await;
    assert!(ro.peek(&hash("ro"), at(T, 0).into()).await.unwrap());
    let errors = [
        ro.consume(&hash("ro"), at(T, 0).into()).await.map(drop),
        ro.insert(&hash("new"), &HostUserId::Int(1), at(T + 60, 0).into())
            .await,
        ro.purge_expired(at(T, 0).into()).await.map(drop),
        ro.purge_expired(at(T + 3600, 0).into()).await.map(drop),
    ];
    for r in errors {
        assert!(matches!(r, Err(StoreError::ReadOnly { .. })), "{r:?}");
    }
    // Nothing was consumed.
    assert_eq!(
        codes.consume(&hash("ro"), at(T, 0).into()).await.unwrap(),
        Some(HostUserId::Int(1))
    );
    db.finish().await;
}

/// The `code` query parameter of a link (a base64url code needs no
/// percent-decoding).
/// The binding a link's cookie carries.
fn binding_of(link: &mattermost_tokens::magic_link::MagicLink) -> String {
    let header = link.binding_cookie().expect("links are bound by default");
    let (pair, _) = header.split_once(';').unwrap_or((header, ""));
    pair.split_once('=').unwrap().1.to_owned()
}

fn code_of(url: &str) -> String {
    let (_, query) = url.split_once('?').expect("a query string");
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("code="))
        .expect("a code parameter")
        .to_owned()
}

/// A TCP listener that counts the connections made to it (and answers
/// none), standing in for a Mattermost server that must not be called.
async fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (url, count)
}

/// Magic links end to end over `tokens` and the code table of `db`, which
/// share one database whose host users are `Int(1)` and `Int(2)`, neither
/// with a token yet.
///
/// Two instances of the app share the stores: one issues, the other
/// redeems, once only; the table holds only the code's hash, with the
/// link's expiry; issuing, confirming and redeeming never call Mattermost;
/// a user without a token gets no link and no code is stored.
pub async fn magic_links_end_to_end(tokens: Arc<dyn TokenStore>, db: &dyn CodeDb) {
    // A synced user: Mattermost id and own token stored.
    let ada = HostUserId::Int(1);
    let mm_id = UserId::new("a1b2c3d4e5f6g7h8i9j0k1l2m3");
    let secret = "t0k3nt0k3nt0k3nt0k3nt0k3n";
    let synced = NewToken {
        mattermost_user_id: mm_id.clone(),
        token: AccessToken::new(secret),
        token_id: TokenId::new("i1d2i3d4i5d6i7d8i9d0i1d2i3"),
        expires_at: None,
    };
    assert!(tokens.put_token_if_absent(&ada, &synced).await.unwrap());

    let links = |server: &str| {
        MagicLinks::new(
            MattermostClient::new(server, "admintoken").unwrap(),
            tokens.clone(),
            db.store(),
            MagicLinkConfig::one_time_code("http://127.0.0.1:8080/mattermost/magic-link/redeem"),
        )
        .unwrap()
    };
    // Nothing listens on port 9: a call to Mattermost would fail.
    let (a, b) = (links("http://127.0.0.1:9"), links("http://127.0.0.1:9"));
    let link = a.issue(&ada).await.unwrap();
    assert!(
        link.url()
            .starts_with("http://127.0.0.1:8080/mattermost/magic-link/redeem?code="),
        "{link:?}"
    );
    let code = code_of(link.url());
    // The browser's binding cookie, which it sends to whichever instance
    // serves the redeem route.
    let bind = binding_of(&link);

    // Only the hash is in the database, with the user and the link's expiry.
    let (_, rows) = db.table().await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].iter().flatten().all(|v| !v.contains(&code)));
    let stored = CodeHash::of_bound_code(&code, &bind);
    assert_eq!(rows[0][0].as_deref(), Some(stored.to_hex().as_str()));
    assert!(rows[0].iter().flatten().all(|v| !v.contains(&bind)));
    assert_eq!(rows[0][1].as_deref(), Some("1"));
    assert_eq!(rows[0][2].as_deref(), Some("i"));
    assert_eq!(
        rows[0][3].as_deref(),
        Some(link.expires_at().timestamp().to_string().as_str())
    );

    // The confirm page (GET) uses nothing up.
    b.confirm_page(&code, Some(&bind)).await.unwrap();
    b.confirm_page(&code, Some(&bind)).await.unwrap();

    let redemption = b.redeem(&code, Some(&bind)).await.unwrap();
    assert_eq!(redemption.user(), &ada);
    assert_eq!(redemption.mattermost_user_id(), &mm_id);
    let cookies: HashMap<&str, &str> = redemption
        .cookies()
        .iter()
        .map(|c| (c.name(), c.value()))
        .collect();
    assert_eq!(cookies.get("MMAUTHTOKEN"), Some(&secret));
    assert_eq!(cookies.get("MMUSERID"), Some(&mm_id.as_str()));
    // MMCSRF is removed, never given a value (see the magic_link docs).
    assert_eq!(cookies.get("MMCSRF"), Some(&""));
    assert_eq!(redemption.redirect_url().as_str(), "http://127.0.0.1:9/");

    // Once only, on either instance.
    for links in [&a, &b] {
        let again = links.redeem(&code, Some(&bind)).await;
        assert!(
            matches!(again, Err(Error::InvalidMagicLink { .. })),
            "second redeem must fail: {again:?}"
        );
        assert!(matches!(
            links.confirm_page(&code, Some(&bind)).await,
            Err(Error::InvalidMagicLink { .. })
        ));
    }
    let (_, rows) = db.table().await;
    assert!(rows.is_empty(), "{rows:?}");

    // The same flow against a server that counts connections: issuing,
    // confirming and redeeming never call Mattermost.
    let (server, calls) = counting_listener().await;
    let watched = links(&server);
    let link = watched.issue(&ada).await.unwrap();
    let (code, bind) = (code_of(link.url()), binding_of(&link));
    watched.confirm_page(&code, Some(&bind)).await.unwrap();
    let redemption = watched.redeem(&code, Some(&bind)).await.unwrap();
    assert_eq!(
        redemption
            .cookies()
            .iter()
            .find(|c| c.name() == "MMAUTHTOKEN")
            .map(|c| c.value()),
        Some(secret)
    );
    assert!(matches!(
        watched.redeem(&code, Some(&bind)).await,
        Err(Error::InvalidMagicLink { .. })
    ));
    assert_eq!(watched.purge_expired().await.unwrap(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "Mattermost was called");

    // A user without a token gets no link, and no code is stored.
    let bob = HostUserId::Int(2);
    tokens
        .set_mattermost_user_id(&bob, &UserId::new("b1b2c3d4e5f6g7h8i9j0k1l2m3"))
        .await
        .unwrap();
    assert!(matches!(
        a.issue(&bob).await,
        Err(Error::NoUserToken { .. })
    ));
    let (_, rows) = db.table().await;
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!(a.purge_expired().await.unwrap(), 0);
}

/// Instantiates every code store conformance case as a test for one
/// database. `$factory` is an expression of a type implementing
/// [`CodeStoreFactory`].
#[macro_export]
macro_rules! code_conformance_tests {
    ($name:ident, $factory:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::code_conformance as c;

            macro_rules! case {
                ($case:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $case() {
                        let f = $factory;
                        c::$case(&f).await;
                    }
                };
            }

            case!(round_trip);
            case!(expiry);
            case!(consume_exactly_once);
            case!(consume_exactly_once_across_instances);
            case!(peek_consumes_nothing);
            case!(purge_counts);
            case!(table_holds_only_the_hash);
            case!(read_only);
        }
    };
}
