//! `reencrypt`: every stored token moved to the newest key of
//! `MATTERMOST_TOKENS_KEY` (after adding a key), plaintext rows sealed.

use anyhow::anyhow;
use futures::TryStreamExt;
use serde_json::json;

use super::{Common, open};
use crate::cli::{Ended, Format, emit, print, table};
use crate::setup::{Fatal, Schema};

/// Re-encrypt every stored token under the newest key (and seal plaintext
/// rows).
#[derive(Debug, Clone, clap::Args)]
pub struct ReencryptArgs {}

/// Runs `reencrypt`.
pub async fn run(_: ReencryptArgs, common: Common) -> Result<Ended, Fatal> {
    let setup = open(&common, Schema::Leave).await?;
    let Some(store) = setup.stores.encrypted.clone() else {
        return Err(anyhow!(
            "MATTERMOST_TOKENS_KEY is not set: reencrypt moves rows to its newest key"
        )
        .into());
    };
    // Plaintext rows (from before encryption) are read and sealed.
    let store =
        mattermost_tokens::EncryptedStore::new(setup.stores.plain.clone(), store.keys().clone())
            .allow_plaintext(true)
            .seal_plaintext(true);
    let ids: Vec<_> = mattermost_tokens::host_table::stream(setup.stores.users.clone())
        .map_ok(|u| u.id)
        .try_collect()
        .await?;
    let report = store.reencrypt_all(futures::stream::iter(ids)).await;
    match common.format {
        Format::Json => emit(&json!({
            "reencrypted": report.reencrypted,
            "already_current": report.already_current,
            "plaintext_sealed": report.plaintext,
            "skipped": report.skipped,
            "failed": report.failed,
            "failures": report.failures.iter().map(|(u, e)| json!({"user": u, "error": e.to_string()})).collect::<Vec<_>>(),
        })),
        Format::Text => {
            let mut text = table(
                &format!("Reencrypt (newest key: {})", store.keys().current_kid()),
                &[
                    ("reencrypted", report.reencrypted.to_string()),
                    ("already_current", report.already_current.to_string()),
                    ("plaintext_sealed", report.plaintext.to_string()),
                    ("skipped", report.skipped.to_string()),
                    ("failed", report.failed.to_string()),
                ],
            );
            for (u, e) in &report.failures {
                text.push_str(&format!("  user {u}: {e}\n"));
            }
            print(&text);
        }
    }
    Ok(Ended::failed(report.failed))
}
