//! A host's PostgreSQL or MariaDB `users` table that the host keeps
//! writing to during a sync: 2,000 Laravel users, while another writer
//! inserts 200 new users and updates `updated_at` and `remember_token` of
//! existing rows. The paged source sees new rows above its page (or the
//! next `--missing` run does), and the store writes only its own columns,
//! so the host's values survive.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use mattermost_tokens::host_table::{self, HostUserSource};
use mattermost_tokens::*;
use mattermost_tokens_stand_in::StandIn;
use mattermost_tokens_tests::laravel::{self, BOUND};
use mattermost_tokens_tests::promise::assert_promise;
use mattermost_tokens_tests::scratch::{Kind, Pool, ScratchDb};

const USERS: i64 = 2_000;
const NEW: i64 = 200;
const WRITER_STAMP: &str = "2031-01-02 03:04:05";

fn sources(pool: &Pool, table: HostUserTable) -> (Arc<dyn TokenStore>, Arc<dyn HostUserSource>) {
    match pool {
        Pool::Pg(p) => (
            Arc::new(mattermost_tokens_sqlx::PgTokenStore::new(p.clone())),
            Arc::new(mattermost_tokens_sqlx::PgHostUsers::new(p.clone(), table)),
        ),
        Pool::My(p) => (
            Arc::new(mattermost_tokens_sqlx::MySqlTokenStore::new(p.clone())),
            Arc::new(mattermost_tokens_sqlx::MySqlHostUsers::new(
                p.clone(),
                table,
            )),
        ),
        Pool::Lite(_) => unreachable!("server databases only"),
    }
}

async fn migrate(pool: &Pool) {
    match pool {
        Pool::Pg(p) => mattermost_tokens_sqlx::PgTokenStore::new(p.clone())
            .migrate()
            .await
            .unwrap(),
        Pool::My(p) => mattermost_tokens_sqlx::MySqlTokenStore::new(p.clone())
            .migrate()
            .await
            .unwrap(),
        Pool::Lite(_) => unreachable!(),
    }
}

/// Inserts users `from..=to` in multi-row statements.
async fn insert(pool: &Pool, from: i64, to: i64) {
    let ids: Vec<i64> = (from..=to).collect();
    for chunk in ids.chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "({i}, 'User {i}', 'user{i}@example.com', 'x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            })
            .collect();
        pool.exec(&format!(
            "INSERT INTO users (id, name, email, password, created_at, updated_at) VALUES {}",
            values.join(", ")
        ))
        .await;
    }
}

async fn sync_while_the_host_writes(kind: Kind, test: &str) {
    let Some(db) = ScratchDb::open(kind, "hostw", test).await else {
        return;
    };
    let dialect = if kind == Kind::Postgres {
        "postgres"
    } else {
        "mysql"
    };
    db.exec(&laravel::server_users_ddl(dialect)).await;
    insert(&db.pool, 1, USERS).await;
    migrate(&db.pool).await;
    let table = HostUserTable::laravel().with_page_size(100).unwrap();
    let (store, source) = sources(&db.pool, table);
    let server = StandIn::start().await.unwrap();
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    let sync = UserSync::new(client, store.clone(), SyncOptions::new("laravel")).unwrap();

    // The host writes throughout: a new user, then an update of an existing
    // one, 200 times.
    let writer_pool = db.pool.clone();
    let writer = tokio::spawn(async move {
        let mut touched = BTreeMap::new();
        for i in 1..=NEW {
            insert(&writer_pool, USERS + i, USERS + i).await;
            let id = (i * 37) % USERS + 1;
            let token = format!("w{i}");
            writer_pool
                .exec(&format!(
                    "UPDATE users SET remember_token = '{token}', updated_at = '{WRITER_STAMP}' WHERE id = {id}"
                ))
                .await;
            touched.insert(id, token);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        touched
    });
    let users = host_table::stream(source.clone()).map(|r| r.expect("host users readable"));
    let report = tokio::time::timeout(BOUND, sync.sync_all(users, |_| {}))
        .await
        .expect("bounded")
        .unwrap();
    assert_eq!(report.summary.failed, 0, "{:?}", report.failures.first());
    let touched = writer.await.unwrap();
    assert!(
        report.summary.minted >= USERS as u64,
        "every user there at the start was synced: {:?}",
        report.summary
    );

    // The stragglers: users without a token, as `sync_users --missing`
    // finds them.
    let mut missing = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_missing(after.as_ref(), 500).await.unwrap();
        missing.extend(source.by_ids(&page.users).await.unwrap());
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let r = sync
        .sync_missing(futures::stream::iter(missing), |_| {})
        .await
        .unwrap();
    assert_eq!(r.summary.failed, 0, "{:?}", r.failures.first());
    assert_eq!(
        report.summary.minted + r.summary.minted,
        (USERS + NEW) as u64,
        "each user minted once, by the sync or by --missing"
    );
    let ids: Vec<HostUserId> = (1..=USERS + NEW).map(HostUserId::Int).collect();
    assert_promise(&server, store.as_ref(), &ids).await;

    // The host's own columns hold the writer's values.
    let rows = db
        .rows(&format!(
            "SELECT {}, remember_token, {} FROM users WHERE remember_token IS NOT NULL ORDER BY id",
            kind.text("id"),
            kind.text("updated_at")
        ))
        .await;
    let got: BTreeMap<i64, String> = rows
        .iter()
        .map(|r| {
            let stamp = r[2].clone().unwrap();
            assert!(stamp.starts_with(WRITER_STAMP), "updated_at kept: {stamp}");
            (
                r[0].clone().unwrap().parse().unwrap(),
                r[1].clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, touched);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sync_while_the_host_writes() {
    sync_while_the_host_writes(Kind::Postgres, "postgres_sync_while_the_host_writes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_sync_while_the_host_writes() {
    sync_while_the_host_writes(Kind::MariaDb, "mariadb_sync_while_the_host_writes").await;
}
