//! Ctrl-C and SIGTERM in `sync`, `snapshot`, `run` and `demo`: the run stops at its next
//! safe point, says what it committed and what resumes, and exits 130 (SIGINT) or 143
//! (SIGTERM).
//!
//! The first signal raises [`INTERRUPT`], which the run's deadline watches: the jobs then
//! end exactly as they do when their time is up (no new page, turn or file starts, what was
//! read is committed and checkpointed), so nothing is left half-written. A second signal
//! exits at once, for a run that is stuck in a write.

use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

use cdf_s3_replicator::job::{Deadline, Interrupt, JobOutcome};

/// The process's interrupt: raised by the first SIGINT or SIGTERM.
pub static INTERRUPT: Interrupt = Interrupt::new();

/// The signal that raised [`INTERRUPT`]: 2 (SIGINT) or 15 (SIGTERM), 0 while none came.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

const SIGINT: i32 = 2;
#[cfg_attr(not(unix), allow(dead_code))]
const SIGTERM: i32 = 15;

/// The deadline, stopped early by Ctrl-C or SIGTERM.
pub fn interruptible(deadline: Deadline) -> Deadline {
    deadline.interruptible(&INTERRUPT)
}

/// Catches SIGINT and SIGTERM from now on (instead of dying at once). Call it once, at the
/// start of a command that stops at a safe point.
pub fn listen() {
    tokio::spawn(async {
        let Some(mut signals) = Signals::install() else {
            tracing::warn!("cannot catch Ctrl-C here: an interrupt ends the process at once");
            return;
        };
        let mut received = 0u32;
        while let Some(signal) = signals.next().await {
            received += 1;
            if received > 1 {
                eprintln!("\nInterrupted again: exiting at once.");
                std::process::exit(128 + signal);
            }
            SIGNAL.store(signal, Ordering::SeqCst);
            eprintln!(
                "\nInterrupted: stopping at the next safe point (what was read is committed \
                 first). Press Ctrl-C again to exit at once."
            );
            INTERRUPT.raise();
        }
    });
}

/// SIGINT and SIGTERM, caught from installation on.
#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Option<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Some(Self {
            interrupt: signal(SignalKind::interrupt()).ok()?,
            terminate: signal(SignalKind::terminate()).ok()?,
        })
    }

    async fn next(&mut self) -> Option<i32> {
        tokio::select! {
            got = self.interrupt.recv() => got.map(|()| SIGINT),
            got = self.terminate.recv() => got.map(|()| SIGTERM),
        }
    }
}

/// Ctrl-C only, where there are no Unix signals.
#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Option<Self> {
        Some(Self)
    }

    async fn next(&mut self) -> Option<i32> {
        tokio::signal::ctrl_c().await.ok().map(|()| SIGINT)
    }
}

/// Whether the run was interrupted.
pub fn interrupted() -> bool {
    INTERRUPT.is_raised()
}

/// The exit status of an interrupted run: 128 + the signal number, as a shell reports a
/// process the signal ended.
pub fn exit_code() -> Option<ExitCode> {
    let signal = SIGNAL.load(Ordering::SeqCst);
    (interrupted() && signal > 0).then(|| ExitCode::from(u8::try_from(128 + signal).unwrap_or(130)))
}

/// For an interrupted run: says on stderr what the jobs did and what the next run resumes,
/// and returns the exit status. `None` when the run was not interrupted.
pub fn report(outcomes: &[&JobOutcome]) -> Option<ExitCode> {
    let code = exit_code()?;
    eprint!("{}", stopped_message(outcomes));
    Some(code)
}

/// What an interrupted run did, for people: one line per job, then what resumes.
pub fn stopped_message(outcomes: &[&JobOutcome]) -> String {
    let mut text = String::from("Stopped at a safe point: every commit is whole.\n");
    let mut behind = 0;
    for outcome in outcomes {
        text.push_str(&format!("  {}: {}\n", outcome.job, outcome.summary));
        behind += outcome.behind;
    }
    if behind > 0 {
        text.push_str(&format!(
            "  {behind} part(s) stopped before the end; the next run resumes them from their last commit.\n"
        ));
    } else {
        text.push_str("  Nothing was left half-way; the next run starts from here.\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(job: &'static str, behind: u64, summary: &str) -> JobOutcome {
        JobOutcome {
            job,
            success: true,
            succeeded: 1,
            behind,
            failed: 0,
            dry_run: false,
            summary: summary.to_owned(),
            failures: Default::default(),
            duration_ms: 1,
            metrics: Default::default(),
            detail: serde_json::Value::Null,
        }
    }

    #[test]
    fn the_message_says_what_was_committed_and_what_resumes() {
        let sync = outcome(
            "sync",
            2,
            "3 streams: 1 caught up, 2 behind, 0 failed; 40 rows in 2 commits; 0 cursor resets",
        );
        let text = stopped_message(&[&sync]);
        assert!(
            text.contains("sync: 3 streams: 1 caught up, 2 behind"),
            "{text}"
        );
        assert!(text.contains("40 rows in 2 commits"), "{text}");
        assert!(
            text.contains("2 part(s) stopped before the end; the next run resumes them"),
            "{text}"
        );
        let done = stopped_message(&[&outcome("snapshot", 0, "2 views published")]);
        assert!(done.contains("the next run starts from here"), "{done}");
    }
}
