//! Which sync streams a resolved data model gives, and the exact query of each.
//!
//! A stream is one sync query with its own cursor: the nodes of a view, the edges that have
//! data in an edge view, or the edges of one edge-connection type declared by a node view.
//! Each stream appends to one Delta table; the edge streams of a view share its `edges`
//! table (never one table for all edge views, which mixed unrelated schemas).
//!
//! Edge connections: all connections of a view with the same edge type read the same edges,
//! so they make one stream, which selects the properties of every distinct `edgeSource` of
//! those connections (CDF allows up to 10 sources per select). Which column each source's
//! property lands in is decided for the whole `edges` table at once
//! ([`crate::schema::mapping`]): a property name that several source views of the table
//! have is qualified with the view (`<viewExternalId>_<property>`).

use std::collections::BTreeMap;

use crate::cdf::dto::{
    DataModel, Filter, NodeReference, SyncExpression, SyncMode, SyncRequest, SyncSelect, UsedFor,
    ViewDefinition, ViewReference,
};
use deltalake::arrow::datatypes::Schema;

use crate::failure::{Cause, Failure};
use crate::lake::{InstanceKind, ModelRef, ViewFolder};
use crate::schema::{PropertySource, SourceProperties, TableKind, ViewSchema};

/// `space:externalId/version`, how CDF tools print a data model id.
pub(crate) fn model_label(model: &ModelRef) -> String {
    format!(
        "{}:{}/{}",
        model.space(),
        model.external_id(),
        model.version()
    )
}

/// The model of a CDF data model, as the lake lays it out.
pub(crate) fn model_ref(model: &DataModel) -> Result<ModelRef, crate::lake::LakeError> {
    ModelRef::new(&model.space, &model.external_id, &model.version)
}

/// What a stream reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamSource {
    /// Nodes with data in the view.
    Nodes,
    /// Edges with data in an edge view (`usedFor: edge` or `all`).
    EdgeView,
    /// Edges of one type, declared by an edge-connection property of a node view.
    EdgeConnection { edge_type: NodeReference },
}

/// One stream: its state key, where it writes and what it asks CDF for.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// `<space>/<model>/<version>/<view folder>/<nodes|edges>[/<type space>/<type xid>]`, the
    /// RAW state row key and the Delta `txn` app id.
    pub(crate) key: String,
    pub(crate) model: ModelRef,
    /// The view the stream belongs to (its table folder).
    pub(crate) view: ViewReference,
    /// The folder of the view under the model: its externalId, or `<space>.<externalId>`
    /// when two views of the model share an externalId (shortened when too long for a file
    /// name; the stream key and the table paths use the short form).
    pub(crate) view_folder: ViewFolder,
    pub(crate) source: StreamSource,
    pub(crate) table: TableKind,
    /// The views whose properties the stream selects (the view itself, or the `edgeSource`
    /// views of the connections of one edge type); empty selects no properties.
    pub(crate) properties_from: Vec<ViewDefinition>,
    /// Every view whose properties any stream writes to this stream's table, in reference
    /// order. The column mapping is computed over all of them so that the streams of one
    /// table agree on it.
    pub(crate) table_sources: Vec<ViewDefinition>,
    /// The sync expression and select, without a cursor.
    pub(crate) expression: SyncExpression,
    pub(crate) select: SyncSelect,
}

/// The result-set name of every stream's single-result-set sync request.
pub(crate) const RESULT_SET: &str = "changes";

impl StreamSpec {
    /// The request for one page, continuing from `cursor`.
    pub(crate) fn request(&self, cursor: Option<String>) -> SyncRequest {
        SyncRequest::single(RESULT_SET, self.expression.clone(), self.select.clone())
            .with_cursor(RESULT_SET, cursor)
    }

    /// Identifies the query shape: a cursor issued for another query cannot continue.
    /// The page size is left out because CDF pages the same query at any size.
    pub(crate) fn query_hash(&self) -> String {
        let mut expression = self.expression.clone();
        expression.limit = 0;
        let shape = serde_json::json!({ "with": expression, "select": self.select });
        format!("{:016x}", fnv1a64(shape.to_string().as_bytes()))
    }

