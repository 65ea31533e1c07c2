//! `cdf-emulator`: runs the CDF emulator as a standalone server.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use cdf_emulator::{Emulator, EmulatorConfig};
use clap::Parser;

/// Stateful emulator of the CDF REST API used by cdf-s3-replicator's tests, benchmarks and demo.
#[derive(Parser)]
#[command(name = "cdf-emulator", version)]
struct Args {
    /// Address to listen on (loopback only is recommended).
    #[arg(long, default_value = "127.0.0.1:8181")]
    addr: SocketAddr,
    /// The CDF project served; other projects answer 403.
    #[arg(long, default_value = "emulated-project")]
    project: String,
    /// Client id accepted by the token endpoint.
    #[arg(long, default_value = "emulator-client")]
    client_id: String,
    /// Client secret accepted by the token endpoint.
    #[arg(long, default_value = "emulator-secret")]
    client_secret: String,
    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    token_ttl_secs: u64,
    /// Age after which sync cursors expire, in seconds (CDF: 3 days).
    #[arg(long, default_value_t = 259_200)]
    cursor_expiry_secs: u64,
    /// Age after which soft-deleted instances are purged, in seconds (CDF: 3 days).
    #[arg(long, default_value_t = 259_200)]
    tombstone_retention_secs: u64,
    /// Emit explicit nulls for properties without a value (default: leave them out).
    #[arg(long, default_value_t = false)]
    explicit_nulls: bool,
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = EmulatorConfig {
        project: args.project,
        client_id: args.client_id,
        client_secret: args.client_secret,
        token_ttl: Duration::from_secs(args.token_ttl_secs),
        cursor_expiry: Duration::from_secs(args.cursor_expiry_secs),
        tombstone_retention: Duration::from_secs(args.tombstone_retention_secs),
        explicit_nulls: args.explicit_nulls,
    };
    let emu = Emulator::start_on(args.addr, config)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "cdf-emulator listening base_url={} token_url={} project={}",
            emu.base_url(),
            emu.token_url(),
            emu.project()
        )?;
        out.flush()?;
    }
    wait_for_signal().await?;
    emu.shutdown().await;
    Ok(())
}
