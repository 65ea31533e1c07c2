//! Compaction: many small raw files become one large file, in a `dataChange=false` commit.
//!
//! Syncs commit often (every page budget, and at least once per run), so a raw table
//! collects many small files, and every reader pays for each of them. Compaction rewrites
//! them without changing the table's data, under three rules that keep the snapshot right:
//!
//! - **Arrival order survives.** The snapshot orders a key's rows by Delta version, then by
//!   position in the file. A group is a run of files that are adjacent in arrival order and
//!   all belong to one stream and one generation; the new file holds their rows in exactly
//!   that order (version order, then row order within each file). Its commit records which
//!   stream, generation and versions it replaces, under `commitInfo.cdfS3Replicator.compaction`
//!   (see [`CompactionInfo`]), and carries no `txn` action, so a stream's progress is unaffected.
//! - **Generations stay apart.** Files of a generation the stream has since replaced are
//!   still history; they are compacted too, but never together with another generation.
//! - **Concurrent syncs lose nothing.** A sync only appends. The compaction commit is tried
//!   without delta-rs' own retry (whose conflict check lets two rewrites of the same files
//!   both land, which would duplicate rows): when another commit wins the race, the table is
//!   reloaded, and the compaction retries only if every file it replaces is still active and
//!   the schema is unchanged; otherwise it is skipped and its output deleted. A sync that
//!   loses its race against a compaction retries through delta-rs' conflict check, which
//!   accepts appends next to a `dataChange=false` rewrite of other files.
//!
//! Rewrites run on Arrow and Parquet without DataFusion, with delta-rs' writer (which
//! streams the new file to storage) and commit API.

mod origin;
mod plan;
mod rewrite;

use std::collections::HashSet;

use super::commit_metadata::{CompactionCommitInfo, CompactionInfo};
use super::error::{LakeError, LakeResult};
use super::table::{LakeTable, UNCOMMITTED_COMPACTION, is_commit_race};
use deltalake::DeltaTableError;
use deltalake::arrow::datatypes::SchemaRef as ArrowSchemaRef;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{Action, Add};
use deltalake::protocol::DeltaOperation;
use percent_encoding::percent_decode_str;

/// Default size of a compacted file; files at least this large are left alone.
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// Default number of newest commits read to find where each active file came from.
pub const DEFAULT_MAX_LOG_SCAN: u64 = 10_000;

/// How compaction chooses and writes files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionOptions {
    /// Size a compacted file grows to; files at least this large are not rewritten.
    pub target_file_size: u64,
    /// Compact only when at least this many files would be merged.
    pub min_files: usize,
    /// How many of the newest commits are read to learn where files came from. Files
    /// added before that are left alone.
    pub max_log_scan: u64,
    /// Commit attempts per group when concurrent writers keep winning the race.
    pub max_commit_attempts: u32,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        Self {
            target_file_size: DEFAULT_TARGET_FILE_SIZE,
            min_files: 10,
            max_log_scan: DEFAULT_MAX_LOG_SCAN,
            max_commit_attempts: 5,
        }
    }
}

impl CompactionOptions {
    fn validate(&self, url: &url::Url) -> LakeResult<()> {
        if self.target_file_size == 0 {
            return Err(LakeError::InvalidOption {
                option: "compaction target file size",
                value: "0".into(),
                reason: format!("expected a positive number of bytes (table {url})"),
            });
        }
        if self.max_commit_attempts == 0 {
            return Err(LakeError::InvalidOption {
                option: "compaction commit attempts",
                value: "0".into(),
                reason: format!("expected at least 1 (table {url})"),
            });
        }
        Ok(())
    }
}

/// A data file that a compaction reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the table root (decoded).
    pub(crate) path: String,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Row count from the file statistics, when recorded.
    pub(crate) rows: Option<u64>,
}

/// Files to merge into one, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionGroup {
    /// What the commit will record.
    pub info: CompactionInfo,
    /// The files, oldest first.
    pub(crate) files: Vec<SourceFile>,
}

