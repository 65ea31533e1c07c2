//! Random instance histories: creates, updates, clears to null, deletes and recreates of
//! nodes and edges, in rounds applied to the emulator between sync and snapshot runs.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::model::{DATA_SPACE, Model, ViewRef};
use super::rng::Gen;
use super::values;

#[derive(Debug, Clone)]
struct NodeState {
    live: bool,
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
}

/// One round of changes: an upsert body and a delete body (either may be empty).
pub struct Round {
    pub upserts: Vec<Value>,
    pub deletes: Vec<Value>,
}

impl History {
    pub fn instances(&self) -> usize {
        self.nodes.len() + self.edges.len()
    }

    fn node_source(model: &Model, view: usize, g: &mut Gen, nodes: &[String]) -> Value {
        let mut properties = serde_json::Map::new();
        for p in model.view_properties(view) {
            if g.chance(0.75) {
                properties.insert(p.name.clone(), values::value(g, &p.ptype, nodes));
            }
        }
        json!({"source": model.views[view].id.to_json(), "properties": properties})
    }

    fn edge_source(model: &Model, source: &ViewRef, g: &mut Gen, nodes: &[String]) -> Value {
        let mut properties = serde_json::Map::new();
        if let Some(view) = model.view_index(source) {
            for p in model.view_properties(view) {
                if g.chance(0.8) {
                    properties.insert(p.name.clone(), values::value(g, &p.ptype, nodes));
                }
            }
        }
        json!({"source": source.to_json(), "properties": properties})
    }

    fn live_nodes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.live)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Generates the next round. The first round only creates.
    pub fn round(&mut self, g: &mut Gen, model: &Model, first: bool) -> Round {
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        let node_views = model.node_views();
        let live = self.live_nodes();

        // New nodes, some with data in two views.
        let creates = if first {
            g.range(8, 30)
        } else {
            g.range(0, 10)
        };
        for _ in 0..creates {
            let xid = format!("n{:04}", self.next_id);
            self.next_id += 1;
            let mut views = vec![*g.pick(&node_views)];
            if g.chance(0.2) {
                let other = *g.pick(&node_views);
                if !views.contains(&other) {
                    views.push(other);
                }
            }
            let sources: Vec<Value> = views
                .iter()
                .map(|&v| Self::node_source(model, v, g, &live))
                .collect();
            upserts.push(json!({"instanceType": "node", "space": DATA_SPACE, "externalId": xid, "sources": sources}));
            self.nodes.insert(xid, NodeState { live: true, views });
        }

        if !first {
            // Updates (new values, or clears to null) of live nodes.
            for xid in &live {
                if !g.chance(0.3) {
                    continue;
                }
                let state = &self.nodes[xid];
                let view = *g.pick(&state.views);
                let mut source = Self::node_source(model, view, g, &live);
                if g.chance(0.3) {
                    // Clear every property the view has.
                    let cleared: serde_json::Map<String, Value> = model
                        .view_properties(view)
                        .into_iter()
                        .map(|p| (p.name, Value::Null))
                        .collect();
                    source["properties"] = Value::Object(cleared);
                }
                upserts.push(json!({"instanceType": "node", "space": DATA_SPACE, "externalId": xid, "sources": [source]}));
            }
            // Deletes of live nodes that were not just updated; recreates of deleted ones.
            let updated: Vec<String> = upserts
                .iter()
                .filter_map(|u| u["externalId"].as_str().map(str::to_owned))
                .collect();
            for xid in &live {
                if !updated.contains(xid) && g.chance(0.12) {
                    deletes.push(
                        json!({"instanceType": "node", "space": DATA_SPACE, "externalId": xid}),
                    );
                    if let Some(state) = self.nodes.get_mut(xid) {
                        state.live = false;
                    }
                }
            }
            let dead: Vec<String> = self
                .nodes
                .iter()
                .filter(|(k, n)| !n.live && !deletes.iter().any(|d| d["externalId"] == k.as_str()))
                .map(|(k, _)| k.clone())
                .collect();
            // A recreate writes to the views the node had before: sync matches `hasData`
            // against an instance's current state, so a node deleted and recreated in
            // other views between two reads of a stream never shows its tombstone to the
            // old view's stream (CDF behaves the same; see docs/operations.md).
            for xid in dead {
                if g.chance(0.5) {
                    let views = self.nodes[&xid].views.clone();
                    let sources: Vec<Value> = views
                        .iter()
                        .map(|&v| Self::node_source(model, v, g, &live))
                        .collect();
                    upserts.push(json!({"instanceType": "node", "space": DATA_SPACE, "externalId": xid, "sources": sources}));
                    if let Some(state) = self.nodes.get_mut(&xid) {
                        state.live = true;
                    }
                }
            }
        }

        // Edges between nodes that stay live this round.
        let endpoints: Vec<String> = self
            .nodes
            .iter()
            .filter(|(k, n)| n.live && !deletes.iter().any(|d| d["externalId"] == k.as_str()))
            .map(|(k, _)| k.clone())
            .collect();
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
                        .map(|s| Self::edge_source(model, s, g, &endpoints))
                        .collect();
                    let start = g.pick(&endpoints).clone();
                    let end = g.pick(&endpoints).clone();
                    upserts.push(json!({
                        "instanceType": "edge", "space": DATA_SPACE, "externalId": xid,
                        "type": {"space": DATA_SPACE, "externalId": edge_type},
                        "startNode": {"space": DATA_SPACE, "externalId": start},
                        "endNode": {"space": DATA_SPACE, "externalId": end},
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
                    } else if g.chance(0.25) && !edge.sources.is_empty() {
                        let source = g.pick(&edge.sources).clone();
                        let body = Self::edge_source(model, &source, g, &endpoints);
                        upserts.push(json!({
                            "instanceType": "edge", "space": DATA_SPACE, "externalId": xid,
                            "type": {"space": DATA_SPACE, "externalId": edge.edge_type},
                            "startNode": {"space": DATA_SPACE, "externalId": edge.start},
                            "endNode": {"space": DATA_SPACE, "externalId": edge.end},
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
        self.writes += upserts.len();
        self.deletes += deletes.len();
        Round { upserts, deletes }
    }
}
