//! Sync: CDF views to Delta tables, exactly once, in time slices.
//!
//! - [`plan`]: the streams of the configured data models and their queries;
//! - [`state`] and [`state_store`]: checkpoints in RAW and their reconciliation with Delta;
//! - [`stream`]: one stream's page loop, commits and checkpoints;
//! - [`scheduler`]: turns of many streams under a deadline;
//! - [`summary`]: what an invocation did.

pub mod plan;
pub mod scheduler;
pub mod state;
pub mod state_store;
pub mod stream;
pub mod summary;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::time::Instant;

use self::plan::{StreamSpec, model_label, model_ref, select_views, streams_of_view, view_folders};
use self::scheduler::{Turn, run_turns};
use self::state::StreamCheckpoint;
use self::stream::{StreamContext, StreamRun};
use self::summary::{RunSummary, StreamReport, StreamStatus};
use crate::cdf::CdfClient;
use crate::cdf::dto::{ViewDefinition, ViewReference};
use crate::config::SpaceSelection;

/// What an invocation should do, beyond the configuration.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// No turn starts after this instant (less the configured margin).
    pub deadline: Instant,
    /// Only streams of these views (by view externalId); `None` for all.
    pub views: Option<Vec<String>>,
    /// Streams (by stream key or view externalId) to restart with a full backfill.
    pub force_resync: Vec<String>,
    /// Resolve models and plan streams, but read and write nothing.
    pub dry_run: bool,
}

impl SyncOptions {
    pub fn until(deadline: Instant) -> Self {
        Self {
            deadline,
            views: None,
            force_resync: Vec::new(),
            dry_run: false,
        }
    }
}

/// The configuration-derived parts of a sync run.
#[derive(Debug, Clone)]
pub struct SyncJob {
    pub streams: StreamContext,
    pub data_modeling: Vec<SpaceSelection>,
    pub page_size: u32,
    pub parallelism: usize,
    /// Extraction pipeline that gets one run report per invocation.
    pub extraction_pipeline: Option<String>,
}

/// Runs one time slice: every planned stream gets turns until it is caught up or the
/// deadline nears. Never fails as a whole because of one view: problems are reported per
/// view or stream in the summary.
pub async fn run(job: &SyncJob, options: &SyncOptions) -> RunSummary {
    let started = Instant::now();
    let (mut specs, mut plan_errors) =
        resolve_streams(&job.streams.client, &job.data_modeling, job.page_size).await;
    if let Some(views) = &options.views {
        plan_errors.extend(unknown_names("views", views, &specs, |spec, name| {
            spec.view.external_id == name
        }));
        specs.retain(|spec| views.iter().any(|v| v == &spec.view.external_id));
    }
    plan_errors.extend(unknown_names(
        "resync",
        &options.force_resync,
        &specs,
        |spec, name| spec.key == name || spec.view.external_id == name,
    ));
    let reports = if options.dry_run {
        specs
            .iter()
            .map(|s| StreamReport::new(s.key.clone(), StreamStatus::Planned))
            .collect()
    } else {
        match job.streams.state_store.load_all().await {
            Ok(states) => run_streams(job, options, specs, states).await,
            Err(error) => {
                // Without the state rows every stream would look deleted and restart: refuse.
                plan_errors.push(format!(
                    "cannot read the state table {}: {error}",
                    job.streams.state_store.location()
                ));
                Vec::new()
            }
        }
    };
    let summary =
        RunSummary::from_reports(reports, plan_errors, started.elapsed().as_millis() as u64);
    if !options.dry_run {
        job.streams
            .client
            .report_invocation(
                job.extraction_pipeline.as_deref(),
                summary.is_success(),
                summary.one_line(),
            )
            .await;
    }
    summary
}

/// Names an operator gave (`--views`, `--resync`, or the Lambda payload) that match no
/// planned stream. A typo must not pass for a run that did what was asked.
fn unknown_names(
    option: &str,
    names: &[String],
    specs: &[StreamSpec],
    matches: impl Fn(&StreamSpec, &str) -> bool,
) -> Vec<String> {
    names
        .iter()
        .filter(|name| !specs.iter().any(|spec| matches(spec, name)))
        .map(|name| {
            let mut views: Vec<&str> = specs.iter().map(|s| s.view.external_id.as_str()).collect();
            views.sort_unstable();
            views.dedup();
            format!(
                "{option}: `{name}` matches no stream of this run (views: {})",
                views.join(", ")
            )
        })
        .collect()
}

/// A stream waiting for its first turn, or one between turns.
enum Queued {
    New {
        spec: Arc<StreamSpec>,
        state_row: Option<StreamCheckpoint>,
        force: bool,
    },
    Running(Box<StreamRun>),
}

impl Queued {
    fn key(&self) -> &str {
        match self {
            Queued::New { spec, .. } => &spec.key,
            Queued::Running(run) => run.key(),
        }
    }
}

