//! The plan: which CDF views of the configured data models become which streams and tables.
//!
//! Models → views → streams ([`streams`]) → tables. Every job works from the same plan, so
//! sync, snapshot and maintenance always agree on the tables, and an invocation resolves it
//! once ([`Plan::resolve`]: one model request per configured model, one views request per
//! model and one for its edge sources) and hands it to each job it runs.

mod resolve;
pub(crate) mod streams;

pub(crate) use self::streams::{RESULT_SET, StreamSpec, model_label};
use crate::cdf::CdfClient;
use crate::config::SpaceSelection;
use crate::failure::{Cause, Failure};
use crate::job::ViewSelection;

/// The streams of the configured models, and the models and views that could not be planned.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    streams: Vec<StreamSpec>,
    problems: Vec<Failure>,
}

impl Plan {
    /// Asks CDF for the configured models and their views. Never fails as a whole: a model or
    /// view that cannot be resolved is a problem of the plan, naming it, and the rest is
    /// planned.
    pub(crate) async fn resolve(
        client: &CdfClient,
        data_modeling: &[SpaceSelection],
        page_size: u32,
    ) -> Self {
        let (streams, problems) = resolve::resolve_streams(client, data_modeling, page_size).await;
        Self { streams, problems }
    }

    pub fn streams(&self) -> &[StreamSpec] {
        &self.streams
    }

    /// Models and views that could not be planned.
    pub fn problems(&self) -> &[Failure] {
        &self.problems
    }

    /// The part of the plan that serves the `selection` of views. A name that matches no
    /// stream is a problem: a typo must not pass for a run that did what was asked.
    pub(crate) fn for_views(&self, selection: &ViewSelection) -> Plan {
        if selection.is_all() {
            return self.clone();
        }
        let mut problems = self.problems.clone();
        problems.extend(
            selection.unknown(
                "views",
                self.streams
                    .iter()
                    .map(|spec| (&spec.model, spec.view.external_id.as_str())),
            ),
        );
        let streams = self
            .streams
            .iter()
            .filter(|spec| selection.selects(&spec.model, &spec.view.external_id))
            .cloned()
            .collect();
        Plan { streams, problems }
    }

    /// A problem for each of `names` (given for `option`) that `matches` no stream.
    pub(crate) fn unknown_names(
        &self,
        option: &str,
        names: &[String],
        matches: impl Fn(&StreamSpec, &str) -> bool,
    ) -> Vec<Failure> {
        names
            .iter()
            .filter(|name| !self.streams.iter().any(|spec| matches(spec, name)))
            .map(|name| {
                let mut views: Vec<&str> = self
                    .streams
                    .iter()
                    .map(|s| s.view.external_id.as_str())
                    .collect();
                views.sort_unstable();
                views.dedup();
                Failure::new(
                    Cause::InvalidRequest,
                    format!(
                        "{option}: `{name}` matches no stream of this run (views: {})",
                        views.join(", ")
                    ),
                )
            })
            .collect()
    }
}
