//! The cases of the migration conformance suite.

use std::sync::Arc;

use mattermost_tokens::store::schema::{
    CLAIM_COLUMNS, DEFAULT_EXPIRY_COLUMN, EXPIRY_MIGRATION_NAME, KeyType, MIGRATION_NAME, Step,
    UNIQUE_INDEX_MIGRATION_NAME, sql,
};
use mattermost_tokens::{
    AccessToken, HostUserId, NewToken, StoreError, TokenId, TokenStore, UserId,
};

use super::{
    ADDED, ALL, Adapter, Config, LATER_MS, MigrationDb, SOON_MS, already_linked,
    assert_expiry_column, assert_no_secret, cell, expiring, mm, names, schema_message, table_name,
    token,
};
use crate::db::unique_suffix;
use crate::scratch::Kind;

/// Several app instances migrating at once; again (nothing changes, tokens
/// stay); undone (the table as it was, no record); undone again; migrated
/// again.
pub async fn migrate_is_idempotent_and_reversible(db: &MigrationDb) {
    let users = [HostUserId::Int(1), HostUserId::Int(2)];
    let (table, kt) = db.users_table(&users, false).await;
    let before = db.columns(&table).await;
    let indexes_before = db.index_names(&table).await;
    let store = db.store(&table, kt);

    let runs = (0..4).map(|_| {
        let store = db.store(&table, kt);
        tokio::spawn(async move { store.migrate().await })
    });
    for r in futures::future::join_all(runs).await {
        r.unwrap().unwrap();
    }
    let migrated = db.columns(&table).await;
    assert_eq!(
        migrated[..before.len()],
        before[..],
        "the host's columns kept"
    );
    assert_eq!(names(migrated[before.len()..].to_vec()), ADDED);
    assert_expiry_column(
        db.kind(),
        &migrated[before.len() + 3],
        DEFAULT_EXPIRY_COLUMN,
    );
    let index = store.index_name();
    assert_eq!(index, format!("{table}_mattermost_user_id_unique"));
    let mut indexes = indexes_before.clone();
    indexes.push(index.clone());
    indexes.sort();
    assert_eq!(db.index_names(&table).await, indexes);
    assert_eq!(db.recorded(&table).await, ALL);
    let u = &users[0];
    assert!(
        store
            .put_token_if_absent(u, &token(1, "kept"))
            .await
            .unwrap()
    );

    store.migrate().await.unwrap();
    assert_eq!(db.columns(&table).await, migrated);
    assert_eq!(db.index_names(&table).await, indexes);
    assert_eq!(db.recorded(&table).await, ALL);
    let rec = store.get(u).await.unwrap().unwrap();
    assert_eq!(rec.token.unwrap().expose_secret(), "kept");

    store.undo().await.unwrap();
    assert_eq!(db.columns(&table).await, before);
    assert_eq!(db.index_names(&table).await, indexes_before);
    assert!(db.recorded(&table).await.is_empty());
    store.undo().await.unwrap();
    assert_eq!(db.columns(&table).await, before);

    store.migrate().await.unwrap();
    assert_eq!(db.columns(&table).await, migrated);
    assert_eq!(db.index_names(&table).await, indexes);
    assert!(store.get(u).await.unwrap().unwrap().token.is_none());
}

