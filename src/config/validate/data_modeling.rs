//! `data_modeling`: which spaces, models, versions and views to replicate.

use std::collections::HashMap;

use super::values::required_text;
use crate::config::error::{Issues, index, join};
use crate::config::identifiers::{check_external_id, check_space, check_version};
use crate::config::model::{DataModelFile, SpaceFile, Text};
use crate::config::settings::{DataModelSelection, SpaceSelection};

pub(super) fn data_modeling(
    file: Option<&[SpaceFile]>,
    issues: &mut Issues,
    warnings: &mut Issues,
) -> Vec<SpaceSelection> {
    let Some(spaces) = file else {
        issues.push(
            "data_modeling",
            "required key is missing; expected a list of spaces with their data_models",
        );
        return Vec::new();
    };
    if spaces.is_empty() {
        issues.push(
            "data_modeling",
            "empty list; expected at least one space with data_models",
        );
    }
    // (space, model) -> (path, version) of the first entry, to find models listed twice.
    let mut seen_models: HashMap<(String, String), Vec<ListedAt>> = HashMap::new();
    let mut out = Vec::with_capacity(spaces.len());
    for (i, entry) in spaces.iter().enumerate() {
        let path = index("data_modeling", i);
        let space =
            required_text(entry.space.as_ref(), &join(&path, "space"), issues).unwrap_or_default();
        if !space.is_empty()
            && let Err(expected) = check_space(&space)
        {
            issues.push(join(&path, "space"), format!("{space:?}: {expected}"));
        }
        let models_path = join(&path, "data_models");
        let models = match &entry.data_models {
            None => {
                issues.push(
                    &models_path,
                    "required key is missing; expected a list of data models, e.g. \
                     `- external_id: MyModel`",
                );
                &[][..]
            }
            Some(models) if models.is_empty() => {
                issues.push(&models_path, "empty list; expected at least one data model");
                &[][..]
            }
            Some(models) => models.as_slice(),
        };
        let mut selections = Vec::with_capacity(models.len());
        for (j, model) in models.iter().enumerate() {
            let model_path = index(&models_path, j);
            let selection = data_model(model, &model_path, issues, warnings);
            if !space.is_empty() && !selection.external_id.is_empty() {
                let key = (space.clone(), selection.external_id.clone());
                let earlier = seen_models.entry(key).or_default();
                for (earlier_path, earlier_version) in earlier.iter() {
                    let clash = match (earlier_version, &selection.version) {
                        (Some(a), Some(b)) => a == b,
                        _ => true,
                    };
                    if clash {
                        issues.push(
                            &model_path,
                            format!(
                                "data model {space}/{} {} is already listed at {earlier_path}; \
                                 list each model version once (an entry without version \
                                 follows the newest version)",
                                selection.external_id,
                                describe_version(&selection.version)
                            ),
                        );
                        break;
                    }
                }
                earlier.push((model_path.clone(), selection.version.clone()));
            }
            selections.push(selection);
        }
        out.push(SpaceSelection {
            space,
            data_models: selections,
        });
    }
    out
}

/// Key path and version of an entry of `data_models`.
type ListedAt = (String, Option<String>);

fn describe_version(version: &Option<String>) -> String {
    match version {
        Some(v) => format!("version {v:?}"),
        None => "(newest version)".to_string(),
    }
}

fn data_model(
    file: &DataModelFile,
    path: &str,
    issues: &mut Issues,
    warnings: &mut Issues,
) -> DataModelSelection {
    let xid_path = join(path, "external_id");
    let external_id =
        required_text(file.external_id.as_ref(), &xid_path, issues).unwrap_or_default();
    if !external_id.is_empty()
        && let Err(expected) = check_external_id(&external_id)
    {
        issues.push(&xid_path, format!("{external_id:?}: {expected}"));
    }

    let version_path = join(path, "version");
    let version = file.version.as_ref().map(|v| v.text.trim().to_string());
    if let Some(v) = &version {
        if let Err(expected) = check_version(v) {
            issues.push(&version_path, format!("{v:?}: {expected}"));
        } else if file.version.as_ref().is_some_and(|v| v.was_float) {
            warnings.push(
                &version_path,
                format!(
                    "the unquoted number was read as version {v:?}; quote versions (e.g. \
                     \"2.10\") so that YAML keeps them as written"
                ),
            );
        }
    }

    let views_path = join(path, "views");
    let views = file.views.as_ref().map(|views| {
        if views.is_empty() {
            issues.push(
                &views_path,
                "empty list would replicate nothing; leave `views` out to replicate every view \
                 of the model",
            );
        }
        let mut first_seen: HashMap<&str, usize> = HashMap::new();
        for (k, Text(view)) in views.iter().enumerate() {
            let view_path = index(&views_path, k);
            if let Err(expected) = check_external_id(view) {
                issues.push(&view_path, view_message(view, &expected));
            } else if let Some(first) = first_seen.get(view.as_str()) {
                issues.push(
                    &view_path,
                    format!("view {view:?} is listed twice (also at views[{first}])"),
                );
            } else {
                first_seen.insert(view, k);
            }
        }
        views.iter().map(|Text(v)| v.clone()).collect()
    });

    DataModelSelection {
        external_id,
        version,
        views,
    }
}

/// Why a listed view is not a view externalId; a qualified name (`space:View`,
/// `space:View/1`) gets the list's own form.
fn view_message(view: &str, expected: &str) -> String {
    let bare = view
        .rsplit(':')
        .next()
        .unwrap_or(view)
        .split('/')
        .next()
        .unwrap_or(view);
    if bare != view && check_external_id(bare).is_ok() {
        format!(
            "{view:?}: list the view by its externalId only (`{bare}`); its space and version \
             are those of the data model it is listed under"
        )
    } else {
        format!("{view:?}: {expected}")
    }
}
