//! Live progress of a run, for whoever watches it: the CLI draws it in a terminal.
//!
//! The jobs report what they finish (a commit of a stream, a published view) to a
//! [`Progress`] handle; without an observer (Lambda, output that is not a terminal, the
//! tests) a report costs one `Option` check. The observer only sees figures the summaries
//! report anyway, so what it draws always agrees with the summary printed at the end.

use std::sync::Arc;

use crate::lake::Phase;

/// What a job tells about its progress.
pub trait ProgressObserver: Send + Sync {
    /// A stream committed: `rows` is its total for this run so far.
    fn stream_committed(&self, stream: &str, phase: Phase, rows: u64);
    /// A stream read a page: `fetched` rows so far in this run, of which `committed` are
    /// committed (the rest wait in memory for the next commit). Between two commits this is
    /// the only sign of life of a stream in a long backfill.
    fn stream_fetched(&self, stream: &str, phase: Phase, fetched: u64, committed: u64) {
        let _ = (stream, phase, fetched, committed);
    }
    /// A stream's turn ended for this run, with its final status spelled for people
    /// ([`crate::sync::StreamStatus::label`]: `caught up`, `behind`, `failed`, ...).
    fn stream_finished(&self, stream: &str, status: &str, rows: u64);
    /// A snapshot started publishing a view (`model` is `space:model/version`).
    fn view_started(&self, model: &str, view: &str);
    /// A view's files are published (or failed): `rows` written in this run.
    fn view_finished(&self, model: &str, view: &str, rows: u64, success: bool);
}

/// A cheap, clonable handle on the run's observer, if it has one.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn ProgressObserver>>);

impl Progress {
    /// Reports go to `observer`.
    pub fn to(observer: Arc<dyn ProgressObserver>) -> Self {
        Self(Some(observer))
    }

    /// Reports go nowhere.
    pub fn none() -> Self {
        Self(None)
    }

    pub(crate) fn stream_committed(&self, stream: &str, phase: Phase, rows: u64) {
        if let Some(observer) = &self.0 {
            observer.stream_committed(stream, phase, rows);
        }
    }

    pub(crate) fn stream_fetched(&self, stream: &str, phase: Phase, fetched: u64, committed: u64) {
        if let Some(observer) = &self.0 {
            observer.stream_fetched(stream, phase, fetched, committed);
        }
    }

    pub(crate) fn stream_finished(&self, stream: &str, status: &str, rows: u64) {
        if let Some(observer) = &self.0 {
            observer.stream_finished(stream, status, rows);
        }
    }

    pub(crate) fn view_started(&self, model: &str, view: &str) {
        if let Some(observer) = &self.0 {
            observer.view_started(model, view);
        }
    }

    pub(crate) fn view_finished(&self, model: &str, view: &str, rows: u64, success: bool) {
        if let Some(observer) = &self.0 {
            observer.view_finished(model, view, rows, success);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(observed)"
        } else {
            "Progress(none)"
        })
    }
}
