//! The contract every job keeps: sync, snapshot, maintenance, and the jobs still to come.
//!
//! - It takes the same [`JobInputs`]: a [`Deadline`] it obeys (which an operator's
//!   [`Interrupt`] brings forward to now), a [`ViewSelection`] of the
//!   views it works on, and the [`Progress`] it reports to; and its own options.
//! - It builds its own settings from the configuration (`SyncJob::from_context`, and the
//!   snapshot's and maintenance's settings), so no job reads another job's settings.
//! - It returns its own summary, which turns into one [`JobOutcome`]: what the CLI prints,
//!   the Lambda functions respond and log, and the metrics count, whichever job ran.
//! - It never fails as a whole: every problem is a [`crate::failure::Failure`] of one part,
//!   whose cause is the `errorType` vocabulary of the Lambda functions.
//!
//! This module sits below the jobs: it knows none of them.

mod deadline;
mod interrupt;
mod outcome;
mod selection;

pub use self::deadline::Deadline;
pub use self::interrupt::Interrupt;
pub use self::outcome::{JobOutcome, Metric, Metrics, Unit};
pub use self::selection::{SelectionError, ViewName, ViewSelection};
use crate::progress::Progress;

/// What every job takes, whichever job it is.
#[derive(Debug, Clone, Default)]
pub struct JobInputs {
    /// When the run must be over.
    pub deadline: Deadline,
    /// The views to work on.
    pub selection: ViewSelection,
    /// Where to report progress as the job goes (the CLI's terminal display).
    pub progress: Progress,
}

impl JobInputs {
    /// Every view, no progress display, until `deadline`.
    pub fn until(deadline: impl Into<Deadline>) -> Self {
        Self {
            deadline: deadline.into(),
            ..Self::default()
        }
    }

    /// Every view, no deadline, no progress display.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The same, for the `selection` of views.
    pub fn with_selection(self, selection: ViewSelection) -> Self {
        Self { selection, ..self }
    }

    /// The same, for the named views (see [`ViewName`]).
    pub fn with_views<S: AsRef<str>>(
        self,
        names: impl IntoIterator<Item = S>,
    ) -> Result<Self, SelectionError> {
        Ok(self.with_selection(ViewSelection::of(names)?))
    }
}