async fn run_streams(
    job: &SyncJob,
    options: &SyncOptions,
    specs: Vec<StreamSpec>,
    mut states: HashMap<String, StreamCheckpoint>,
) -> Vec<StreamReport> {
    let mut queue: Vec<Queued> = specs
        .into_iter()
        .map(|spec| {
            let force = options
                .force_resync
                .iter()
                .any(|f| f == &spec.key || f == &spec.view.external_id);
            let state_row = states.remove(&spec.key);
            Queued::New {
                spec: Arc::new(spec),
                state_row,
                force,
            }
        })
        .collect();
    // Longest-waiting first: never-run streams, then the oldest last success.
    queue.sort_by_key(|queued| match queued {
        Queued::New { state_row, .. } => state_row
            .as_ref()
            .and_then(|s| s.last_success)
            .unwrap_or(i64::MIN),
        Queued::Running(run) => run.last_success().unwrap_or(i64::MIN),
    });
    let ctx = Arc::new(job.streams.clone());
    let deadline = options.deadline;
    let turn_deadline = deadline
        .checked_sub(ctx.deadline_margin)
        .unwrap_or(deadline);
    let (mut reports, unfinished) = run_turns(
        queue,
        job.parallelism,
        turn_deadline,
        move |queued: Queued| {
            let ctx = ctx.clone();
            async move {
                let run = match queued {
                    Queued::Running(run) => *run,
                    Queued::New {
                        spec,
                        state_row,
                        force,
                    } => {
                        let key = spec.key.clone();
                        match StreamRun::start(&ctx, spec, state_row, force).await {
                            Ok(run) => run,
                            Err(error) => return Turn::Done(StreamReport::failed(key, error)),
                        }
                    }
                };
                match run.turn(&ctx, deadline).await {
                    Turn::Again(run) => Turn::Again(Queued::Running(Box::new(run))),
                    Turn::Done(report) => Turn::Done(report),
                }
            }
        },
        |panic| StreamReport::failed("<unknown stream>", format!("a stream panicked: {panic}")),
    )
    .await;
    reports.extend(unfinished.streams.into_iter().map(|queued| match queued {
        Queued::Running(run) => run.into_report(StreamStatus::Behind),
        other => StreamReport::new(other.key().to_owned(), StreamStatus::Behind),
    }));
    reports
}

/// Resolves every configured model to its streams. Failures are collected per model or
/// view, naming it, so the rest still syncs.
pub async fn resolve_streams(
    client: &CdfClient,
    data_modeling: &[SpaceSelection],
    page_size: u32,
) -> (Vec<StreamSpec>, Vec<String>) {
    let mut streams = Vec::new();
    let mut errors = Vec::new();
    for space in data_modeling {
        for selection in &space.data_models {
            let label = match &selection.version {
                Some(version) => format!("{}:{}/{version}", space.space, selection.external_id),
                None => format!("{}:{} (latest version)", space.space, selection.external_id),
            };
            let model = match client
                .resolve_data_model(
                    &space.space,
                    &selection.external_id,
                    selection.version.as_deref(),
                    false,
                )
                .await
            {
                Ok(Some(model)) => model,
                Ok(None) => {
                    errors.push(format!("data model {label} does not exist"));
                    continue;
                }
                Err(error) => {
                    errors.push(format!("data model {label}: {error}"));
                    continue;
                }
            };
            let (model_ref, folders) = match model_ref(&model)
                .and_then(|m| Ok((m, view_folders(&model.view_references())?)))
            {
                Ok(resolved) => resolved,
                Err(error) => {
                    errors.push(format!("data model {label}: {error}"));
                    continue;
                }
            };
            let model_name = model_label(&model_ref);
            let (selected, view_errors) = select_views(&model, selection.views.as_deref());
            errors.extend(view_errors);
            let definitions = match fetch_views(client, &selected).await {
                Ok(definitions) => definitions,
                Err(error) => {
                    errors.push(format!("views of data model {model_name}: {error}"));
                    continue;
                }
            };
            let edge_source_refs: Vec<ViewReference> = definitions
                .values()
                .flat_map(|v| {
                    v.edge_connections()
                        .filter_map(|(_, c)| c.edge_source.clone())
                })
                .collect();
            let edge_sources = match fetch_views(client, &edge_source_refs).await {
                Ok(found) => found,
                Err(error) => {
                    errors.push(format!(
                        "edge source views of data model {model_name}: {error}"
                    ));
                    continue;
                }
            };
            for reference in &selected {
                let Some(view) = definitions.get(reference) else {
                    errors.push(format!(
                        "view {reference} of data model {model_name} could not be retrieved"
                    ));
                    continue;
                };
                let Some(folder) = folders.get(reference) else {
                    errors.push(format!(
                        "view {reference} has no folder in data model {model_name}"
                    ));
                    continue;
                };
                for (name, connection) in view.edge_connections() {
                    if let Some(source) = &connection.edge_source
                        && !edge_sources.contains_key(source)
                    {
                        errors.push(format!(
                            "view {reference}: edge source {source} of connection {name} could not be retrieved; its edges are synced without properties"
                        ));
                    }
                }
                streams.extend(streams_of_view(
                    &model_ref,
                    view,
                    folder,
                    &edge_sources,
                    page_size,
                ));
            }
        }
    }
    (streams, errors)
}

async fn fetch_views(
    client: &CdfClient,
    references: &[ViewReference],
) -> Result<BTreeMap<ViewReference, ViewDefinition>, crate::cdf::CdfError> {
    if references.is_empty() {
        return Ok(BTreeMap::new());
    }
    let ids: Vec<_> = references.iter().map(ViewReference::to_id).collect();
    let views = client.retrieve_views(&ids).await?;
    Ok(views.into_iter().map(|v| (v.reference(), v)).collect())
}
