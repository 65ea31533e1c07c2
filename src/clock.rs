//! Wall-clock time as CDF and the lake's records state it: milliseconds since the Unix epoch
//! (`lastUpdatedTime`, `lastSuccess`, the quarantine's and verify's timestamps).

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
