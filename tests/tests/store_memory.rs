//! The conformance suite against the in-memory store.

use std::sync::Arc;

use async_trait::async_trait;
use mattermost_tokens::{HostUserId, MemoryStore, TokenStore};
use mattermost_tokens_tests::conformance::StoreFactory;

struct MemoryFactory;

#[async_trait]
impl StoreFactory for MemoryFactory {
    async fn fresh(&self, users: &[HostUserId]) -> Option<Arc<dyn TokenStore>> {
        Some(Arc::new(MemoryStore::with_users(users.iter().cloned())))
    }
}

mattermost_tokens_tests::conformance_tests!(memory, MemoryFactory);
