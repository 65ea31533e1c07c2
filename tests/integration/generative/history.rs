//! Random instance histories: creates, updates, clears to null, deletes and recreates of
//! nodes and edges, in rounds applied to the emulator between sync and snapshot runs.
//!
//! Instances move in and out of filtered views: writes of a property a filter reads mostly
//! pick values inside or outside the filter, nodes change their type, direct relations that
//! `nested` filters follow are repointed and the nodes they point at change. Nodes are deleted
//! and re-created with data in other views between two syncs, and deleted (or never existing)
//! nodes are re-created empty by a direct relation that points at them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::model::{DATA_SPACE, Model, ViewRef};
use super::rng::Gen;
use super::values;

#[derive(Debug, Clone)]
struct NodeState {
    live: bool,
    /// The views the node was given data in (empty for a node re-created by a relation).
    views: Vec<usize>,
}

#[derive(Debug, Clone)]
struct EdgeState {
    live: bool,
    edge_type: String,
    start: String,
    end: String,
    sources: Vec<ViewRef>,
}

/// What the generator has written so far, so that updates and deletes hit real instances.
#[derive(Default)]
pub struct History {
    nodes: BTreeMap<String, NodeState>,
    edges: BTreeMap<String, EdgeState>,
    next_id: usize,
    /// Instance writes and deletes applied, for the report.
    pub writes: usize,
    pub deletes: usize,
    /// Writes that only move an instance relative to a filter: a property a filter reads,
    /// the node type, or the direct relation a `nested` filter follows.
    pub moves: usize,
    /// Nodes deleted and re-created with data in other views in the same round.
    pub recreated_elsewhere: usize,
    /// Deleted nodes re-created empty by a direct relation that points at them.
    pub auto_created: usize,
}

/// One step of a round: instance writes (with `autoCreateDirectRelations`) or deletes.
pub enum Step {
    Upsert(Vec<Value>),
    Delete(Vec<Value>),
}

/// Nodes that writes may point direct relations at: live ones, and per view the live ones
/// with data in it (the targets a `nested` filter's relation mostly points at).
struct Targets {
    live: Vec<String>,
    by_view: BTreeMap<usize, Vec<String>>,
}

impl Targets {
    fn of(nodes: &BTreeMap<String, NodeState>, excluded: &BTreeSet<String>) -> Self {
        let mut live = Vec::new();
        let mut by_view: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (xid, node) in nodes {
            if !node.live || excluded.contains(xid) {
                continue;
            }
            live.push(xid.clone());
            for &v in &node.views {
                by_view.entry(v).or_default().push(xid.clone());
            }
        }
        Self { live, by_view }
    }
}

fn node_ref(xid: &str) -> Value {
    json!({"space": DATA_SPACE, "externalId": xid})
}

fn node_body(xid: &str, sources: Vec<Value>) -> Value {
    json!({"instanceType": "node", "space": DATA_SPACE, "externalId": xid, "sources": sources})
}

/// A value of `view`'s property `name`: inside or outside the filter that reads it, the
/// node a `nested` filter's relation should point at, or any value of its type.
fn property_value(
    g: &mut Gen,
    model: &Model,
    view: usize,
    property: &super::model::Property,
    targets: &Targets,
) -> Value {
    let container = model.property_container(view, &property.name);
    if let Some(lever) = container.and_then(|c| model.lever(c, &property.name))
        && g.chance(0.85)
    {
        if g.chance(0.5) {
            return match &lever.inside {
                Some(inside) => g.pick(inside).clone(),
                None => non_null(g, &property.ptype, &targets.live),
            };
        }
        return g.pick(&lever.outside).clone();
    }
    if let Some(scope) = container.and_then(|c| model.scope(c, &property.name))
        && g.chance(0.7)
        && let Some(hubs) = targets.by_view.get(&scope.target_view)
        && !hubs.is_empty()
    {
        return node_ref(g.pick::<String>(hubs));
    }
    values::value(g, &property.ptype, &targets.live)
}

