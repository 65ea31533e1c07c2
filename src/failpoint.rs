//! Named crash points for the exactly-once tests.
//!
//! `CDF_S3_REPLICATOR_FAILPOINT=<name>[:<n>]` makes the process abort (no unwinding, no
//! cleanup, like a Lambda timeout or an OOM kill) the `n`-th time (default: first) it reaches
//! the point `name`. Unset, a check costs one relaxed atomic load.
//!
//! Compiled in only with the `failpoints` feature, which the test suite turns on: in every
//! other build (the Lambda functions, `cargo build --release`) a failpoint is an empty
//! function and the variable does nothing.

#[cfg(feature = "failpoints")]
use std::sync::OnceLock;
#[cfg(feature = "failpoints")]
use std::sync::atomic::{AtomicU64, Ordering};

/// Environment variable that arms a failpoint.
pub const ENV: &str = "CDF_S3_REPLICATOR_FAILPOINT";

#[cfg(feature = "failpoints")]
struct Armed {
    name: String,
    nth: u64,
    hits: AtomicU64,
}

#[cfg(feature = "failpoints")]
fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var(ENV).ok()?;
            let (name, nth) = match spec.split_once(':') {
                Some((name, nth)) => (name.to_owned(), nth.parse().unwrap_or(1)),
                None => (spec, 1),
            };
            Some(Armed {
                name,
                nth,
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Aborts the process if the failpoint `name` is armed and this is its `n`-th hit.
#[cfg(feature = "failpoints")]
pub(crate) fn hit(name: &str) {
    if let Some(armed) = armed()
        && armed.name == name
        && armed.hits.fetch_add(1, Ordering::Relaxed) + 1 == armed.nth
    {
        eprintln!("failpoint {name} reached: aborting");
        std::process::abort();
    }
}

/// Without the `failpoints` feature: nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn hit(_name: &str) {}
