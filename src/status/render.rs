//! The terminal form of a [`StatusReport`]: two fixed-column tables (streams, published
//! files) and the problems that belong to no row. Plain text, no colour, so that it reads
//! the same in a terminal, a log and a pasted issue.

use std::fmt::Write as _;

use super::report::{StatusReport, StreamStatus};
use crate::lake::Phase;

/// Error texts longer than this are cut in the table (`--json` has them whole).
const ERROR_WIDTH: usize = 72;

/// The report as text, ending with a newline.
pub fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Status at {} (state table {})",
        report.generated_at, report.state_table
    );
    if let Some(error) = &report.state_error {
        let _ = writeln!(out, "state rows: {}", one_line(error, usize::MAX));
    }
    for error in &report.plan_errors {
        let _ = writeln!(out, "plan error: {}", one_line(&error.message, usize::MAX));
    }
    out.push('\n');
    let stream_rows: Vec<Vec<String>> = report.streams.iter().map(stream_row).collect();
    out.push_str(&table(
        &[
            ("STREAM", Align::Left),
            ("PHASE", Align::Left),
            ("PROGRESS", Align::Left),
            ("GEN", Align::Right),
            ("ROWS", Align::Right),
            ("LAST SUCCESS", Align::Right),
            ("LAG", Align::Right),
            ("RAW/DELTA", Align::Left),
            ("MEMBERSHIP", Align::Left),
            ("LAST ERROR", Align::Left),
        ],
        &stream_rows,
    ));
    out.push('\n');
    let mut file_rows = Vec::new();
    for view in &report.views {
        for file in &view.files {
            let error = file.error.as_ref().or(view.error.as_ref());
            file_rows.push(vec![
                view.model.clone(),
                view.view.clone(),
                file.kind.clone(),
                file.freshness.as_str().to_owned(),
                file.age_ms.map(duration).unwrap_or_else(dash),
                optional(file.published_version),
                optional(file.table_version),
                optional(file.rows),
                error.map(|e| one_line(e, ERROR_WIDTH)).unwrap_or_default(),
            ]);
        }
    }
    out.push_str(&table(
        &[
            ("MODEL", Align::Left),
            ("VIEW", Align::Left),
            ("FILE", Align::Left),
            ("PUBLISHED", Align::Left),
            ("AGE", Align::Right),
            ("BUILT FROM", Align::Right),
            ("TABLE VERSION", Align::Right),
            ("ROWS", Align::Right),
            ("ERROR", Align::Left),
        ],
        &file_rows,
    ));
    out
}

fn stream_row(stream: &StreamStatus) -> Vec<String> {
    let phase = match stream.phase {
        Some(Phase::Backfill) => "backfill",
        Some(Phase::Streaming) => "streaming",
        None => "-",
    };
    let mut agreement = stream.agreement.as_str().to_owned();
    if stream.query_changed {
        agreement.push_str(", query changed");
    }
    if stream.repair.is_some() {
        agreement.push_str(", raw row repaired next run");
    }
    let error = stream
        .last_error
        .as_ref()
        .or(stream.error.as_ref())
        .map(|e| one_line(e, ERROR_WIDTH))
        .unwrap_or_default();
    vec![
        stream.key.clone(),
        phase.to_owned(),
        stream.progress.as_str().to_owned(),
        optional(stream.generation),
        optional(stream.rows),
        stream
            .last_success_age_ms
            .map(|ms| format!("{} ago", duration(ms)))
            .unwrap_or_else(dash),
        stream.lag_ms.map(duration).unwrap_or_else(dash),
        agreement,
        membership(stream),
        error,
    ]
}