/// Any value of the type but null (for an `exists` filter).
fn non_null(g: &mut Gen, ptype: &super::model::PropType, nodes: &[String]) -> Value {
    for _ in 0..8 {
        let value = values::value(g, ptype, nodes);
        if !value.is_null() {
            return value;
        }
    }
    if ptype.list {
        json!([])
    } else {
        values::value(g, ptype, nodes)
    }
}

impl History {
    pub fn instances(&self) -> usize {
        self.nodes.len() + self.edges.len()
    }

    fn node_source(model: &Model, view: usize, g: &mut Gen, targets: &Targets) -> Value {
        let mut properties = serde_json::Map::new();
        for p in model.view_properties(view) {
            if g.chance(0.75) {
                properties.insert(p.name.clone(), property_value(g, model, view, &p, targets));
            }
        }
        json!({"source": model.views[view].id.to_json(), "properties": properties})
    }

    fn edge_source(model: &Model, source: &ViewRef, g: &mut Gen, targets: &Targets) -> Value {
        let mut properties = serde_json::Map::new();
        if let Some(view) = model.view_index(source) {
            for p in model.view_properties(view) {
                if g.chance(0.8) {
                    properties.insert(p.name.clone(), property_value(g, model, view, &p, targets));
                }
            }
        }
        json!({"source": source.to_json(), "properties": properties})
    }

    /// A new node body in random views (one, sometimes two), now and then with a type.
    fn new_node(
        g: &mut Gen,
        model: &Model,
        xid: &str,
        targets: &Targets,
        avoid: &[usize],
    ) -> (Value, Vec<usize>) {
        let node_views = model.node_views();
        let others: Vec<usize> = node_views
            .iter()
            .copied()
            .filter(|v| !avoid.contains(v))
            .collect();
        let pool = if others.is_empty() {
            &node_views
        } else {
            &others
        };
        let mut views = vec![*g.pick(pool)];
        if g.chance(0.2) {
            let other = *g.pick(pool);
            if !views.contains(&other) {
                views.push(other);
            }
        }
        let sources: Vec<Value> = views
            .iter()
            .map(|&v| Self::node_source(model, v, g, targets))
            .collect();
        let mut body = node_body(xid, sources);
        if g.chance(0.35) {
            body["type"] = node_ref(g.pick::<String>(&model.node_types));
        }
        (body, views)
    }

    /// A write that only moves a node relative to a filter: one property a filter reads or
    /// a `nested` filter follows (through a view the node has data in), or its type.
    fn move_node(&mut self, g: &mut Gen, model: &Model, xid: &str, targets: &Targets) -> Value {
        let views = self.nodes[xid].views.clone();
        let mut levers = Vec::new();
        for &v in &views {
            for p in model.view_properties(v) {
                let Some(c) = model.property_container(v, &p.name) else {
                    continue;
                };
                if model.lever(c, &p.name).is_some() || model.scope(c, &p.name).is_some() {
                    levers.push((v, p));
                }
            }
        }
        self.moves += 1;
        if levers.is_empty() || g.chance(0.3) {
            let mut body = node_body(xid, Vec::new());
            body["type"] = node_ref(g.pick::<String>(&model.node_types));
            return body;
        }
        let (view, property) = g.pick(&levers).clone();
        let value = property_value(g, model, view, &property, targets);
        node_body(
            xid,
            vec![json!({"source": model.views[view].id.to_json(),
                        "properties": {property.name.clone(): value}})],
        )
    }

