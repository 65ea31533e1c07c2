//! What the scheduled verifications found, and how far the current pass got:
//! `_work/verify/record.json` in the lake.
//!
//! The snapshot function (and the CLI's `run`) verify the published files every
//! `extractor.verify-interval`, in whatever time an invocation has left after publishing. A
//! pass over many views can take several invocations, so the record keeps the pass's
//! [`VerifyProgress`] (its seed and the files done) for the next one, and the last result of
//! every file, which `status` shows and from which the divergence metrics are counted.
//!
//! The metrics of a scheduled verification count divergences over the **latest result of
//! every file**, not only the files of one invocation: an invocation that verifies three
//! clean files must not clear the alarm raised by a fourth one verified an hour earlier.
//! Only a later verification of that file that finds it clean does.
//!
//! The CLI's `verify` writes nothing, this record included: it is the operator's read-only
//! check. The record lives in the snapshot's work area, which only the snapshot role may
//! write.

use std::collections::BTreeMap;
use std::time::Duration;

use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::{ObjectStoreExt as _, PutPayload};
use deltalake::{ObjectStoreError, Path};
use serde::{Deserialize, Serialize};

use super::report::{DivergenceClass, FileState, FileVerification, VerifySummary};
use super::{VerifyOptions, VerifyProgress};
use crate::job::JobOutcome;

/// The record's key, relative to the destination prefix.
pub const RECORD_PATH: &str = "_work/verify/record.json";

/// Layout version; a record of another version is read as no record (a new pass starts).
const FORMAT_VERSION: u32 = 1;

/// The scheduled verifications of one lake.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRecord {
    format_version: u32,
    /// When the last complete pass ended, epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_complete_ms: Option<i64>,
    /// When the pass in progress began, epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_started_ms: Option<i64>,
    /// The pass in progress: what the next invocation continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<VerifyProgress>,
    /// The last result of each file, by `model|view|kind`.
    #[serde(default)]
    pub files: BTreeMap<String, FileRecord>,
}

/// The last verification of one published file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileRecord {
    /// `space:model/version`.
    pub model: String,
    /// The view folder.
    pub view: String,
    /// `nodes` or `edges`.
    pub kind: String,
    /// When it was verified, epoch milliseconds.
    pub verified_at_ms: i64,
    /// The seed of its sample.
    pub seed: u64,
    /// Distinct instances sampled.
    pub sampled: u64,
    /// Sampled instances equal in the file and in CDF.
    pub matched: u64,
    /// Divergences by class (`valueMismatch`, ...), only classes found.
    #[serde(default)]
    pub divergences: BTreeMap<String, u64>,
    /// The oldest lag seen, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_max_ms: Option<i64>,
    /// Why it could not be verified, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FileRecord {
    /// Divergences of every class.
    pub fn divergence_count(&self) -> u64 {
        self.divergences.values().sum()
    }

    fn of(file: &FileVerification, seed: u64, at_ms: i64) -> Self {
        Self {
            model: file.model.clone(),
            view: file.view.clone(),
            kind: file.kind.clone(),
            verified_at_ms: at_ms,
            seed,
            sampled: file.sampled,
            matched: file.matched,
            divergences: file
                .divergences
                .iter()
                .filter(|(_, found)| found.count > 0)
                .map(|(class, found)| (class.as_str().to_owned(), found.count))
                .collect(),
            lag_max_ms: file.lag.max_age_ms,
            error: file.error.as_ref().map(|failure| failure.message.clone()),
        }
    }
}

/// Reading or writing the record failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The store refused or failed the request.
    #[error("{action} {RECORD_PATH}: {source}")]
    Store {
        /// What was being done.
        action: &'static str,
        /// The store's error.
        #[source]
        source: ObjectStoreError,
    },
}

impl VerifyRecord {
    /// Whether a verification is due at `now_ms`: a pass is in progress, or none ever
    /// completed, or the last one completed at least `interval` ago.
    pub fn due(&self, interval: Duration, now_ms: i64) -> bool {
        let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
        self.in_progress.is_some()
            || self
                .last_complete_ms
                .is_none_or(|last| now_ms.saturating_sub(last) >= interval_ms)
    }

