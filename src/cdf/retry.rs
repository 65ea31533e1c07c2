//! When to retry a failed CDF call and how long to wait first.
//!
//! Everything here is pure so that the policy can be tested as a table; the request loop in
//! `client.rs` only asks these functions and sleeps.

use std::time::{Duration, SystemTime};

/// Retry budget and backoff shape.
///
/// Defaults follow the client policy of the API contract: 8 attempts in total, 250 ms × 2^n
/// with full jitter, capped at 30 s, and a server-sent `Retry-After` honoured up to 60 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first one included. `1` disables retries.
    pub max_attempts: u32,
    /// The backoff ceiling before the first retry; it doubles with every further retry.
    pub initial_backoff: Duration,
    /// The largest backoff ceiling, however many retries came before.
    pub max_backoff: Duration,
    /// Upper bound for a server-sent `Retry-After`, so a misbehaving proxy cannot park the
    /// replicator for hours.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Attempts allowed for a call of the given kind. Non-idempotent calls get at most one
    /// retry, because a second copy of, say, an extraction-pipeline run is visible to users.
    pub(crate) fn attempts_for(&self, idempotency: Idempotency) -> u32 {
        let max = self.max_attempts.max(1);
        match idempotency {
            Idempotency::Idempotent => max,
            Idempotency::NonIdempotent => max.min(2),
        }
    }

    /// The wait before retry number `retry_index` (0 for the first retry) when the server
    /// gave no `Retry-After`: full jitter over `[0, min(max_backoff, initial × 2^n)]`.
    ///
    /// `unit` is a uniform sample from `[0, 1)`; passing it in keeps this function pure.
    pub(crate) fn backoff(&self, retry_index: u32, unit: f64) -> Duration {
        let ceiling = self.backoff_ceiling(retry_index);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        ceiling.mul_f64(unit).min(ceiling)
    }

    /// The largest wait `backoff` can return for `retry_index`.
    pub(crate) fn backoff_ceiling(&self, retry_index: u32) -> Duration {
        let factor = 1u32.checked_shl(retry_index.min(31)).unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// The wait before the next attempt: the server's `Retry-After` when it sent one
    /// (capped), otherwise the jittered exponential backoff.
    pub(crate) fn delay(
        &self,
        retry_index: u32,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> Duration {
        match retry_after {
            Some(wait) => wait.min(self.max_retry_after),
            None => self.backoff(retry_index, unit),
        }
    }
}

/// Whether sending a request twice can have a visible effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads and upserts: safe to repeat.
    Idempotent,
    /// Creates (extraction-pipeline runs and configs, RAW db/table creation).
    NonIdempotent,
}

/// How a request failed before any HTTP status was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransportFailure {
    /// No connection was made, so the server cannot have seen the request.
    Connect,
    /// The request or response timed out.
    Timeout,
    /// The connection broke after the request may have been sent (reset, closed early,
    /// incomplete body).
    Interrupted,
    /// The request could not be built or sent at all (bad URL, redirect loop, ...).
    Permanent,
}

/// Whether an HTTP error status is worth another attempt.
///
/// 401 is not listed: it is handled separately by forcing one token refresh.
pub(crate) fn is_retryable_status(
    status: u16,
    auto_retryable: bool,
    idempotency: Idempotency,
) -> bool {
    let server_error = (500..=599).contains(&status);
    match idempotency {
        Idempotency::Idempotent => server_error || status == 408 || status == 429 || auto_retryable,
        Idempotency::NonIdempotent => server_error,
    }
}

