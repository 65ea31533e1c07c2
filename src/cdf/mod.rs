//! CDF client.