/// A users table shaped like Laravel's default one, with rows: migrating
/// loses no row and changes no other column or index; the store works on
/// it without touching the host's columns; undoing restores the table.
pub async fn laravel_users_table(db: &MigrationDb) {
    let t = table_name();
    let ddl = match db.kind() {
        Kind::Postgres => format!(
            "CREATE TABLE {t} (id BIGSERIAL PRIMARY KEY, name VARCHAR(255) NOT NULL, \
             email VARCHAR(255) NOT NULL, email_verified_at TIMESTAMP(0) NULL, \
             password VARCHAR(255) NOT NULL, remember_token VARCHAR(100) NULL, \
             created_at TIMESTAMP(0) NULL, updated_at TIMESTAMP(0) NULL); \
             ALTER TABLE {t} ADD CONSTRAINT {t}_email_unique UNIQUE (email)"
        ),
        Kind::MariaDb => format!(
            "CREATE TABLE {t} (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             name VARCHAR(255) NOT NULL, email VARCHAR(255) NOT NULL, \
             email_verified_at TIMESTAMP NULL, password VARCHAR(255) NOT NULL, \
             remember_token VARCHAR(100) NULL, created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL, \
             UNIQUE KEY {t}_email_unique (email)) \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
        ),
        Kind::Sqlite => format!(
            "CREATE TABLE \"{t}\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \
             \"name\" varchar NOT NULL, \"email\" varchar NOT NULL, \"email_verified_at\" datetime, \
             \"password\" varchar NOT NULL, \"remember_token\" varchar, \"created_at\" datetime, \
             \"updated_at\" datetime); \
             CREATE UNIQUE INDEX \"{t}_email_unique\" ON \"{t}\" (\"email\")"
        ),
    };
    db.exec(&ddl).await;
    db.exec(&format!(
        "INSERT INTO {t} (name, email, email_verified_at, password, remember_token, created_at, updated_at) VALUES \
         ('Ada Lovelace', 'ada@example.com', '2026-01-20 10:00:00', '$2y$12$abcdefghijklmnopqrstuv', 'rt1', '2026-01-20 09:00:00', '2026-01-21 09:00:00'), \
         ('Zoë Ünïcode 日本 🙂', 'zoe@example.com', NULL, '$2y$12$zyxwvutsrqponmlkjihgfe', NULL, '2026-01-22 09:00:00', NULL), \
         ('Grace Hopper', 'grace@example.com', NULL, 'hash', 'rt3', NULL, NULL)"
    ))
    .await;
    let original = [
        "id",
        "name",
        "email",
        "email_verified_at",
        "password",
        "remember_token",
        "created_at",
        "updated_at",
    ];
    let dump_sql = format!(
        "SELECT {} FROM {t} ORDER BY id",
        original
            .iter()
            .map(|c| db.text(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rows_before = db.rows(&dump_sql).await;
    let columns_before = db.columns(&t).await;
    let indexes_before = db.index_names(&t).await;
    assert_eq!(rows_before.len(), 3);
    assert_eq!(columns_before.len(), 8);

    let store = db.store(&t, KeyType::Integer);
    store.migrate().await.unwrap();
    // The host's indexes stay; the store's is on its own column.
    let mut indexes = indexes_before.clone();
    indexes.push(store.index_name());
    indexes.sort();
    assert_eq!(db.index_names(&t).await, indexes);
    assert_eq!(
        db.rows(&dump_sql).await,
        rows_before,
        "no row lost or changed"
    );
    let columns_after = db.columns(&t).await;
    assert_eq!(
        columns_after[..8],
        columns_before[..],
        "existing columns changed"
    );
    assert_eq!(names(columns_after[8..].to_vec()), ADDED);

    // The store works on it.
    let page = store.list_missing(None, 10).await.unwrap();
    assert_eq!(page.users, [1, 2, 3].map(HostUserId::Int));
    let two = HostUserId::Int(2);
    assert!(
        store
            .put_token_if_absent(&two, &token(2, "tök€n-🙂"))
            .await
            .unwrap()
    );
    let rec = store.get(&two).await.unwrap().unwrap();
    assert_eq!(rec.token.unwrap().expose_secret(), "tök€n-🙂");
    let page = store.list_missing(None, 10).await.unwrap();
    assert_eq!(page.users, vec![HostUserId::Int(1), HostUserId::Int(3)]);
    assert_eq!(
        db.rows(&dump_sql).await,
        rows_before,
        "token writes touch only the store's columns"
    );

    store.undo().await.unwrap();
    assert_eq!(db.columns(&t).await, columns_before);
    assert_eq!(db.index_names(&t).await, indexes_before);
    assert_eq!(db.rows(&dump_sql).await, rows_before);
}

/// Tokens stored by the Laravel integration (a `mattermost_token`
/// `VARCHAR(255)` column and nothing else) survive the migration and read
/// back, without a token id, and count as present. Undoing: a marking
/// adapter keeps the column (and its tokens), which it did not add.
pub async fn laravel_token_column_present(db: &MigrationDb) {
    let users = [HostUserId::Int(1), HostUserId::Int(2)];
    let (t, kt) = db.users_table(&users, false).await;
    db.exec(&format!(
        "ALTER TABLE {t} ADD COLUMN mattermost_token VARCHAR(255) NULL"
    ))
    .await;
    db.exec(&format!(
        "UPDATE {t} SET mattermost_token = 'laravel-minted-token-value' WHERE id = 1"
    ))
    .await;
    let store = db.store(&t, kt);
    store.migrate().await.unwrap();
    let rec = store.get(&users[0]).await.unwrap().unwrap();
    assert_eq!(
        rec.token.unwrap().expose_secret(),
        "laravel-minted-token-value"
    );
    assert!(
        rec.token_id.is_none(),
        "the Laravel integration stored no token id"
    );
    assert_eq!(
        store.list_missing(None, 10).await.unwrap().users,
        [users[1].clone()]
    );
    assert!(
        !store
            .put_token_if_absent(&users[0], &token(1, "new"))
            .await
            .unwrap()
    );
    assert!(
        store
            .put_token_if_absent(&users[1], &token(2, "new"))
            .await
            .unwrap()
    );

    store.undo().await.unwrap();
    if db.marks() {
        assert_eq!(
            db.column_names(&t).await,
            ["id", "name", "mattermost_token"]
        );
        assert_eq!(
            cell(db, &t, "mattermost_token", 1).await.as_deref(),
            Some("laravel-minted-token-value")
        );
    } else {
        assert_eq!(db.column_names(&t).await, ["id", "name"]);
    }
}

/// A column of one of the names that cannot hold the value (an integer
/// token, a `NOT NULL` token id, an id column shorter than an id) stops the
/// migration with `Schema`, naming the column, and changes nothing.
pub async fn clashing_host_columns_refused(db: &MigrationDb) {
    let t = table_name();
    db.exec(&format!(
        "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY, mattermost_token INTEGER)"
    ))
    .await;
    let before = db.columns(&t).await;
    let store = db.store(&t, KeyType::Integer);
    let msg = schema_message(store.migrate().await);
    assert!(msg.contains("mattermost_token"), "{msg}");
    assert!(msg.to_lowercase().contains("int"), "{msg}");
    // Nothing half-written.
    assert_eq!(db.columns(&t).await, before);
    assert!(db.recorded(&t).await.is_empty());
    // Undo does not drop a column it did not add either (diesel has
    // nothing recorded to undo; sqlx checks the column and refuses).
    match db.steps_apart() {
        true => store.undo().await.unwrap(),
        false => drop(schema_message(store.undo().await)),
    }
    assert_eq!(db.columns(&t).await, before);

    // A short id column clashes as well (SQLite does not enforce declared
    // lengths, so there VARCHAR(10) holds any text); so does a NOT NULL one.
    let mut clashes = vec![(
        "mattermost_token_id",
        "mattermost_token_id VARCHAR(26) NOT NULL DEFAULT 'x'",
    )];
    if db.kind() != Kind::Sqlite {
        clashes.push(("mattermost_user_id", "mattermost_user_id VARCHAR(10) NULL"));
        clashes.push((
            "mattermost_token_id",
            "mattermost_token_id VARCHAR(10) NULL",
        ));
    }
    for (column, ddl) in clashes {
        let t = table_name();
        db.exec(&format!(
            "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY, {ddl})"
        ))
        .await;
        let before = db.columns(&t).await;
        let msg = schema_message(db.store(&t, KeyType::Integer).migrate().await);
        assert!(msg.contains(column), "{ddl}: {msg}");
        assert_eq!(db.columns(&t).await, before, "{ddl}: table changed");
    }
}

/// No users table: migrating, undoing (sqlx; diesel has nothing to undo)
/// and using the store say `Schema`. A table that was never migrated: the
/// store's statements say to run `migrate()`, and quote no token.
pub async fn missing_table_and_columns(db: &MigrationDb) {
    let store = db.store("no_such_users", KeyType::Integer);
    let msg = schema_message(store.migrate().await);
    assert!(
        msg.contains("no_such_users") && msg.contains("does not exist"),
        "{msg}"
    );
    match db.steps_apart() {
        true => store.undo().await.unwrap(),
        false => drop(schema_message(store.undo().await)),
    }
    assert!(matches!(
        store.get(&HostUserId::Int(1)).await,
        Err(StoreError::Schema { .. })
    ));

    let (t, kt) = db.users_table(&[HostUserId::Int(1)], false).await;
    let store = db.store(&t, kt);
    let e = store.get(&HostUserId::Int(1)).await.unwrap_err();
    assert!(matches!(e, StoreError::Schema { .. }), "{e:?}");
    assert!(e.to_string().contains("migrate()"), "{e}");
    let e = store
        .put_token_if_absent(&HostUserId::Int(1), &token(1, "secret-token-value"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Schema { .. }), "{e:?}");
    assert_no_secret(&e, "secret-token-value");
}

/// `migrate()` checks the key column against the key type: a text key
/// with the integer default says to use `KeyType::Text`, a missing key
/// column to name it. A key of the wrong kind is a configuration error
/// (sqlx) or no user (diesel); `get_many` leaves it out either way.
pub async fn key_types(db: &MigrationDb) {
    let users = [HostUserId::Text("a".into())];
    let (t, _) = db.users_table(&users, false).await;
    let msg = schema_message(db.store(&t, KeyType::Integer).migrate().await);
    assert!(msg.contains("KeyType::Text"), "{msg}");
    let no_key = Config {
        key_column: "uid".into(),
        ..Config::new(&t, KeyType::Text)
    };
    let msg = schema_message(db.store_with(db.adapter, &no_key).migrate().await);
    assert!(
        msg.contains("uid") && msg.contains("with_key_column"),
        "{msg}"
    );
    assert!(db.recorded(&t).await.is_empty());

    let store = db.store(&t, KeyType::Text);
    store.migrate().await.unwrap();
    let int = HostUserId::Int(1);
    if db.adapter == Adapter::Sqlx {
        let e = store.get(&int).await.unwrap_err();
        assert!(matches!(e, StoreError::Config(_)), "{e:?}");
        let e = store.put_token(&int, &token(1, "t")).await.unwrap_err();
        assert!(matches!(e, StoreError::Config(_)), "{e:?}");
    } else {
        assert!(store.get(&int).await.unwrap().is_none());
        let e = store.put_token(&int, &token(1, "t")).await.unwrap_err();
        assert!(matches!(e, StoreError::UnknownUser(_)), "{e:?}");
    }
    let many = store.get_many(&[int, users[0].clone()]).await.unwrap();
    assert_eq!(many.len(), 1);

    // A native uuid key: KeyType::Uuid, not Text.
    if db.kind() == Kind::Postgres {
        let uuid = HostUserId::Text("7f1c2a9e-0000-4000-8000-000000000001".into());
        let (t, kt) = db.users_table(std::slice::from_ref(&uuid), true).await;
        assert_eq!(kt, KeyType::Uuid);
        let msg = schema_message(db.store(&t, KeyType::Text).migrate().await);
        assert!(msg.contains("KeyType::Uuid"), "{msg}");
        let store = db.store(&t, kt);
        store.migrate().await.unwrap();
        assert!(
            store
                .put_token_if_absent(&uuid, &token(1, "v"))
                .await
                .unwrap()
        );
    }
}

/// Rows that already share a `mattermost_user_id` (written before the
/// index existed, by hand or by the Laravel integration): `migrate()` says
/// how many ids and rows, and how to find them, and creates no index. sqlx
/// changes nothing at all; diesel, whose steps run apart, still adds the
/// columns and the expiry column, so that the store keeps working. Once
/// they are fixed the index is made and enforced, and undone with the
/// rest.
pub async fn duplicate_links_refused(db: &MigrationDb) {
    let t = table_name();
    db.exec(&format!(
        "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY, \
         mattermost_user_id VARCHAR(26) NULL, mattermost_token TEXT NULL)"
    ))
    .await;
    let (a, b, c) = (mm("a"), mm("b"), mm("c"));
    db.exec(&format!(
        "INSERT INTO {t} (id, mattermost_user_id, mattermost_token) VALUES \
         (1, '{a}', 'secret-token-of-row-1'), (2, '{a}', 'secret-token-of-row-2'), (3, '{a}', NULL), \
         (4, '{b}', NULL), (5, '{b}', NULL), (6, NULL, NULL), (7, NULL, NULL), (8, '{c}', NULL)"
    ))
    .await;
    let dump = format!(
        "SELECT {}, mattermost_user_id, mattermost_token FROM {t} ORDER BY id",
        db.text("id")
    );
    let rows = db.rows(&dump).await;
    let columns = db.columns(&t).await;
    let indexes = db.index_names(&t).await;
    let store = db.store(&t, KeyType::Integer);

    let msg = schema_message(store.migrate().await);
    for part in [
        "2 Mattermost user ids",
        "5 rows",
        "GROUP BY mattermost_user_id HAVING COUNT(*) > 1",
        "nothing was changed",
        "migrate() again",
        &store.index_name(),
        &t,
    ] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }
    assert!(!msg.contains("secret-token"), "{msg}");
    assert!(!msg.contains(a.as_str()), "names no id: {msg}");
    assert_eq!(db.rows(&dump).await, rows, "no row changed");
    assert_eq!(db.index_names(&t).await, indexes, "no index made");
    let now = db.columns(&t).await;
    if db.steps_apart() {
        assert_eq!(now[..columns.len()], columns[..], "the host's columns kept");
        let added = names(now[columns.len()..].to_vec());
        assert_eq!(added[..2], ["mattermost_token_id", DEFAULT_EXPIRY_COLUMN]);
        assert_eq!(added[2..], CLAIM_COLUMNS);
        assert_eq!(
            db.recorded(&t).await,
            [Step::TokenColumns, Step::ExpiryColumn, Step::ClaimColumns]
        );
        // The store works meanwhile (without the guarantee).
        assert!(store.get(&HostUserId::Int(1)).await.unwrap().is_some());
    } else {
        assert_eq!(now, columns, "no column added");
        assert!(db.recorded(&t).await.is_empty());
    }
    let after_first = db.columns(&t).await;

    // One id left shared.
    db.exec(&format!(
        "UPDATE {t} SET mattermost_user_id = NULL, mattermost_token = NULL WHERE id IN (2, 3)"
    ))
    .await;
    let msg = schema_message(store.migrate().await);
    assert!(
        msg.contains("1 Mattermost user id is held by 2 rows"),
        "{msg}"
    );
    assert_eq!(db.columns(&t).await, after_first);

    db.exec(&format!(
        "UPDATE {t} SET mattermost_user_id = NULL WHERE id = 5"
    ))
    .await;
    store.migrate().await.unwrap();
    assert_eq!(db.recorded(&t).await, ALL);
    assert!(db.index_names(&t).await.contains(&store.index_name()));
    let five = HostUserId::Int(5);
    already_linked(store.set_mattermost_user_id(&five, &b).await, &five, &b);
    let kept = store.get(&HostUserId::Int(1)).await.unwrap().unwrap();
    assert_eq!(kept.token.unwrap().expose_secret(), "secret-token-of-row-1");
    store.migrate().await.unwrap();

    // Undone: the index and what the migration added go.
    store.undo().await.unwrap();
    assert!(!db.index_names(&t).await.contains(&store.index_name()));
    assert!(db.recorded(&t).await.is_empty());
    match db.marks() {
        true => assert_eq!(db.columns(&t).await, columns, "the host's columns kept"),
        false => assert_eq!(db.column_names(&t).await, ["id"]),
    }
    store.undo().await.unwrap();
    // And forward again.
    store.migrate().await.unwrap();
    assert!(db.index_names(&t).await.contains(&store.index_name()));
}

/// Undoing drops the index before the columns; a database migrated before
/// the index existed gets it from the next `migrate()` (the expiry column's
/// record untouched), once its duplicate links are fixed.
pub async fn upgrade_adds_unique_index(db: &MigrationDb) {
    let users = [HostUserId::Int(1), HostUserId::Int(2)];
    let (t, kt) = db.users_table(&users, false).await;
    let indexes_before = db.index_names(&t).await;
    let store = db.store(&t, kt);
    let index = store.index_name();
    store.migrate().await.unwrap();
    assert!(db.index_names(&t).await.contains(&index));
    assert_eq!(db.recorded(&t).await, ALL);

    store.undo().await.unwrap();
    assert_eq!(db.index_names(&t).await, indexes_before);
    assert!(db.recorded(&t).await.is_empty());
    store.undo().await.unwrap();

    // As a release without the index left it: the columns, no index.
    store.migrate().await.unwrap();
    db.drop_index(&t, &index).await;
    db.forget(&t, Step::UserIdIndex).await;
    assert_eq!(
        db.recorded(&t).await,
        [Step::TokenColumns, Step::ExpiryColumn, Step::ClaimColumns]
    );
    let id = mm("shared");
    store.set_mattermost_user_id(&users[0], &id).await.unwrap();
    store.set_mattermost_user_id(&users[1], &id).await.unwrap();
    // Its duplicates stop the upgrade...
    let msg = schema_message(store.migrate().await);
    assert!(
        msg.contains("1 Mattermost user id is held by 2 rows"),
        "{msg}"
    );
    assert!(!db.index_names(&t).await.contains(&index));
    assert_eq!(
        db.recorded(&t).await,
        [Step::TokenColumns, Step::ExpiryColumn, Step::ClaimColumns]
    );
    // ... until they are fixed.
    db.exec(&format!(
        "UPDATE {t} SET mattermost_user_id = NULL WHERE id = 2"
    ))
    .await;
    store.migrate().await.unwrap();
    assert!(db.index_names(&t).await.contains(&index));
    assert_eq!(db.recorded(&t).await, ALL);
    already_linked(
        store.set_mattermost_user_id(&users[1], &id).await,
        &users[1],
        &id,
    );
}

/// A unique index on `mattermost_user_id` that the host made (Laravel's
/// `->unique()`: a constraint on PostgreSQL, an index elsewhere; or one of
/// any other name) is taken as it is: none is added, writes that would link
/// twice are refused. Undoing: sqlx drops one of its own name (and the
/// columns), diesel keeps what it did not mark. Without the host's index
/// the store's is added, and undone. An index of the store's name that is
/// not a unique one on the column is refused.
pub async fn existing_unique_index_kept(db: &MigrationDb) {
    let columns = "id BIGINT NOT NULL PRIMARY KEY, mattermost_user_id VARCHAR(26) NULL, \
                   mattermost_token TEXT NULL, mattermost_token_id VARCHAR(26) NULL";
    let host_columns = [
        "id",
        "mattermost_user_id",
        "mattermost_token",
        "mattermost_token_id",
    ];
    let (one, two) = (HostUserId::Int(1), HostUserId::Int(2));
    let id = mm("taken");
    let fresh = || async {
        let t = table_name();
        db.exec(&format!("CREATE TABLE {t} ({columns})")).await;
        db.exec(&format!("INSERT INTO {t} (id) VALUES (1), (2)"))
            .await;
        t
    };

    // Laravel's name.
    let t = fresh().await;
    let laravel = match db.kind() {
        Kind::Postgres => format!(
            "ALTER TABLE {t} ADD CONSTRAINT {t}_mattermost_user_id_unique UNIQUE (mattermost_user_id)"
        ),
        _ => {
            format!("CREATE UNIQUE INDEX {t}_mattermost_user_id_unique ON {t} (mattermost_user_id)")
        }
    };
    db.exec(&laravel).await;
    let indexes = db.index_names(&t).await;
    let store = db.store(&t, KeyType::Integer);
    store.migrate().await.unwrap();
    assert_eq!(db.index_names(&t).await, indexes);
    assert_eq!(db.recorded(&t).await, ALL);
    store.set_mattermost_user_id(&one, &id).await.unwrap();
    already_linked(store.set_mattermost_user_id(&two, &id).await, &two, &id);
    store.undo().await.unwrap();
    match db.marks() {
        true => {
            assert_eq!(db.column_names(&t).await, host_columns);
            assert_eq!(db.index_names(&t).await, indexes);
        }
        false => assert_eq!(db.column_names(&t).await, ["id"]),
    }

    // Another name.
    let t = fresh().await;
    let host_index = format!("host_idx_{}", unique_suffix());
    db.exec(&format!(
        "CREATE UNIQUE INDEX {host_index} ON {t} (mattermost_user_id)"
    ))
    .await;
    let indexes = db.index_names(&t).await;
    let store = db.store(&t, KeyType::Integer);
    store.migrate().await.unwrap();
    assert_eq!(db.index_names(&t).await, indexes, "no second index");
    store.set_mattermost_user_id(&one, &id).await.unwrap();
    already_linked(store.set_mattermost_user_id(&two, &id).await, &two, &id);
    let shared = NewToken {
        mattermost_user_id: id.clone(),
        ..token(9, "secret-token-value")
    };
    already_linked(store.put_token(&two, &shared).await, &two, &id);
    if db.marks() {
        store.undo().await.unwrap();
        assert_eq!(db.index_names(&t).await, indexes);
        assert_eq!(db.column_names(&t).await, host_columns);
    } else if db.kind() != Kind::Sqlite {
        // (SQLite cannot drop a column another index covers.)
        store.undo().await.unwrap();
        assert_eq!(db.column_names(&t).await, ["id"]);
    }

    // Without the host's index, the store's is added, and undone.
    let t = fresh().await;
    let plain = db.index_names(&t).await;
    let store = db.store(&t, KeyType::Integer);
    store.migrate().await.unwrap();
    let mut with_ours = plain.clone();
    with_ours.push(store.index_name());
    with_ours.sort();
    assert_eq!(db.index_names(&t).await, with_ours);
    store.undo().await.unwrap();
    assert_eq!(db.index_names(&t).await, plain);

    // An index of the store's name that is not a unique one on the column.
    let t = fresh().await;
    db.exec(&format!(
        "CREATE INDEX {t}_mattermost_user_id_unique ON {t} (mattermost_user_id, id)"
    ))
    .await;
    let (columns, indexes) = (db.columns(&t).await, db.index_names(&t).await);
    let store = db.store(&t, KeyType::Integer);
    let msg = schema_message(store.migrate().await);
    assert!(
        msg.contains(&store.index_name()) && msg.contains("not a unique index"),
        "{msg}"
    );
    assert_eq!(db.index_names(&t).await, indexes);
    let now = db.columns(&t).await;
    if db.steps_apart() {
        // The expiry column, which does not need the index, went ahead.
        assert_eq!(now[..columns.len()], columns[..]);
        let added = names(now[columns.len()..].to_vec());
        assert_eq!(added[..1], [DEFAULT_EXPIRY_COLUMN]);
        assert_eq!(added[1..], CLAIM_COLUMNS);
    } else {
        assert_eq!(now, columns);
    }
}

/// The diesel adapter's earlier releases named the index of a long table
/// by another hash. Such an index (marked as that adapter marked it) is
/// recognised: `migrate()` takes it as it is, and undoing drops it.
pub async fn earlier_index_name_recognised(db: &MigrationDb) {
    let t = format!("users_{}_", unique_suffix());
    let t = format!("{t}{}", "x".repeat(44 - t.len()));
    db.exec(&format!(
        "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY)"
    ))
    .await;
    db.exec(&format!("INSERT INTO {t} (id) VALUES (1), (2)"))
        .await;
    let store = db.store(&t, KeyType::Integer);
    store.migrate().await.unwrap();
    let index = store.index_name();
    let earlier = earlier_index_name(&t);
    assert_ne!(earlier, index);
    db.drop_index(&t, &index).await;
    let marker = Step::UserIdIndex.marker();
    for ddl in sql::create_user_id_index(db.dialect(), &t, &earlier, None, Some(marker)) {
        db.exec(&ddl).await;
    }
    let indexes = db.index_names(&t).await;
    assert!(indexes.contains(&earlier), "{indexes:?}");

    store.migrate().await.unwrap();
    db.store_with(db.adapter.other(), &Config::new(&t, KeyType::Integer))
        .migrate()
        .await
        .unwrap();
    assert_eq!(db.index_names(&t).await, indexes, "no second index");
    let (one, two, id) = (HostUserId::Int(1), HostUserId::Int(2), mm("e"));
    store.set_mattermost_user_id(&one, &id).await.unwrap();
    already_linked(store.set_mattermost_user_id(&two, &id).await, &two, &id);

    store.undo().await.unwrap();
    assert!(!db.index_names(&t).await.contains(&earlier));
    assert_eq!(db.column_names(&t).await, ["id"]);
}

/// The name the diesel adapter's earlier releases gave the index of a table
/// whose name leaves no room for the suffix: 64-bit FNV-1a of the name, cut
/// to 32 bits.
fn earlier_index_name(table: &str) -> String {
    let name = table.to_ascii_lowercase();
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!(
        "{}_{:08x}_mattermost_user_id_unique",
        &name[..28],
        hash & 0xffff_ffff
    )
}

/// Every write that links an id: refused when another row holds it, with
/// nothing changed and no token in the error; fine on the row that holds
/// it. A compare-and-set that does not apply writes nothing and so violates
/// nothing. Unknown users stay unknown.
pub async fn every_write_refuses_a_second_link(db: &MigrationDb) {
    let (one, two, three) = (HostUserId::Int(1), HostUserId::Int(2), HostUserId::Int(3));
    let users = [one.clone(), two.clone(), three.clone()];
    let (t, kt) = db.users_table(&users, false).await;
    let store = db.store(&t, kt);
    store.migrate().await.unwrap();
    let first = token(1, "token-of-user-one");
    let second = token(2, "token-of-user-two");
    assert!(store.put_token_if_absent(&one, &first).await.unwrap());
    store.put_token(&two, &second).await.unwrap();
    let before = store.get(&two).await.unwrap().unwrap();
    let a = first.mattermost_user_id.clone();
    let stealing = NewToken {
        mattermost_user_id: a.clone(),
        token: AccessToken::new("secret-stealing-token"),
        token_id: TokenId::new(format!("{:0>26}", "t99")),
        expires_at: None,
    };

    // Compare-and-set conditions that do not hold: Ok(false), not an error.
    assert!(!store.put_token_if_absent(&two, &stealing).await.unwrap());
    assert!(
        !store
            .replace_token(&two, &first.token_id, &stealing)
            .await
            .unwrap()
    );
    // Conditions that hold: the unique index refuses.
    let e = store.replace_token(&two, &second.token_id, &stealing).await;
    if let Err(e) = &e {
        assert_no_secret(e, "secret-stealing-token");
    }
    already_linked(e, &two, &a);
    let e = store.put_token(&two, &stealing).await;
    if let Err(e) = &e {
        assert_no_secret(e, "secret-stealing-token");
    }
    already_linked(e, &two, &a);
    already_linked(store.set_mattermost_user_id(&two, &a).await, &two, &a);
    // A user without a token: refused as well.
    already_linked(
        store.put_token_if_absent(&three, &stealing).await,
        &three,
        &a,
    );
    let after = store.get(&two).await.unwrap().unwrap();
    assert_eq!(after.mattermost_user_id, before.mattermost_user_id);
    assert_eq!(after.token_id, before.token_id);
    assert!(after.token.unwrap().ct_eq(&before.token.unwrap()));
    let rec = store.get(&three).await.unwrap().unwrap();
    assert!(rec.mattermost_user_id.is_none() && rec.token.is_none());
    store.clear_token(&two).await.unwrap();
    already_linked(store.put_token_if_absent(&two, &stealing).await, &two, &a);
    let rec = store.get(&two).await.unwrap().unwrap();
    assert_eq!(
        rec.mattermost_user_id,
        Some(second.mattermost_user_id.clone())
    );
    assert!(rec.token.is_none());

    // The row that holds the id may write it again.
    store.set_mattermost_user_id(&one, &a).await.unwrap();
    store.put_token(&one, &first).await.unwrap();
    store.put_token(&one, &stealing).await.unwrap();
    assert!(
        store
            .replace_token(&one, &stealing.token_id, &first)
            .await
            .unwrap()
    );
    // Clearing the token keeps the link...
    store.clear_token(&one).await.unwrap();
    already_linked(store.set_mattermost_user_id(&two, &a).await, &two, &a);
    // ... relinking the first user frees the id.
    store
        .set_mattermost_user_id(&one, &mm("other"))
        .await
        .unwrap();
    assert!(store.put_token_if_absent(&two, &stealing).await.unwrap());
    // Unknown users are still unknown.
    assert!(matches!(
        store.set_mattermost_user_id(&HostUserId::Int(99), &a).await,
        Err(StoreError::UnknownUser(_))
    ));
}

/// Ten users linked to one Mattermost account at once, and ten others
/// given tokens of another account at once: the database lets exactly one
/// of each through, whatever the interleaving, and the others are
/// `AlreadyLinked`.
pub async fn concurrent_links_one_wins(db: &MigrationDb) {
    let users: Vec<HostUserId> = (1..=20).map(HostUserId::Int).collect();
    let (t, kt) = db.users_table(&users, false).await;
    let store: Arc<dyn TokenStore> = db.store(&t, kt);
    db.store(&t, kt).migrate().await.unwrap();

    let id = mm("contested");
    let tasks = users[..10].iter().map(|u| {
        let (store, u, id) = (store.clone(), u.clone(), id.clone());
        tokio::spawn(async move { (u.clone(), store.set_mattermost_user_id(&u, &id).await) })
    });
    let mut winners = Vec::new();
    for r in futures::future::join_all(tasks).await {
        let (u, r) = r.unwrap();
        match r {
            Ok(()) => winners.push(u),
            other => already_linked(other, &u, &id),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");

    let other = mm("contested-too");
    let tasks = users[10..].iter().map(|u| {
        let (store, u) = (store.clone(), u.clone());
        let t = NewToken {
            mattermost_user_id: other.clone(),
            ..token(7, &format!("token-for-{u}"))
        };
        tokio::spawn(async move { (u.clone(), store.put_token_if_absent(&u, &t).await) })
    });
    let mut token_winners = Vec::new();
    for r in futures::future::join_all(tasks).await {
        let (u, r) = r.unwrap();
        match r {
            Ok(true) => token_winners.push(u),
            r => already_linked(r, &u, &other),
        }
    }
    assert_eq!(token_winners.len(), 1, "{token_winners:?}");
    let rec = store.get(&token_winners[0]).await.unwrap().unwrap();
    assert_eq!(
        rec.token.unwrap().expose_secret(),
        format!("token-for-{}", token_winners[0])
    );

    // What is stored agrees: one row per Mattermost user.
    let all = store.get_many(&users).await.unwrap();
    let linked = |id: &UserId| -> Vec<HostUserId> {
        users
            .iter()
            .filter(|u| all[*u].mattermost_user_id.as_ref() == Some(id))
            .cloned()
            .collect()
    };
    assert_eq!(linked(&id), winners);
    assert_eq!(linked(&other), token_winners);
    assert_eq!(all.values().filter(|r| r.token.is_some()).count(), 1);
    let held = db
        .rows(&format!(
            "SELECT {} FROM {t} WHERE mattermost_user_id IS NOT NULL",
            db.text("id")
        ))
        .await;
    assert_eq!(held.len(), 2, "{held:?}");
}

/// A schema-qualified table, and one whose name leaves no room for the
/// index's suffix (63 characters): the index is named after the table
/// without its schema, made in the table's schema, the same for every
/// spelling of the table, enforced, and undone.
pub async fn qualified_and_long_table_names(db: &MigrationDb) {
    let (one, two) = (HostUserId::Int(1), HostUserId::Int(2));
    let id = mm("q");
    let (t, kt) = db.users_table(&[one.clone(), two.clone()], false).await;
    let schema = match db.kind() {
        Kind::Sqlite => "main".to_owned(),
        _ => db.namespace().unwrap().to_owned(),
    };
    let qualified = db.store(&format!("{schema}.{t}"), kt);
    let plain = db.store(&t, kt);
    assert_eq!(
        qualified.index_name(),
        format!("{t}_mattermost_user_id_unique")
    );
    assert_eq!(qualified.index_name(), plain.index_name());
    let before = (db.columns(&t).await, db.index_names(&t).await);
    qualified.migrate().await.unwrap();
    qualified.migrate().await.unwrap();
    assert!(db.index_names(&t).await.contains(&qualified.index_name()));
    assert!(
        qualified
            .put_token_if_absent(&two, &token(2, "q"))
            .await
            .unwrap()
    );
    qualified.set_mattermost_user_id(&one, &id).await.unwrap();
    already_linked(plain.set_mattermost_user_id(&two, &id).await, &two, &id);
    // The unqualified store's migration finds the index there, and the
    // same columns and values.
    plain.migrate().await.unwrap();
    assert!(db.index_names(&t).await.contains(&qualified.index_name()));
    let rec = plain.get(&two).await.unwrap().unwrap();
    assert_eq!(rec.token.unwrap().expose_secret(), "q");
    qualified.undo().await.unwrap();
    assert_eq!((db.columns(&t).await, db.index_names(&t).await), before);
    // Nothing left to drop: the unqualified store forgets its records.
    plain.undo().await.unwrap();
    assert_eq!(db.column_names(&t).await, ["id", "name"]);

    // 63 characters (the longest identifier).
    let t = format!("users_{}_", unique_suffix());
    let t = format!("{t}{}", "x".repeat(63 - t.len()));
    db.exec(&format!(
        "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY)"
    ))
    .await;
    db.exec(&format!("INSERT INTO {t} (id) VALUES (1), (2)"))
        .await;
    let store = db.store(&t, KeyType::Integer);
    let index = store.index_name();
    assert_eq!(index.len(), 63, "{index}");
    assert!(index.starts_with(&t[..28]), "{index}");
    assert!(index.ends_with("_mattermost_user_id_unique"), "{index}");
    assert_eq!(db.store(&t, KeyType::Integer).index_name(), index);
    store.migrate().await.unwrap();
    assert!(db.index_names(&t).await.contains(&index));
    store.set_mattermost_user_id(&one, &id).await.unwrap();
    already_linked(store.set_mattermost_user_id(&two, &id).await, &two, &id);
    store.undo().await.unwrap();
    assert!(!db.index_names(&t).await.contains(&index));
    assert_eq!(db.column_names(&t).await, ["id"]);
}

/// Puts a migrated table back as a release without the expiry column left
/// it: the first two steps' columns, index and records, no expiry column
/// and no record of its step.
async fn as_before_expiry(db: &MigrationDb, table: &str, column: &str) {
    for column in std::iter::once(column).chain(CLAIM_COLUMNS) {
        db.exec(&format!("ALTER TABLE {table} DROP COLUMN {column}"))
            .await;
    }
    db.forget(table, Step::ClaimColumns).await;
    db.forget(table, Step::ExpiryColumn).await;
    assert_eq!(
        db.recorded(table).await,
        [Step::TokenColumns, Step::UserIdIndex]
    );
}

/// A database migrated by a release before the expiry column, with rows it
/// wrote: `migrate()` applies the new step alone (the other columns, the
/// index, the earlier records and every row stay as they are) and the store
/// then reads and writes the expiry. Until then, the store's statements
/// fail with a schema error that says to run `migrate()`.
pub async fn upgrade_adds_expiry_column(db: &MigrationDb) {
    let users: Vec<HostUserId> = (1..=3).map(HostUserId::Int).collect();
    let (t, kt) = db.users_table(&users, false).await;
    let store = db.store(&t, kt);
    store.migrate().await.unwrap();
    as_before_expiry(db, &t, DEFAULT_EXPIRY_COLUMN).await;

    // Rows the earlier release wrote.
    let old = token(1, "token-written-before-expiry");
    db.exec(&format!(
        "UPDATE {t} SET mattermost_user_id = '{}', mattermost_token = 'token-written-before-expiry', \
         mattermost_token_id = '{}' WHERE id = 1",
        old.mattermost_user_id, old.token_id
    ))
    .await;
    db.exec(&format!(
        "UPDATE {t} SET mattermost_user_id = '{}' WHERE id = 2",
        mm("linked-only")
    ))
    .await;
    let dump = format!(
        "SELECT {}, name, mattermost_user_id, mattermost_token, mattermost_token_id FROM {t} ORDER BY id",
        db.text("id")
    );
    let rows = db.rows(&dump).await;
    let columns = db.columns(&t).await;
    let indexes = db.index_names(&t).await;
    assert!(indexes.contains(&store.index_name()));
    let earlier = db.records(&t).await;
    assert_eq!(earlier.len(), 2);

    let e = store.get(&users[0]).await.unwrap_err();
    assert!(matches!(e, StoreError::Schema { .. }), "{e:?}");
    assert!(e.to_string().contains("migrate()"), "{e}");

    store.migrate().await.unwrap();
    let migrated = db.columns(&t).await;
    assert_eq!(migrated[..columns.len()], columns[..], "other columns kept");
    assert_eq!(migrated.len(), columns.len() + 4, "{migrated:?}");
    assert_expiry_column(db.kind(), &migrated[columns.len()], DEFAULT_EXPIRY_COLUMN);
    assert_eq!(db.index_names(&t).await, indexes);
    assert_eq!(db.rows(&dump).await, rows, "no row lost or changed");
    let records = db.records(&t).await;
    assert_eq!(records[..2], earlier[..], "earlier records untouched");
    assert_eq!(db.recorded(&t).await, ALL);
    if db.adapter == Adapter::Sqlx {
        assert_eq!(records[2][1].as_deref(), Some(EXPIRY_MIGRATION_NAME));
        assert_eq!(
            [earlier[0][1].as_deref(), earlier[1][1].as_deref()],
            [Some(MIGRATION_NAME), Some(UNIQUE_INDEX_MIGRATION_NAME)]
        );
    }

    // Existing rows read back unchanged, without an expiry.
    let rec = store.get(&users[0]).await.unwrap().unwrap();
    assert_eq!(
        rec.token.as_ref().unwrap().expose_secret(),
        "token-written-before-expiry"
    );
    assert_eq!(rec.token_id, Some(old.token_id.clone()));
    assert_eq!(rec.token_expires_at, None);
    let many = store.get_many(&users).await.unwrap();
    assert_eq!(many[&users[1]].mattermost_user_id, Some(mm("linked-only")));
    assert!(many.values().all(|r| r.token_expires_at.is_none()));
    assert_eq!(
        store.list_missing(None, 10).await.unwrap().users,
        users[1..]
    );

    // The next rotation stores the expiry.
    let new = expiring(1, "rotated-token", Some(SOON_MS));
    assert!(
        store
            .replace_token(&users[0], &old.token_id, &new)
            .await
            .unwrap()
    );
    let rec = store.get(&users[0]).await.unwrap().unwrap();
    assert_eq!(rec.token_expires_at, Some(SOON_MS));
    assert_eq!(
        cell(db, &t, DEFAULT_EXPIRY_COLUMN, 1).await,
        Some(SOON_MS.to_string())
    );
    assert_eq!(cell(db, &t, DEFAULT_EXPIRY_COLUMN, 2).await, None);
    // Nothing left to do.
    store.migrate().await.unwrap();
    assert_eq!(db.columns(&t).await, migrated);
}

/// Undoing drops the expiry column (first, before the index and the
/// token columns), on a fully migrated database and on one an earlier
/// release migrated; `migrate()` then adds it back, empty. A text column
/// of its name was not added by the migration: sqlx refuses to undo or
/// migrate before changing anything; diesel keeps it on undo (it does not
/// carry its mark) and refuses it on migrate.
pub async fn undo_drops_expiry_column(db: &MigrationDb) {
    let users = [HostUserId::Int(1), HostUserId::Int(2)];
    let (t, kt) = db.users_table(&users, false).await;
    let before = db.columns(&t).await;
    let indexes_before = db.index_names(&t).await;
    let store = db.store(&t, kt);

    store.migrate().await.unwrap();
    let migrated = db.columns(&t).await;
    store
        .put_token(&users[0], &expiring(1, "v", Some(SOON_MS)))
        .await
        .unwrap();
    store.undo().await.unwrap();
    assert_eq!(db.columns(&t).await, before);
    assert_eq!(db.index_names(&t).await, indexes_before);
    assert!(db.recorded(&t).await.is_empty());
    store.undo().await.unwrap();
    assert_eq!(db.columns(&t).await, before);

    // Migrated again, the column is back, empty.
    store.migrate().await.unwrap();
    assert_eq!(db.recorded(&t).await, ALL);
    assert_eq!(db.columns(&t).await, migrated);
    let rec = store.get(&users[0]).await.unwrap().unwrap();
    assert!(rec.token.is_none() && rec.token_expires_at.is_none());

    // Migrated by an earlier release only: undo works as it did.
    as_before_expiry(db, &t, DEFAULT_EXPIRY_COLUMN).await;
    store.undo().await.unwrap();
    assert_eq!(db.columns(&t).await, before);
    assert_eq!(db.index_names(&t).await, indexes_before);
    assert!(db.recorded(&t).await.is_empty());

    // A text column of the expiry column's name.
    store.migrate().await.unwrap();
    as_before_expiry(db, &t, DEFAULT_EXPIRY_COLUMN).await;
    db.exec(&format!(
        "ALTER TABLE {t} ADD COLUMN {DEFAULT_EXPIRY_COLUMN} VARCHAR(40)"
    ))
    .await;
    let state = (
        db.columns(&t).await,
        db.index_names(&t).await,
        db.recorded(&t).await,
    );
    let msg = schema_message(store.migrate().await);
    assert!(
        msg.contains(DEFAULT_EXPIRY_COLUMN)
            && msg.contains("nothing was changed")
            && msg.contains("with_expiry_column"),
        "{msg}"
    );
    assert_eq!(
        (
            db.columns(&t).await,
            db.index_names(&t).await,
            db.recorded(&t).await,
        ),
        state
    );
    if db.marks() {
        store.undo().await.unwrap();
        let names = db.column_names(&t).await;
        assert_eq!(names, ["id", "name", DEFAULT_EXPIRY_COLUMN], "kept");
    } else {
        let msg = schema_message(store.undo().await);
        assert!(
            msg.contains(DEFAULT_EXPIRY_COLUMN) && msg.contains("nothing was dropped"),
            "{msg}"
        );
        assert_eq!(
            (
                db.columns(&t).await,
                db.index_names(&t).await,
                db.recorded(&t).await,
            ),
            state
        );
    }
}

/// A store configured with another expiry column adds, reads, writes,
/// clears and drops that one, and never the default; a store left at the
/// default name does not find its column.
pub async fn custom_expiry_column(db: &MigrationDb) {
    let users = [HostUserId::Int(1), HostUserId::Int(2)];
    let (t, kt) = db.users_table(&users, false).await;
    let before = db.column_names(&t).await;
    let column = "token_expiry_ms";
    let config = Config {
        expiry: column.to_owned(),
        ..Config::new(&t, kt)
    };
    let store = db.store_with(db.adapter, &config);
    assert_eq!(store.expiry_column(), column);

    store.migrate().await.unwrap();
    let migrated = db.columns(&t).await;
    assert_eq!(
        names(migrated[before.len()..].to_vec()),
        [
            "mattermost_user_id",
            "mattermost_token",
            "mattermost_token_id",
            column,
            CLAIM_COLUMNS[0],
            CLAIM_COLUMNS[1],
            CLAIM_COLUMNS[2],
        ]
    );
    assert!(!names(migrated.clone()).contains(&DEFAULT_EXPIRY_COLUMN.to_owned()));
    assert_expiry_column(db.kind(), &migrated[before.len() + 3], column);
    assert_eq!(db.recorded(&t).await, ALL);

    store
        .put_token(&users[0], &expiring(1, "one", Some(LATER_MS)))
        .await
        .unwrap();
    assert!(
        store
            .put_token_if_absent(&users[1], &expiring(2, "two", Some(SOON_MS)))
            .await
            .unwrap()
    );
    assert_eq!(cell(db, &t, column, 1).await, Some(LATER_MS.to_string()));
    let rec = store.get(&users[1]).await.unwrap().unwrap();
    assert_eq!(rec.token_expires_at, Some(SOON_MS));
    let many = store.get_many(&users).await.unwrap();
    assert_eq!(many[&users[0]].token_expires_at, Some(LATER_MS));
    assert_eq!(many[&users[1]].token_expires_at, Some(SOON_MS));
    assert!(store.clear_token(&users[1]).await.unwrap());
    assert_eq!(cell(db, &t, column, 2).await, None);
    assert_eq!(cell(db, &t, "mattermost_token", 2).await, None);
    assert_eq!(
        store
            .get(&users[1])
            .await
            .unwrap()
            .unwrap()
            .token_expires_at,
        None
    );
    assert_eq!(cell(db, &t, column, 1).await, Some(LATER_MS.to_string()));

    // Again: nothing changes.
    store.migrate().await.unwrap();
    assert_eq!(db.columns(&t).await, migrated);

    // A store left at the default name does not find its column.
    let e = db.store(&t, kt).get(&users[0]).await.unwrap_err();
    assert!(matches!(e, StoreError::Schema { .. }), "{e:?}");

    store.undo().await.unwrap();
    assert_eq!(db.column_names(&t).await, before);
    assert!(db.recorded(&t).await.is_empty());
}

/// Running the migration twice, or several at once, on a new database and
/// on one an earlier release migrated, adds the expiry column once and
/// records it once; stored expiries survive a re-run. A column of the
/// name made beforehand as a 64-bit integer is kept with its values (also
/// by an undo, for a marking adapter); one that cannot hold milliseconds
/// (32-bit, text, `NOT NULL`) is refused, with nothing changed.
pub async fn expiry_migration_is_idempotent(db: &MigrationDb) {
    let users = [HostUserId::Int(1), HostUserId::Int(2)];
    let (t, kt) = db.users_table(&users, false).await;
    let store = db.store(&t, kt);
    store.migrate().await.unwrap();
    let columns = db.columns(&t).await;
    let records = db.records(&t).await;
    store
        .put_token(&users[0], &expiring(1, "v", Some(SOON_MS)))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert_eq!(db.columns(&t).await, columns);
    assert_eq!(db.records(&t).await, records);
    let rec = store.get(&users[0]).await.unwrap().unwrap();
    assert_eq!(rec.token_expires_at, Some(SOON_MS));

    // The upgrade, by several app instances at once, then once more.
    as_before_expiry(db, &t, DEFAULT_EXPIRY_COLUMN).await;
    let runs = (0..4).map(|_| {
        let store = db.store(&t, kt);
        tokio::spawn(async move { store.migrate().await })
    });
    for r in futures::future::join_all(runs).await {
        r.unwrap().unwrap();
    }
    store.migrate().await.unwrap();
    assert_eq!(db.columns(&t).await, columns);
    assert_eq!(db.recorded(&t).await, ALL);
    let rec = store.get(&users[0]).await.unwrap().unwrap();
    assert_eq!(rec.token.unwrap().expose_secret(), "v");
    assert_eq!(rec.token_expires_at, None);

    // Made by hand beforehand, with a value: kept as it is.
    let t = table_name();
    db.exec(&format!(
        "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY, {DEFAULT_EXPIRY_COLUMN} BIGINT NULL)"
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO {t} (id, {DEFAULT_EXPIRY_COLUMN}) VALUES (1, {LATER_MS})"
    ))
    .await;
    let before = db.columns(&t).await;
    let store = db.store(&t, KeyType::Integer);
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let after = db.columns(&t).await;
    assert_eq!(
        after[..before.len()],
        before[..],
        "the host's column changed"
    );
    assert_eq!(
        db.column_names(&t).await,
        [
            "id",
            DEFAULT_EXPIRY_COLUMN,
            "mattermost_user_id",
            "mattermost_token",
            "mattermost_token_id",
            CLAIM_COLUMNS[0],
            CLAIM_COLUMNS[1],
            CLAIM_COLUMNS[2],
        ]
    );
    assert_eq!(db.recorded(&t).await, ALL);
    let rec = store.get(&HostUserId::Int(1)).await.unwrap().unwrap();
    assert_eq!(rec.token_expires_at, Some(LATER_MS));
    if db.marks() {
        store.undo().await.unwrap();
        assert_eq!(db.columns(&t).await, before);
        assert_eq!(
            cell(db, &t, DEFAULT_EXPIRY_COLUMN, 1).await,
            Some(LATER_MS.to_string())
        );
    }

    // Columns that cannot hold milliseconds (32-bit; on SQLite, text; or
    // NOT NULL) are refused, with nothing changed.
    let narrow = match db.kind() {
        Kind::Sqlite => "TEXT",
        _ => "INTEGER",
    };
    for ddl in [
        format!("{DEFAULT_EXPIRY_COLUMN} {narrow} NULL"),
        format!("{DEFAULT_EXPIRY_COLUMN} VARCHAR(20) NULL"),
        format!("{DEFAULT_EXPIRY_COLUMN} BIGINT NOT NULL DEFAULT 0"),
    ] {
        let t = table_name();
        db.exec(&format!(
            "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY, {ddl})"
        ))
        .await;
        let before = (db.columns(&t).await, db.index_names(&t).await);
        let msg = schema_message(db.store(&t, KeyType::Integer).migrate().await);
        assert!(msg.contains(DEFAULT_EXPIRY_COLUMN), "{ddl}: {msg}");
        if !ddl.contains("NOT NULL") {
            assert!(msg.contains("64-bit"), "{ddl}: {msg}");
        }
        if db.steps_apart() {
            // The columns step went ahead; the host's column was not
            // touched and the step not recorded.
            assert_eq!(db.column_names(&t).await[1], DEFAULT_EXPIRY_COLUMN, "{ddl}");
            assert!(
                !db.recorded(&t).await.contains(&Step::ExpiryColumn),
                "{ddl}"
            );
            let store = db.store(&t, KeyType::Integer);
            store.undo().await.unwrap();
            assert_eq!(db.columns(&t).await, before.0, "{ddl}");
        } else {
            let now = (db.columns(&t).await, db.index_names(&t).await);
            assert_eq!(now, before, "{ddl}");
            assert!(db.recorded(&t).await.is_empty(), "{ddl}");
        }
    }
}

/// Writing the values a row already holds still counts as a match (MySQL
/// counts changed rows unless the client asks for found rows); a token of
/// about 100 characters (an encrypted envelope) round-trips; a token id or
/// expiry without a token (another tool's row) is cleared with it.
pub async fn rewriting_same_values_matches(db: &MigrationDb) {
    let u = HostUserId::Int(1);
    let (t, kt) = db.users_table(std::slice::from_ref(&u), false).await;
    let store = db.store(&t, kt);
    store.migrate().await.unwrap();
    let long = format!(
        "mmt1:k1:{}",
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo".repeat(3)
    );
    let tk = expiring(1, &long, Some(SOON_MS));
    store
        .set_mattermost_user_id(&u, &tk.mattermost_user_id)
        .await
        .unwrap();
    store
        .set_mattermost_user_id(&u, &tk.mattermost_user_id)
        .await
        .unwrap();
    store.put_token(&u, &tk).await.unwrap();
    store.put_token(&u, &tk).await.unwrap();
    assert!(store.replace_token(&u, &tk.token_id, &tk).await.unwrap());
    let rec = store.get(&u).await.unwrap().unwrap();
    assert_eq!(rec.token.unwrap().expose_secret(), long);

    db.exec(&format!(
        "UPDATE {t} SET mattermost_token = NULL WHERE id = 1"
    ))
    .await;
    assert!(!store.clear_token(&u).await.unwrap());
    let rec = store.get(&u).await.unwrap().unwrap();
    assert!(rec.token.is_none() && rec.token_id.is_none() && rec.token_expires_at.is_none());
    assert!(rec.mattermost_user_id.is_some());
}

/// `get_many` over more users than one `IN` list holds: every known user
/// once, unknown ones and keys of the other kind left out.
pub async fn get_many_over_one_in_list(db: &MigrationDb) {
    let users: Vec<HostUserId> = (1..=1100).map(HostUserId::Int).collect();
    let (t, kt) = db.users_table(&users, false).await;
    let store = db.store(&t, kt);
    store.migrate().await.unwrap();
    assert!(
        store
            .put_token_if_absent(&users[700], &token(700, "v700"))
            .await
            .unwrap()
    );
    let mut ask = users.clone();
    ask.extend([
        HostUserId::Int(0),
        HostUserId::Int(5000),
        HostUserId::Text("1".into()),
    ]);
    let many = store.get_many(&ask).await.unwrap();
    assert_eq!(many.len(), users.len());
    let v = many[&users[700]].token.as_ref().unwrap();
    assert_eq!(v.expose_secret(), "v700");
    assert!(many[&users[0]].token.is_none());
    assert!(store.get_many(&[]).await.unwrap().is_empty());
}

/// A table migrated through this adapter, with a name long enough (44
/// characters) that the index name is cut and hashed, opened through the
/// other adapter: the same index name, its `migrate()` finds everything in
/// place (no second index, no column changed) and records its steps, it
/// reads what the first wrote and writes what the first reads, and the
/// index refuses a second link either way. Undoing through the other: a
/// marking adapter keeps what it did not mark; the other undoes it all.
pub async fn other_adapter_opens_migrated_table(db: &MigrationDb) {
    let t = format!("users_{}_", unique_suffix());
    let t = format!("{t}{}", "y".repeat(44 - t.len()));
    let users = [HostUserId::Int(1), HostUserId::Int(2), HostUserId::Int(3)];
    db.exec(&format!(
        "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(100) NULL)"
    ))
    .await;
    db.exec(&format!("INSERT INTO {t} (id) VALUES (1), (2), (3)"))
        .await;
    let before = (db.columns(&t).await, db.index_names(&t).await);
    let config = Config::new(&t, KeyType::Integer);
    let first = db.store_with(db.adapter, &config);
    let second = db.store_with(db.adapter.other(), &config);
    first.migrate().await.unwrap();
    let written = expiring(1, "written-by-the-first", Some(SOON_MS));
    assert!(
        first
            .put_token_if_absent(&users[0], &written)
            .await
            .unwrap()
    );

    let index = first.index_name();
    assert!(
        index.len() == 63 && index.ends_with("_mattermost_user_id_unique"),
        "{index}"
    );
    assert_eq!(second.index_name(), index, "one name, whichever adapter");
    let migrated = (db.columns(&t).await, db.index_names(&t).await);
    assert!(migrated.1.contains(&index));
    second.migrate().await.unwrap();
    second.migrate().await.unwrap();
    assert_eq!((db.columns(&t).await, db.index_names(&t).await), migrated);
    let other = db.adapter.other();
    assert_eq!(db.recorded_by(other, &t).await, ALL);
    assert_eq!(db.recorded(&t).await, ALL);

    let rec = second.get(&users[0]).await.unwrap().unwrap();
    assert_eq!(rec.token.unwrap().expose_secret(), "written-by-the-first");
    assert_eq!(rec.token_expires_at, Some(SOON_MS));
    let back = token(2, "written-by-the-second");
    assert!(second.put_token_if_absent(&users[1], &back).await.unwrap());
    let rec = first.get(&users[1]).await.unwrap().unwrap();
    assert_eq!(rec.token_id, Some(back.token_id.clone()));
    let linked = written.mattermost_user_id.clone();
    already_linked(
        second.set_mattermost_user_id(&users[2], &linked).await,
        &users[2],
        &linked,
    );
    already_linked(
        first
            .set_mattermost_user_id(&users[2], &back.mattermost_user_id)
            .await,
        &users[2],
        &back.mattermost_user_id,
    );

    second.undo().await.unwrap();
    assert!(db.recorded_by(other, &t).await.is_empty());
    if other == Adapter::Diesel {
        // Nothing here carries diesel's mark: all stays.
        assert_eq!((db.columns(&t).await, db.index_names(&t).await), migrated);
        first.undo().await.unwrap();
    }
    assert_eq!((db.columns(&t).await, db.index_names(&t).await), before);
    // The first adapter's records are its own: undo forgets them (sqlx
    // looks at the table, so its undo after diesel's finds nothing left).
    first.undo().await.unwrap();
    assert!(db.recorded(&t).await.is_empty());
}