    /// The stream's raw schema: the mapping of [`crate::schema::mapping`] over the table's
    /// sources and its current schema (`None` while the table does not exist), restricted to
    /// the properties this stream reads.
    pub(crate) fn schema(&self, table_schema: Option<&Schema>) -> ViewSchema {
        let table_sources: Vec<SourceProperties<'_>> = self
            .table_sources
            .iter()
            .map(|view| SourceProperties {
                source: PropertySource::of_view(&view.reference()),
                properties: view
                    .mapped_properties()
                    .map(|(name, mapped)| (name.as_str(), &mapped.property_type))
                    .collect(),
            })
            .collect();
        let selected: Vec<PropertySource> = self
            .properties_from
            .iter()
            .map(|view| PropertySource::of_view(&view.reference()))
            .collect();
        let label = selected
            .first()
            .cloned()
            .unwrap_or_else(|| PropertySource::of_view(&self.view));
        ViewSchema::for_table(self.table, label, &table_sources, &selected, table_schema)
    }

    /// The lake's name for the stream's table kind.
    pub(crate) fn instance_kind(&self) -> InstanceKind {
        match self.table {
            TableKind::Nodes => InstanceKind::Nodes,
            TableKind::Edges => InstanceKind::Edges,
        }
    }
}

/// FNV-1a: tiny, stable across releases and platforms (unlike `DefaultHasher`), and a
/// query hash needs no collision resistance against an adversary.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Folders for the views of one model, keyed by view. The lake qualifies an externalId
/// with its space only where two views share it.
pub(crate) fn view_folders(
    views: &[ViewReference],
) -> Result<BTreeMap<ViewReference, ViewFolder>, crate::lake::LakeError> {
    let ids: Vec<(&str, &str)> = views
        .iter()
        .map(|v| (v.space.as_str(), v.external_id.as_str()))
        .collect();
    let folders = ViewFolder::for_views(&ids)?;
    Ok(views.iter().cloned().zip(folders).collect())
}

/// The streams of one view of a resolved model. `edge_sources` holds the definitions of the
/// views named as `edgeSource` by the view's connections.
pub(crate) fn streams_of_view(
    model: &ModelRef,
    view: &ViewDefinition,
    view_folder: &ViewFolder,
    edge_sources: &BTreeMap<ViewReference, ViewDefinition>,
    page_size: u32,
) -> Vec<StreamSpec> {
    let base = format!(
        "{}/{}/{}/{}",
        model.space(),
        model.external_id(),
        model.version(),
        view_folder.as_str()
    );
    // The views writing the edges table: the view itself if it is an edge view, and the
    // edge sources of all its connections.
    let mut edge_table_sources: BTreeMap<ViewReference, &ViewDefinition> = BTreeMap::new();
    if matches!(view.used_for, UsedFor::Edge | UsedFor::All) {
        edge_table_sources.insert(view.reference(), view);
    }
    // Connections by edge type, each with its distinct edge sources in property-name order.
    let mut by_type: BTreeMap<(String, String), (&NodeReference, Vec<&ViewDefinition>)> =
        BTreeMap::new();
    for (_, connection) in view.edge_connections() {
        let edge_type = &connection.edge_type;
        let (_, sources) = by_type
            .entry((edge_type.space.clone(), edge_type.external_id.clone()))
            .or_insert((edge_type, Vec::new()));
        if let Some(source) = connection
            .edge_source
            .as_ref()
            .and_then(|r| edge_sources.get(r))
        {
            edge_table_sources.insert(source.reference(), source);
            if !sources.iter().any(|s| s.reference() == source.reference()) {
                sources.push(source);
            }
        }
    }
    let edge_table_sources: Vec<ViewDefinition> =
        edge_table_sources.into_values().cloned().collect();

    let spec = |key: String,
                source,
                table,
                properties_from: Vec<&ViewDefinition>,
                table_sources: Vec<ViewDefinition>,
                expression| {
        let select = SyncSelect {
            sources: properties_from
                .iter()
                .flat_map(|v| SyncSelect::all_of(v.reference()).sources)
                .collect(),
        };
        StreamSpec {
            key,
            model: model.clone(),
            view: view.reference(),
            view_folder: view_folder.clone(),
            source,
            table,
            properties_from: properties_from.into_iter().cloned().collect(),
            table_sources,
            expression,
            select,
        }
    };
    let mut streams = Vec::new();
    if matches!(view.used_for, UsedFor::Node | UsedFor::All) {
        streams.push(spec(
            format!("{base}/nodes"),
            StreamSource::Nodes,
            TableKind::Nodes,
            vec![view],
            vec![view.clone()],
            SyncExpression::nodes(
                Some(Filter::has_data_view(view.reference())),
                page_size,
                SyncMode::TwoPhase,
            ),
        ));
    }
    if matches!(view.used_for, UsedFor::Edge | UsedFor::All) {
        streams.push(spec(
            format!("{base}/edges"),
            StreamSource::EdgeView,
            TableKind::Edges,
            vec![view],
            edge_table_sources.clone(),
            SyncExpression::edges(
                Some(Filter::has_data_view(view.reference())),
                page_size,
                SyncMode::TwoPhase,
            ),
        ));
    }
    for (edge_type, sources) in by_type.into_values() {
        streams.push(spec(
            format!("{base}/edges/{}/{}", edge_type.space, edge_type.external_id),
            StreamSource::EdgeConnection {
                edge_type: edge_type.clone(),
            },
            TableKind::Edges,
            sources,
            edge_table_sources.clone(),
            SyncExpression::edges(
                Some(Filter::edge_type(edge_type)),
                page_size,
                SyncMode::TwoPhase,
            ),
        ));
    }
    streams
}

