//! Random valid data models: containers and views with every property type and list type,
//! case twins, names next to system columns, implements chains, views in two spaces with the
//! same externalId, several edge connections per edge type with different edge sources, edge
//! views and reverse relations, and view `filter`s (on own properties, on the node type,
//! `nested` through a direct relation, a `range` on an edge property) whose membership the
//! history moves instances in and out of.

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
    /// The view's `filter`: its membership is the filter instead of data in its containers.
    pub filter: Option<ViewFilter>,
}

/// A view filter and what kind it is (for the figures).
#[derive(Debug, Clone)]
pub struct ViewFilter {
    /// `equals`, `in`, `range`, `prefix`, `exists`, `node type` or `nested`.
    pub kind: &'static str,
    pub json: Value,
}

/// Values that put an instance inside or outside a filter on one container property: every
/// write of the property (through any view that maps it) picks from these most of the time,
/// so instances keep moving in and out of the filtered views.
#[derive(Debug, Clone)]
pub struct Lever {
    pub container: usize,
    pub property: String,
    /// The filter operator (`equals`, `in`, `range`, `prefix`, `exists`) ...
    pub op: &'static str,
    /// ... and its arguments besides `property`.
    pub args: serde_json::Map<String, Value>,
    /// Values inside the filter; `None` means any non-null value (an `exists` filter).
    pub inside: Option<Vec<Value>>,
    /// Values outside the filter.
    pub outside: Vec<Value>,
}

impl Lever {
    /// The filter on the lever's property, named by `property` (a container or view
    /// property reference).
    pub fn filter(&self, property: Value) -> Value {
        let mut body = self.args.clone();
        body.insert("property".into(), property);
        json!({ self.op: body })
    }
}

/// The direct relation a `nested` filter follows, and the view whose nodes it should
/// mostly point at (the nodes whose property the inner filter reads).
#[derive(Debug, Clone)]
pub struct Scope {
    pub container: usize,
    pub property: String,
    pub target_view: usize,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub external_id: String,
    pub containers: Vec<Container>,
    pub views: Vec<View>,
    /// Properties that filters read, with values inside and outside them.
    pub levers: Vec<Lever>,
    /// Direct relations that `nested` filters follow.
    pub scopes: Vec<Scope>,
    /// Node types (in the data space) that nodes are given; type filters match the first.
    pub node_types: Vec<String>,
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

    /// The container that holds a view's property (own containers override inherited ones).
    pub fn property_container(&self, view: usize, name: &str) -> Option<usize> {
        let v = &self.views[view];
        let own = v
            .containers
            .iter()
            .rev()
            .copied()
            .find(|&c| self.containers[c].properties.iter().any(|p| p.name == name));
        own.or_else(|| {
            v.implements
                .and_then(|parent| self.property_container(parent, name))
        })
    }

    /// The lever of a container property, if a filter reads it.
    pub fn lever(&self, container: usize, name: &str) -> Option<&Lever> {
        self.levers
            .iter()
            .find(|l| l.container == container && l.property == name)
    }

    /// The `nested` scope a container property is, if any.
    pub fn scope(&self, container: usize, name: &str) -> Option<&Scope> {
        self.scopes
            .iter()
            .find(|s| s.container == container && s.property == name)
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
                if let Some(filter) = &v.filter {
                    view["filter"] = filter.json.clone();
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
            filter: None,
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
            filter: None,
        });
    }

    let mut model = Model {
        external_id: format!("GenModel{case}"),
        containers,
        views,
        levers: Vec::new(),
        scopes: Vec::new(),
        node_types: vec!["TypeA".into(), "TypeB".into(), "TypeC".into()],
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
    add_filters(g, &mut model);
    model
}

fn rng_bool(g: &mut Gen, p: f64) -> bool {
    g.chance(p)
}

/// The filter operators a property of `kind` takes here (all within what CDF allows).
fn operators(ptype: &PropType) -> &'static [&'static str] {
    if ptype.list {
        return &["exists"];
    }
    match ptype.kind {
        "text" => &["equals", "in", "prefix", "exists"],
        "int32" | "int64" => &["equals", "in", "range", "exists"],
        "float64" => &["range", "exists"],
        "boolean" => &["equals", "exists"],
        "enum" => &["equals", "in", "exists"],
        _ => &["exists"],
    }
}

/// A lever on `container.property` with a random operator the type takes.
fn lever(g: &mut Gen, container: usize, property: &Property) -> Lever {
    let op = *g.pick(operators(&property.ptype));
    lever_with(op, container, property)
}

