//! Rotating every stored token, as the response to a leak: a campaign that
//! survives being killed and never rotates a user twice.
//!
//! A [`RotationCampaign`] begins with a snapshot: every host user with a
//! stored token, and that token's id. It lives in a journal file (JSON
//! lines): the snapshot, written whole before the first rotation (to a
//! temporary file, then renamed), then one line per user done. Each user
//! is rotated by [`UserSync::rotate`] (mint, store over the old token only
//! if it is still the stored one, then revoke it), so at no moment is a
//! user without a working token. A user counts as done only once their
//! snapshot token is revoked.
//!
//! Re-running after a kill ([`RotationCampaign::resume`]) skips the users
//! the journal says are done. For the others it reads the stored token:
//! - still the snapshot's: rotate (a mint the killed run made but could
//!   not store is found through its recorded intent and revoked first);
//! - another one (the killed run stored the new token but did not revoke
//!   the old one, or someone else replaced it): revoke the snapshot's token
//!   (already gone counts as revoked), mint nothing.
//!
//! So a campaign mints at most once per user, apart from mints lost to a
//! kill, which are revoked.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::ids::{HostUserId, TokenId};
use crate::store::StoreError;
use crate::sync::{SyncWarning, TokenOutcome, UserSync};

/// Why a campaign's journal could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CampaignError {
    /// The journal file could not be read or written.
    #[error("rotation journal {path}: {source}")]
    Io {
        /// The journal.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The journal is not one this library wrote.
    #[error(
        "rotation journal {path}, line {line}: not a rotation journal line (move the file away to begin a new campaign)"
    )]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
    },
    /// Reading the stored tokens for the snapshot failed.
    #[error("reading the stored tokens for the rotation snapshot")]
    Store(#[from] StoreError),
}

/// One journal line.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Header {
        campaign: String,
        started_at_ms: i64,
        users: usize,
    },
    Planned {
        user: HostUserId,
        token_id: Option<TokenId>,
    },
    Done {
        done: HostUserId,
    },
    Finished {
        finished_at_ms: i64,
    },
}

/// A rotation of every token stored when it began; see the [module
/// docs](self).
#[derive(Debug)]
pub struct RotationCampaign {
    path: PathBuf,
    id: String,
    started_at_ms: i64,
    planned: Vec<(HostUserId, Option<TokenId>)>,
    done: HashSet<HostUserId>,
    finished: bool,
    journal: Mutex<File>,
}

