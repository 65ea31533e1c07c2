//! Which views a job works on, named without ambiguity.
//!
//! Two configured data models can both have a view `Pump`. A name is either the view's
//! externalId alone (`Pump`: that view in every configured model) or qualified with its
//! model the way CDF tools print a model id, `<space>:<model>/<version>:<view>`
//! (`plant:PlantModel/1:Pump`: only that model's), or `<space>:<model>:<view>` for any
//! version of the model. CDF identifiers never hold `:` or `/`, so the form is unambiguous.

use std::fmt;
use std::str::FromStr;

use crate::failure::{Cause, Failure};
use crate::lake::ModelRef;

/// Why a view name could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "view `{name}`: {reason}; name a view `<externalId>` or `<space>:<model>/<version>:<externalId>`"
)]
pub struct SelectionError {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The model part of a qualified name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelName {
    space: String,
    external_id: String,
    /// `None`: any version.
    version: Option<String>,
}

/// One view, as an operator names it: its externalId, with or without its model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewName {
    model: Option<ModelName>,
    view: String,
}

impl ViewName {
    /// Whether the view `view` (externalId) of `model` is the one named.
    pub(crate) fn matches(&self, model: &ModelRef, view: &str) -> bool {
        self.view == view
            && self.model.as_ref().is_none_or(|m| {
                m.space == model.space()
                    && m.external_id == model.external_id()
                    && m.version.as_deref().is_none_or(|v| v == model.version())
            })
    }

    /// Whether the name says which model.
    pub fn is_qualified(&self) -> bool {
        self.model.is_some()
    }
}

impl FromStr for ViewName {
    type Err = SelectionError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let error = |reason| SelectionError {
            name: name.to_owned(),
            reason,
        };
        let name = name.trim();
        let valid = |part: &str| {
            !part.is_empty()
                && !part
                    .chars()
                    .any(|c| c.is_whitespace() || c == '/' || c == ':')
        };
        let Some((model, view)) = name.rsplit_once(':') else {
            return if valid(name) {
                Ok(Self {
                    model: None,
                    view: name.to_owned(),
                })
            } else {
                Err(error("not a view externalId"))
            };
        };
        let Some((space, model)) = model.split_once(':') else {
            return Err(error("the model must be `<space>:<model>/<version>`"));
        };
        let (external_id, version) = match model.split_once('/') {
            Some((id, version)) => (id, Some(version)),
            None => (model, None),
        };
        if !valid(space) || !valid(external_id) || version.is_some_and(|v| !valid(v)) {
            return Err(error("the model must be `<space>:<model>/<version>`"));
        }
        if !valid(view) {
            return Err(error("not a view externalId after the model"));
        }
        Ok(Self {
            model: Some(ModelName {
                space: space.to_owned(),
                external_id: external_id.to_owned(),
                version: version.map(str::to_owned),
            }),
            view: view.to_owned(),
        })
    }
}

impl fmt::Display for ViewName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(model) = &self.model {
            write!(f, "{}:{}", model.space, model.external_id)?;
            if let Some(version) = &model.version {
                write!(f, "/{version}")?;
            }
            f.write_str(":")?;
        }
        f.write_str(&self.view)
    }
}

/// The views a job works on: all the configured ones, or the named ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ViewSelection {
    /// `None`: every configured view.
    names: Option<Vec<ViewName>>,
}

impl ViewSelection {
    /// Every configured view.
    pub fn all() -> Self {
        Self::default()
    }

    /// The named views (see [`ViewName`]); at least one.
    pub fn of<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Result<Self, SelectionError> {
        let names = names
            .into_iter()
            .map(|name| name.as_ref().parse())
            .collect::<Result<Vec<ViewName>, _>>()?;
        if names.is_empty() {
            return Err(SelectionError {
                name: String::new(),
                reason: "no view named; leave the option out to select every view",
            });
        }
        Ok(Self { names: Some(names) })
    }

    /// The named views, or [`ViewSelection::all`] without names.
    pub fn of_option<S: AsRef<str>>(
        names: Option<impl IntoIterator<Item = S>>,
    ) -> Result<Self, SelectionError> {
        names.map_or_else(|| Ok(Self::all()), Self::of)
    }

    /// Whether every configured view is selected.
    pub fn is_all(&self) -> bool {
        self.names.is_none()
    }

    /// The names, when views were named.
    pub fn names(&self) -> Option<&[ViewName]> {
        self.names.as_deref()
    }

    /// Whether the view `view` (externalId) of `model` is selected.
    pub(crate) fn selects(&self, model: &ModelRef, view: &str) -> bool {
        self.names
            .as_ref()
            .is_none_or(|names| names.iter().any(|name| name.matches(model, view)))
    }

