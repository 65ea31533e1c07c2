//! Fault rules: what to break, how often, and the counters of what was broken.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::classify::S3Op;

/// What the proxy does instead of (or after) forwarding a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// `500 InternalError`, not forwarded.
    InternalError,
    /// `503 SlowDown`, not forwarded.
    SlowDown,
    /// `403 AccessDenied`, not forwarded: a role without the permission.
    AccessDenied,
    /// Holds the request for the given time without forwarding it, then closes the
    /// connection: a client with a shorter timeout gives up first.
    Stall(Duration),
    /// Waits the given time, then forwards normally: latency.
    Delay(Duration),
    /// Holds the request, not forwarded, until the test releases it
    /// ([`crate::S3FaultProxy::release_next`]), then forwards it normally: a writer paused
    /// at an exact point, while others go on, without depending on timing.
    Hold,
    /// Closes the connection without an answer, not forwarded.
    Reset,
    /// Forwards; answers with the upstream status and headers (including the full
    /// `Content-Length`) but only half of the body, then closes the connection.
    Truncate,
    /// Forwards (the write takes effect), then answers `500 InternalError`: the client
    /// cannot tell whether its request landed.
    ResponseLost,
}

impl FaultKind {
    /// A short stable name for reports (`stall` and `delay` without their duration).
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::InternalError => "500 InternalError",
            FaultKind::SlowDown => "503 SlowDown",
            FaultKind::AccessDenied => "403 AccessDenied",
            FaultKind::Stall(_) => "stall (timeout)",
            FaultKind::Delay(_) => "delay",
            FaultKind::Hold => "held until released",
            FaultKind::Reset => "connection reset",
            FaultKind::Truncate => "truncated response",
            FaultKind::ResponseLost => "response lost after write",
        }
    }
}

/// When a fault fires: on which operations, for which keys, how many times, how likely.
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// The operations it applies to; empty means all.
    pub ops: Vec<S3Op>,
    /// Only requests whose path contains this text.
    pub path_contains: Option<String>,
    /// What happens.
    pub kind: FaultKind,
    /// How many more times it may fire; `None` is unlimited.
    pub remaining: Option<u32>,
    /// The chance that a matching request is hit (1.0: every one).
    pub probability: f64,
}

impl FaultRule {
    /// Fires on the next `count` requests of `op`.
    pub fn times(op: S3Op, kind: FaultKind, count: u32) -> Self {
        Self {
            ops: vec![op],
            path_contains: None,
            kind,
            remaining: Some(count),
            probability: 1.0,
        }
    }

    /// Fires on each request of the given operations (all when empty) with `probability`,
    /// without a limit.
    pub fn random(ops: &[S3Op], kind: FaultKind, probability: f64) -> Self {
        Self {
            ops: ops.to_vec(),
            path_contains: None,
            kind,
            remaining: None,
            probability,
        }
    }

    /// Restricts the rule to paths containing `text`.
    pub fn on_paths_containing(mut self, text: impl Into<String>) -> Self {
        self.path_contains = Some(text.into());
        self
    }

    fn matches(&self, op: S3Op, path: &str) -> bool {
        (self.ops.is_empty() || self.ops.contains(&op))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|text| path.contains(text))
            && self.remaining != Some(0)
    }
}

/// What went through the proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Requests seen, by operation.
    pub requests: BTreeMap<S3Op, u64>,
    /// Faults injected, by kind name and operation.
    pub faults: BTreeMap<(&'static str, S3Op), u64>,
}

impl ProxyStats {
    /// All faults injected.
    pub fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }

    /// Faults injected of one kind (by [`FaultKind::name`]), over all operations.
    pub fn faults_of(&self, kind: FaultKind) -> u64 {
        self.faults
            .iter()
            .filter(|((name, _), _)| *name == kind.name())
            .map(|(_, n)| n)
            .sum()
    }

    /// Faults injected on one operation, over all kinds.
    pub fn faults_on(&self, op: S3Op) -> u64 {
        self.faults
            .iter()
            .filter(|((_, o), _)| *o == op)
            .map(|(_, n)| n)
            .sum()
    }
}

/// The rules and counters, behind the proxy's mutex.
pub(crate) struct FaultBook {
    rules: Vec<FaultRule>,
    rng: StdRng,
    pub(crate) stats: ProxyStats,
}

impl FaultBook {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rules: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            stats: ProxyStats::default(),
        }
    }

    pub(crate) fn add(&mut self, rule: FaultRule) {
        self.rules.push(rule);
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// Counts the request and picks the fault for it, if any: the first matching rule
    /// that wins its dice roll.
    pub(crate) fn take(&mut self, op: S3Op, path: &str) -> Option<FaultKind> {
        *self.stats.requests.entry(op).or_default() += 1;
        let rng = &mut self.rng;
        let rule = self.rules.iter_mut().find(|rule| {
            rule.matches(op, path)
                && (rule.probability >= 1.0 || rng.random_bool(rule.probability.max(0.0)))
        })?;
        if let Some(remaining) = rule.remaining.as_mut() {
            *remaining -= 1;
        }
        let kind = rule.kind;
        self.rules.retain(|rule| rule.remaining != Some(0));
        *self.stats.faults.entry((kind.name(), op)).or_default() += 1;
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_rules_fire_exactly_their_count_on_matching_requests() {
        let mut book = FaultBook::new(1);
        book.add(
            FaultRule::times(S3Op::ConditionalPut, FaultKind::ResponseLost, 2)
                .on_paths_containing("_delta_log"),
        );
        assert_eq!(book.take(S3Op::Put, "/b/t/_delta_log/0.json"), None);
        assert_eq!(book.take(S3Op::ConditionalPut, "/b/t/part.parquet"), None);
        assert_eq!(
            book.take(S3Op::ConditionalPut, "/b/t/_delta_log/0.json"),
            Some(FaultKind::ResponseLost)
        );
        assert_eq!(
            book.take(S3Op::ConditionalPut, "/b/t/_delta_log/1.json"),
            Some(FaultKind::ResponseLost)
        );
        assert_eq!(
            book.take(S3Op::ConditionalPut, "/b/t/_delta_log/2.json"),
            None
        );
        assert_eq!(book.stats.requests[&S3Op::ConditionalPut], 4);
        assert_eq!(book.stats.faults_of(FaultKind::ResponseLost), 2);
    }

    #[test]
    fn random_rules_fire_about_their_probability() {
        let mut book = FaultBook::new(7);
        book.add(FaultRule::random(&[], FaultKind::SlowDown, 0.25));
        let fired = (0..4000)
            .filter(|_| book.take(S3Op::Get, "/b/k").is_some())
            .count();
        assert!((800..1200).contains(&fired), "fired {fired} of 4000");
    }
}