/// Whether a transport failure is worth another attempt.
pub(crate) fn is_retryable_transport(failure: TransportFailure, idempotency: Idempotency) -> bool {
    match (failure, idempotency) {
        (TransportFailure::Permanent, _) => false,
        (TransportFailure::Connect, _) => true,
        (TransportFailure::Timeout | TransportFailure::Interrupted, Idempotency::Idempotent) => {
            true
        }
        (TransportFailure::Timeout | TransportFailure::Interrupted, Idempotency::NonIdempotent) => {
            false
        }
    }
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP date (relative to `now`).
///
/// A date in the past means "now". Unparseable values are ignored so that the regular
/// backoff applies.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    #[test]
    fn status_classification_table() {
        use Idempotency::*;
        // (status, auto-retryable header, idempotent verdict, non-idempotent verdict)
        let table: &[(u16, bool, bool, bool)] = &[
            (400, false, false, false),
            (401, false, false, false),
            (403, false, false, false),
            (404, false, false, false),
            (408, false, true, false),
            (409, false, false, false),
            (422, false, false, false),
            (429, false, true, false),
            (500, false, true, true),
            (501, false, true, true),
            (502, false, true, true),
            (503, false, true, true),
            (504, false, true, true),
            (599, false, true, true),
            (400, true, true, false),
            (403, true, true, false),
            (429, true, true, false),
            (503, true, true, true),
            (301, false, false, false),
        ];
        for &(status, auto, idempotent, non_idempotent) in table {
            assert_eq!(
                is_retryable_status(status, auto, Idempotent),
                idempotent,
                "status {status}, auto-retryable {auto}, idempotent"
            );
            assert_eq!(
                is_retryable_status(status, auto, NonIdempotent),
                non_idempotent,
                "status {status}, auto-retryable {auto}, non-idempotent"
            );
        }
    }

    #[test]
    fn transport_classification_table() {
        use Idempotency::*;
        use TransportFailure::*;
        let table = [
            (Connect, Idempotent, true),
            (Connect, NonIdempotent, true),
            (Timeout, Idempotent, true),
            (Timeout, NonIdempotent, false),
            (Interrupted, Idempotent, true),
            (Interrupted, NonIdempotent, false),
            (Permanent, Idempotent, false),
            (Permanent, NonIdempotent, false),
        ];
        for (failure, idempotency, expected) in table {
            assert_eq!(
                is_retryable_transport(failure, idempotency),
                expected,
                "{failure:?} {idempotency:?}"
            );
        }
    }

    #[test]
    fn attempts_for_non_idempotent_calls_allow_one_retry_at_most() {
        let p = policy();
        assert_eq!(p.attempts_for(Idempotency::Idempotent), 8);
        assert_eq!(p.attempts_for(Idempotency::NonIdempotent), 2);
        let single = RetryPolicy {
            max_attempts: 1,
            ..policy()
        };
        assert_eq!(single.attempts_for(Idempotency::NonIdempotent), 1);
        let zero = RetryPolicy {
            max_attempts: 0,
            ..policy()
        };
        assert_eq!(zero.attempts_for(Idempotency::Idempotent), 1);
    }

    #[test]
    fn backoff_ceiling_doubles_then_caps() {
        let p = policy();
        assert_eq!(p.backoff_ceiling(0), Duration::from_millis(250));
        assert_eq!(p.backoff_ceiling(1), Duration::from_millis(500));
        assert_eq!(p.backoff_ceiling(2), Duration::from_secs(1));
        assert_eq!(p.backoff_ceiling(6), Duration::from_secs(16));
        assert_eq!(p.backoff_ceiling(7), Duration::from_secs(30));
        assert_eq!(p.backoff_ceiling(40), Duration::from_secs(30));
        assert_eq!(p.backoff_ceiling(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn jittered_backoff_stays_within_bounds_for_every_attempt() {
        let p = policy();
        // A deterministic low-discrepancy sequence covers [0, 1) without a RNG dependency.
        let samples: Vec<f64> = (0..1000)
            .map(|i| (i as f64 * 0.618_033_988_75) % 1.0)
            .collect();
        for retry in 0..70 {
            let ceiling = p.backoff_ceiling(retry);
            assert!(ceiling <= p.max_backoff);
            let mut smallest = Duration::MAX;
            let mut largest = Duration::ZERO;
            for &unit in &samples {
                let d = p.backoff(retry, unit);
                assert!(d <= ceiling, "retry {retry}: {d:?} > {ceiling:?}");
                smallest = smallest.min(d);
                largest = largest.max(d);
            }
            // Full jitter spreads over the whole interval.
            assert!(smallest < ceiling / 10, "retry {retry}: min {smallest:?}");
            assert!(largest > ceiling * 9 / 10, "retry {retry}: max {largest:?}");
        }
        for unit in [f64::NAN, f64::INFINITY, -1.0, 2.0] {
            assert!(p.backoff(3, unit) <= p.backoff_ceiling(3));
        }
    }

    #[test]
    fn random_jitter_stays_within_bounds() {
        let p = policy();
        for retry in 0..12 {
            for _ in 0..200 {
                let d = p.backoff(retry, rand::random::<f64>());
                assert!(d <= p.backoff_ceiling(retry));
            }
        }
    }

    #[test]
    fn retry_after_wins_over_backoff_and_is_capped() {
        let p = policy();
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(5)), 0.9),
            Duration::from_secs(5)
        );
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3600)), 0.9),
            Duration::from_secs(60)
        );
        assert_eq!(p.delay(1, None, 0.5), Duration::from_millis(250));
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:40:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