    /// The options of the next run: the pass in progress, if any, with `sample` keys.
    pub fn options(&self, sample: usize) -> VerifyOptions {
        VerifyOptions {
            sample,
            seed: None,
            resume: self.in_progress.clone(),
        }
    }

    /// Takes in what `run` found: the result of every file it verified (or failed to), and
    /// the pass's progress, which ends with a complete run.
    pub fn update(&mut self, run: &VerifySummary, now_ms: i64) {
        self.format_version = FORMAT_VERSION;
        if self.in_progress.is_none() {
            self.pass_started_ms = Some(run.started_at_ms);
        }
        for file in &run.files {
            if matches!(file.state, FileState::Verified | FileState::Failed) {
                let key = super::report::unit_key(&file.model, &file.view, &file.kind);
                self.files
                    .insert(key, FileRecord::of(file, run.seed, now_ms));
            }
        }
        if run.complete {
            self.last_complete_ms = Some(now_ms);
            self.in_progress = None;
        } else {
            self.in_progress = Some(run.progress.clone());
        }
    }

    /// Divergences of `class` (every class with `None`) over the last result of each file.
    pub fn divergences(&self, class: Option<DivergenceClass>) -> u64 {
        self.files
            .values()
            .map(|file| match class {
                Some(class) => file.divergences.get(class.as_str()).copied().unwrap_or(0),
                None => file.divergence_count(),
            })
            .sum()
    }

    /// `run`'s outcome as a step of a publish run: its divergence metrics count the last
    /// result of every file (see the module docs). Neither a divergence nor a file that
    /// could not be verified fails the publish run, whose files are published: a retry
    /// would find the same divergence (its alarm says so), and an unverified file is
    /// recorded with its error (`status` shows it) and verified again in the next pass.
    pub fn outcome(&self, run: &VerifySummary) -> JobOutcome {
        let mut outcome = run.outcome();
        for metric in &mut outcome.metrics.0 {
            let class = DivergenceClass::ALL
                .into_iter()
                .find(|class| class.metric_name() == metric.name);
            if class.is_some() || metric.name == "VerifyDivergences" {
                metric.value = self.divergences(class) as f64;
            }
        }
        outcome.success = true;
        outcome.failures = Default::default();
        outcome
    }

    /// The lake's record; `None` when there is none yet, or when it is unreadable or of
    /// another layout (a new pass starts: the record is only a schedule and a cache).
    pub async fn load(store: &ObjectStoreRef) -> Result<Option<Self>, RecordError> {
        let bytes = match store.get(&Path::from(RECORD_PATH)).await {
            Ok(found) => found.bytes().await.map_err(|source| RecordError::Store {
                action: "reading",
                source,
            })?,
            Err(ObjectStoreError::NotFound { .. }) => return Ok(None),
            Err(source) => {
                return Err(RecordError::Store {
                    action: "reading",
                    source,
                });
            }
        };
        match serde_json::from_slice::<Self>(&bytes) {
            Ok(record) if record.format_version == FORMAT_VERSION => Ok(Some(record)),
            Ok(_) => Ok(None),
            Err(error) => {
                tracing::warn!(%error, "the verification record is unreadable; starting a new pass");
                Ok(None)
            }
        }
    }

