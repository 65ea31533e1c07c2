//! `cdf-s3-replicator`: the command-line entry point (outside Lambda).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use cdf_s3_replicator::config::{ConfigError, LogFormat, ProcessEnv};
use cdf_s3_replicator::context::{ClientCache, Context, LoadError, load_config};
use cdf_s3_replicator::job::{Deadline, JobInputs, JobOutcome, ViewSelection};
use cdf_s3_replicator::jobs::{self, PublishOptions, ScheduledVerify};
use cdf_s3_replicator::status::StatusOptions;
use cdf_s3_replicator::sync::{SyncJob, SyncOptions};
use cdf_s3_replicator::telemetry;
use cdf_s3_replicator::verify::VerifyOptions;
use clap::{Parser, Subcommand};

mod check_config;
#[cfg(feature = "demo")]
mod demo;
mod fan_out;
mod interrupt;
mod progress;
mod reach;
mod time_budget;
use tokio::time::Instant;

#[derive(Parser)]
#[command(
    version,
    about = "Replicates CDF data-modeling instances into Delta Lake tables and Parquet snapshots"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How long to wait for CDF and its identity provider to answer at all before giving up
    /// (naming the host that did not answer): `15s`, `1m` or seconds. `status` then shows
    /// what the lake holds; `check-config --connect` gives each of its checks this long.
    #[arg(long, global = true, value_name = "DURATION", value_parser = time_budget::parse, default_value = reach::DEFAULT_CONNECT_TIMEOUT)]
    connect_timeout: Duration,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one sync time slice over every configured view and prints its summary as JSON.
    Sync {
        #[arg(long, default_value = "config.yaml")]
        config: PathBuf,
        /// Only these views, comma-separated: externalIds (`Pump`: in every model), or
        /// model-qualified (`space:Model/1:Pump`: only that model's).
        #[arg(long, value_delimiter = ',')]
        views: Option<Vec<String>>,
        /// Restart these streams (stream keys or view externalIds) with a full backfill.
        #[arg(long, value_delimiter = ',')]
        resync: Vec<String>,
        /// Time this slice may take (`90s`, `5m`, or seconds); defaults to
        /// `extractor.time-budget`, else no limit.
        #[arg(long, value_parser = time_budget::parse)]
        time_budget: Option<Duration>,
        /// Resolve the models and plan the streams without reading or writing data.
        #[arg(long)]
        dry_run: bool,
    },
    /// Publishes `nodes.parquet` / `edges.parquet` for every configured view (or the given
    /// ones) and, unless `--no-maintenance`, maintains the raw Delta tables.
    Snapshot {
        #[arg(long, default_value = "config.yaml")]
        config: PathBuf,
        /// Only these views, comma-separated: externalIds (`Pump`: in every model), or
        /// model-qualified (`space:Model/1:Pump`: only that model's).
        #[arg(long, value_delimiter = ',')]
        views: Option<Vec<String>>,
        /// Skip compaction, checkpoints and vacuum of the raw tables.
        #[arg(long)]
        no_maintenance: bool,
        /// Print the units of the run (one per view or part, most stale first, and the
        /// shards to run before them) as JSON and publish nothing. A plan with shards
        /// records their build under `_work/shards/`, which the next plan continues.
        #[arg(long, conflicts_with_all = ["unit", "fan_out", "no_maintenance"])]
        plan_only: bool,
        /// Publish only this unit of the plan (an `id` that `--plan-only` prints), without
        /// the catalog and maintenance, and print its report as JSON.
        #[arg(long, value_name = "ID", conflicts_with_all = ["fan_out", "views", "no_maintenance"])]
        unit: Option<String>,
        /// Run the units in this many parallel processes of this program, then register
        /// the catalog and maintain the raw tables: what the state machine of the
        /// deployment template does.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        fan_out: Option<u16>,
        /// Time this run may take (`90s`, `5m`, or seconds); defaults to
        /// `extractor.time-budget`, else no limit. Less `extractor.deadline-margin`, it is the
        /// deadline: no file starts that cannot finish before it (the rest is reported behind
        /// and comes first next time), and maintenance gets the time left.
        #[arg(long, value_parser = time_budget::parse)]
        time_budget: Option<Duration>,
    },
    /// Runs until stopped: a sync slice every `extractor.poll-time`, a snapshot every
    /// `extractor.snapshot-interval`.
    Run {
        #[arg(long, default_value = "config.yaml")]
        config: PathBuf,
    },
    /// Runs the whole sync path locally: starts the bundled CDF emulator, seeds a sample
    /// plant model, syncs it into a local directory, applies changes, syncs again. Needs a
    /// build with the `demo` feature: `cargo run --features demo -- demo`.
    Demo {
        /// Directory that receives the Delta tables.
        #[arg(long, default_value = "./lake")]
        lake: PathBuf,
        /// Number of sample pumps (each brings two work orders and two edges).
        #[arg(long, default_value_t = 200)]
        pumps: usize,
        /// Keep the emulator running when the demo is done, with a `config.yaml` next to
        /// the lake that points at it, to try `status`, `sync`, `snapshot` and `verify`;
        /// stop with Ctrl-C.
        #[arg(long)]
        keep_running: bool,
    },
    /// Shows, per stream and per published view, how far replication is: phase, caught up
    /// or behind, generation, rows, last success, lag, last error, file ages. Reads only.
    Status {
        #[arg(long, default_value = "config.yaml")]
        config: PathBuf,
        /// Only these views, comma-separated: externalIds (`Pump`: in every model), or
        /// model-qualified (`space:Model/1:Pump`: only that model's).
        #[arg(long, value_delimiter = ',')]
        views: Option<Vec<String>>,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Compares the published files with CDF: manifests, foreign commits in the raw tables,
    /// counts, and a seeded sample fetched from CDF and compared value by value. Reads
    /// only. Exit 0 only when nothing diverges (lag is not divergence).
    Verify {
        #[arg(long, default_value = "config.yaml")]
        config: PathBuf,
        /// Only these views, comma-separated: externalIds (`Pump`: in every model), or
        /// model-qualified (`space:Model/1:Pump`: only that model's).
        #[arg(long, value_delimiter = ',')]
        views: Option<Vec<String>>,
        /// Keys sampled per file, from the file and as many again from CDF.
        #[arg(long, default_value_t = cdf_s3_replicator::verify::DEFAULT_SAMPLE)]
        sample: usize,
        /// The seed of the samples; the report prints the one it used, to repeat a run.
        #[arg(long)]
        seed: Option<u64>,
        /// Time the run may take (`90s`, `5m`, or seconds); defaults to
        /// `extractor.time-budget`, else no limit.
        #[arg(long, value_parser = time_budget::parse)]
        time_budget: Option<Duration>,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Loads and validates the configuration (fetching a remote one), reports every
    /// problem, and prints the effective configuration as YAML (defaults filled in,
    /// credentials shown as their `${VAR}` or `<redacted>`), to diff with the file.
    CheckConfig {
        #[arg(long, default_value = "config.yaml")]
        config: PathBuf,
        /// Also check the CDF credentials, the configured models and views, and that the
        /// lake is readable and writable, one line each.
        #[arg(long)]
        connect: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command, cli.connect_timeout).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, connect_timeout: Duration) -> anyhow::Result<ExitCode> {
    match command {
        Command::CheckConfig { config, connect } => {
            let path = config;
            let config = load(&path).await?;
            check_config::run(&path, config, connect.then_some(connect_timeout)).await
        }
        Command::Status {
            config,
            views,
            json,
        } => {
            let context = start(&config, &ClientCache::default()).await?;
            let selection = ViewSelection::of_option(views)?;
            let cdf_unreachable = reach::cdf(&context, connect_timeout)
                .await
                .err()
                .map(|error| error.to_string());
            let options = StatusOptions {
                selection,
                cdf_unreachable,
            };
            let report = cdf_s3_replicator::status::gather(&context, &options).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", cdf_s3_replicator::status::render::render(&report));
            }
            // 2: no stream to show, and the plan errors say why (models unreadable, no view).
            Ok(if report.could_plan() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        Command::Verify {
            config,
            views,
            sample,
            seed,
            time_budget,
            json,
        } => {
            let context = start(&config, &ClientCache::default()).await?;
            reach::cdf(&context, connect_timeout).await?;
            let inputs = JobInputs {
                deadline: snapshot_deadline(&context, time_budget),
                selection: ViewSelection::of_option(views)?,
                progress: Default::default(),
            };
            let options = VerifyOptions {
                sample,
                seed,
                resume: None,
            };
            let summary = jobs::verify(&context, &inputs, &options).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", cdf_s3_replicator::verify::render(&summary));
            }
            // 1: a divergence (or a file that could not be verified, or a plan error).
            Ok(if summary.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Sync {
            config,
            views,
            resync,
            time_budget,
            dry_run,
        } => {
            let context = start(&config, &ClientCache::default()).await?;
            interrupt::listen();
            reach::cdf(&context, connect_timeout).await?;
            let budget = time_budget.or(context.config.extractor.time_budget);
            let inputs = JobInputs {
                deadline: interrupt::interruptible(Deadline::within(budget)),
                selection: ViewSelection::of_option(views)?,
                progress: progress::for_stderr(),
            };
            let options = SyncOptions {
                force_resync: resync,
                dry_run,
            };
            let job = SyncJob::from_context(&context);
            let summary = jobs::sync(&job, &inputs, &options).await;
            tracing::info!(summary = %summary.one_line(), "sync finished");
            // The progress display goes before the summary is printed below it.
            drop(inputs);
            finish_or_stopped(&summary.outcome())
        }
        #[cfg(feature = "demo")]
        Command::Demo {
            lake,
            pumps,
            keep_running,
        } => {
            telemetry::init(
                cdf_s3_replicator::config::LogLevel::Warning,
                LogFormat::Text,
            );
            interrupt::listen();
            demo::main(&lake, pumps, keep_running).await
        }
        // The emulator is left out of builds without the feature (the Lambda functions).
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => Err(anyhow::anyhow!(
            "this build has no demo (the bundled CDF emulator is an opt-in feature): run \
             `cargo run --features demo -- demo`"
        )),
        Command::Snapshot {
            config,
            views,
            no_maintenance,
            plan_only,
            unit,
            fan_out,
            time_budget,
        } if plan_only || unit.is_some() || fan_out.is_some() => {
            let context = start(&config, &ClientCache::default()).await?;
            reach::cdf(&context, connect_timeout).await?;
            let inputs = JobInputs {
                deadline: snapshot_deadline(&context, time_budget),
                selection: ViewSelection::of_option(views)?,
                progress: Default::default(),
            };
            let options = publish_options(no_maintenance);
            snapshot_in_units(
                &context, &config, &inputs, &options, plan_only, unit, fan_out,
            )
            .await
        }
        Command::Snapshot {
            config,
            views,
            no_maintenance,
            time_budget,
            ..
        } => {
            let context = start(&config, &ClientCache::default()).await?;
            interrupt::listen();
            reach::cdf(&context, connect_timeout).await?;
            let inputs = JobInputs {
                deadline: interrupt::interruptible(snapshot_deadline(&context, time_budget)),
                selection: ViewSelection::of_option(views)?,
                progress: progress::for_stderr(),
            };
            let plan = jobs::plan(&context).await;
            let options = publish_options(no_maintenance);
            let report = jobs::publish(&context, &plan, &inputs, &options).await;
            drop(inputs);
            finish_or_stopped(&report.outcome())
        }
        Command::Run { config } => {
            // One client for the whole process: a reloaded configuration with the same
            // connection settings keeps its token and connection pool.
            let clients = ClientCache::default();
            let mut context = start(&config, &clients).await?;
            interrupt::listen();
            let mut last_snapshot: Option<Instant> = None;
            loop {
                let cycle = Instant::now();
                let extractor = &context.config.extractor;
                let sync_inputs = JobInputs::until(interrupt::interruptible(Deadline::within(
                    extractor.time_budget,
                )));
                let publish_due =
                    last_snapshot.is_none_or(|t| t.elapsed() >= extractor.snapshot_interval);
                let mut publish_options = publish_options(false);
                publish_options.verify = ScheduledVerify::from_config(&context.config);
                let publish_inputs = JobInputs::until(interrupt::interruptible(Deadline::none()));
                let (synced, published) = jobs::cycle(
                    &context,
                    (&sync_inputs, &SyncOptions::default()),
                    publish_due.then_some((&publish_inputs, &publish_options)),
                )
                .await;
                let synced = synced.outcome();
                log_outcome(&synced);
                let published = published.map(|report| report.outcome());
                if let Some(outcome) = &published {
                    log_outcome(outcome);
                    last_snapshot = Some(Instant::now());
                }
                let outcomes: Vec<&JobOutcome> =
                    std::iter::once(&synced).chain(published.as_ref()).collect();
                if let Some(code) = interrupt::report(&outcomes) {
                    return Ok(code);
                }
                let poll = context.config.extractor.poll_time;
                let sleep = poll.saturating_sub(cycle.elapsed());
                tracing::info!(
                    sleep_secs = sleep.as_secs(),
                    "sleeping until the next cycle"
                );
                tokio::select! {
                    _ = tokio::time::sleep(sleep) => {}
                    () = interrupt::INTERRUPT.raised() => {
                        return Ok(interrupt::report(&outcomes).unwrap_or(ExitCode::SUCCESS));
                    }
                }
                // Remote configuration is re-read every cycle, so edits apply without a restart.
                match load(&config)
                    .await
                    .and_then(|c| Context::with_clients(c, &clients).map_err(Into::into))
                {
                    Ok(reloaded) => context = reloaded,
                    Err(error) => {
                        tracing::warn!(error = %format!("{error:#}"), "keeping the previous configuration")
                    }
                }
            }
        }
    }
}

/// `snapshot --plan-only`, `--unit` or `--fan-out`: one step of a run split into units, or
/// all of them, printed as the snapshot job's outcome (the plan: its list of units). Exit 2
/// when the step (or a unit) failed, as a whole snapshot run does.
async fn snapshot_in_units(
    context: &Context,
    config: &Path,
    inputs: &JobInputs,
    options: &PublishOptions,
    plan_only: bool,
    unit: Option<String>,
    workers: Option<u16>,
) -> anyhow::Result<ExitCode> {
    if plan_only {
        let plan = jobs::fan_out::plan_units(context, &inputs.selection).await;
        return finish(&jobs::fan_out::plan_outcome(&plan));
    }
    if let Some(id) = unit {
        let report = jobs::fan_out::run_unit(context, &id, inputs).await?;
        return finish(&report.job_outcome());
    }
    let workers = usize::from(workers.unwrap_or(1));
    match fan_out::run(context, config, inputs, options, workers).await? {
        fan_out::FanOutRun::PlanFailed(plan) => finish(&jobs::fan_out::plan_outcome(&plan)),
        fan_out::FanOutRun::Finalized(report) => finish(&report.outcome()),
    }
}

/// The snapshot's deadline: `--time-budget`, else `extractor.time-budget`, else none. The
/// snapshot keeps `extractor.deadline-margin` of it: no file starts that cannot finish
/// before the deadline less the margin.
fn snapshot_deadline(context: &Context, time_budget: Option<Duration>) -> Deadline {
    Deadline::within(time_budget.or(context.config.extractor.time_budget))
}

/// Every view; maintenance with every step unless `--no-maintenance`.
fn publish_options(no_maintenance: bool) -> PublishOptions {
    let mut options = PublishOptions::everything();
    if no_maintenance {
        options.maintenance = None;
    }
    options
}

async fn load(path: &Path) -> anyhow::Result<cdf_s3_replicator::config::Config> {
    let env = ProcessEnv::for_config_file(path)?;
    // Every loading error's message already holds its causes (a read error also names the
    // file), so it is passed on as one message: as an error chain, each cause would be
    // printed a second time under "Caused by".
    match load_config(path, &env).await {
        Ok(config) => Ok(config),
        Err(error @ LoadError::Config(ConfigError::Read { .. } | ConfigError::TooLarge { .. })) => {
            Err(anyhow::anyhow!("{error}"))
        }
        Err(error) => Err(anyhow::anyhow!("configuration {}: {error}", path.display())),
    }
}

async fn start(path: &Path, clients: &ClientCache) -> anyhow::Result<Context> {
    let config = load(path).await?;
    let format = config.logger.format.unwrap_or(LogFormat::Text);
    telemetry::init(config.logger.level, format);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    Ok(Context::with_clients(config, clients)?)
}

/// Prints the job's summary as JSON; exit status 2 when the run did not succeed.
fn finish(outcome: &JobOutcome) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(&outcome.detail)?);
    Ok(if outcome.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// [`finish`], and for a run stopped by Ctrl-C or SIGTERM what it did and what resumes,
/// with the signal's exit status (130 or 143).
fn finish_or_stopped(outcome: &JobOutcome) -> anyhow::Result<ExitCode> {
    let code = finish(outcome)?;
    Ok(interrupt::report(&[outcome]).unwrap_or(code))
}

/// One log line per job of a cycle, with its summary as JSON.
fn log_outcome(outcome: &JobOutcome) {
    tracing::info!(
        outcome = if outcome.success { "success" } else { "failed" },
        succeeded = outcome.succeeded,
        behind = outcome.behind,
        failed = outcome.failed,
        summary = %outcome.detail,
        "{} finished: {}",
        outcome.job,
        outcome.summary
    );
}
