//! Named crash points for the exactly-once tests.
//!
//! `CDF_S3_REPLICATOR_FAILPOINT=<name>[:<n>]` makes the process abort (no unwinding, no
//! cleanup, like a Lambda timeout or an OOM kill) the `n`-th time (default: first) it reaches
//! the point `name`. Unset, a check costs one relaxed atomic load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Environment variable that arms a failpoint.
pub const ENV: &str = "CDF_S3_REPLICATOR_FAILPOINT";

struct Armed {
    name: String,
    nth: u64,
    hits: AtomicU64,
}

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
pub fn hit(name: &str) {
    if let Some(armed) = armed()
        && armed.name == name
        && armed.hits.fetch_add(1, Ordering::Relaxed) + 1 == armed.nth
    {
        eprintln!("failpoint {name} reached: aborting");
        std::process::abort();
    }
}
