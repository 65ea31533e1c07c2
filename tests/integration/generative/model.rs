//! Random valid data models: containers and views with every property type and list type,
//! case twins, names next to system columns, implements chains, views in two spaces with the
//! same externalId, several edge connections per edge type with different edge sources, edge
//! views and reverse relations.

use serde_json::{Value, json};

use super::rng::Gen;

/// The two schema spaces: views in both may share an externalId.
pub const SPACE_A: &str = "gen_a";
pub const SPACE_B: &str = "gen_b";
/// Where instances and edge types live.
pub const DATA_SPACE: &str = "gen_data";

/// Every CDF property type the generator uses; `list` is chosen separately.
pub const TYPES: &[&str] = &[
    "text",
    "int32",
    "int64",
    "float32",
    "float64",
    "boolean",
    "timestamp",
    "date",
    "json",
    "direct",
    "enum",
    "timeseries",
    "file",
    "sequence",
];

/// Identifiers that make column naming hard: case twins, names of system columns and of
/// the documented rename targets. All are valid CDF property identifiers.
const AWKWARD_NAMES: &[&str] = &[
    "name",
    "Name",
    "NAME",
    "version",
    "Version",
    "VERSION",
    "Space",
    "ExternalId",
    "externalid",
    "instanceType",
    "InstanceType",
    "type",
    "Type",
    "startNode",
    "endNode",
    "prop_version",
    "prop_Version",
    "weight",
    "Weight",
    "lastupdatedtime",
    "CreatedTime",
    "DeletedTime",
    "a",
    "A",
    "x1_",
];

#[derive(Debug, Clone, PartialEq)]
pub struct PropType {
    pub kind: &'static str,
    pub list: bool,
}

impl PropType {
    pub fn to_json(&self) -> Value {
        let mut t = json!({"type": self.kind});
        if self.kind == "enum" {
            t["values"] = json!({"alpha": {}, "Beta": {"name": "b"}, "gamma_3": {}});
        } else if self.list {
            t["list"] = json!(true);
            t["maxListSize"] = json!(50);
        }
        t
    }
}

#[derive(Debug, Clone)]
pub struct Property {
    /// The view property identifier (also the container property identifier).
    pub name: String,
    pub ptype: PropType,
}

#[derive(Debug, Clone)]
pub struct Container {
    pub space: String,
    pub external_id: String,
    pub used_for: &'static str,
    pub properties: Vec<Property>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ViewRef {
    pub space: String,
    pub external_id: String,
}

impl ViewRef {
    pub fn to_json(&self) -> Value {
        json!({"type": "view", "space": self.space, "externalId": self.external_id, "version": "1"})
    }
    /// `space:externalId/version`, as the replicator's `cdf.source` metadata spells it.
    pub fn label(&self) -> String {
        format!("{}:{}/1", self.space, self.external_id)
    }
}

#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub edge_type: String,
    pub inwards: bool,
    pub edge_source: Option<ViewRef>,
}

#[derive(Debug, Clone)]
pub struct View {
    pub id: ViewRef,
    /// `node` or `edge`.
    pub used_for: &'static str,
    /// The containers whose properties the view maps (its own; see `implements`).
    pub containers: Vec<usize>,
    pub implements: Option<usize>,
    pub connections: Vec<Connection>,
    /// A reverse direct relation through a direct property of another view.
    pub reverse: Option<(usize, String)>,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub external_id: String,
    pub containers: Vec<Container>,
    pub views: Vec<View>,
}

impl Model {
    /// Every property a view exposes: inherited first, own ones override.
    pub fn view_properties(&self, view: usize) -> Vec<Property> {
        let mut out: Vec<Property> = Vec::new();
        let v = &self.views[view];
        if let Some(parent) = v.implements {
            out = self.view_properties(parent);
        }
        for &c in &v.containers {
            for p in &self.containers[c].properties {
                out.retain(|q| q.name != p.name);
                out.push(p.clone());
            }
        }
        out
    }

    /// Every edge connection a view exposes: a view inherits the connections of the view it
    /// implements (own ones of the same name override them), as CDF resolves them.
    pub fn view_connections(&self, view: usize) -> Vec<Connection> {
        let v = &self.views[view];
        let mut out = match v.implements {
            Some(parent) => self.view_connections(parent),
            None => Vec::new(),
        };
        for c in &v.connections {
            out.retain(|d| d.name != c.name);
            out.push(c.clone());
        }
        out
    }

