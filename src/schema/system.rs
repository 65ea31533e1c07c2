//! The system columns every raw and publish table starts with.
//!
//! The names are those of the original Python replicator, so that BI workbooks built on its
//! tables keep working. Times stay epoch milliseconds (Int64) as CDF sends them: that is
//! exact and matches the original tables.

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, FieldRef};

pub(crate) const SPACE: &str = "space";
pub(crate) const EXTERNAL_ID: &str = "externalId";
pub(crate) const INSTANCE_TYPE: &str = "instanceType";
pub(crate) const VERSION: &str = "version";
pub(crate) const CREATED_TIME: &str = "createdTime";
pub(crate) const LAST_UPDATED_TIME: &str = "lastUpdatedTime";
pub(crate) const DELETED_TIME: &str = "deletedTime";
pub(crate) const TYPE_SPACE: &str = "type.space";
pub(crate) const TYPE_EXTERNAL_ID: &str = "type.externalId";
pub(crate) const START_NODE_SPACE: &str = "startNode.space";
pub(crate) const START_NODE_EXTERNAL_ID: &str = "startNode.externalId";
pub(crate) const END_NODE_SPACE: &str = "endNode.space";
pub(crate) const END_NODE_EXTERNAL_ID: &str = "endNode.externalId";
/// Raw only: set (epoch milliseconds) on a row that records that its instance left the
/// stream's query, which a membership scan or a completed backfill found; `deletedTime`
/// records deletions in CDF. Every stream commit gives a raw table the column along with
/// [`ARRIVAL`] (null on other rows); before that, a table got it with its first exit row. A property can never take
/// the name: CDF property identifiers start with a letter. The publish layer drops exited
/// instances like deleted ones and never shows the column.
pub(crate) const EXITED_TIME: &str = "_exitedTime";
/// Raw only: the row's place in its table's arrival order (see [`super::arrival`]), so
/// that SQL engines can tell a key's latest row without the Delta log. Written on every row
/// of every stream commit; rows written before the column existed read it as null. The
/// publish layer never shows it.
pub(crate) const ARRIVAL: &str = "_arrival";

/// The columns only the raw layer has: the publish layer leaves them out.
pub(crate) const RAW_ONLY: [&str; 2] = [EXITED_TIME, ARRIVAL];

/// Whether a table holds the nodes or the edges of a view; the two have different system
/// columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableKind {
    /// The `nodes` table of a view.
    Nodes,
    /// The `edges` table of a view (or of an edge type); it adds the type and end nodes.
    Edges,
}

impl TableKind {
    /// The folder name of the table (`nodes` / `edges`), as in the S3 layout and stream keys.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TableKind::Nodes => "nodes",
            TableKind::Edges => "edges",
        }
    }

    /// The system column names of this kind of table, in table order.
    pub(crate) fn system_column_names(self) -> &'static [&'static str] {
        match self {
            TableKind::Nodes => &NODE_COLUMNS,
            TableKind::Edges => &EDGE_COLUMNS,
        }
    }

    /// The system columns as Arrow fields, in table order.
    ///
    /// Identity and times are never null in CDF's answers. The node type is optional, and
    /// the edge endpoints are declared nullable as well so that one malformed edge cannot
    /// stop a table; `deletedTime` is null on every live row.
    pub(crate) fn system_fields(self) -> Vec<FieldRef> {
        self.system_column_names()
            .iter()
            .map(|&name| {
                let (data_type, nullable) = match name {
                    VERSION | CREATED_TIME | LAST_UPDATED_TIME => (DataType::Int64, false),
                    DELETED_TIME => (DataType::Int64, true),
                    SPACE | EXTERNAL_ID | INSTANCE_TYPE => (DataType::Utf8, false),
                    _ => (DataType::Utf8, true),
                };
                Arc::new(Field::new(name, data_type, nullable))
            })
            .collect()
    }
}

impl std::fmt::Display for TableKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const NODE_COLUMNS: [&str; 9] = [
    SPACE,
    EXTERNAL_ID,
    INSTANCE_TYPE,
    VERSION,
    CREATED_TIME,
    LAST_UPDATED_TIME,
    DELETED_TIME,
    TYPE_SPACE,
    TYPE_EXTERNAL_ID,
];

const EDGE_COLUMNS: [&str; 13] = [
    SPACE,
    EXTERNAL_ID,
    INSTANCE_TYPE,
    VERSION,
    CREATED_TIME,
    LAST_UPDATED_TIME,
    DELETED_TIME,
    TYPE_SPACE,
    TYPE_EXTERNAL_ID,
    START_NODE_SPACE,
    START_NODE_EXTERNAL_ID,
    END_NODE_SPACE,
    END_NODE_EXTERNAL_ID,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_edge_system_columns_in_table_order() {
        let names = |kind: TableKind| -> Vec<String> {
            kind.system_fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        };
        assert_eq!(
            names(TableKind::Nodes),
            [
                "space",
                "externalId",
                "instanceType",
                "version",
                "createdTime",
                "lastUpdatedTime",
                "deletedTime",
                "type.space",
                "type.externalId"
            ]
        );
        assert_eq!(
            names(TableKind::Edges)[9..],
            [
                "startNode.space",
                "startNode.externalId",
                "endNode.space",
                "endNode.externalId"
            ]
        );
        let fields = TableKind::Edges.system_fields();
        let deleted = fields.iter().find(|f| f.name() == "deletedTime").unwrap();
        assert_eq!(deleted.data_type(), &DataType::Int64);
        assert!(deleted.is_nullable());
        let version = fields.iter().find(|f| f.name() == "version").unwrap();
        assert_eq!(version.data_type(), &DataType::Int64);
        assert!(!version.is_nullable());
    }
}
