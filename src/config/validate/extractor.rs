//! `extractor`: sync cadence, batch budgets, concurrency, deadlines, snapshot and maintenance.

use std::path::PathBuf;
use std::time::Duration;

use super::values::{duration, int};
use crate::config::duration::describe;
use crate::config::error::{Issues, join};
use crate::config::model::{ExtractorFile, MaintenanceFile, SnapshotFile, Text};
use crate::config::settings::{
    ExtractorSettings, MAX_PARALLELISM, MAX_SYNC_PAGE_SIZE, MaintenanceSettings, RawStateStore,
    SnapshotSettings, defaults,
};

pub(super) fn extractor(
    file: Option<&ExtractorFile>,
    issues: &mut Issues,
    warnings: &mut Issues,
) -> ExtractorSettings {
    let p = |key: &str| join("extractor", key);
    let Some(file) = file else {
        return default_extractor();
    };

    let raw = file.state_store.as_ref().and_then(|s| s.raw.as_ref());
    let state_text = |value: Option<&Text>, key: &str, default: &str, issues: &mut Issues| {
        let path = join("extractor.state-store.raw", key);
        match value {
            None => default.to_string(),
            Some(Text(v)) if v.trim().is_empty() => {
                issues.push(
                    path,
                    format!("must not be empty; the default is {default:?}"),
                );
                String::new()
            }
            Some(Text(v)) => v.clone(),
        }
    };
    let state_store = RawStateStore {
        database: state_text(
            raw.and_then(|r| r.database.as_ref()),
            "database",
            defaults::STATE_DATABASE,
            issues,
        ),
        table: state_text(
            raw.and_then(|r| r.table.as_ref()),
            "table",
            defaults::STATE_TABLE,
            issues,
        ),
    };

    let one_second = Duration::from_secs(1);
    let poll_time = duration(
        file.poll_time.as_ref(),
        &p("poll-time"),
        defaults::POLL_TIME,
        one_second,
        None,
        issues,
    );
    let snapshot_interval = duration(
        file.snapshot_interval.as_ref(),
        &p("snapshot-interval"),
        defaults::SNAPSHOT_INTERVAL,
        one_second,
        None,
        issues,
    );

    let subscription_batch_size = int(
        file.subscription_batch_size,
        &p("subscription-batch-size"),
        defaults::SUBSCRIPTION_BATCH_SIZE,
        1,
        u64::from(u32::MAX),
        issues,
    );
    let sync_page_size = subscription_batch_size.min(MAX_SYNC_PAGE_SIZE);
    if subscription_batch_size > MAX_SYNC_PAGE_SIZE {
        warnings.push(
            p("subscription-batch-size"),
            format!(
                "{subscription_batch_size} is above CDF's largest sync page; pages of \
                 {MAX_SYNC_PAGE_SIZE} are requested"
            ),
        );
    }

    let rows_max = u64::from(u32::MAX);
    let ingest_batch_size = int(
        file.ingest_batch_size,
        &p("ingest-batch-size"),
        defaults::INGEST_BATCH_SIZE,
        1,
        rows_max,
        issues,
    );
    let s3_ingest_batch_size = int(
        file.s3_ingest_batch_size,
        &p("s3-ingest-batch-size"),
        defaults::S3_INGEST_BATCH_SIZE,
        1,
        rows_max,
        issues,
    );
    if file.s3_ingest_batch_size.is_some() {
        warnings.push(
            p("s3-ingest-batch-size"),
            "its meaning changed from the Python replicator's \"rows per S3 write\": here it \
             is the rows per Parquet row group of the raw tables' files. How many rows go into \
             one file and commit is `ingest-batch-size` (and `ingest-batch-bytes`); set that \
             instead, and remove this key unless you mean row groups",
        );
    }
    let ingest_batch_bytes = int(
        file.ingest_batch_bytes,
        &p("ingest-batch-bytes"),
        defaults::INGEST_BATCH_BYTES,
        1,
        u64::MAX,
        issues,
    );
    let parallelism = int(
        file.parallelism,
        &p("parallelism"),
        defaults::PARALLELISM,
        1,
        u64::from(MAX_PARALLELISM),
        issues,
    );

    let time_budget = file.time_budget.as_ref().map(|value| {
        duration(
            Some(value),
            &p("time-budget"),
            Duration::ZERO,
            one_second,
            None,
            issues,
        )
    });
    let deadline_margin = duration(
        file.deadline_margin.as_ref(),
        &p("deadline-margin"),
        defaults::DEADLINE_MARGIN,
        Duration::ZERO,
        Some(Duration::from_secs(900)),
        issues,
    );
    let membership_scan_interval = Some(duration(
        file.membership_scan_interval.as_ref(),
        &p("membership-scan-interval"),
        defaults::MEMBERSHIP_SCAN_INTERVAL,
        Duration::ZERO,
        None,
        issues,
    ))
    .filter(|interval| !interval.is_zero());
    let verify_interval = Some(duration(
        file.verify_interval.as_ref(),
        &p("verify-interval"),
        defaults::VERIFY_INTERVAL,
        Duration::ZERO,
        None,
        issues,
    ))
    .filter(|interval| !interval.is_zero());
    // A sample is held in memory and fetched from CDF; a million keys is already hours of
    // requests for a daily check.
    const MAX_VERIFY_SAMPLE: u64 = 1_000_000;
    let verify_sample = int(
        file.verify_sample,
        &p("verify-sample"),
        defaults::VERIFY_SAMPLE,
        1,
        MAX_VERIFY_SAMPLE,
        issues,
    );
    if let Some(budget) = time_budget
        && budget > Duration::ZERO
        && budget <= deadline_margin
    {
        issues.push(
            p("time-budget"),
            format!(
                "{} leaves no time after the deadline-margin of {}; expected a time-budget \
                     longer than deadline-margin",
                describe(budget),
                describe(deadline_margin)
            ),
        );
    }

    ExtractorSettings {
        state_store,
        poll_time,
        snapshot_interval,
        subscription_batch_size,
        sync_page_size,
        ingest_batch_size,
        s3_ingest_batch_size,
        ingest_batch_bytes,
        parallelism,
        time_budget,
        deadline_margin,
        membership_scan_interval,
        verify_interval,
        verify_sample,
        snapshot: snapshot(file.snapshot.as_ref(), issues),
        maintenance: maintenance(file.maintenance.as_ref(), issues, warnings),
    }
}

