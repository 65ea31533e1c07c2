//! The verification a publish run makes when one is due: every
//! `extractor.verify-interval`, in the time the run has left after publishing and
//! maintaining, continuing the pass the last run left open
//! ([`crate::verify::record`]).

use std::time::Duration;

use serde::Serialize;

use crate::clock::now_ms;
use crate::config::Config;
use crate::context::Context;
use crate::job::{JobInputs, JobOutcome};
use crate::plan::Plan;
use crate::verify::record::VerifyRecord;
use crate::verify::{self, VerifySummary};

/// When and how much a publish run verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledVerify {
    /// Time between the end of one complete pass and the start of the next.
    pub interval: Duration,
    /// Keys sampled per file from each side.
    pub sample: usize,
}

impl ScheduledVerify {
    /// From `extractor.verify-interval` and `extractor.verify-sample`; `None` when the
    /// interval is 0 (off).
    pub fn from_config(config: &Config) -> Option<Self> {
        let extractor = &config.extractor;
        extractor.verify_interval.map(|interval| Self {
            interval,
            sample: extractor.verify_sample,
        })
    }
}

/// A verification a publish run made.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduledVerifyReport {
    /// What this run verified.
    #[serde(flatten)]
    pub run: VerifySummary,
    /// The run as a step of the publish run ([`VerifyRecord::outcome`]).
    #[serde(skip)]
    outcome: JobOutcome,
}

impl ScheduledVerifyReport {
    /// `run` as a step of a publish run, with the `record` it updated.
    pub(crate) fn new(run: VerifySummary, record: &VerifyRecord) -> Self {
        let outcome = record.outcome(&run);
        Self { run, outcome }
    }

    /// The step's outcome: divergence metrics over the last result of every file.
    pub fn outcome(&self) -> JobOutcome {
        self.outcome.clone()
    }
}

/// Verifies when due and the run has time left, then records what it found. `None` when no
/// verification was due, there was no time, or the record could not be read (the next run
/// tries again; a verification never holds up publishing).
pub(crate) async fn run(
    context: &Context,
    plan: &Plan,
    inputs: &JobInputs,
    schedule: &ScheduledVerify,
) -> Option<ScheduledVerifyReport> {
    if inputs
        .deadline
        .less(context.config.extractor.deadline_margin)
        .reached()
    {
        return None;
    }
    let store = match context.destination.object_store() {
        Ok(store) => store,
        Err(error) => {
            tracing::warn!(%error, "cannot open the lake to verify it; the next run tries again");
            return None;
        }
    };
    let mut record = match VerifyRecord::load(&store).await {
        Ok(record) => record.unwrap_or_default(),
        Err(error) => {
            tracing::warn!(%error, "cannot read the verification record; the next run tries again");
            return None;
        }
    };
    if !record.due(schedule.interval, now_ms()) {
        return None;
    }
    let run = verify::run(context, plan, inputs, &record.options(schedule.sample)).await;
    for file in &run.files {
        if let Some(failure) = &file.error {
            tracing::warn!(model = %file.model, view = %file.view, kind = %file.kind, error = %failure.message, "could not verify a published file; the next pass tries again");
        }
    }
    for failure in &run.plan_errors {
        tracing::warn!(error = %failure.message, "could not plan a view to verify it");
    }
    if run.divergences() > 0 {
        tracing::warn!(
            divergences = run.divergences(),
            seed = run.seed,
            "the verification found published files that differ from CDF; see the report under `verify`"
        );
    }
    record.update(&run, now_ms());
    if let Err(error) = record.save(&store).await {
        tracing::warn!(%error, "cannot write the verification record; the next run verifies these files again");
    }
    Some(ScheduledVerifyReport::new(run, &record))
}
