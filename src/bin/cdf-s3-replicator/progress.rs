//! Live progress of `sync` and `snapshot` in a terminal: one line per stream or view with
//! its phase, rows fetched and committed and rows per second, finished with its outcome.
//!
//! Drawn only when stderr is an interactive terminal, so that nothing of it ends up in a log
//! file, a pipe or a CI log; the JSON summary on stdout is unchanged either way. When the
//! display goes (at the end of a run) every line still open is stopped where it is, so no
//! line keeps redrawing over what is printed next (the summary, or the next run's lines).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdf_s3_replicator::lake::Phase;
use cdf_s3_replicator::progress::{Progress, ProgressObserver};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The progress handle for this process: drawn on stderr when it is a terminal, else none.
pub fn for_stderr() -> Progress {
    match TerminalProgress::new(
        std::io::stderr().is_terminal(),
        ProgressDrawTarget::stderr(),
    ) {
        Some(observer) => Progress::to(observer),
        None => Progress::none(),
    }
}

/// One line per stream or view.
pub struct TerminalProgress {
    lines: MultiProgress,
    /// When the run started: a stream's first report is its first commit, so its rate is
    /// taken over the run.
    started: Instant,
    /// Each line and when it was opened (a view's rate is taken from its start).
    open: Mutex<HashMap<String, (ProgressBar, Instant)>>,
}

impl TerminalProgress {
    /// `None` unless `interactive`.
    fn new(interactive: bool, target: ProgressDrawTarget) -> Option<Arc<Self>> {
        interactive.then(|| {
            Arc::new(Self {
                lines: MultiProgress::with_draw_target(target),
                started: Instant::now(),
                open: Mutex::new(HashMap::new()),
            })
        })
    }

    /// The line of `key`, started now if it is new.
    fn line(&self, key: &str) -> (ProgressBar, Instant) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.entry(key.to_owned())
            .or_insert_with(|| {
                let bar = self.lines.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(key.to_owned());
                bar.enable_steady_tick(Duration::from_millis(200));
                (bar, Instant::now())
            })
            .clone()
    }
}

fn per_second(rows: u64, since: Instant) -> u64 {
    let secs = since.elapsed().as_secs_f64();
    if secs > 0.0 {
        (rows as f64 / secs) as u64
    } else {
        0
    }
}

/// `backfill: 1200 fetched, 1000 committed, 300 rows/s`.
fn figures(phase: Phase, fetched: u64, committed: u64, since: Instant) -> String {
    format!(
        "{}: {fetched} fetched, {committed} committed, {} rows/s",
        phase_name(phase),
        per_second(fetched, since)
    )
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Backfill => "backfill",
        Phase::Streaming => "streaming",
    }
}

impl ProgressObserver for TerminalProgress {
    fn stream_fetched(&self, stream: &str, phase: Phase, fetched: u64, committed: u64) {
        let (bar, _) = self.line(stream);
        // The position holds the rows fetched, for the commits' messages.
        bar.set_position(fetched);
        bar.set_message(figures(phase, fetched, committed, self.started));
    }

    fn stream_committed(&self, stream: &str, phase: Phase, rows: u64) {
        let (bar, _) = self.line(stream);
        let fetched = bar.position().max(rows);
        bar.set_message(figures(phase, fetched, rows, self.started));
    }

    fn stream_finished(&self, stream: &str, status: &str, rows: u64) {
        let (bar, _) = self.line(stream);
        bar.finish_with_message(format!(
            "{status}: {rows} rows, {} rows/s",
            per_second(rows, self.started)
        ));
    }

    fn view_started(&self, model: &str, view: &str) {
        let (bar, _) = self.line(&format!("{model} {view}"));
        bar.set_message("publishing");
    }

    fn view_finished(&self, model: &str, view: &str, rows: u64, success: bool) {
        let (bar, since) = self.line(&format!("{model} {view}"));
        let outcome = if success { "published" } else { "failed" };
        bar.finish_with_message(format!(
            "{outcome}: {rows} rows, {} rows/s",
            per_second(rows, since)
        ));
    }
}

impl Drop for TerminalProgress {
    /// Lines still open (streams the deadline or an interrupt left behind) stop where they
    /// are, saying so, instead of ticking on over the output that follows.
    fn drop(&mut self) {
        let open = self
            .open
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (bar, _) in open.values() {
            if !bar.is_finished() {
                bar.abandon_with_message(format!(
                    "{}; stopped here, the next run continues",
                    bar.message()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_drawn_unless_the_output_is_a_terminal() {
        assert!(TerminalProgress::new(false, ProgressDrawTarget::hidden()).is_none());
        assert!(TerminalProgress::new(true, ProgressDrawTarget::hidden()).is_some());
    }

    #[test]
    fn each_stream_and_view_gets_a_line_with_its_figures() {
        let progress = TerminalProgress::new(true, ProgressDrawTarget::hidden()).unwrap();
        progress.stream_fetched("s/M/1/Pump/nodes", Phase::Backfill, 1500, 0);
        let (bar, _) = progress.line("s/M/1/Pump/nodes");
        assert!(
            bar.message()
                .starts_with("backfill: 1500 fetched, 0 committed, "),
            "{}",
            bar.message()
        );
        progress.stream_committed("s/M/1/Pump/nodes", Phase::Backfill, 1000);
        assert!(
            bar.message()
                .starts_with("backfill: 1500 fetched, 1000 committed, "),
            "{}",
            bar.message()
        );
        assert!(bar.message().ends_with(" rows/s"), "{}", bar.message());
        progress.stream_finished("s/M/1/Pump/nodes", "caught up", 1200);
        assert!(bar.is_finished());
        assert!(bar.message().starts_with("caught up: 1200 rows"));

        progress.view_started("s:M/1", "Pump");
        let (view, _) = progress.line("s:M/1 Pump");
        assert_eq!(view.message(), "publishing");
        progress.view_finished("s:M/1", "Pump", 40, false);
        assert!(view.message().starts_with("failed: 40 rows"));
        assert_eq!(progress.open.lock().unwrap().len(), 2);
    }
}

#[cfg(test)]
mod drop_tests {
    use super::*;

    #[test]
    fn lines_left_open_stop_when_the_display_goes() {
        let progress = TerminalProgress::new(true, ProgressDrawTarget::hidden()).unwrap();
        progress.stream_committed("s/M/1/Pump/nodes", Phase::Backfill, 10);
        progress.stream_finished("s/M/1/Valve/nodes", "caught up", 5);
        let (open, _) = progress.line("s/M/1/Pump/nodes");
        let (done, _) = progress.line("s/M/1/Valve/nodes");
        drop(progress);
        assert!(open.is_finished(), "an open line stops ticking");
        assert!(
            open.message()
                .ends_with("stopped here, the next run continues"),
            "{}",
            open.message()
        );
        assert!(
            done.message().starts_with("caught up: 5 rows"),
            "{}",
            done.message()
        );
    }
}