/// Picks the configured views out of a model, by externalId. A name the model does not
/// have is an error that lists what the model has; the other views still sync.
pub(crate) fn select_views(
    model: &DataModel,
    configured: Option<&[String]>,
) -> (Vec<ViewReference>, Vec<Failure>) {
    let available = model.view_references();
    let Some(names) = configured else {
        return (available, Vec::new());
    };
    let mut selected = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        let matches: Vec<&ViewReference> = available
            .iter()
            .filter(|v| &v.external_id == name)
            .collect();
        match matches.as_slice() {
            [] => errors.push(Failure::new(
                Cause::ViewNotFound,
                format!(
                    "view {name} is not in data model {}:{}/{}; the model has: {}",
                    model.space,
                    model.external_id,
                    model.version,
                    list_or_none(available.iter().map(|v| v.external_id.as_str()))
                ),
            )),
            [one] => selected.push((*one).clone()),
            several => errors.push(Failure::new(
                Cause::InvalidConfiguration,
                format!(
                    "view {name} is ambiguous in data model {}:{}/{}: it exists in spaces {}",
                    model.space,
                    model.external_id,
                    model.version,
                    list_or_none(several.iter().map(|v| v.space.as_str()))
                ),
            )),
        }
    }
    (selected, errors)
}

fn list_or_none<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "no views".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn view(value: serde_json::Value) -> ViewDefinition {
        serde_json::from_value(value).unwrap()
    }

    fn pump() -> ViewDefinition {
        view(json!({
            "space": "s", "externalId": "Pump", "version": "1", "createdTime": 0,
            "lastUpdatedTime": 0, "usedFor": "node",
            "properties": {
                "tag": {"container": {"type": "container", "space": "s", "externalId": "C"},
                        "containerPropertyIdentifier": "tag", "type": {"type": "text"}},
                "workOrders": {"connectionType": "multi_edge_connection",
                               "type": {"space": "s", "externalId": "Pump.workOrders"},
                               "source": {"type": "view", "space": "s", "externalId": "WorkOrder", "version": "1"},
                               "edgeSource": {"type": "view", "space": "s", "externalId": "Link", "version": "1"}},
                "workOrdersIn": {"connectionType": "multi_edge_connection", "direction": "inwards",
                                 "type": {"space": "s", "externalId": "Pump.workOrders"},
                                 "source": {"type": "view", "space": "s", "externalId": "WorkOrder", "version": "1"}},
                "alarms": {"connectionType": "multi_reverse_direct_relation",
                           "source": {"type": "view", "space": "s", "externalId": "Alarm", "version": "1"},
                           "through": {"source": {"type": "view", "space": "s", "externalId": "Alarm", "version": "1"}, "identifier": "pump"}}
            }
        }))
    }

    fn model() -> ModelRef {
        ModelRef::new("s", "Plant", "3").unwrap()
    }

    fn folder(name: &str) -> ViewFolder {
        ViewFolder::plain(name).unwrap()
    }

    #[test]
    fn a_node_view_gives_a_node_stream_and_one_stream_per_edge_type() {
        let link = view(json!({"space": "s", "externalId": "Link", "version": "1",
            "createdTime": 0, "lastUpdatedTime": 0, "usedFor": "edge", "properties": {}}));
        let sources = BTreeMap::from([(link.reference(), link)]);
        let streams = streams_of_view(&model(), &pump(), &folder("Pump"), &sources, 1000);
        let keys: Vec<&str> = streams.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "s/Plant/3/Pump/nodes",
                "s/Plant/3/Pump/edges/s/Pump.workOrders"
            ]
        );
        let edges = &streams[1];
        assert_eq!(edges.table, TableKind::Edges);
        let from: Vec<&str> = edges
            .properties_from
            .iter()
            .map(|v| v.external_id.as_str())
            .collect();
        assert_eq!(from, ["Link"]);
        let request = serde_json::to_value(edges.request(None)).unwrap();
        assert_eq!(
            request["with"][RESULT_SET]["edges"]["filter"],
            json!({"equals": {"property": ["edge", "type"], "value": {"space": "s", "externalId": "Pump.workOrders"}}})
        );
        assert_eq!(request["with"][RESULT_SET]["mode"], "twoPhase");
        assert_eq!(
            request["select"][RESULT_SET]["sources"][0]["source"]["externalId"],
            "Link"
        );
    }

    #[test]
    fn connections_of_one_edge_type_select_every_edge_source() {
        let edge_view = |xid: &str, properties: serde_json::Value| {
            view(json!({"space": "s", "externalId": xid, "version": "1",
                "createdTime": 0, "lastUpdatedTime": 0, "usedFor": "edge",
                "properties": properties}))
        };
        let mapped = |t: &str| {
            json!({"container": {"type": "container", "space": "s", "externalId": "L"},
                   "containerPropertyIdentifier": "weight", "type": {"type": t}})
        };
        let link = edge_view("Link", json!({"weight": mapped("float64")}));
        let other = edge_view("OtherLink", json!({"weight": mapped("text")}));
        let mut pump = pump();
        let mut second: serde_json::Value = json!({
            "connectionType": "multi_edge_connection",
            "type": {"space": "s", "externalId": "Pump.workOrders"},
            "source": {"type": "view", "space": "s", "externalId": "WorkOrder", "version": "1"},
            "edgeSource": {"type": "view", "space": "s", "externalId": "OtherLink", "version": "1"}});
        pump.properties.insert(
            "workOrdersToo".into(),
            serde_json::from_value(second.take()).unwrap(),
        );
        let sources = BTreeMap::from([(link.reference(), link), (other.reference(), other)]);
        let streams = streams_of_view(&model(), &pump, &folder("Pump"), &sources, 1000);
        assert_eq!(streams.len(), 2, "one stream per edge type");
        let edges = &streams[1];
        let request = serde_json::to_value(edges.request(None)).unwrap();
        let selected: Vec<&str> = request["select"][RESULT_SET]["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["source"]["externalId"].as_str().unwrap())
            .collect();
        assert_eq!(selected, ["Link", "OtherLink"]);
        let schema = edges.schema(None);
        let columns: Vec<&str> = schema.arrow_schema().fields()[13..]
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(columns, ["Link_weight", "OtherLink_weight"]);
    }

    #[test]
    fn the_edge_streams_of_a_view_agree_on_the_columns_of_its_edges_table() {
        let mapped = |container: &str, property: &str, t: &str| {
            json!({"container": {"type": "container", "space": "s", "externalId": container},
                   "containerPropertyIdentifier": property, "type": {"type": t}})
        };
        // An edge view that also has an edge connection whose edge source shares a name.
        let asset = view(json!({"space": "s", "externalId": "Asset", "version": "1",
        "createdTime": 0, "lastUpdatedTime": 0, "usedFor": "all",
        "properties": {
            "Name": mapped("A", "Name", "text"),
            "parts": {"connectionType": "multi_edge_connection",
                      "type": {"space": "s", "externalId": "Asset.parts"},
                      "source": {"type": "view", "space": "s", "externalId": "Asset", "version": "1"},
                      "edgeSource": {"type": "view", "space": "s", "externalId": "Part", "version": "1"}}
        }}));
        let part = view(json!({"space": "s", "externalId": "Part", "version": "1",
            "createdTime": 0, "lastUpdatedTime": 0, "usedFor": "edge",
            "properties": {"name": mapped("P", "name", "int32")}}));
        let sources = BTreeMap::from([(part.reference(), part)]);
        let streams = streams_of_view(&model(), &asset, &folder("Asset"), &sources, 1000);
        let keys: Vec<&str> = streams.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "s/Plant/3/Asset/nodes",
                "s/Plant/3/Asset/edges",
                "s/Plant/3/Asset/edges/s/Asset.parts"
            ]
        );
        let columns = |spec: &StreamSpec| -> Vec<String> {
            let schema = spec.schema(None);
            let system = spec.table.system_column_names().len();
            schema.arrow_schema().fields()[system..]
                .iter()
                .map(|f| f.name().clone())
                .collect()
        };
        // The node table has one source: no qualification.
        assert_eq!(columns(&streams[0]), ["Name"]);
        assert_eq!(columns(&streams[1]), ["Asset_Name"]);
        assert_eq!(columns(&streams[2]), ["Part_name"]);
        assert_eq!(
            streams[1].table_sources.len(),
            2,
            "both edge streams name the columns over both sources"
        );
    }

    #[test]
    fn an_edge_view_gives_an_edge_stream_only() {
        let link = view(json!({"space": "s", "externalId": "Link", "version": "1",
            "createdTime": 0, "lastUpdatedTime": 0, "usedFor": "edge", "properties": {}}));
        let streams = streams_of_view(&model(), &link, &folder("Link"), &BTreeMap::new(), 1000);
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].key, "s/Plant/3/Link/edges");
        assert_eq!(streams[0].source, StreamSource::EdgeView);
    }

    #[test]
    fn query_hash_ignores_page_size_and_cursor_but_not_the_filter() {
        let a = streams_of_view(&model(), &pump(), &folder("Pump"), &BTreeMap::new(), 1000);
        let b = streams_of_view(&model(), &pump(), &folder("Pump"), &BTreeMap::new(), 200);
        assert_eq!(a[0].query_hash(), b[0].query_hash());
        assert_ne!(a[0].query_hash(), a[1].query_hash());
    }

    #[test]
    fn shared_external_ids_are_qualified_with_their_space() {
        let views = [
            ViewReference::new("a", "Asset", "1"),
            ViewReference::new("b", "Asset", "1"),
            ViewReference::new("a", "Pump", "1"),
        ];
        let folders = view_folders(&views).unwrap();
        assert_eq!(folders[&views[0]].as_str(), "a.Asset");
        assert_eq!(folders[&views[1]].as_str(), "b.Asset");
        assert_eq!(folders[&views[2]].as_str(), "Pump");
    }

    #[test]
    fn a_missing_configured_view_is_named_with_the_models_views() {
        let model: DataModel = serde_json::from_value(json!({
            "space": "s", "externalId": "Plant", "version": "3", "createdTime": 0,
            "lastUpdatedTime": 0, "isGlobal": false,
            "views": [{"type": "view", "space": "s", "externalId": "Pump", "version": "1"},
                      {"type": "view", "space": "s", "externalId": "Site", "version": "1"}]
        }))
        .unwrap();
        let (selected, errors) = select_views(&model, Some(&["Pump".into(), "Valve".into()]));
        assert_eq!(selected, [ViewReference::new("s", "Pump", "1")]);
        assert_eq!(
            errors,
            [Failure::new(
                Cause::ViewNotFound,
                "view Valve is not in data model s:Plant/3; the model has: Pump, Site"
            )]
        );
    }
}
