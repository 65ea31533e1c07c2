//! A fault-injecting proxy in front of an S3 server.
//!
//! Tests point the replicator's S3 endpoint at [`S3FaultProxy::url`] instead of the real
//! server. Every request is classified as an [`S3Op`] and forwarded unchanged, unless a
//! [`FaultRule`] fires: then the proxy answers with an S3 error, stalls, resets the
//! connection, cuts the response short, or forwards the request and loses the answer (the
//! write took effect, the client cannot know). The last kind is the one that tells a
//! correct commit protocol from a lucky one: a conditional PUT that succeeded but looked
//! failed.
//!
//! The proxy runs in the test's process on an ephemeral 127.0.0.1 port; rules and counters
//! are shared with the returned handle.

mod classify;
mod fault;
mod server;

pub use classify::S3Op;
pub use fault::{FaultKind, FaultRule, ProxyStats};
pub use server::S3FaultProxy;