    /// A problem (`InvalidRequest`) for each name that matches none of the `known` views
    /// (model, view externalId) of the run, naming it and listing the views there are:
    /// by externalId, or model-qualified when the name was.
    pub(crate) fn unknown<'a>(
        &self,
        option: &str,
        known: impl Iterator<Item = (&'a ModelRef, &'a str)> + Clone,
    ) -> Vec<Failure> {
        let Some(names) = &self.names else {
            return Vec::new();
        };
        names
            .iter()
            .filter(|name| !known.clone().any(|(model, view)| name.matches(model, view)))
            .map(|name| {
                let mut views: Vec<String> = known
                    .clone()
                    .map(|(model, view)| match name.is_qualified() {
                        true => format!(
                            "{}:{}/{}:{view}",
                            model.space(),
                            model.external_id(),
                            model.version()
                        ),
                        false => view.to_owned(),
                    })
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

impl fmt::Display for ViewSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.names {
            None => f.write_str("every view"),
            Some(names) => {
                let names: Vec<String> = names.iter().map(ToString::to_string).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(space: &str, id: &str, version: &str) -> ModelRef {
        ModelRef::new(space, id, version).unwrap()
    }

    #[test]
    fn a_bare_name_selects_the_view_in_every_model() {
        let selection = ViewSelection::of(["Pump"]).unwrap();
        assert!(selection.selects(&model("plant", "PlantModel", "1"), "Pump"));
        assert!(selection.selects(&model("other", "Maintenance", "3"), "Pump"));
        assert!(!selection.selects(&model("plant", "PlantModel", "1"), "Valve"));
        assert!(ViewSelection::all().selects(&model("plant", "PlantModel", "1"), "Valve"));
    }

    #[test]
    fn a_qualified_name_selects_only_its_models_view() {
        let selection = ViewSelection::of(["plant:PlantModel/1:Pump"]).unwrap();
        assert!(selection.selects(&model("plant", "PlantModel", "1"), "Pump"));
        assert!(!selection.selects(&model("plant", "PlantModel", "2"), "Pump"));
        assert!(!selection.selects(&model("other", "PlantModel", "1"), "Pump"));
        assert!(!selection.selects(&model("plant", "Maintenance", "1"), "Pump"));
        assert!(!selection.selects(&model("plant", "PlantModel", "1"), "Valve"));
        // Without a version: any version of the model.
        let any_version = ViewSelection::of(["plant:PlantModel:Pump"]).unwrap();
        assert!(any_version.selects(&model("plant", "PlantModel", "2"), "Pump"));
        assert!(!any_version.selects(&model("other", "PlantModel", "2"), "Pump"));
        // Both forms in one list, printed back as given.
        let mixed = ViewSelection::of(["Valve", " plant:PlantModel/1:Pump "]).unwrap();
        assert_eq!(mixed.to_string(), "Valve,plant:PlantModel/1:Pump");
        assert!(mixed.selects(&model("x", "Y", "1"), "Valve"));
        assert!(!mixed.selects(&model("x", "Y", "1"), "Pump"));
    }

    #[test]
    fn malformed_names_are_refused_naming_them() {
        for name in [
            "",
            "plant:Pump",
            "plant/1:Pump",
            ":PlantModel/1:Pump",
            "plant:PlantModel/:Pump",
            "plant:PlantModel/1:",
            "a:b:c:d",
            "Pu mp",
        ] {
            let error = ViewSelection::of([name]).unwrap_err();
            assert_eq!(error.name, name, "{error}");
            assert!(error.to_string().contains(&format!("`{name}`")), "{error}");
        }
        assert!(ViewSelection::of(Vec::<String>::new()).is_err());
        assert!(
            ViewSelection::of_option(None::<Vec<String>>)
                .unwrap()
                .is_all()
        );
    }

    #[test]
    fn an_unknown_name_is_named_with_the_views_there_are() {
        let (plant, other) = (
            model("plant", "PlantModel", "1"),
            model("other", "Ops", "2"),
        );
        let known = [(&plant, "Pump"), (&plant, "Valve"), (&other, "Pump")];
        let selection = ViewSelection::of(["Pump", "Pmup", "other:Ops/2:Valve"]).unwrap();
        let problems = selection.unknown("views", known.iter().copied());
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "views: `Pmup` matches no stream of this run (views: Pump, Valve)",
                "views: `other:Ops/2:Valve` matches no stream of this run (views: other:Ops/2:Pump, plant:PlantModel/1:Pump, plant:PlantModel/1:Valve)",
            ]
        );
        assert!(problems.iter().all(|p| p.cause == Cause::InvalidRequest));
        assert!(
            ViewSelection::all()
                .unknown("views", known.iter().copied())
                .is_empty()
        );
    }
}