    /// Replaces the lake's record. Two overlapping snapshot runs may both write it; the last
    /// one wins, which costs at most a file verified twice.
    pub async fn save(&self, store: &ObjectStoreRef) -> Result<(), RecordError> {
        let body = serde_json::to_vec_pretty(self).unwrap_or_default();
        store
            .put(&Path::from(RECORD_PATH), PutPayload::from(body))
            .await
            .map_err(|source| RecordError::Store {
                action: "writing",
                source,
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);
    const DAY_MS: i64 = 24 * 3600 * 1000;

    #[test]
    fn a_verification_is_due_first_then_after_each_interval_and_while_a_pass_is_open() {
        let mut record = VerifyRecord::default();
        assert!(record.due(DAY, 0), "never verified");
        record.last_complete_ms = Some(10 * DAY_MS);
        assert!(!record.due(DAY, 10 * DAY_MS + DAY_MS - 1));
        assert!(record.due(DAY, 11 * DAY_MS));
        record.in_progress = Some(VerifyProgress::default());
        assert!(record.due(DAY, 10 * DAY_MS), "an open pass continues");
    }

    #[test]
    fn divergences_count_the_last_result_of_every_file() {
        let mut record = VerifyRecord::default();
        let file = |divergences: &[(&str, u64)]| FileRecord {
            model: "s:M/1".into(),
            view: "Pump".into(),
            kind: "nodes".into(),
            verified_at_ms: 1,
            seed: 7,
            sampled: 10,
            matched: 10,
            divergences: divergences
                .iter()
                .map(|(class, n)| ((*class).to_owned(), *n))
                .collect(),
            lag_max_ms: None,
            error: None,
        };
        record
            .files
            .insert("a".into(), file(&[("valueMismatch", 2)]));
        record.files.insert("b".into(), file(&[]));
        record
            .files
            .insert("c".into(), file(&[("missingFromFile", 1)]));
        assert_eq!(record.divergences(None), 3);
        assert_eq!(record.divergences(Some(DivergenceClass::ValueMismatch)), 2);
        assert_eq!(record.divergences(Some(DivergenceClass::StaleFile)), 0);
    }

    fn summary(complete: bool, done: &[&str], files: Vec<FileVerification>) -> VerifySummary {
        VerifySummary {
            seed: 42,
            sample: 10,
            requests: 3,
            started_at_ms: 1_000,
            complete,
            progress: VerifyProgress {
                seed: 42,
                done: done.iter().map(|d| (*d).to_owned()).collect(),
            },
            plan_errors: Vec::new(),
            files,
            duration_ms: 5,
        }
    }

    #[test]
    fn an_unfinished_pass_is_continued_and_a_finished_one_waits_for_the_interval() {
        let mut record = VerifyRecord::default();
        let verified = |view: &str| {
            let mut file =
                FileVerification::new("s:M/1".into(), view.into(), "nodes", FileState::Verified);
            file.sampled = 20;
            file
        };
        let pending =
            FileVerification::new("s:M/1".into(), "B".into(), "nodes", FileState::Pending);
        record.update(
            &summary(false, &["s:M/1|A|nodes"], vec![verified("A"), pending]),
            2_000,
        );
        assert!(record.due(DAY, 2_001), "the pass continues next run");
        let options = record.options(10);
        assert_eq!(
            options.resume.as_ref().map(|p| (p.seed, p.done.len())),
            Some((42, 1)),
            "with its seed and the files done"
        );
        assert_eq!(record.files["s:M/1|A|nodes"].sampled, 20);
        assert!(!record.files.contains_key("s:M/1|B|nodes"));

        let earlier = FileVerification::new(
            "s:M/1".into(),
            "A".into(),
            "nodes",
            FileState::VerifiedEarlier,
        );
        record.update(
            &summary(
                true,
                &["s:M/1|A|nodes", "s:M/1|B|nodes"],
                vec![earlier, verified("B")],
            ),
            3_000,
        );
        assert_eq!(record.last_complete_ms, Some(3_000));
        assert!(record.in_progress.is_none());
        assert!(!record.due(DAY, 3_000 + DAY_MS - 1));
        assert_eq!(
            record.files["s:M/1|A|nodes"].verified_at_ms, 2_000,
            "kept from the first run"
        );
        assert_eq!(record.files["s:M/1|B|nodes"].verified_at_ms, 3_000);
    }

    #[test]
    fn a_record_round_trips() {
        let record = VerifyRecord {
            format_version: FORMAT_VERSION,
            last_complete_ms: Some(5),
            ..VerifyRecord::default()
        };
        let text = serde_json::to_string(&record).expect("JSON");
        let back: VerifyRecord = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, record);
    }
}
