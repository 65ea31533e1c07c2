//! `verify`: the lake proves itself against CDF. Read-only: it writes nothing to the lake,
//! the state table or CDF.
//!
//! For every selected view and kind (nodes, edges) whose file is published, it checks:
//!
//! 1. **Manifest and file** ([`published`], [`lake_side`]): the manifest entry's table
//!    version, the version in each object's footer stamp and the raw table agree;
//! 2. **Foreign commits** ([`foreign`]): the raw table's retained log holds only commits of
//!    the replicator;
//! 3. **Watermark** ([`watermark`]): the CDF time up to which the file is known complete;
//!    what changed in CDF after it is lag, not divergence;
//! 4. **Counts**: CDF's live count for the table's queries against the file's rows;
//! 5. **Sample** ([`sample`]): a uniform sample of the file's keys and of CDF's keys, both
//!    fetched by id from CDF with the view as source and compared value by value
//!    ([`expected`], [`compare`]).
//!
//! CDF is read through [`cdf_side`], every request counted. The report ([`report`],
//! [`render()`]) has per file: sampled, matched, lag, counts, watermark and the
//! divergences by class with examples. A run with a deadline verifies file by file and
//! reports the files it did not reach as pending; [`VerifyProgress`] lets the next run of
//! the same cycle continue with them, under the same seed.
//!
//! Cost per file at the default sample of 1,000: one or two aggregate requests (nodes and
//! edge views; several streams writing one table are counted by their listing instead),
//! ⌈n/1000⌉ list requests for CDF's n keys, ⌈2·1000/1000⌉ = 2 byids requests, and one sync
//! request per 1000 published instances that CDF no longer has; plus one read of the state
//! rows per run.

mod cdf_side;
mod compare;
mod expected;
mod foreign;
mod lake_side;
mod published;
pub mod record;
mod render;
pub mod report;
pub mod sample;
pub mod watermark;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use deltalake::arrow::array::{Array as _, AsArray as _, RecordBatch};
use deltalake::arrow::datatypes::{Int64Type, SchemaRef};
use deltalake::logstore::ObjectStoreRef;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use self::cdf_side::{CdfReads, Key, Listed};
use self::published::PublishedObject;
pub use self::render::render;
pub use self::report::{
    ClassDivergences, Counts, DivergenceClass, Example, FileState, FileVerification, Lag,
    VerifySummary,
};
use self::sample::{Reservoir, SampleRng};
use self::watermark::RawCheckpoint;
use crate::cdf::dto::{Filter, InstanceType, SyncTarget};
use crate::clock::now_ms;
use crate::context::Context;
use crate::failure::{Cause, Failure};
use crate::job::JobInputs;
use crate::lake::{Destination, InstanceKind, LakeTable, layout};
use crate::plan::{Plan, StreamSpec, streams::StreamSource};
use crate::snapshot::manifest::{self, ManifestState};
use crate::snapshot::{ViewTarget, plan_views};

/// Keys sampled per file from each side when not told otherwise.
pub const DEFAULT_SAMPLE: usize = 1000;

/// What a verify run should do beyond its [`JobInputs`].
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyOptions {
    /// Keys sampled per file from the file and, as many again, from CDF.
    pub sample: usize,
    /// The seed of the samples; `None` draws one (the report prints it), or takes the
    /// resumed cycle's.
    pub seed: Option<u64>,
    /// The progress of the current cycle, from the previous run's summary: files verified
    /// there are not verified again, and its seed is kept.
    pub resume: Option<VerifyProgress>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            sample: DEFAULT_SAMPLE,
            seed: None,
            resume: None,
        }
    }
}

/// Which files of the current cycle are verified, so that a run cut by its deadline
/// resumes with the rest (files are `model|view|kind`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyProgress {
    /// The cycle's seed.
    pub seed: u64,
    /// Files verified (or found unpublished) in this cycle.
    pub done: BTreeSet<String>,
}

