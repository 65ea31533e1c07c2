//! When a job must be done: one type that every job obeys.

use std::time::Duration;

use tokio::time::Instant;

use super::Interrupt;

/// How far away an unbounded deadline is when a part of a job needs an instant: longer
/// than any run lives.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The instant a run must be over: the Lambda timeout (less the time its response needs),
/// the operator's `--time-budget` or `timeBudgetSeconds`, or none.
///
/// A job keeps its own margin before it for the writes that end its work (the sync's last
/// commits and checkpoints, see [`Deadline::less`]): no new work starts after the deadline
/// less that margin, and the last writes end by the deadline itself. Every wait of a job
/// (a CDF call, a backoff, a throttled retry) ends by the deadline too, so a run ends with
/// what it did rather than being killed by its timeout.
///
/// A deadline may also watch an [`Interrupt`] (the CLI's Ctrl-C): once it is raised the
/// deadline counts as reached, whenever its instant is, so an interrupted run stops the way
/// a run out of time does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deadline {
    at: Option<Instant>,
    interrupt: Option<&'static Interrupt>,
}

impl Deadline {
    /// No deadline: the job runs until its work is done (a CLI run without a budget).
    pub fn none() -> Self {
        Self {
            at: None,
            interrupt: None,
        }
    }

    /// The run must be over at `at`.
    pub fn at(at: Instant) -> Self {
        Self {
            at: Some(at),
            interrupt: None,
        }
    }

    /// The same deadline, reached at once when `interrupt` is raised.
    pub fn interruptible(self, interrupt: &'static Interrupt) -> Self {
        Self {
            interrupt: Some(interrupt),
            ..self
        }
    }

    /// The interrupt this deadline watches, if any.
    pub fn interrupt(&self) -> Option<&'static Interrupt> {
        self.interrupt
    }

    /// Whether the run was interrupted (its interrupt is raised).
    pub fn interrupted(&self) -> bool {
        self.interrupt.is_some_and(Interrupt::is_raised)
    }

    /// The run must be over `budget` from now.
    pub fn after(budget: Duration) -> Self {
        Self::at(Instant::now() + budget)
    }

    /// [`Deadline::after`] the budget, or none without one.
    pub fn within(budget: Option<Duration>) -> Self {
        budget.map_or_else(Self::none, Self::after)
    }

    /// The instant, if the run has one (an interrupt does not move it: ask
    /// [`Deadline::reached`]).
    pub fn instant(&self) -> Option<Instant> {
        self.at
    }

    /// The instant, or one far beyond any run when there is none: for the parts of a job
    /// that compare instants.
    pub(crate) fn instant_or_far(&self) -> Instant {
        self.at.unwrap_or_else(|| Instant::now() + FAR)
    }

    /// Time left until the deadline (zero once it passed or the run was interrupted);
    /// `None` when there is none.
    pub fn remaining(&self) -> Option<Duration> {
        if self.interrupted() {
            return Some(Duration::ZERO);
        }
        self.at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether the deadline has passed or the run was interrupted. Never true without a
    /// deadline or an interrupt.
    pub fn reached(&self) -> bool {
        self.interrupted() || self.at.is_some_and(|at| Instant::now() >= at)
    }

    /// The deadline `margin` earlier: when a job that keeps `margin` for its last writes
    /// stops starting new work (the sync's reads, a maintenance step). Stays none without
    /// a deadline.
    pub fn less(&self, margin: Duration) -> Self {
        Self {
            at: self.at.map(|at| at.checked_sub(margin).unwrap_or(at)),
            ..*self
        }
    }

    /// The later of the two; none if either is none. Interrupted only if both watch the
    /// interrupt: the later of a deadline that an interrupt ends and one it does not end is
    /// the one it does not end (the last writes of an interrupted run are not cut short).
    pub(crate) fn or_later(&self, other: Deadline) -> Self {
        let interrupt = self.interrupt.and(other.interrupt);
        match (self.at, other.at) {
            (Some(a), Some(b)) => Self {
                at: Some(a.max(b)),
                interrupt,
            },
            _ => Self {
                at: None,
                interrupt,
            },
        }
    }

    /// The earlier of the two; the other when one is none. Watches either's interrupt.
    pub fn min(&self, other: Deadline) -> Self {
        let interrupt = self.interrupt.or(other.interrupt);
        let at = match (self.at, other.at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Self { at, interrupt }
    }
}

impl From<Instant> for Deadline {
    fn from(at: Instant) -> Self {
        Self::at(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_is_never_reached_and_stays_none_less_a_margin() {
        let none = Deadline::none();
        assert!(!none.reached());
        assert_eq!(none.remaining(), None);
        assert_eq!(none.less(Duration::from_secs(20)), none);
        assert!(none.instant_or_far() > Instant::now() + Duration::from_secs(3600));
    }

    #[test]
    fn a_margin_moves_the_deadline_earlier() {
        let at = Instant::now() + Duration::from_secs(60);
        let deadline = Deadline::at(at);
        assert_eq!(
            deadline.less(Duration::from_secs(20)).instant(),
            Some(at - Duration::from_secs(20))
        );
        assert!(!deadline.reached());
        assert!(Deadline::at(at).less(Duration::from_secs(61)).reached());
        assert!(deadline.remaining() <= Some(Duration::from_secs(60)));
    }

    #[test]
    fn the_earlier_and_the_later_of_two() {
        let soon = Deadline::after(Duration::from_secs(1));
        let late = Deadline::after(Duration::from_secs(100));
        assert_eq!(soon.min(late), soon);
        assert_eq!(soon.min(Deadline::none()), soon);
        assert_eq!(soon.or_later(late), late);
        assert_eq!(soon.or_later(Deadline::none()), Deadline::none());
        assert!(Deadline::at(Instant::now()).reached());
    }

    #[test]
    fn an_interrupt_reaches_the_deadline_at_once_but_not_the_writes_after_it() {
        let interrupt = Interrupt::leaked();
        let reads = Deadline::none().interruptible(interrupt);
        let later = Deadline::after(Duration::from_secs(100)).interruptible(interrupt);
        assert!(!reads.reached());
        assert_eq!(reads.remaining(), None);
        interrupt.raise();
        assert!(reads.reached() && reads.interrupted());
        assert_eq!(reads.remaining(), Some(Duration::ZERO));
        assert!(later.less(Duration::from_secs(20)).reached());
        assert!(Deadline::none().min(later).reached());
        // The last writes of a run get the later deadline, which no interrupt ends.
        let writes = later.or_later(Deadline::after(Duration::from_secs(200)));
        assert!(!writes.reached());
        assert!(!later.or_later(Deadline::none()).reached());
        assert!(!Deadline::after(Duration::from_secs(100)).reached());
    }
}