/// A lever on `container.property` with operator `op`: its arguments, and values inside
/// and outside it (`null` is outside every one).
fn lever_with(op: &'static str, container: usize, property: &Property) -> Lever {
    let kind = property.ptype.kind;
    let (args, inside, mut outside) = match (op, kind) {
        ("equals", "text") => (
            json!({"value": "on"}),
            vec![json!("on")],
            vec![json!("off"), json!("On"), json!("")],
        ),
        ("equals", "boolean") => (
            json!({"value": true}),
            vec![json!(true)],
            vec![json!(false)],
        ),
        ("equals", "enum") => (
            json!({"value": "alpha"}),
            vec![json!("alpha")],
            vec![json!("Beta"), json!("gamma_3")],
        ),
        ("equals", _) => (
            json!({"value": 7}),
            vec![json!(7)],
            vec![json!(8), json!(-7), json!(0)],
        ),
        ("in", "text") => {
            let values = vec![json!("on"), json!("hot"), json!("æøå ✓")];
            (
                json!({"values": values}),
                values,
                vec![json!("cold"), json!("ON")],
            )
        }
        ("in", "enum") => {
            let values = vec![json!("alpha"), json!("Beta")];
            (json!({"values": values}), values, vec![json!("gamma_3")])
        }
        ("in", _) => {
            let values = vec![json!(7), json!(42), json!(-1)];
            (
                json!({"values": values}),
                values,
                vec![json!(0), json!(41), json!(i32::MAX)],
            )
        }
        ("range", "float64") => (
            json!({"gte": 0.0, "lt": 1.0}),
            vec![json!(0.0), json!(0.25), json!(0.999)],
            vec![json!(1.0), json!(-0.5), json!(1e300)],
        ),
        ("range", _) => (
            json!({"gte": -100, "lt": 100}),
            vec![json!(-100), json!(0), json!(99)],
            vec![json!(100), json!(-101), json!(i32::MAX)],
        ),
        ("prefix", _) => (
            json!({"value": "on"}),
            vec![json!("on"), json!("on-1"), json!("onwards ✓")],
            vec![json!("off"), json!(""), json!("x-on"), json!("o")],
        ),
        _ => (json!({}), Vec::new(), Vec::new()),
    };
    outside.push(Value::Null);
    Lever {
        container,
        property: property.name.clone(),
        op,
        args: match args {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        },
        inside: if op == "exists" { None } else { Some(inside) },
        outside,
    }
}

/// A property name no container of the model uses yet.
fn fresh_name(model: &Model, stem: &str) -> String {
    let taken = |name: &str| {
        model
            .containers
            .iter()
            .any(|c| c.properties.iter().any(|p| p.name == name))
    };
    let mut n = 0;
    loop {
        let name = format!("{stem}{n}");
        if !taken(&name) {
            return name;
        }
        n += 1;
    }
}

/// The properties of a view's own containers that no filter reads or follows yet.
fn free_properties(model: &Model, view: usize) -> Vec<(usize, Property)> {
    model.views[view]
        .containers
        .iter()
        .flat_map(|&c| {
            model.containers[c]
                .properties
                .iter()
                .map(move |p| (c, p.clone()))
        })
        .filter(|(c, p)| model.lever(*c, &p.name).is_none() && model.scope(*c, &p.name).is_none())
        .collect()
}

/// A reference to `container.property`: the container form, or now and then the form
/// through the view (the filter of the view being defined may name the view itself).
fn property_ref(g: &mut Gen, model: &Model, view: usize, container: usize, name: &str) -> Value {
    if g.chance(0.3) {
        let v = &model.views[view].id;
        json!([v.space, format!("{}/1", v.external_id), name])
    } else {
        let c = &model.containers[container];
        json!([c.space, c.external_id, name])
    }
}

/// The kinds of property a filter operator suits best, for a property added to carry it.
fn kind_for(op: &str) -> &'static str {
    match op {
        "range" => "int64",
        "exists" => "json",
        _ => "text",
    }
}

/// A filter with a random operator on one of the view's own properties that no filter reads
/// yet and that takes the operator (a property is added when none does).
fn own_property_filter(g: &mut Gen, model: &mut Model, view: usize) -> Option<ViewFilter> {
    let op = *g.pick(&["equals", "in", "range", "prefix", "exists"]);
    let free: Vec<(usize, Property)> = free_properties(model, view)
        .into_iter()
        .filter(|(_, p)| operators(&p.ptype).contains(&op))
        .collect();
    let (container, property) = if free.is_empty() {
        let property = Property {
            name: fresh_name(model, "key"),
            ptype: PropType {
                kind: kind_for(op),
                list: false,
            },
        };
        let c = *g.pick(&model.views[view].containers);
        model.containers[c].properties.push(property.clone());
        (c, property)
    } else {
        g.pick(&free).clone()
    };
    let lever = lever_with(op, container, &property);
    let reference = property_ref(g, model, view, container, &property.name);
    let filter = ViewFilter {
        kind: lever.op,
        json: lever.filter(reference),
    };
    model.levers.push(lever);
    Some(filter)
}

