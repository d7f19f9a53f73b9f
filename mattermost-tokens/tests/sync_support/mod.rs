//! Helpers shared by the sync suites: ids, account JSON, a client and a
//! sync over an httpmock server, a minting responder, and a store without
//! shared claims.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use httpmock::Method::POST;
use httpmock::{HttpMockRequest, HttpMockResponse, MockServer};
use mattermost_tokens::*;
use serde_json::{Value, json};

pub const ADMIN: &str = "adminadminadminadminadmin1";

pub fn id(prefix: &str, n: usize) -> String {
    let s = format!("{prefix}{n}");
    format!("{}{s}", "a".repeat(26 - s.len()))
}

pub fn user_json(mm: &str, username: &str, email: &str, first: &str, last: &str) -> Value {
    json!({"id": mm, "username": username, "email": email, "first_name": first,
           "last_name": last, "nickname": "", "roles": "system_user", "delete_at": 0,
           "create_at": 1, "update_at": 1, "unknown_field": {"x": 1}})
}

pub fn client(server: &MockServer) -> MattermostClient {
    MattermostClient::builder(&server.base_url(), ADMIN)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

pub fn sync_over(server: &MockServer, store: Arc<dyn TokenStore>, opts: SyncOptions) -> UserSync {
    UserSync::new(client(server), store, opts).unwrap()
}

pub fn opts() -> SyncOptions {
    SyncOptions::new("shop")
}

/// Answers token creation with a fresh id and value per call.
pub fn minting(
    counter: Arc<AtomicUsize>,
) -> impl Fn(&HttpMockRequest) -> HttpMockResponse + Send + Sync + 'static {
    move |req: &HttpMockRequest| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let path = req.uri().path().to_owned();
        let user = path.split('/').nth(4).unwrap_or_default().to_owned();
        let body: Value = serde_json::from_slice(req.body().as_ref()).unwrap_or(Value::Null);
        let resp = json!({"id": id("t", n), "token": format!("secrettokenvalue{n:010}"),
            "user_id": user, "description": body["description"], "is_active": true});
        HttpMockResponse::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(resp.to_string())
            .build()
    }
}

pub async fn ok_revoke<'a>(server: &'a MockServer, token_id: &str) -> httpmock::Mock<'a> {
    let token_id = token_id.to_owned();
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v4/users/tokens/revoke")
                .json_body(json!({"token_id": token_id}));
            then.status(200).json_body(json!({"status": "OK"}));
        })
        .await
}

/// The store as a host's own store that keeps the trait's claim defaults
/// (no claims shared between processes).
pub fn unshared(store: &Arc<MemoryStore>) -> Arc<dyn TokenStore> {
    Arc::new(Unshared(store.clone()))
}

pub fn stored(store: &MemoryStore, user: i64) -> TokenRecord {
    futures::executor::block_on(store.get(&HostUserId::Int(user)))
        .unwrap()
        .unwrap()
}

/// A [`MemoryStore`] behind the trait's claim defaults: what a host's own
/// store that does not implement claims looks like to the sync.
#[derive(Debug)]
pub struct Unshared(pub Arc<MemoryStore>);

#[async_trait]
impl TokenStore for Unshared {
    async fn get(&self, user: &HostUserId) -> Result<Option<TokenRecord>, StoreError> {
        self.0.get(user).await
    }
    async fn get_many(
        &self,
        users: &[HostUserId],
    ) -> Result<HashMap<HostUserId, TokenRecord>, StoreError> {
        self.0.get_many(users).await
    }
    async fn set_mattermost_user_id(&self, u: &HostUserId, id: &UserId) -> Result<(), StoreError> {
        self.0.set_mattermost_user_id(u, id).await
    }
    async fn put_token_if_absent(&self, u: &HostUserId, t: &NewToken) -> Result<bool, StoreError> {
        self.0.put_token_if_absent(u, t).await
    }
    async fn put_token(&self, u: &HostUserId, t: &NewToken) -> Result<(), StoreError> {
        self.0.put_token(u, t).await
    }
    async fn replace_token(
        &self,
        u: &HostUserId,
        expected: &TokenId,
        t: &NewToken,
    ) -> Result<bool, StoreError> {
        self.0.replace_token(u, expected, t).await
    }
    async fn clear_token(&self, u: &HostUserId) -> Result<bool, StoreError> {
        self.0.clear_token(u).await
    }
    async fn list_missing(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
    ) -> Result<MissingPage, StoreError> {
        self.0.list_missing(after, limit).await
    }
}