impl CompactionGroup {
    /// Bytes of the files to merge.
    pub(crate) fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// What compaction would do to the loaded version of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionPlan {
    /// The table version the plan was made on.
    pub(crate) table_version: Option<u64>,
    /// Active files of that version.
    pub(crate) active_files: usize,
    /// Active files smaller than the target size.
    pub(crate) small_files: usize,
    /// Commits read to find where files came from.
    pub(crate) scanned_commits: u64,
    /// The groups to merge, in arrival order.
    pub groups: Vec<CompactionGroup>,
}

impl CompactionPlan {
    /// Files the groups would merge.
    pub(crate) fn candidate_files(&self) -> usize {
        self.groups.iter().map(|g| g.files.len()).sum()
    }
}

/// A group whose merged file is written but not yet committed.
#[derive(Debug)]
pub struct PreparedCompaction {
    group: CompactionGroup,
    add: Add,
    rows: u64,
    schema: ArrowSchemaRef,
}

impl PreparedCompaction {
    /// Path of the merged file, relative to the table root.
    pub fn output_path(&self) -> String {
        percent_decode_str(&self.add.path)
            .decode_utf8_lossy()
            .into_owned()
    }

    /// Bytes of the merged file.
    pub(crate) fn bytes(&self) -> u64 {
        self.add.size.max(0) as u64
    }
}

/// How a compaction commit ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompactionOutcome {
    /// The commit landed at `delta_version` (unknown only when the response to a landed
    /// commit was lost and its version could not be found again).
    Committed {
        /// The table version of the compaction commit.
        delta_version: Option<u64>,
        /// Commit races lost (and retried) before it landed.
        conflicts: u32,
    },
    /// The group was left as it was and the merged file deleted.
    Skipped {
        /// Why, for example a concurrent commit that removed one of the files.
        reason: String,
        /// Commit races lost before the group was given up.
        conflicts: u32,
    },
}

/// One group's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactedGroup {
    pub(crate) info: CompactionInfo,
    /// Bytes of the files replaced.
    pub(crate) bytes_removed: u64,
    /// Bytes of the merged file.
    pub(crate) bytes_written: u64,
    pub(crate) rows: u64,
    pub(crate) output_path: String,
    pub(crate) outcome: CompactionOutcome,
}

/// What [`LakeTable::compact`] did.
#[derive(Debug, Default)]
pub struct CompactionReport {
    #[expect(dead_code, reason = "kept in the Debug output of the value")]
    /// Active and small files of the version the plan was made on.
    pub(crate) active_files: usize,
    #[expect(dead_code, reason = "kept in the Debug output of the value")]
    pub(crate) small_files: usize,
    /// Files the plan would merge.
    pub(crate) candidate_files: usize,
    /// Whether fewer than the minimum number of files could be merged, so nothing was done.
    pub(crate) below_minimum: bool,
    /// Committed and skipped groups, in arrival order.
    pub(crate) groups: Vec<CompactedGroup>,
    /// Groups that failed, with the error.
    pub(crate) failures: Vec<(CompactionInfo, LakeError)>,
}

impl CompactionReport {}

impl LakeTable {
    /// Plans the compaction of the loaded version: finds where each active file came from
    /// and groups the small ones. Reads the log, writes nothing.
    pub async fn plan_compaction(&self, options: &CompactionOptions) -> LakeResult<CompactionPlan> {
        options.validate(&self.url)?;
        let located = self
            .locate_active_files(options.target_file_size, options.max_log_scan)
            .await?;
        let groups = plan::group_runs(&located.units, options.target_file_size);
        Ok(CompactionPlan {
            table_version: self.version(),
            active_files: located.active_files,
            small_files: located.small_files,
            scanned_commits: located.scanned_commits,
            groups,
        })
    }