/// Everything the verification of one file needs.
struct Run<'a> {
    reads: CdfReads,
    store: Option<ObjectStoreRef>,
    destination: &'a Destination,
    raw: BTreeMap<String, RawCheckpoint>,
    sample: usize,
    seed: u64,
    now: i64,
}

/// What the lake says of one published file, for the comparison with CDF.
struct Published<'a> {
    store: &'a ObjectStoreRef,
    objects: &'a [PublishedObject],
    /// The raw table's current schema: CDF's rows are built in it, then published.
    raw_schema: Option<SchemaRef>,
    /// The file's watermark, epoch ms.
    watermark: Option<i64>,
}

/// Verifies the selected views of `plan`. Never fails as a whole: a file that cannot be
/// verified is reported failed, one not reached before the deadline pending.
pub(crate) async fn run(
    context: &Context,
    plan: &Plan,
    inputs: &JobInputs,
    options: &VerifyOptions,
) -> VerifySummary {
    let started = Instant::now();
    let now = now_ms();
    let plan = plan.for_views(&inputs.selection);
    let plan_errors = plan.problems().to_vec();
    let seed = options
        .seed
        .or(options.resume.as_ref().map(|r| r.seed))
        .unwrap_or_else(SampleRng::fresh_seed);
    let mut progress = match &options.resume {
        Some(resume) if resume.seed == seed => resume.clone(),
        _ => VerifyProgress {
            seed,
            done: BTreeSet::new(),
        },
    };
    let extractor = &context.config.extractor;
    let deadline = inputs.deadline.less(extractor.deadline_margin);
    let client = crate::sync::bound(&context.client, deadline);
    let reads = CdfReads::new(client, extractor.parallelism as usize);
    let lake_id = match context.destination.read_identity().await {
        Ok(Some(identity)) => Some(identity.lake_id),
        _ => None,
    };
    let state_store = &extractor.state_store;
    let raw = reads
        .state_checkpoints(
            &state_store.database,
            &state_store.table,
            lake_id.as_deref(),
        )
        .await;
    let run = Run {
        reads,
        store: lake_side::read_store(&context.destination),
        destination: &context.destination,
        raw,
        sample: options.sample,
        seed,
        now,
    };
    let specs = plan.streams();
    let mut files = Vec::new();
    for target in plan_views(specs) {
        for kind in [InstanceKind::Nodes, InstanceKind::Edges] {
            if !target.table(kind).has_streams() {
                continue;
            }
            let model = target.model_label();
            let view = target.folder.to_string();
            let unit = report::unit_key(&model, &view, kind.as_str());
            if progress.done.contains(&unit) {
                files.push(FileVerification::new(
                    model,
                    view,
                    kind.as_str(),
                    FileState::VerifiedEarlier,
                ));
                continue;
            }
            if deadline.reached() {
                files.push(FileVerification::new(
                    model,
                    view,
                    kind.as_str(),
                    FileState::Pending,
                ));
                continue;
            }
            inputs.progress.view_started(&model, &view);
            let streams: Vec<&StreamSpec> = specs
                .iter()
                .filter(|s| {
                    s.model == target.model
                        && s.view_folder == target.folder
                        && s.instance_kind() == kind
                })
                .collect();
            let mut file = FileVerification::new(
                model.clone(),
                view.clone(),
                kind.as_str(),
                FileState::Verified,
            );
            if let Err(failure) = run.verify_file(&target, kind, &streams, &mut file).await {
                if failure.cause == Cause::DeadlineReached || deadline.reached() {
                    file = FileVerification::new(
                        model.clone(),
                        view.clone(),
                        kind.as_str(),
                        FileState::Pending,
                    );
                } else {
                    file.state = FileState::Failed;
                    file.error = Some(failure.redacted());
                }
            }
            inputs.progress.view_finished(
                &model,
                &view,
                file.sampled,
                file.state != FileState::Failed,
            );
            if matches!(file.state, FileState::Verified | FileState::NotPublished) {
                progress.done.insert(unit);
            }
            files.push(file);
        }
    }
    let complete = files.iter().all(|f| f.state != FileState::Pending);
    let summary = VerifySummary {
        seed,
        sample: options.sample,
        requests: run.reads.requests(),
        started_at_ms: now,
        complete,
        progress,
        plan_errors,
        files,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    tracing::info!(summary = %summary.one_line(), "verify finished");
    summary
}

impl Run<'_> {
    async fn verify_file(
        &self,
        target: &ViewTarget,
        kind: InstanceKind,
        streams: &[&StreamSpec],
        file: &mut FileVerification,
    ) -> Result<(), Failure> {
        let Some(store) = &self.store else {
            file.state = FileState::NotPublished;
            return Ok(());
        };
        let paths = layout::publish_paths(&target.model, &target.folder);
        let entry = match manifest::read(store, &paths.manifest).await {
            ManifestState::Found(manifest) => manifest.files.get(kind.as_str()).cloned(),
            ManifestState::Missing => None,
            ManifestState::Unusable(reason) => {
                return Err(Failure::new(
                    Cause::LakeInconsistent,
                    format!("{}: {reason}", paths.manifest),
                ));
            }
        };
        let Some(entry) = entry else {
            file.state = FileState::NotPublished;
            return Ok(());
        };
        file.table_version = entry.table_version;
        let objects = published::objects(store, &paths.dir, &entry).await?;
        lake_side::check_objects(&objects, file);

        // The raw table: its version, its retained log, foreign commits, the watermark.
        let table = lake_side::open_table(self.destination, target, kind).await?;
        let current = table.as_ref().and_then(LakeTable::version);
        if let Some(version) = entry.table_version
            && current.is_none_or(|current| version > current)
        {
            file.diverges(
                DivergenceClass::ManifestMismatch,
                Example::of_figure(
                    "tableVersion",
                    version,
                    current.map_or("(no table)".to_owned(), |c| format!("table at {c}")),
                ),
            );
        }
        let commits = match &table {
            Some(table) => lake_side::retained_log(table).await?,
            None => Vec::new(),
        };
        for commit in commits.iter().filter(|c| foreign::is_foreign(c)) {
            file.diverges(
                DivergenceClass::ForeignCommit,
                Example::of_figure(
                    "version",
                    commit.version,
                    commit.operation.as_deref().unwrap_or("(no operation)"),
                ),
            );
        }
        let stream_keys: Vec<String> = streams.iter().map(|s| s.key.clone()).collect();
        let mark = watermark::of_file(
            &commits,
            &stream_keys,
            entry.table_version.unwrap_or(0),
            &self.raw,
        );
        let watermark = mark.at;
        file.watermark = Some(mark);
        let published = Published {
            store,
            objects: &objects,
            raw_schema: table.as_ref().and_then(LakeTable::arrow_schema),
            watermark,
        };
        self.check_against_cdf(&published, kind, streams, file)
            .await
    }

    async fn check_against_cdf(
        &self,
        published: &Published<'_>,
        kind: InstanceKind,
        streams: &[&StreamSpec],
        file: &mut FileVerification,
    ) -> Result<(), Failure> {
        let Published {
            store,
            objects,
            raw_schema,
            watermark,
        } = published;
        let (store, objects, watermark) = (*store, *objects, *watermark);
        let instance_type = match kind {
            InstanceKind::Nodes => InstanceType::Node,
            InstanceKind::Edges => InstanceType::Edge,
        };
        let file_rows: u64 = objects.iter().map(|o| o.rows).sum();
        let mut rng = SampleRng::new(self.seed ^ fnv1a64(file.unit().as_bytes()));

        // CDF's keys: counted and sampled by one listing of every stream's query.
        let mut reservoir: Reservoir<Listed> = Reservoir::new(self.sample);
        let mut listed_changed = 0u64;
        let mut seen: HashSet<Key> = HashSet::new();
        let dedupe = streams.len() > 1;
        let by_aggregate = aggregate_view(streams);
        if self.sample > 0 || by_aggregate.is_none() {
            for spec in streams {
                self.reads
                    .list_keys(instance_type, stream_filter(spec), |item| {
                        if dedupe && !seen.insert(item.key.clone()) {
                            return;
                        }
                        if watermark.is_some_and(|w| item.last_updated_time > w) {
                            listed_changed += 1;
                        }
                        reservoir.offer(item, &mut rng);
                    })
                    .await
                    .map_err(|e| Failure::cdf("listing CDF's keys", &e))?;
            }
        }
        let (cdf_live, changed, source) = match by_aggregate {
            Some((view, filter)) => {
                let (live, changed) = self
                    .reads
                    .count(view, instance_type, filter, watermark)
                    .await
                    .map_err(|e| Failure::cdf("counting CDF's instances", &e))?;
                (live, changed, "aggregate")
            }
            None => (
                reservoir.seen(),
                watermark.map(|_| listed_changed),
                "listing",
            ),
        };
        let unexplained = changed.map_or(0, |changed| {
            cdf_live.saturating_sub(changed).saturating_sub(file_rows)
        });
        if unexplained > 0 {
            file.diverges(
                DivergenceClass::CountMismatch,
                Example::of_figure(
                    "rows",
                    file_rows,
                    format!(
                        "{cdf_live} live, {} changed since the watermark",
                        changed.unwrap_or(0)
                    ),
                ),
            );
        }
        file.counts = Some(Counts {
            file_rows,
            cdf_live,
            difference: file_rows as i64 - cdf_live as i64,
            changed_since_watermark: changed,
            unexplained,
            source,
        });
        if self.sample == 0 {
            return Ok(());
        }

        // The file's sample and CDF's sample, read from the file in one pass.
        let positions = sample::positions(file_rows, self.sample as u64, &mut rng);
        let cdf_sample = reservoir.into_items();
        let wanted: HashSet<Key> = cdf_sample.iter().map(|l| l.key.clone()).collect();
        let picked = published::pick_rows(store, objects, &positions, &wanted).await?;
        let keys: BTreeSet<Key> = picked
            .sampled
            .iter()
            .cloned()
            .chain(wanted.iter().cloned())
            .collect();
        let keys: Vec<Key> = keys.into_iter().collect();
        let sources = expected::sources_of(streams);
        let current = self
            .reads
            .by_ids(instance_type, &keys, &sources)
            .await
            .map_err(|e| Failure::cdf("fetching sampled instances by id", &e))?;
        let mut gone: Vec<(Key, i64)> = Vec::new();
        file.sampled = keys.len() as u64;
        file.sample_digest = Some(format!(
            "{:016x}",
            keys.iter()
                .fold(fnv1a64(b""), |hash, (space, external_id)| {
                    fnv1a64(format!("{hash:x}\u{0}{space}\u{0}{external_id}").as_bytes())
                })
        ));
        for key in &keys {
            let row = picked.rows.get(key);
            let instance = current.get(key);
            match (row, instance) {
                (Some(row), Some(instance)) => {
                    let lake_version = version_of(row);
                    if lake_version == Some(instance.version) {
                        let Some(raw_schema) = &raw_schema else {
                            return Err(Failure::new(
                                Cause::LakeInconsistent,
                                "the published file's raw table does not exist",
                            ));
                        };
                        self.compare_row(key, row, instance, streams, raw_schema, file);
                    } else if watermark.is_some_and(|w| instance.last_updated_time <= w) {
                        file.diverges(
                            DivergenceClass::OutdatedRow,
                            Example::of_key(key)
                                .column("version")
                                .values(optional(lake_version), instance.version),
                        );
                    } else {
                        file.lag.add(self.now, instance.last_updated_time);
                    }
                }
                (Some(row), None) => gone.push((key.clone(), version_of(row).unwrap_or(0))),
                (None, Some(instance)) => {
                    if watermark.is_some_and(|w| instance.last_updated_time <= w) {
                        file.diverges(
                            DivergenceClass::MissingFromFile,
                            Example::of_key(key)
                                .column("version")
                                .values("(no row)", instance.version),
                        );
                    } else {
                        file.lag.add(self.now, instance.last_updated_time);
                    }
                }
                // Listed, then deleted before it could be fetched: a change after any
                // watermark.
                (None, None) => file.lag.add(self.now, self.now),
            }
        }
        if !gone.is_empty() {
            let gone_keys: Vec<Key> = gone.iter().map(|(k, _)| k.clone()).collect();
            let deleted = self
                .reads
                .deletion_times(instance_type, &gone_keys)
                .await
                .map_err(|e| Failure::cdf("reading the tombstones of gone instances", &e))?;
            for (key, version) in &gone {
                match deleted.get(key) {
                    Some(&at) if watermark.is_none_or(|w| at > w) => file.lag.add(self.now, at),
                    Some(&at) => file.diverges(
                        DivergenceClass::DeletedButPublished,
                        Example::of_key(key)
                            .column("deletedTime")
                            .values(format!("version {version}"), format!("deleted at {at}")),
                    ),
                    None => file.diverges(
                        DivergenceClass::DeletedButPublished,
                        Example::of_key(key).column("deletedTime").values(
                            format!("version {version}"),
                            "gone without a tombstone (purged, or never existed)",
                        ),
                    ),
                }
            }
        }
        Ok(())
    }

    /// Compares a published row with CDF's instance of the same version.
    fn compare_row(
        &self,
        key: &Key,
        row: &RecordBatch,
        instance: &crate::cdf::dto::Instance,
        streams: &[&StreamSpec],
        raw_schema: &SchemaRef,
        file: &mut FileVerification,
    ) {
        let mut best: Option<Vec<compare::CellDifference>> = None;
        let mut refusal = None;
        for candidate in expected::candidate_rows(instance, streams, raw_schema) {
            match candidate {
                Ok(expected) => {
                    let found = compare::differences(row, 0, &expected, 0);
                    if found.is_empty() {
                        file.matched += 1;
                        return;
                    }
                    if best.as_ref().is_none_or(|b| found.len() < b.len()) {
                        best = Some(found);
                    }
                }
                Err(reason) => refusal = Some(reason),
            }
        }
        let example = match best {
            Some(found) => {
                let first = &found[0];
                let column = match found.len() {
                    1 => first.column.clone(),
                    n => format!("{} (+{} more)", first.column, n - 1),
                };
                Example::of_key(key)
                    .column(&column)
                    .values(&first.lake, &first.cdf)
            }
            None => Example::of_key(key).column("(row)").values(
                "published",
                format!(
                    "the replicator cannot write CDF's instance: {}",
                    refusal.unwrap_or_default()
                ),
            ),
        };
        file.diverges(DivergenceClass::ValueMismatch, example);
    }
}

/// The view and filter of an aggregate that counts the table's instances: only for a table
/// written by one stream of a view's own instances (nodes, or edges of an edge view). The
/// edges of an edge connection have no view of their own to count in.
fn aggregate_view<'a>(
    streams: &[&'a StreamSpec],
) -> Option<(&'a crate::cdf::dto::ViewReference, Option<Filter>)> {
    match streams {
        [spec] if matches!(spec.source, StreamSource::Nodes | StreamSource::EdgeView) => {
            Some((&spec.view, stream_filter(spec)))
        }
        _ => None,
    }
}

/// The filter of a stream's sync query.
fn stream_filter(spec: &StreamSpec) -> Option<Filter> {
    match &spec.expression.target {
        SyncTarget::Nodes(target) | SyncTarget::Edges(target) => target.filter.clone(),
    }
}

/// The `version` of a one-row published batch.
fn version_of(row: &RecordBatch) -> Option<i64> {
    let column = row
        .column_by_name("version")?
        .as_primitive_opt::<Int64Type>()?;
    (!column.is_empty() && column.is_valid(0)).then(|| column.value(0))
}

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// FNV-1a, to give each file its own stream of random numbers under one seed, so a file's
/// sample does not depend on which files were verified before it.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
