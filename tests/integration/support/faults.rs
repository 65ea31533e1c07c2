//! The lab behind the S3 fault-injecting proxy (`tests/s3-fault-proxy`).

use s3_fault_proxy::S3FaultProxy;

use super::{Lab, Lake};

/// The sample lab on S3 behind the fault-injecting proxy, or `None` (skip) without an S3
/// server. The proxy's counters and rules belong to the caller.
pub async fn lab_behind_proxy(pumps: usize, seed: u64) -> Option<(Lab, S3FaultProxy)> {
    let Lake::S3 { endpoint, bucket } = Lake::s3().await? else {
        unreachable!("Lake::s3 gives an S3 lake");
    };
    let proxy = S3FaultProxy::start(&endpoint, seed)
        .await
        .expect("S3 fault proxy starts");
    let lake = Lake::S3 {
        endpoint: proxy.url(),
        bucket,
    };
    Some((Lab::start(pumps, Some(lake)).await, proxy))
}