    /// Reloads the table, plans, and compacts every group, each in its own commit. Groups
    /// that fail are reported and the others still run. Does nothing when fewer than
    /// `options.min_files` files would be merged.
    pub(crate) async fn compact(
        &mut self,
        options: &CompactionOptions,
    ) -> LakeResult<CompactionReport> {
        self.refresh().await?;
        let plan = self.plan_compaction(options).await?;
        let mut report = CompactionReport {
            active_files: plan.active_files,
            small_files: plan.small_files,
            candidate_files: plan.candidate_files(),
            ..CompactionReport::default()
        };
        if report.candidate_files < options.min_files.max(2) {
            report.below_minimum = true;
            return Ok(report);
        }
        for group in plan.groups {
            let prepared = match self.prepare_compaction(&group).await {
                Ok(prepared) => prepared,
                Err(error) => {
                    report.failures.push((group.info, error));
                    continue;
                }
            };
            let (rows, bytes_written, output_path) =
                (prepared.rows, prepared.bytes(), prepared.output_path());
            match self.commit_compaction(prepared, options).await {
                Ok(outcome) => report.groups.push(CompactedGroup {
                    bytes_removed: group.bytes(),
                    info: group.info,
                    bytes_written,
                    rows,
                    output_path,
                    outcome,
                }),
                Err(error) => report.failures.push((group.info, error)),
            }
        }
        Ok(report)
    }

    /// Writes the merged file of `group` (rows in arrival order, in the table schema of the
    /// loaded version). Nothing is committed yet.
    pub async fn prepare_compaction(
        &self,
        group: &CompactionGroup,
    ) -> LakeResult<PreparedCompaction> {
        let (add, rows, schema) = self.rewrite_group(group).await?;
        Ok(PreparedCompaction {
            group: group.clone(),
            add,
            rows,
            schema,
        })
    }

    /// Commits a prepared compaction, retrying on lost races while its files are still
    /// active; otherwise skips it and deletes the merged file.
    pub async fn commit_compaction(
        &mut self,
        prepared: PreparedCompaction,
        options: &CompactionOptions,
    ) -> LakeResult<CompactionOutcome> {
        let output = prepared.output_path();
        let mut conflicts = 0u32;
        loop {
            if let Some(reason) = self.compaction_obstacle(&prepared)? {
                if self.is_active(&output)? {
                    // The commit landed; only the response to it was lost.
                    let delta_version = self.version_adding(&output).await;
                    return Ok(CompactionOutcome::Committed {
                        delta_version,
                        conflicts,
                    });
                }
                self.delete_orphans(std::slice::from_ref(&output), UNCOMMITTED_COMPACTION)
                    .await;
                tracing::info!(table = %self.url, app_id = %prepared.group.info.app_id, %reason, "compaction skipped");
                return Ok(CompactionOutcome::Skipped { reason, conflicts });
            }
            match self.try_commit_compaction(&prepared, options).await {
                Ok(version) => {
                    return Ok(CompactionOutcome::Committed {
                        delta_version: Some(version),
                        conflicts,
                    });
                }
                Err(error) if is_commit_race(&error) => {
                    conflicts += 1;
                    tracing::info!(table = %self.url, attempt = conflicts, %error,
                        "compaction lost a commit race; reloading and re-checking its files");
                    self.refresh().await?;
                    if conflicts >= options.max_commit_attempts && !self.is_active(&output)? {
                        self.delete_orphans(std::slice::from_ref(&output), UNCOMMITTED_COMPACTION)
                            .await;
                        return Ok(CompactionOutcome::Skipped {
                            reason: format!(
                                "lost the commit race {conflicts} times against concurrent writers"
                            ),
                            conflicts,
                        });
                    }
                }
                Err(error) => {
                    // The commit may or may not have landed (a timeout after the PUT): the
                    // merged file stays; if unreferenced, vacuum (full) removes it.
                    return Err(LakeError::delta(
                        &self.url,
                        "committing a compaction",
                        error,
                    ));
                }
            }
        }
    }