/// A filter on the node type: nodes of the first type are members, whatever their data.
fn node_type_filter(model: &Model) -> Value {
    json!({"equals": {"property": ["node", "type"],
                      "value": {"space": DATA_SPACE, "externalId": model.node_types[0]}}})
}

/// A `nested` filter: the view's single direct relation (added when it has none) must point
/// at a node that matches a filter on one of another node view's properties, or on its type.
fn nested_filter(g: &mut Gen, model: &mut Model, view: usize) -> Option<ViewFilter> {
    let scope = free_properties(model, view)
        .into_iter()
        .find(|(_, p)| p.ptype.kind == "direct" && !p.ptype.list);
    let (scope_container, scope_name) = match scope {
        Some((c, p)) => (c, p.name),
        None => {
            let name = fresh_name(model, "ref");
            let c = model.views[view].containers[0];
            model.containers[c].properties.push(Property {
                name: name.clone(),
                ptype: PropType {
                    kind: "direct",
                    list: false,
                },
            });
            (c, name)
        }
    };
    let node_views = model.node_views();
    let target = *g.pick(&node_views);
    let inner = if g.chance(0.2) {
        node_type_filter(model)
    } else {
        // Reuse the lever of a property another filter reads, or make one.
        let own: Vec<(usize, Property)> = model.views[target]
            .containers
            .iter()
            .flat_map(|&c| {
                model.containers[c]
                    .properties
                    .iter()
                    .map(move |p| (c, p.clone()))
            })
            .filter(|(c, p)| model.scope(*c, &p.name).is_none() && p.name != scope_name)
            .collect();
        if own.is_empty() {
            return None;
        }
        let (container, property) = g.pick(&own).clone();
        let c = &model.containers[container];
        let reference = json!([c.space, c.external_id, property.name]);
        match model.lever(container, &property.name) {
            Some(existing) => existing.filter(reference),
            None => {
                let lever = lever(g, container, &property);
                let inner = lever.filter(reference);
                model.levers.push(lever);
                inner
            }
        }
    };
    let c = &model.containers[scope_container];
    let scope_ref = json!([c.space, c.external_id, scope_name]);
    model.scopes.push(Scope {
        container: scope_container,
        property: scope_name,
        target_view: target,
    });
    Some(ViewFilter {
        kind: "nested",
        json: json!({"nested": {"scope": scope_ref, "filter": inner}}),
    })
}

/// A `range` filter on a numeric property of an edge view (added when it has none).
fn edge_range_filter(g: &mut Gen, model: &mut Model, view: usize) -> Option<ViewFilter> {
    let numeric = free_properties(model, view)
        .into_iter()
        .find(|(_, p)| !p.ptype.list && matches!(p.ptype.kind, "int32" | "int64" | "float64"));
    let (container, property) = match numeric {
        Some(found) => found,
        None => {
            let property = Property {
                name: fresh_name(model, "rangeKey"),
                ptype: PropType {
                    kind: if g.chance(0.5) { "float64" } else { "int64" },
                    list: false,
                },
            };
            let c = model.views[view].containers[0];
            model.containers[c].properties.push(property.clone());
            (c, property)
        }
    };
    let lever = lever_with("range", container, &property);
    let reference = property_ref(g, model, view, container, &property.name);
    let filter = ViewFilter {
        kind: "edge range",
        json: lever.filter(reference),
    };
    model.levers.push(lever);
    Some(filter)
}

/// Filters on about half the node views (at least one), their kinds taken in turn from a
/// random start (own property, node type, nested), and on about half the edge views (at
/// least one): a range on an edge property.
fn add_filters(g: &mut Gen, model: &mut Model) {
    let node_views = model.node_views();
    let always = *g.pick(&node_views);
    let mut turn = g.range(0, 3);
    for view in node_views {
        if view != always && !g.chance(0.55) {
            continue;
        }
        let filter = match turn % 3 {
            0 => own_property_filter(g, model, view),
            1 => Some(ViewFilter {
                kind: "node type",
                json: node_type_filter(model),
            }),
            _ => nested_filter(g, model, view),
        };
        turn += 1;
        model.views[view].filter = filter;
    }
    let edge_views = model.edge_views();
    let always = *g.pick(&edge_views);
    for view in edge_views {
        if view == always || g.chance(0.4) {
            model.views[view].filter = edge_range_filter(g, model, view);
        }
    }
}
