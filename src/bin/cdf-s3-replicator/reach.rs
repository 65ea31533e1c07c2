//! The CLI's first contact with CDF: a bounded wait, so that a wrong address or a network
//! that drops packets ends an interactive command in seconds, naming the host, rather than
//! after every retry of every model.

use std::time::Duration;

use cdf_s3_replicator::cdf::Unreachable;
use cdf_s3_replicator::context::Context;

/// `--connect-timeout`'s default.
pub const DEFAULT_CONNECT_TIMEOUT: &str = "15s";

/// Whether CDF and its identity provider answer within `within`.
pub async fn cdf(context: &Context, within: Duration) -> Result<(), Unreachable> {
    context.client.reachable_within(within).await
}