/// "checked 3h ago", "pass running (2 exited)", or "-".
fn membership(stream: &StreamStatus) -> String {
    match &stream.membership {
        Some(m) if m.pass_in_progress => format!(
            "pass running ({} refreshed, {} exited)",
            m.refreshed, m.exited
        ),
        Some(m) => m
            .last_pass_age_ms
            .map(|ms| format!("checked {} ago", duration(ms)))
            .unwrap_or_else(dash),
        None => dash(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// Columns as wide as their widest cell, two spaces apart; trailing spaces trimmed.
fn table(headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = headers.iter().map(|(h, _)| (*h).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, ((_, align), width)) in headers.iter().zip(&widths).enumerate() {
            let cell = row.get(i).map(String::as_str).unwrap_or("");
            if i > 0 {
                line.push_str("  ");
            }
            let pad = width.saturating_sub(cell.chars().count());
            match align {
                Align::Left => {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
                Align::Right => {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A duration in milliseconds as `850ms`, `42s`, `5m07s`, `3h12m` or `2d04h`.
pub(crate) fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    let secs = ms / 1000;
    match secs {
        0 => format!("{ms}ms"),
        1..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86400, secs % 86400 / 3600),
    }
}

/// The text on one line (line breaks and tabs become spaces), cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(3)).collect();
    cut.push_str("...");
    cut
}

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(dash)
}

fn dash() -> String {
    "-".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::report::{
        Agreement, CheckpointSource, Freshness, ManifestPresence, Progress, PublishedFileStatus,
        ViewStatus,
    };

    fn stream(key: &str, progress: Progress, last_error: Option<&str>) -> StreamStatus {
        StreamStatus {
            key: key.into(),
            model: "s:M/1".into(),
            view: "Pump".into(),
            table: "nodes".into(),
            table_path: "raw/s/M/1/views/Pump/nodes".into(),
            phase: Some(Phase::Backfill),
            progress,
            generation: Some(2),
            rows: Some(12_345),
            last_success_ms: Some(1_000),
            last_success: Some("1970-01-01T00:00:01.000Z".into()),
            last_success_age_ms: Some(65_000),
            lag_ms: Some(3_600_000 * 5 + 60_000),
            last_error: last_error.map(str::to_owned),
            checkpoint_source: Some(CheckpointSource::Raw),
            agreement: Agreement::DeltaAhead,
            raw_seq: Some(3),
            delta_seq: Some(4),
            query_changed: false,
            repair: None,
            membership: None,
            error: None,
        }
    }

    fn report() -> StatusReport {
        let file = |kind: &str, freshness| PublishedFileStatus {
            kind: kind.into(),
            path: format!("publish/s/M/1/Pump/{kind}.parquet"),
            freshness,
            published_at: Some("1970-01-01T00:00:00.000Z".into()),
            age_ms: Some(90_061_000),
            last_modified: None,
            published_version: Some(7),
            table_version: Some(9),
            rows: Some(40),
            table_rows: Some(50),
            error: None,
        };
        StatusReport {
            generated_at: "1970-01-02T01:01:01.000Z".into(),
            generated_at_ms: 90_061_000,
            state_table: "db/tbl".into(),
            state_error: None,
            plan_errors: vec![crate::failure::Failure::new(
                crate::failure::Cause::ViewNotFound,
                "view Valve is not\nin the model",
            )],
            streams: vec![
                stream("s/M/1/Pump/nodes", Progress::Behind, None),
                stream(
                    "s/M/1/Pump/edges/s/Pump.workOrders",
                    Progress::Failed,
                    Some(&format!("sync failed:\n{}", "x".repeat(200))),
                ),
            ],
            views: vec![ViewStatus {
                model: "s:M/1".into(),
                view: "Pump".into(),
                publish_path: "publish/s/M/1/Pump".into(),
                manifest: ManifestPresence::Found,
                files: vec![
                    file("nodes", Freshness::Behind),
                    file("edges", Freshness::Current),
                ],
                error: None,
                pending_since: None,
            }],
        }
    }

    /// The byte offsets at which each header starts, found in the header line.
    fn column_starts(header: &str, names: &[&str]) -> Vec<usize> {
        names
            .iter()
            .map(|n| header.find(n).unwrap_or_else(|| panic!("{n} in {header}")))
            .collect()
    }

    #[test]
    fn streams_are_one_aligned_row_each() {
        let text = render(&report());
        let lines: Vec<&str> = text.lines().collect();
        let header = lines
            .iter()
            .position(|l| l.starts_with("STREAM"))
            .expect("stream header");
        let starts = column_starts(lines[header], &["PHASE", "PROGRESS", "RAW/DELTA"]);
        let behind = lines[header + 1];
        let failed = lines[header + 2];
        for (row, progress) in [(behind, "behind"), (failed, "failed")] {
            assert_eq!(&row[starts[0]..starts[0] + 8], "backfill", "{row}");
            assert_eq!(
                &row[starts[1]..starts[1] + progress.len()],
                progress,
                "{row}"
            );
            assert_eq!(&row[starts[2]..starts[2] + 11], "delta ahead", "{row}");
        }
        assert!(behind.contains("  12345  "), "{behind}");
        assert!(behind.contains("1m05s ago"), "{behind}");
        assert!(behind.contains("5h01m"), "{behind}");
        // The error is flattened to one line and cut; the table stays one row per stream.
        assert!(failed.contains("sync failed: xxx"), "{failed}");
        assert!(failed.ends_with("..."), "{failed}");
        let error_start = lines[header].find("LAST ERROR").expect("error column");
        assert_eq!(
            failed.chars().count(),
            error_start + ERROR_WIDTH,
            "{failed}"
        );
        assert!(!text.contains("\nxxx"), "{text}");
    }

    #[test]
    fn files_show_freshness_age_and_both_versions() {
        let text = render(&report());
        let lines: Vec<&str> = text.lines().collect();
        let header = lines
            .iter()
            .position(|l| l.starts_with("MODEL"))
            .expect("file header");
        let nodes = lines[header + 1];
        let edges = lines[header + 2];
        let starts = column_starts(lines[header], &["FILE", "PUBLISHED"]);
        assert_eq!(&nodes[starts[0]..starts[0] + 5], "nodes");
        assert_eq!(&nodes[starts[1]..starts[1] + 6], "behind");
        assert_eq!(&edges[starts[1]..starts[1] + 7], "current");
        assert!(nodes.contains("1d01h"), "{nodes}");
        let figures: Vec<&str> = nodes.split_whitespace().collect();
        assert_eq!(figures[figures.len() - 3..], ["7", "9", "40"], "{nodes}");
    }

    #[test]
    fn missing_values_are_dashes_and_problems_come_first() {
        let mut report = report();
        report.state_error = Some("cannot read the state table db/tbl: 403".into());
        report.streams[0] = StreamStatus {
            phase: None,
            progress: Progress::NotStarted,
            generation: None,
            rows: None,
            last_success_ms: None,
            last_success: None,
            last_success_age_ms: None,
            lag_ms: None,
            checkpoint_source: None,
            agreement: Agreement::NotStarted,
            ..stream("s/M/1/Site/nodes", Progress::NotStarted, None)
        };
        let text = render(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "state rows: cannot read the state table db/tbl: 403"
        );
        assert_eq!(lines[2], "plan error: view Valve is not in the model");
        let row = lines
            .iter()
            .find(|l| l.starts_with("s/M/1/Site/nodes"))
            .expect("row");
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "s/M/1/Site/nodes",
                "-",
                "not",
                "started",
                "-",
                "-",
                "-",
                "-",
                "-",
                "-"
            ]
        );
    }

    #[test]
    fn durations_pick_two_units() {
        let cases = [
            (0, "0ms"),
            (999, "999ms"),
            (1_000, "1s"),
            (59_999, "59s"),
            (60_000, "1m00s"),
            (3_599_000, "59m59s"),
            (3_600_000, "1h00m"),
            (86_400_000 * 3 + 3_600_000 * 4, "3d04h"),
            (-5, "0ms"),
        ];
        for (ms, text) in cases {
            assert_eq!(duration(ms), text, "{ms}");
        }
    }
}
