//! Unit ids: `<kind>:<space>:<model>/<version>:<view folder>`.
//!
//! An id is opaque to whoever runs the unit (the state machine passes it back unchanged) and
//! model-qualified, because two models can publish a view of the same name. Today every
//! unit is one whole view (`view:plant:PlantModel/1:Pump`); kinds that split a view (one
//! part of a view's file) extend the id after the view, so a state machine that only passes
//! ids on never changes. CDF identifiers never hold `:`, so the form is unambiguous; the
//! run that receives an id matches it against the ids of its own plan rather than parsing
//! it, so an id that names nothing planned is refused, naming it.

use super::UnitKind;
use crate::snapshot::ViewTarget;

/// The id of the unit of `kind` that publishes `target`.
pub(crate) fn unit_id(kind: UnitKind, target: &ViewTarget) -> String {
    format!(
        "{}:{}:{}",
        kind.as_str(),
        target.model_label(),
        target.folder.name()
    )
}
