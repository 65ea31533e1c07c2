//! `check-config`: the effective configuration as YAML on stdout (to diff with the file),
//! warnings on stderr, and with `--connect` one line per check of CDF and the lake.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use cdf_s3_replicator::config::Config;
use cdf_s3_replicator::context::{Context, check_connection};

/// Prints `config`; with `connect` (the time limit of the checks), checks it against CDF
/// and the lake. Exit 1 when a check failed.
pub(crate) async fn run(
    path: &Path,
    config: Config,
    connect: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    println!(
        "# The effective configuration of {}: every default filled in, credentials shown as \
         their ${{VAR}} or <redacted>.",
        path.display()
    );
    print!("{}", config.to_effective_yaml());
    let Some(limit) = connect else {
        return Ok(ExitCode::SUCCESS);
    };
    let context = Context::new(config)?;
    let checks = check_connection(&context, limit).await;
    for check in &checks {
        eprintln!("{}", check.line());
    }
    Ok(if checks.iter().all(|c| c.outcome.is_ok()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