    /// Why a prepared compaction can no longer commit on the loaded version, if it cannot.
    fn compaction_obstacle(&self, prepared: &PreparedCompaction) -> LakeResult<Option<String>> {
        let active: HashSet<String> = self
            .active_files()?
            .into_iter()
            .map(|file| file.path)
            .collect();
        if let Some(gone) = prepared
            .group
            .files
            .iter()
            .find(|file| !active.contains(&file.path))
        {
            return Ok(Some(format!(
                "file {} was removed by a concurrent commit",
                gone.path
            )));
        }
        let schema_unchanged = self
            .arrow_schema()
            .is_some_and(|schema| schema.fields() == prepared.schema.fields());
        if !schema_unchanged {
            return Ok(Some(
                "the table schema changed since the merged file was written".into(),
            ));
        }
        Ok(None)
    }

    async fn try_commit_compaction(
        &mut self,
        prepared: &PreparedCompaction,
        options: &CompactionOptions,
    ) -> Result<u64, DeltaTableError> {
        let state = self.table.snapshot()?;
        let sources: HashSet<&str> = prepared
            .group
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        let mut actions = vec![Action::Add(prepared.add.clone())];
        actions.extend(
            state
                .log_data()
                .iter()
                .filter(|file| sources.contains(file.path().as_ref()))
                .map(|file| Action::Remove(file.remove_action(false))),
        );
        let commit_info = CompactionCommitInfo::new(prepared.group.info.clone())
            .to_commit_info()
            .map_err(|json_err| DeltaTableError::SerializeLogJson { json_err })?;
        let properties = CommitProperties::default()
            .with_metadata([commit_info])
            // One attempt per call: the retry decision needs the check above.
            .with_max_retries(0);
        let operation = DeltaOperation::Optimize {
            predicate: None,
            target_size: i64::try_from(options.target_file_size).unwrap_or(i64::MAX),
        };
        self.commit_on_snapshot(properties, actions, operation)
            .await
    }

    fn is_active(&self, path: &str) -> LakeResult<bool> {
        Ok(self.active_files()?.iter().any(|file| file.path == path))
    }

    /// The version of the newest commit that added `path`, looking at recent commits only.
    async fn version_adding(&self, path: &str) -> Option<u64> {
        let newest = self.version()?;
        for version in (newest.saturating_sub(64)..=newest).rev() {
            if let Ok(Some(changes)) = self.read_commit(version).await
                && changes.adds.iter().any(|add| add.path == path)
            {
                return Some(version);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::log::parse_commit;

    #[test]
    fn a_compaction_commit_parses_without_stream_commit_and_yields_its_info() {
        let log = concat!(
            r#"{"commitInfo":{"timestamp":5,"operation":"OPTIMIZE","cdfS3Replicator":{"compaction":{"appId":"s/m/1/V/nodes","generation":2,"firstVersion":3,"lastVersion":9,"sourceFiles":4}}}}"#,
            "\n",
            r#"{"add":{"path":"merged.parquet","size":10,"dataChange":false,"partitionValues":{},"modificationTime":1}}"#,
            "\n",
            r#"{"remove":{"path":"a.parquet","dataChange":false,"deletionTimestamp":5}}"#,
        );
        let changes = parse_commit("t", 10, log.as_bytes()).unwrap();
        assert!(changes.stream_commit.is_none());
        assert!(changes.txns.is_empty());
        let info = CompactionInfo::of_commit(&changes).unwrap();
        assert_eq!(
            info,
            CompactionInfo {
                app_id: "s/m/1/V/nodes".into(),
                generation: 2,
                first_version: 3,
                last_version: 9,
                source_files: 4,
            }
        );
    }

    #[test]
    fn stream_commits_carry_no_compaction_info() {
        let log = r#"{"commitInfo":{"cdfS3Replicator":{"appId":"a","txnVersion":1,"metadata":{"generation":1}}}}"#;
        let changes = parse_commit("t", 1, log.as_bytes()).unwrap();
        assert!(CompactionInfo::of_commit(&changes).is_none());
        assert!(changes.stream_commit.is_some());
    }
}
