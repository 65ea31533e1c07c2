//! The terminal form of a [`VerifySummary`]: one fixed-column row per file, then one line
//! per divergence example. Plain text, like `status`.

use std::fmt::Write as _;

use super::report::VerifySummary;
use crate::status::render::{Align, duration, one_line, table};

/// Example values longer than this are cut in the table (`--json` has them whole).
const VALUE_WIDTH: usize = 48;

/// The report as text, ending with a newline: one row per file, then every example.
pub fn render(summary: &VerifySummary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Verify: seed {} (repeat with --seed {}), sample {} per file, {} CDF requests, {}",
        summary.seed,
        summary.seed,
        summary.sample,
        summary.requests,
        if summary.complete {
            "complete"
        } else {
            "incomplete (deadline)"
        }
    );
    for error in &summary.plan_errors {
        let _ = writeln!(out, "plan error: {}", one_line(&error.message, usize::MAX));
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = summary
        .files
        .iter()
        .map(|f| {
            let classes: Vec<String> = f
                .divergences
                .iter()
                .map(|(class, d)| format!("{} {}", class.as_str(), d.count))
                .collect();
            vec![
                f.model.clone(),
                f.view.clone(),
                f.kind.clone(),
                f.state.as_str().to_owned(),
                f.sampled.to_string(),
                f.matched.to_string(),
                f.lag.count.to_string(),
                f.lag.max_age_ms.map(duration).unwrap_or_else(|| "-".into()),
                f.counts
                    .as_ref()
                    .map(|c| format!("{}/{}", c.file_rows, c.cdf_live))
                    .unwrap_or_else(|| "-".into()),
                f.watermark
                    .as_ref()
                    .and_then(|w| w.at)
                    .map(|at| duration(summary.started_at_ms - at) + " ago")
                    .unwrap_or_else(|| "-".into()),
                if classes.is_empty() {
                    match &f.error {
                        Some(error) => one_line(&error.message, 60),
                        None => "0".into(),
                    }
                } else {
                    classes.join(", ")
                },
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            ("MODEL", Align::Left),
            ("VIEW", Align::Left),
            ("FILE", Align::Left),
            ("STATE", Align::Left),
            ("SAMPLED", Align::Right),
            ("MATCHED", Align::Right),
            ("LAG", Align::Right),
            ("MAX LAG", Align::Right),
            ("ROWS/CDF", Align::Right),
            ("WATERMARK", Align::Right),
            ("DIVERGENCES", Align::Left),
        ],
        &rows,
    ));
    for f in &summary.files {
        for (class, d) in &f.divergences {
            for e in &d.examples {
                let _ = writeln!(
                    out,
                    "{} {}/{}: {} key={} column={} lake={} cdf={}",
                    f.model,
                    f.view,
                    f.kind,
                    class.as_str(),
                    e.key.as_deref().unwrap_or("-"),
                    e.column.as_deref().unwrap_or("-"),
                    one_line(e.lake.as_deref().unwrap_or("-"), VALUE_WIDTH),
                    one_line(e.cdf.as_deref().unwrap_or("-"), VALUE_WIDTH),
                );
            }
        }
    }
    out
}