impl RotationCampaign {
    /// Resumes the campaign journaled at `path`: `None` when there is no
    /// file or its campaign finished.
    pub fn resume(path: impl AsRef<Path>) -> Result<Option<Self>, CampaignError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| CampaignError::Io {
            path: path.clone(),
            source,
        };
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let mut header = None;
        let (mut planned, mut done, mut finished) = (Vec::new(), HashSet::new(), false);
        let lines: Vec<String> = BufReader::new(file)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(io)?;
        let last = lines.len();
        for (i, text) in lines.iter().enumerate() {
            let corrupt = || CampaignError::Corrupt {
                path: path.clone(),
                line: i + 1,
            };
            let line = match serde_json::from_str::<Line>(text) {
                Ok(l) => l,
                // A kill mid-write leaves at most a torn last line.
                Err(_) if i + 1 == last && i > 0 => break,
                Err(_) => return Err(corrupt()),
            };
            match (line, &header) {
                (
                    Line::Header {
                        campaign,
                        started_at_ms,
                        ..
                    },
                    None,
                ) if i == 0 => header = Some((campaign, started_at_ms)),
                (Line::Planned { user, token_id }, Some(_)) => planned.push((user, token_id)),
                (Line::Done { done: user }, Some(_)) => {
                    done.insert(user);
                }
                (Line::Finished { .. }, Some(_)) => finished = true,
                _ => return Err(corrupt()),
            }
        }
        let Some((id, started_at_ms)) = header else {
            return Err(CampaignError::Corrupt { path, line: 1 });
        };
        if finished {
            return Ok(None);
        }
        let journal = OpenOptions::new().append(true).open(&path).map_err(io)?;
        Ok(Some(RotationCampaign {
            path,
            id,
            started_at_ms,
            planned,
            done,
            finished,
            journal: Mutex::new(journal),
        }))
    }

    /// Begins a campaign journaled at `path` (replacing a finished one's
    /// file): snapshots the stored token of each of `users` (read in pages
    /// of 500). Users without a stored token are not part of it.
    pub async fn begin<U>(
        path: impl AsRef<Path>,
        store: &dyn crate::TokenStore,
        users: U,
    ) -> Result<Self, CampaignError>
    where
        U: Stream<Item = Result<HostUserId, StoreError>> + Send,
    {
        let path = path.as_ref().to_path_buf();
        let io = |source| CampaignError::Io {
            path: path.clone(),
            source,
        };
        let mut planned = Vec::new();
        let mut pages = std::pin::pin!(users.try_chunks(500));
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| e.1)?;
            let records = store.get_many(&page).await?;
            for user in page {
                if let Some(rec) = records.get(&user)
                    && rec.token.is_some()
                {
                    planned.push((user, rec.token_id.clone()));
                }
            }
        }
        let id = crate::store::mint_nonce();
        let started_at_ms = crate::time::unix_now_ms();
        let mut text = line(&Line::Header {
            campaign: id.clone(),
            started_at_ms,
            users: planned.len(),
        });
        for (user, token_id) in &planned {
            text.push_str(&line(&Line::Planned {
                user: user.clone(),
                token_id: token_id.clone(),
            }));
        }
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp).map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        let journal = OpenOptions::new().append(true).open(&path).map_err(io)?;
        Ok(RotationCampaign {
            path,
            id,
            started_at_ms,
            planned,
            done: HashSet::new(),
            finished: false,
            journal: Mutex::new(journal),
        })
    }

    /// The campaign's random id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When it began (ms since the epoch).
    pub fn started_at_ms(&self) -> i64 {
        self.started_at_ms
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Users in the snapshot.
    pub fn total(&self) -> usize {
        self.planned.len()
    }

    /// Users done.
    pub fn done(&self) -> usize {
        self.done.len()
    }

    /// Whether every user is done (the journal says so).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn record(&self, l: &Line) -> Result<(), CampaignError> {
        let mut f = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(line(l).as_bytes())
            .map_err(|source| CampaignError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

fn line(l: &Line) -> String {
    let mut s = serde_json::to_string(l).unwrap_or_default();
    s.push('\n');
    s
}

/// What the campaign did for one user.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rotated {
    /// A new token was minted and stored, and the snapshot's revoked.
    Replaced,
    /// The stored token was no longer the snapshot's (a killed run stored
    /// its replacement, or another process replaced or cleared it): the
    /// snapshot's was revoked, nothing minted.
    AlreadyReplaced,
}

/// One user's result in a campaign.
#[derive(Debug)]
pub struct RotationResult {
    /// The host user.
    pub user: HostUserId,
    /// What was done, or why the user is not done (the next run retries).
    pub outcome: Result<Rotated, Error>,
}

/// The figures of a campaign run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RotationReport {
    /// Users in the snapshot.
    pub total: u64,
    /// Users done by earlier runs (skipped).
    pub done_before: u64,
    /// Users given a new token in this run.
    pub replaced: u64,
    /// Users whose snapshot token was revoked without a mint in this run.
    pub already_replaced: u64,
    /// Users not done (retried by the next run).
    pub failed: u64,
    /// Whether the campaign finished (every user done).
    pub finished: bool,
    /// How long this run took.
    pub elapsed: Duration,
}