    /// Generates the next round as steps applied in order. The first round only creates.
    pub fn round(&mut self, g: &mut Gen, model: &Model, first: bool) -> Vec<Step> {
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        let node_views = model.node_views();
        let targets = Targets::of(&self.nodes, &BTreeSet::new());
        let live = targets.live.clone();

        // New nodes, some with data in two views, some with a type.
        let creates = if first {
            g.range(8, 30)
        } else {
            g.range(0, 10)
        };
        for _ in 0..creates {
            let xid = format!("n{:04}", self.next_id);
            self.next_id += 1;
            let (body, views) = Self::new_node(g, model, &xid, &targets, &[]);
            upserts.push(body);
            self.nodes.insert(xid, NodeState { live: true, views });
        }

        let mut deleted_now: BTreeSet<String> = BTreeSet::new();
        if !first {
            // Updates (new values, or clears to null) of live nodes, and moves.
            for xid in &live {
                if g.chance(0.2) {
                    let body = self.move_node(g, model, xid, &targets);
                    upserts.push(body);
                    continue;
                }
                if !g.chance(0.3) {
                    continue;
                }
                let views = self.nodes[xid].views.clone();
                let view = if views.is_empty() {
                    // A node re-created empty gets data in a view.
                    let view = *g.pick(&node_views);
                    if let Some(state) = self.nodes.get_mut(xid) {
                        state.views.push(view);
                    }
                    view
                } else {
                    *g.pick(&views)
                };
                let mut source = Self::node_source(model, view, g, &targets);
                if g.chance(0.3) {
                    // Clear every property the view has.
                    let cleared: serde_json::Map<String, Value> = model
                        .view_properties(view)
                        .into_iter()
                        .map(|p| (p.name, Value::Null))
                        .collect();
                    source["properties"] = Value::Object(cleared);
                }
                upserts.push(node_body(xid, vec![source]));
            }
            // Deletes of live nodes that were not just written; recreates of deleted ones,
            // in the views they had or in others.
            let written: BTreeSet<String> = upserts
                .iter()
                .filter_map(|u| u["externalId"].as_str().map(str::to_owned))
                .collect();
            for xid in &live {
                if !written.contains(xid) && g.chance(0.12) {
                    deletes.push(
                        json!({"instanceType": "node", "space": DATA_SPACE, "externalId": xid}),
                    );
                    deleted_now.insert(xid.clone());
                    if let Some(state) = self.nodes.get_mut(xid) {
                        state.live = false;
                    }
                }
            }
            let dead: Vec<String> = self
                .nodes
                .iter()
                .filter(|(k, n)| !n.live && !deleted_now.contains(*k))
                .map(|(k, _)| k.clone())
                .collect();
            for xid in dead {
                if g.chance(0.5) {
                    let old = self.nodes[&xid].views.clone();
                    let avoid = if g.chance(0.5) { old } else { Vec::new() };
                    let (body, views) = Self::new_node(g, model, &xid, &targets, &avoid);
                    upserts.push(body);
                    self.nodes.insert(xid, NodeState { live: true, views });
                }
            }
        }

        // Edges between nodes that stay live this round.
        let endpoints: Vec<String> = self
            .nodes
            .iter()
            .filter(|(k, n)| n.live && !deleted_now.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        let edge_targets = Targets::of(&self.nodes, &deleted_now);
        if !endpoints.is_empty() {
            let mut types = model.edge_types();
            // Edges of a type no connection names, with data in an edge view only.
            for e in model.edge_views() {
                types.push((format!("free_{}", e), vec![model.views[e].id.clone()]));
            }
            for (edge_type, sources) in &types {
                let count = if first { g.range(1, 8) } else { g.range(0, 4) };
                for _ in 0..count {
                    let xid = format!("e{:04}", self.next_id);
                    self.next_id += 1;
                    let chosen: Vec<ViewRef> =
                        sources.iter().filter(|_| g.chance(0.7)).cloned().collect();
                    let body_sources: Vec<Value> = chosen
                        .iter()
                        .map(|s| Self::edge_source(model, s, g, &edge_targets))
                        .collect();
                    let start = g.pick(&endpoints).clone();
                    let end = g.pick(&endpoints).clone();
                    upserts.push(json!({
                        "instanceType": "edge", "space": DATA_SPACE, "externalId": xid,
                        "type": {"space": DATA_SPACE, "externalId": edge_type},
                        "startNode": node_ref(&start),
                        "endNode": node_ref(&end),
                        "sources": body_sources,
                    }));
                    self.edges.insert(
                        xid,
                        EdgeState {
                            live: true,
                            edge_type: edge_type.clone(),
                            start,
                            end,
                            sources: chosen,
                        },
                    );
                }
            }
            if !first {
                let existing: Vec<(String, EdgeState)> = self
                    .edges
                    .iter()
                    .filter(|(_, e)| {
                        e.live && endpoints.contains(&e.start) && endpoints.contains(&e.end)
                    })
                    .map(|(k, e)| (k.clone(), e.clone()))
                    .collect();
                for (xid, edge) in existing {
                    if upserts.iter().any(|u| u["externalId"] == xid.as_str()) {
                        continue;
                    }
                    if g.chance(0.15) {
                        deletes.push(
                            json!({"instanceType": "edge", "space": DATA_SPACE, "externalId": xid}),
                        );
                        if let Some(state) = self.edges.get_mut(&xid) {
                            state.live = false;
                        }
                    } else if g.chance(0.3) && !edge.sources.is_empty() {
                        // New values; a property an edge view's filter reads mostly moves
                        // the edge in or out of it.
                        let source = g.pick(&edge.sources).clone();
                        let body = Self::edge_source(model, &source, g, &edge_targets);
                        upserts.push(json!({
                            "instanceType": "edge", "space": DATA_SPACE, "externalId": xid,
                            "type": {"space": DATA_SPACE, "externalId": edge.edge_type},
                            "startNode": node_ref(&edge.start),
                            "endNode": node_ref(&edge.end),
                            "sources": [body],
                        }));
                    }
                }
            }
        }
        // CDF deletes the edges of a deleted node with it.
        for edge in self.edges.values_mut() {
            if !endpoints.contains(&edge.start) || !endpoints.contains(&edge.end) {
                edge.live = false;
            }
        }

        // After the deletes: nodes deleted in this round come back with data in other
        // views, and deleted nodes come back empty through a direct relation that points at
        // them (`autoCreateDirectRelations`). Neither is reported to the old views' streams.
        let mut after = Vec::new();
        if !first {
            let survivors = Targets::of(&self.nodes, &deleted_now);
            for xid in &deleted_now {
                if g.chance(0.3) {
                    let old = self.nodes[xid].views.clone();
                    let (body, views) = Self::new_node(g, model, xid, &survivors, &old);
                    after.push(body);
                    self.recreated_elsewhere += 1;
                    self.nodes
                        .insert(xid.clone(), NodeState { live: true, views });
                }
            }
            // Writers: survivors with a view that has a single direct relation.
            let writers: Vec<(String, usize, String)> = survivors
                .live
                .iter()
                .flat_map(|xid| {
                    self.nodes[xid].views.iter().flat_map(move |&v| {
                        model
                            .view_properties(v)
                            .into_iter()
                            .filter(|p| p.ptype.kind == "direct" && !p.ptype.list)
                            .map(move |p| (xid.clone(), v, p.name))
                    })
                })
                .collect();
            let dead: Vec<String> = self
                .nodes
                .iter()
                .filter(|(_, n)| !n.live)
                .map(|(k, _)| k.clone())
                .collect();
            let mut used: BTreeSet<String> = BTreeSet::new();
            for xid in dead {
                if writers.is_empty() || !g.chance(0.3) {
                    continue;
                }
                let (writer, view, property) = g.pick(&writers).clone();
                // One write per instance and request.
                if !used.insert(writer.clone()) {
                    continue;
                }
                after.push(node_body(
                    &writer,
                    vec![json!({"source": model.views[view].id.to_json(),
                                "properties": {property: node_ref(&xid)}})],
                ));
                self.auto_created += 1;
                self.nodes.insert(
                    xid,
                    NodeState {
                        live: true,
                        views: Vec::new(),
                    },
                );
            }
        }

        self.writes += upserts.len() + after.len();
        self.deletes += deletes.len();
        let mut steps = vec![Step::Upsert(upserts)];
        if !deletes.is_empty() {
            steps.push(Step::Delete(deletes));
        }
        if !after.is_empty() {
            steps.push(Step::Upsert(after));
        }
        steps
    }
}