    pub fn node_views(&self) -> Vec<usize> {
        (0..self.views.len())
            .filter(|&i| self.views[i].used_for == "node")
            .collect()
    }

    pub fn edge_views(&self) -> Vec<usize> {
        (0..self.views.len())
            .filter(|&i| self.views[i].used_for == "edge")
            .collect()
    }

    pub fn view_index(&self, id: &ViewRef) -> Option<usize> {
        self.views.iter().position(|v| &v.id == id)
    }

    /// Every distinct edge type of the node views' connections, with the edge sources the
    /// connections of that type name.
    pub fn edge_types(&self) -> Vec<(String, Vec<ViewRef>)> {
        let mut types: Vec<(String, Vec<ViewRef>)> = Vec::new();
        for v in &self.views {
            for c in &v.connections {
                let entry = match types.iter_mut().find(|(t, _)| *t == c.edge_type) {
                    Some(entry) => entry,
                    None => {
                        types.push((c.edge_type.clone(), Vec::new()));
                        types.last_mut().expect("just pushed")
                    }
                };
                if let Some(source) = &c.edge_source
                    && !entry.1.contains(source)
                {
                    entry.1.push(source.clone());
                }
            }
        }
        types
    }

    /// The schema in the shape of the API's create calls.
    pub fn schema_json(&self) -> Value {
        let containers: Vec<Value> = self
            .containers
            .iter()
            .map(|c| {
                let props: serde_json::Map<String, Value> = c
                    .properties
                    .iter()
                    .map(|p| (p.name.clone(), json!({"type": p.ptype.to_json()})))
                    .collect();
                json!({"space": c.space, "externalId": c.external_id, "usedFor": c.used_for, "properties": props})
            })
            .collect();
        let views: Vec<Value> = self
            .views
            .iter()
            .map(|v| {
                let mut props = serde_json::Map::new();
                for &c in &v.containers {
                    let container = &self.containers[c];
                    for p in &container.properties {
                        props.insert(
                            p.name.clone(),
                            json!({"container": {"type": "container", "space": container.space, "externalId": container.external_id},
                                   "containerPropertyIdentifier": p.name}),
                        );
                    }
                }
                for c in &v.connections {
                    let mut connection = json!({
                        "connectionType": "multi_edge_connection",
                        "type": {"space": DATA_SPACE, "externalId": c.edge_type},
                        "source": self.views[self.node_views()[0]].id.to_json(),
                        "direction": if c.inwards { "inwards" } else { "outwards" },
                    });
                    if let Some(source) = &c.edge_source {
                        connection["edgeSource"] = source.to_json();
                    }
                    props.insert(c.name.clone(), connection);
                }
                if let Some((through_view, identifier)) = &v.reverse {
                    props.insert(
                        "reverseOf".to_owned(),
                        json!({"connectionType": "multi_reverse_direct_relation",
                               "source": self.views[*through_view].id.to_json(),
                               "through": {"source": self.views[*through_view].id.to_json(), "identifier": identifier}}),
                    );
                }
                let mut view = json!({"space": v.id.space, "externalId": v.id.external_id, "version": "1", "properties": props});
                if let Some(parent) = v.implements {
                    view["implements"] = json!([self.views[parent].id.to_json()]);
                }
                view
            })
            .collect();
        let model = json!({"space": SPACE_A, "externalId": self.external_id, "version": "1",
            "views": self.views.iter().map(|v| v.id.to_json()).collect::<Vec<_>>()});
        json!({
            "spaces": [{"space": SPACE_A}, {"space": SPACE_B}, {"space": DATA_SPACE}],
            "containers": containers,
            "views": views,
            "dataModels": [model],
        })
    }
}

fn identifier(g: &mut Gen) -> String {
    if g.chance(0.45) {
        return (*g.pick(AWKWARD_NAMES)).to_owned();
    }
    let first = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let rest = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";
    let len = g.range(0, 14);
    let mut s = String::new();
    s.push(*g.pick(first) as char);
    for _ in 0..len {
        s.push(*g.pick(rest) as char);
    }
    if s.ends_with('_') && g.chance(0.5) {
        s.push('9');
    }
    s
}

fn prop_type(g: &mut Gen) -> PropType {
    let kind = *g.pick(TYPES);
    let list = kind != "enum" && g.chance(0.3);
    PropType { kind, list }
}

