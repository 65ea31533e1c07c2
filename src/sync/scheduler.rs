//! Runs stream turns under a deadline: longest-waiting first, a bounded number at a time,
//! and a stream that still has work after its turn goes to the back of the queue, so a
//! large backfill cannot starve the other streams of an invocation.

use std::collections::VecDeque;
use std::future::Future;

use tokio::task::JoinSet;

use crate::job::Deadline;

/// What a turn of one stream ended with.
#[derive(Debug)]
pub(crate) enum Turn<S, O> {
    /// More work is waiting: queue the stream again if time allows.
    Again(S),
    /// The stream is finished for this invocation.
    Done(O),
}

/// Streams whose turn never came, or that still had work when the deadline arrived.
#[derive(Debug)]
pub(crate) struct Unfinished<S> {
    pub(crate) streams: Vec<S>,
}

/// Runs `turn` over `queue` (already ordered, first = most overdue) with at most
/// `parallelism` turns at once. No turn starts once `deadline` is reached (or the run is
/// interrupted); running turns are expected
/// to watch the deadline themselves. Returns the outcomes of finished streams and the
/// streams left over. A turn that panics is reported through `on_panic`, never propagated,
/// so one bad stream cannot take down the others.
pub(crate) async fn run_turns<S, O, F, Fut>(
    queue: Vec<S>,
    parallelism: usize,
    deadline: Deadline,
    turn: F,
    on_panic: impl Fn(String) -> O,
) -> (Vec<O>, Unfinished<S>)
where
    S: Send + 'static,
    O: Send + 'static,
    F: Fn(S) -> Fut,
    Fut: Future<Output = Turn<S, O>> + Send + 'static,
{
    let mut queue: VecDeque<S> = queue.into();
    let mut running = JoinSet::new();
    let mut outcomes = Vec::new();
    let parallelism = parallelism.max(1);
    loop {
        while running.len() < parallelism && !deadline.reached() {
            let Some(stream) = queue.pop_front() else {
                break;
            };
            running.spawn(turn(stream));
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        match joined {
            Ok(Turn::Again(stream)) => queue.push_back(stream),
            Ok(Turn::Done(outcome)) => outcomes.push(outcome),
            Err(error) => outcomes.push(on_panic(panic_message(error))),
        }
    }
    (
        outcomes,
        Unfinished {
            streams: queue.into(),
        },
    )
}

fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a stream task panicked".to_owned()),
        Err(error) => format!("a stream task was cancelled: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::time::Instant;

    #[tokio::test]
    async fn streams_take_turns_round_robin_and_all_finish() {
        let order = Arc::new(Mutex::new(Vec::new()));
        // (name, turns of work left)
        let streams = vec![("big", 3), ("a", 1), ("b", 1)];
        let log = order.clone();
        let (done, left) = run_turns(
            streams,
            1,
            Deadline::after(Duration::from_secs(10)),
            move |(name, left): (&'static str, u32)| {
                let log = log.clone();
                async move {
                    log.lock().unwrap().push(name);
                    if left > 1 {
                        Turn::Again((name, left - 1))
                    } else {
                        Turn::Done(name)
                    }
                }
            },
            |_| "panic",
        )
        .await;
        assert_eq!(*order.lock().unwrap(), ["big", "a", "b", "big", "big"]);
        assert_eq!(done, ["a", "b", "big"]);
        assert!(left.streams.is_empty());
    }

    #[tokio::test]
    async fn no_turn_starts_after_the_deadline() {
        let (done, left) = run_turns(
            vec![1, 2, 3],
            2,
            Deadline::at(Instant::now()),
            |n: i32| async move { Turn::<i32, i32>::Done(n) },
            |_| -1,
        )
        .await;
        assert!(done.is_empty());
        assert_eq!(left.streams, [1, 2, 3]);
    }

    #[tokio::test]
    async fn a_panicking_turn_is_reported_and_the_others_finish() {
        let (mut done, _) = run_turns(
            vec![1, 2, 3],
            2,
            Deadline::after(Duration::from_secs(10)),
            |n: i32| async move {
                if n == 2 {
                    panic!("stream 2 broke");
                }
                Turn::<i32, String>::Done(n.to_string())
            },
            |message| message,
        )
        .await;
        done.sort();
        assert_eq!(done, ["1", "3", "stream 2 broke"]);
    }
}
