//! The terminal form of a [`StatusReport`]: two fixed-column tables (streams, published
//! files) and the problems that belong to no row. Plain text, no colour, so that it reads
//! the same in a terminal, a log and a pasted issue.

use std::fmt::Write as _;

use super::report::{StatusReport, StreamStatus};
use crate::sync::state::Phase;

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
        let _ = writeln!(out, "plan error: {}", one_line(error, usize::MAX));
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
        error,
    ]
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
pub fn duration(ms: i64) -> String {
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
