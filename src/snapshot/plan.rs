//! Which published files each view gets, from the streams of the [`crate::plan`].
//!
//! A view's `nodes` raw table exists if it has a nodes stream, its `edges` table if it has
//! any edge stream (edge view, edge connections). Both files are always published, so that
//! readers find the same files for every view; the file of a kind without streams is empty,
//! with only the system columns. A table that streams write but that does not exist yet
//! (their sync never committed) fails its file: an empty file would read as "everything
//! deleted".

use std::sync::Arc;

use deltalake::arrow::datatypes::{FieldRef, Schema, SchemaRef};

use crate::lake::{InstanceKind, ModelRef, ViewFolder};
use crate::plan::{StreamSpec, model_label};
use crate::schema::{PropertySource, TableKind, ViewSchema};

/// One raw table of a view.
#[derive(Debug, Clone)]
pub struct TableTarget {
    /// Nodes or edges.
    pub kind: InstanceKind,
    /// Keys of the streams writing the table; empty when the view has no such stream.
    pub streams: Vec<String>,
    /// The raw schema while the table does not exist yet.
    pub schema_without_table: SchemaRef,
}

impl TableTarget {
    /// Whether any stream writes this table (otherwise it is not even opened).
    pub(crate) fn has_streams(&self) -> bool {
        !self.streams.is_empty()
    }

    /// A table without streams: an empty file with the system columns of `kind`.
    pub fn without_streams(kind: InstanceKind, source: PropertySource) -> Self {
        Self {
            kind,
            streams: Vec::new(),
            schema_without_table: ViewSchema::without_properties(table_kind(kind), source)
                .arrow_schema()
                .clone(),
        }
    }
}

/// One view's publish folder and its two tables.
#[derive(Debug, Clone)]
pub struct ViewTarget {
    /// The data model the view is published under.
    pub model: ModelRef,
    /// Where the view's files are published.
    pub folder: ViewFolder,
    /// The view's node table.
    pub nodes: TableTarget,
    /// The view's edge table.
    pub edges: TableTarget,
}

impl ViewTarget {
    /// `space:model/version`.
    pub(crate) fn model_label(&self) -> String {
        model_label(&self.model)
    }

    pub(crate) fn table(&self, kind: InstanceKind) -> &TableTarget {
        match kind {
            InstanceKind::Nodes => &self.nodes,
            InstanceKind::Edges => &self.edges,
        }
    }
}

fn table_kind(kind: InstanceKind) -> TableKind {
    match kind {
        InstanceKind::Nodes => TableKind::Nodes,
        InstanceKind::Edges => TableKind::Edges,
    }
}

/// Groups streams by model and view folder, in the order the streams come.
pub fn plan_views(specs: &[StreamSpec]) -> Vec<ViewTarget> {
    let mut views: Vec<(ViewTarget, Vec<&StreamSpec>)> = Vec::new();
    for spec in specs {
        let position = views
            .iter()
            .position(|(v, _)| v.model == spec.model && v.folder == spec.view_folder);
        match position {
            Some(i) => views[i].1.push(spec),
            None => {
                let source = PropertySource::of_view(&spec.view);
                let target = ViewTarget {
                    model: spec.model.clone(),
                    folder: spec.view_folder.clone(),
                    nodes: TableTarget::without_streams(InstanceKind::Nodes, source.clone()),
                    edges: TableTarget::without_streams(InstanceKind::Edges, source),
                };
                views.push((target, vec![spec]));
            }
        }
    }
    views
        .into_iter()
        .map(|(mut target, specs)| {
            for kind in [InstanceKind::Nodes, InstanceKind::Edges] {
                let streams: Vec<&StreamSpec> = specs
                    .iter()
                    .copied()
                    .filter(|s| s.instance_kind() == kind)
                    .collect();
                if streams.is_empty() {
                    continue;
                }
                let table = TableTarget {
                    kind,
                    streams: streams.iter().map(|s| s.key.clone()).collect(),
                    schema_without_table: union_of(
                        streams
                            .iter()
                            .map(|s| s.schema(None).arrow_schema().clone()),
                    ),
                };
                match kind {
                    InstanceKind::Nodes => target.nodes = table,
                    InstanceKind::Edges => target.edges = table,
                }
            }
            target
        })
        .collect()
}

/// The columns of all schemas: the first one's, then the others' new columns in order, as
/// the raw table grows when several streams write to it.
fn union_of(schemas: impl Iterator<Item = SchemaRef>) -> SchemaRef {
    let mut fields: Vec<FieldRef> = Vec::new();
    for schema in schemas {
        for field in schema.fields() {
            if !fields.iter().any(|f| f.name() == field.name()) {
                fields.push(field.clone());
            }
        }
    }
    Arc::new(Schema::new(fields))
}
