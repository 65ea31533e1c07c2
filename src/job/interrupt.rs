//! An operator's request to stop a run early (Ctrl-C, SIGTERM), which the jobs treat as
//! their deadline arriving now.
//!
//! A run already ends cleanly at its [`super::Deadline`]: no new turn, page or file starts,
//! a CDF call in flight is abandoned, and what was read is committed and checkpointed. An
//! interrupt reuses exactly that path rather than aborting the process, so a stopped run
//! never leaves half a commit and the next run resumes where it stopped. The writes that
//! end the work (the last commits, the RAW checkpoints, the run report) are not cut short.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A flag raised once, for the whole process, and awaitable.
///
/// A [`super::Deadline`] refers to one by `&'static` so that it stays `Copy`: the CLI
/// keeps one in a `static`, and tests leak their own.
#[derive(Debug, Default)]
pub struct Interrupt {
    raised: AtomicBool,
    notify: Notify,
}

impl Interrupt {
    /// Not raised.
    pub const fn new() -> Self {
        Self {
            raised: AtomicBool::new(false),
            notify: Notify::const_new(),
        }
    }

    /// A new flag that lives as long as the process (for tests and one-off runs).
    pub fn leaked() -> &'static Self {
        Box::leak(Box::new(Self::new()))
    }

    /// Asks every run that watches this flag to stop at its next safe point.
    pub fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether the flag was raised.
    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }

    /// Returns once the flag is raised (at once if it already is).
    pub async fn raised(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a raise between the two is not missed.
            notified.as_mut().enable();
            if self.is_raised() {
                return;
            }
            notified.await;
        }
    }
}

/// Two handles are the same interrupt only if they are the same flag.
impl PartialEq for Interrupt {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Interrupt {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_waiter_wakes_when_the_flag_is_raised_and_later_ones_return_at_once() {
        let flag = Interrupt::leaked();
        assert!(!flag.is_raised());
        let waiter = tokio::spawn(flag.raised());
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        flag.raise();
        tokio::time::timeout(Duration::from_secs(30), waiter)
            .await
            .expect("woken")
            .expect("joined");
        assert!(flag.is_raised());
        flag.raised().await;
        assert_ne!(flag, Interrupt::leaked());
    }
}
