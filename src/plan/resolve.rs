//! From the configured data models to their streams, asking CDF for each model and its views
//! once.

use std::collections::BTreeMap;

use super::streams::{
    StreamSpec, model_label, model_ref, select_views, streams_of_view, view_folders,
};
use crate::cdf::DataModelListQuery;
use crate::cdf::dto::{DataModel, ViewDefinition, ViewReference};
use crate::cdf::{CdfClient, CdfError};
use crate::config::SpaceSelection;
use crate::failure::{Cause, Failure};

/// Resolves every configured model to its streams. Failures are collected per model or
/// view, naming it, so the rest is still served.
pub(super) async fn resolve_streams(
    client: &CdfClient,
    data_modeling: &[SpaceSelection],
    page_size: u32,
) -> (Vec<StreamSpec>, Vec<Failure>) {
    let mut streams = Vec::new();
    let mut errors = Vec::new();
    for space in data_modeling {
        for selection in &space.data_models {
            let label = match &selection.version {
                Some(version) => format!("{}:{}/{version}", space.space, selection.external_id),
                None => format!("{}:{} (latest version)", space.space, selection.external_id),
            };
            let model = match client
                .resolve_data_model(
                    &space.space,
                    &selection.external_id,
                    selection.version.as_deref(),
                    false,
                )
                .await
            {
                Ok(Some(model)) => model,
                Ok(None) => {
                    let existing = client
                        .list_data_models(&DataModelListQuery {
                            space: Some(space.space.clone()),
                            all_versions: true,
                            ..DataModelListQuery::default()
                        })
                        .await
                        .ok();
                    errors.push(Failure::new(
                        Cause::ModelNotFound,
                        missing_model_message(&label, &space.space, existing.as_deref()),
                    ));
                    continue;
                }
                Err(error) => {
                    errors.push(Failure::cdf(format!("data model {label}"), &error));
                    continue;
                }
            };
            let (model_ref, folders) = match model_ref(&model)
                .and_then(|m| Ok((m, view_folders(&model.view_references())?)))
            {
                Ok(resolved) => resolved,
                Err(error) => {
                    errors.push(Failure::lake(format!("data model {label}"), &error));
                    continue;
                }
            };
            let model_name = model_label(&model_ref);
            let (selected, view_errors) = select_views(&model, selection.views.as_deref());
            errors.extend(view_errors);
            let definitions = match fetch_views(client, &selected).await {
                Ok(definitions) => definitions,
                Err(error) => {
                    errors.push(Failure::cdf(
                        format!("views of data model {model_name}"),
                        &error,
                    ));
                    continue;
                }
            };
            let edge_source_refs: Vec<ViewReference> = definitions
                .values()
                .flat_map(|v| {
                    v.edge_connections()
                        .filter_map(|(_, c)| c.edge_source.clone())
                })
                .collect();
            let edge_sources = match fetch_views(client, &edge_source_refs).await {
                Ok(found) => found,
                Err(error) => {
                    errors.push(Failure::cdf(
                        format!("edge source views of data model {model_name}"),
                        &error,
                    ));
                    continue;
                }
            };
            for reference in &selected {
                let Some(view) = definitions.get(reference) else {
                    errors.push(Failure::new(
                        Cause::ViewNotFound,
                        format!(
                            "view {reference} of data model {model_name} could not be retrieved"
                        ),
                    ));
                    continue;
                };
                let Some(folder) = folders.get(reference) else {
                    errors.push(Failure::new(
                        Cause::Internal,
                        format!("view {reference} has no folder in data model {model_name}"),
                    ));
                    continue;
                };
                for (name, connection) in view.edge_connections() {
                    if let Some(source) = &connection.edge_source
                        && !edge_sources.contains_key(source)
                    {
                        errors.push(Failure::new(
                            Cause::ViewNotFound,
                            format!(
                                "view {reference}: edge source {source} of connection {name} could not be retrieved; its edges are synced without properties"
                            ),
                        ));
                    }
                }
                streams.extend(streams_of_view(
                    &model_ref,
                    view,
                    folder,
                    &edge_sources,
                    page_size,
                ));
            }
        }
    }
    (streams, errors)
}

/// Why a configured model was not found, with the models its space does have (`existing`:
/// `None` when they could not be listed), so that a typo or a wrong version shows at once.
fn missing_model_message(label: &str, space: &str, existing: Option<&[DataModel]>) -> String {
    let mut message = format!("data model {label} does not exist");
    match existing {
        None => {}
        Some([]) => message.push_str(&format!("; the space {space} has no data models")),
        Some(models) => {
            let mut names: Vec<String> = models
                .iter()
                .map(|m| format!("{}/{}", m.external_id, m.version))
                .collect();
            names.sort();
            names.dedup();
            message.push_str(&format!("; the space {space} has: {}", names.join(", ")));
        }
    }
    message
}

async fn fetch_views(
    client: &CdfClient,
    references: &[ViewReference],
) -> Result<BTreeMap<ViewReference, ViewDefinition>, CdfError> {
    if references.is_empty() {
        return Ok(BTreeMap::new());
    }
    let ids: Vec<_> = references.iter().map(ViewReference::to_id).collect();
    let views = client.retrieve_views(&ids).await?;
    Ok(views.into_iter().map(|v| (v.reference(), v)).collect())
}
