//! Spreading the CPU work of a snapshot over the cores it may use.
//!
//! Decoding raw files, sorting, gathering spilled runs and encoding the published file are
//! CPU bound and independent per row group, bucket or column, so they run on scoped
//! threads. Every step combines its parts in a fixed order, so the file written is the
//! same whatever the number of threads.

use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};

/// The cores this process may use (its CPU quota or affinity, as the OS reports it); 1
/// when that cannot be told.
pub(crate) fn available() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Applies `work` to every item on up to `threads` threads and returns the results in
/// item order. Items are handed out one at a time, so uneven items still balance. A panic
/// in `work` is propagated to the caller.
pub(crate) fn map_in_parallel<T, R, F>(items: Vec<T>, threads: usize, work: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.into_iter().map(work).collect();
    }
    let count = items.len();
    let queue = Mutex::new(items.into_iter().enumerate());
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                    let Some((index, item)) = next else { break };
                    let result = work(item);
                    results.lock().unwrap_or_else(PoisonError::into_inner)[index] = Some(result);
                }
            });
        }
    });
    // Every item was taken and its result stored: a panic would have ended the scope.
    results
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_item_order_for_any_thread_count() {
        let items: Vec<u64> = (0..257).collect();
        let expected: Vec<u64> = items.iter().map(|i| i * i).collect();
        for threads in [0, 1, 2, 3, 8, 1000] {
            let got = map_in_parallel(items.clone(), threads, |i| {
                // Uneven work: later items finish first on other threads.
                std::thread::sleep(std::time::Duration::from_micros((257 - i) % 7));
                i * i
            });
            assert_eq!(got, expected, "{threads} threads");
        }
        assert!(map_in_parallel(Vec::<u8>::new(), 4, |i| i).is_empty());
    }
}