fn properties(g: &mut Gen, count: usize, taken: &mut Vec<String>) -> Vec<Property> {
    let mut out = Vec::new();
    while out.len() < count {
        let name = identifier(g);
        if taken.contains(&name) {
            continue;
        }
        taken.push(name.clone());
        out.push(Property {
            name,
            ptype: prop_type(g),
        });
    }
    out
}

/// One random model. `case` keeps external ids unique across cases of one emulator.
pub fn generate(g: &mut Gen, case: usize) -> Model {
    let mut containers = Vec::new();
    let mut views: Vec<View> = Vec::new();

    // Edge-source views first: several share property names with other types.
    let edge_views = g.range(1, 4);
    for e in 0..edge_views {
        let mut taken = Vec::new();
        let count = g.range(1, 6);
        let mut props = properties(g, count, &mut taken);
        if g.chance(0.6) && !taken.iter().any(|n| n == "weight") {
            let kind = if e % 2 == 0 { "float64" } else { "text" };
            props.push(Property {
                name: "weight".into(),
                ptype: PropType { kind, list: false },
            });
        }
        containers.push(Container {
            space: SPACE_A.into(),
            external_id: format!("EdgeC{e}"),
            used_for: "edge",
            properties: props,
        });
        views.push(View {
            id: ViewRef {
                space: SPACE_A.into(),
                external_id: format!("Link{e}"),
            },
            used_for: "edge",
            containers: vec![containers.len() - 1],
            implements: None,
            connections: Vec::new(),
            reverse: None,
        });
    }
    let edge_sources: Vec<ViewRef> = views.iter().map(|v| v.id.clone()).collect();

    // Node views; the first two share an externalId in two spaces.
    let node_views = g.range(2, 5);
    let edge_type_count = g.range(1, 3);
    for n in 0..node_views {
        let mut taken = Vec::new();
        let own = g.range(1, 3);
        let mut own_containers = Vec::new();
        for c in 0..own {
            let count = g.range(2, 9);
            let props = properties(g, count, &mut taken);
            containers.push(Container {
                space: if n == 1 { SPACE_B } else { SPACE_A }.into(),
                external_id: format!("NodeC{n}_{c}"),
                used_for: "node",
                properties: props,
            });
            own_containers.push(containers.len() - 1);
        }
        let external_id = if n == 1 {
            "Thing0".to_owned()
        } else {
            format!("Thing{n}")
        };
        let mut connections = Vec::new();
        for k in 0..g.range(0, 4) {
            let edge_type = format!("c{case}_type{}", g.range(0, edge_type_count));
            let edge_source = if g.chance(0.75) {
                Some(g.pick(&edge_sources).clone())
            } else {
                None
            };
            connections.push(Connection {
                name: format!("conn{k}"),
                edge_type,
                inwards: g.chance(0.3),
                edge_source,
            });
        }
        let implements = if n >= 2 && g.chance(0.5) {
            // Implements an earlier node view of space A (views of edge sources come first).
            let earlier: Vec<usize> = views
                .iter()
                .enumerate()
                .filter(|(_, v)| v.used_for == "node" && v.id.space == SPACE_A)
                .map(|(i, _)| i)
                .collect();
            if earlier.is_empty() {
                None
            } else {
                Some(*g.pick(&earlier))
            }
        } else {
            None
        };
        views.push(View {
            id: ViewRef {
                space: if n == 1 { SPACE_B } else { SPACE_A }.into(),
                external_id,
            },
            used_for: "node",
            containers: own_containers,
            implements,
            connections,
            reverse: None,
        });
    }

    let mut model = Model {
        external_id: format!("GenModel{case}"),
        containers,
        views,
    };
    // A reverse direct relation through a (single) direct property of another node view.
    let node_indices = model.node_views();
    for &v in &node_indices {
        if !rng_bool(g, 0.4) {
            continue;
        }
        let through = node_indices.iter().copied().find(|&w| {
            w != v
                && model
                    .view_properties(w)
                    .iter()
                    .any(|p| p.ptype.kind == "direct" && !p.ptype.list)
        });
        if let Some(w) = through {
            let identifier = model
                .view_properties(w)
                .into_iter()
                .find(|p| p.ptype.kind == "direct" && !p.ptype.list)
                .map(|p| p.name)
                .unwrap_or_default();
            model.views[v].reverse = Some((w, identifier));
        }
    }
    model
}

fn rng_bool(g: &mut Gen, p: f64) -> bool {
    g.chance(p)
}