impl UserSync {
    /// Runs (or continues) `campaign`, `concurrency` users at a time, paced
    /// by the client's rate limiting; `on_result` sees each user's result as
    /// it comes. Fails only when the journal cannot be written; a user's
    /// failure is in their result and leaves them for the next run.
    pub async fn rotate_campaign(
        &self,
        campaign: &mut RotationCampaign,
        concurrency: usize,
        mut on_result: impl FnMut(&RotationResult) + Send,
    ) -> Result<RotationReport, CampaignError> {
        let started = Instant::now();
        let mut report = RotationReport {
            total: campaign.total() as u64,
            done_before: campaign.done() as u64,
            ..Default::default()
        };
        let todo: Vec<(HostUserId, Option<TokenId>)> = campaign
            .planned
            .iter()
            .filter(|(u, _)| !campaign.done.contains(u))
            .cloned()
            .collect();
        let camp = &*campaign;
        let mut results = futures::stream::iter(todo)
            .map(|(user, old)| async move {
                let outcome = self.rotate_planned(&user, old.as_ref()).await;
                if outcome.is_ok() {
                    camp.record(&Line::Done { done: user.clone() })?;
                }
                Ok::<_, CampaignError>(RotationResult { user, outcome })
            })
            .buffer_unordered(concurrency.max(1));
        let mut done = Vec::new();
        while let Some(r) = results.next().await {
            let r = r?;
            match &r.outcome {
                Ok(Rotated::Replaced) => report.replaced += 1,
                Ok(Rotated::AlreadyReplaced) => report.already_replaced += 1,
                Err(_) => report.failed += 1,
            }
            if r.outcome.is_ok() {
                done.push(r.user.clone());
            }
            on_result(&r);
        }
        drop(results);
        campaign.done.extend(done);
        if campaign.done.len() == campaign.planned.len() {
            campaign.record(&Line::Finished {
                finished_at_ms: crate::time::unix_now_ms(),
            })?;
            campaign.finished = true;
        }
        report.finished = campaign.finished;
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// One user of a campaign: rotate while the snapshot's token is the
    /// stored one, else make sure the snapshot's token is revoked.
    #[tracing::instrument(name = "rotate_campaign_user", skip_all, fields(host_user = %user))]
    async fn rotate_planned(
        &self,
        user: &HostUserId,
        old: Option<&TokenId>,
    ) -> Result<Rotated, Error> {
        let rec = self.store().get(user).await?;
        let current = rec.as_ref().and_then(|r| r.token_id.as_ref());
        let has_token = rec.as_ref().is_some_and(|r| r.token.is_some());
        let still_old = match old {
            Some(old) => current == Some(old),
            // Stored without an id: rotate while that is still so.
            None => has_token && current.is_none(),
        };
        if let (true, Some(rec)) = (still_old, rec) {
            let o = self.rotate_record(user, rec).await?;
            if let (Some(old), true) = (
                old,
                o.warnings
                    .iter()
                    .any(|w| matches!(w, SyncWarning::OldTokenNotRevoked { .. })),
            ) {
                // The new token is stored; the user is done once the old
                // one is gone (this run or the next).
                self.revoke_quietly(old).await?;
            }
            if o.token == TokenOutcome::Replaced {
                return Ok(Rotated::Replaced);
            }
            // Another process replaced it meanwhile: fall through to make
            // sure the snapshot's token is gone.
        }
        if let Some(old) = old {
            self.revoke_quietly(old).await?;
        }
        Ok(Rotated::AlreadyReplaced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, NewToken, TokenStore};
    use crate::{AccessToken, UserId};

    async fn store() -> MemoryStore {
        let s = MemoryStore::with_users((1..=3).map(HostUserId::Int));
        for i in [1, 3] {
            let t = NewToken {
                mattermost_user_id: UserId::new(format!("{i:0>26}")),
                token: AccessToken::new(format!("secret{i:0>20}")),
                token_id: TokenId::new(format!("t{i:0>25}")),
                expires_at: None,
            };
            s.put_token(&HostUserId::Int(i), &t).await.unwrap();
        }
        s
    }

    fn ids() -> impl Stream<Item = Result<HostUserId, StoreError>> + Send {
        futures::stream::iter((1..=3).map(|i| Ok(HostUserId::Int(i))))
    }

    #[tokio::test]
    async fn the_journal_keeps_the_snapshot_and_progress_and_never_a_token() {
        let dir = std::env::temp_dir().join(format!("mmt-rotation-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("journal.jsonl");
        assert!(RotationCampaign::resume(&path).unwrap().is_none());

        let s = store().await;
        let c = RotationCampaign::begin(&path, &s, ids()).await.unwrap();
        assert_eq!((c.total(), c.done()), (2, 0), "users with a token only");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains(&format!("t{:0>25}", 3)));

        c.record(&Line::Done {
            done: HostUserId::Int(1),
        })
        .unwrap();
        // A kill mid-write leaves a torn last line: ignored.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"done\":")
            .unwrap();
        let again = RotationCampaign::resume(&path).unwrap().unwrap();
        assert_eq!(again.id(), c.id());
        assert_eq!((again.total(), again.done()), (2, 1));

        // A finished campaign is not resumed.
        std::fs::write(
            &path,
            text.clone() + "{\"done\":1}\n{\"done\":3}\n{\"finished_at_ms\":1}\n",
        )
        .unwrap();
        assert!(RotationCampaign::resume(&path).unwrap().is_none());

        // Not a journal: refused, with the line.
        std::fs::write(&path, "hello\n{\"done\":1}\n").unwrap();
        let e = RotationCampaign::resume(&path).unwrap_err();
        assert!(matches!(e, CampaignError::Corrupt { line: 1, .. }), "{e}");
        std::fs::write(&path, text + "nonsense\n{\"done\":1}\n").unwrap();
        let e = RotationCampaign::resume(&path).unwrap_err();
        assert!(matches!(e, CampaignError::Corrupt { line: 4, .. }), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