fn default_extractor() -> ExtractorSettings {
    ExtractorSettings {
        state_store: RawStateStore {
            database: defaults::STATE_DATABASE.to_string(),
            table: defaults::STATE_TABLE.to_string(),
        },
        poll_time: defaults::POLL_TIME,
        snapshot_interval: defaults::SNAPSHOT_INTERVAL,
        subscription_batch_size: defaults::SUBSCRIPTION_BATCH_SIZE,
        sync_page_size: defaults::SUBSCRIPTION_BATCH_SIZE.min(MAX_SYNC_PAGE_SIZE),
        ingest_batch_size: defaults::INGEST_BATCH_SIZE,
        s3_ingest_batch_size: defaults::S3_INGEST_BATCH_SIZE,
        ingest_batch_bytes: defaults::INGEST_BATCH_BYTES,
        parallelism: defaults::PARALLELISM,
        time_budget: None,
        deadline_margin: defaults::DEADLINE_MARGIN,
        membership_scan_interval: Some(defaults::MEMBERSHIP_SCAN_INTERVAL),
        verify_interval: Some(defaults::VERIFY_INTERVAL),
        verify_sample: defaults::VERIFY_SAMPLE,
        snapshot: default_snapshot(),
        maintenance: default_maintenance(),
    }
}

impl Default for ExtractorSettings {
    fn default() -> Self {
        default_extractor()
    }
}

fn default_snapshot() -> SnapshotSettings {
    SnapshotSettings {
        temp_dir: std::env::temp_dir(),
        memory_budget_bytes: defaults::SNAPSHOT_MEMORY_BUDGET_MB * 1024 * 1024,
        part_rows: defaults::SNAPSHOT_PART_ROWS,
    }
}

fn snapshot(file: Option<&SnapshotFile>, issues: &mut Issues) -> SnapshotSettings {
    let mut settings = default_snapshot();
    let Some(file) = file else {
        return settings;
    };
    match &file.temp_dir {
        Some(Text(dir)) if dir.trim().is_empty() => {
            issues.push("extractor.snapshot.temp-dir", "must not be empty")
        }
        Some(Text(dir)) => settings.temp_dir = PathBuf::from(dir),
        None => {}
    }
    let mb: u64 = int(
        file.memory_budget_mb,
        "extractor.snapshot.memory-budget-mb",
        defaults::SNAPSHOT_MEMORY_BUDGET_MB,
        1,
        1024 * 1024,
        issues,
    );
    settings.memory_budget_bytes = mb * 1024 * 1024;
    settings.part_rows = int(
        file.part_rows,
        "extractor.snapshot.part-rows",
        defaults::SNAPSHOT_PART_ROWS,
        1,
        1_000_000_000_000,
        issues,
    );
    settings
}

fn default_maintenance() -> MaintenanceSettings {
    MaintenanceSettings {
        enabled: true,
        vacuum_retention: Duration::from_secs(defaults::VACUUM_RETENTION_HOURS * 3_600),
        checkpoint_interval: defaults::CHECKPOINT_INTERVAL,
        compact_min_files: defaults::COMPACT_MIN_FILES,
    }
}

fn maintenance(
    file: Option<&MaintenanceFile>,
    issues: &mut Issues,
    warnings: &mut Issues,
) -> MaintenanceSettings {
    let Some(file) = file else {
        return default_maintenance();
    };
    let path = |key: &str| join("extractor.maintenance", key);
    let hours: u64 = int(
        file.vacuum_retention_hours,
        &path("vacuum-retention-hours"),
        defaults::VACUUM_RETENTION_HOURS,
        1,
        24 * 365 * 100,
        issues,
    );
    if hours < defaults::VACUUM_RETENTION_HOURS {
        warnings.push(
            path("vacuum-retention-hours"),
            format!(
                "{hours} is below Delta's customary {} hours: readers of older table versions \
                 (time travel, a snapshot that is still reading) may find files deleted",
                defaults::VACUUM_RETENTION_HOURS
            ),
        );
    }
    MaintenanceSettings {
        enabled: file.enabled.unwrap_or(true),
        vacuum_retention: Duration::from_secs(hours * 3_600),
        checkpoint_interval: int(
            file.checkpoint_interval,
            &path("checkpoint-interval"),
            defaults::CHECKPOINT_INTERVAL,
            1,
            1_000_000,
            issues,
        ),
        compact_min_files: int(
            file.compact_min_files,
            &path("compact-min-files"),
            defaults::COMPACT_MIN_FILES,
            2,
            1_000_000,
            issues,
        ),
    }
}
