//! Bulk seeding of nodes through one view without JSON request objects: property names are
//! resolved once and each node is a row of values. Same validation and semantics as an
//! upsert without `replace` (auto-created direct-relation targets, no-op detection), at a
//! fraction of the allocations of a `POST /models/instances` body.

use serde_json::Value;

use super::DataModeling;
use super::apply::{check_constraints, collect_direct_targets, default_row};
use super::store::{ContainerRow, InstanceData, InstanceKey, Kind};
use super::values::normalize_value;
use super::write_plan::{PlanCache, Target};
use crate::error::{ApiError, ApiResult};
use crate::ids::{NodeId, ViewId, validate_instance_xid, validate_space};

/// One node to seed: its id and the values of the seeded properties, in the order of the
/// property names given to [`crate::Control::seed_nodes`] (`Value::Null` clears a value).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedNode {
    pub space: String,
    pub external_id: String,
    pub values: Vec<Value>,
}

impl DataModeling {
    /// Upserts nodes with data in `view`. Validates everything before writing anything.
    /// Returns how many nodes changed.
    pub fn seed_nodes(
        &mut self,
        view: &ViewId,
        properties: &[&str],
        nodes: Vec<SeedNode>,
        now: i64,
    ) -> ApiResult<usize> {
        let mut plans = PlanCache::default();
        let plan = plans.get(&self.schema, &view.to_json(), &|| "seed".to_string())?;
        plan.check_kind(Kind::Node).map_err(ApiError::bad_request)?;
        let mut cells = Vec::with_capacity(properties.len());
        for name in properties {
            match plan.props.get(*name) {
                Some(Target::Cell {
                    container,
                    slot,
                    ty,
                    label,
                }) => cells.push((*name, *container, *slot, ty, label)),
                Some(Target::Connection) => {
                    return Err(ApiError::bad_request(format!(
                        "seed: property `{name}` of view {view} is a connection; connections have no stored values"
                    )));
                }
                None => {
                    return Err(ApiError::bad_request(format!(
                        "seed: property `{name}` does not exist in view {view}"
                    )));
                }
            }
        }
        let touched: Vec<_> = plan.containers.iter().map(|(idx, _, _)| *idx).collect();
        let mut planned: Vec<(InstanceKey, InstanceData)> = Vec::with_capacity(nodes.len());
        let mut direct_targets: Vec<(NodeId, usize)> = Vec::new();
        for (i, node) in nodes.into_iter().enumerate() {
            if node.values.len() != cells.len() {
                return Err(ApiError::bad_request(format!(
                    "seed[{i}]: {} values for {} properties",
                    node.values.len(),
                    cells.len()
                )));
            }
            validate_space(&node.space)
                .map_err(|e| ApiError::bad_request(format!("seed[{i}]: {}", e.message)))?;
            validate_instance_xid(&node.external_id)
                .map_err(|e| ApiError::bad_request(format!("seed[{i}]: {}", e.message)))?;
            let key = InstanceKey::new(Kind::Node, node.space, node.external_id);
            let existing = self.store.live(&key);
            let old_rows: &[ContainerRow] = existing.map_or(&[], |e| &e.data.rows);
            let mut rows: Vec<ContainerRow> = old_rows.to_vec();
            for idx in &touched {
                if !rows.iter().any(|r| r.container == *idx) {
                    rows.push(default_row(&self.schema, *idx));
                }
            }
            rows.sort_by_key(|r| r.container);
            for ((name, container, slot, ty, label), value) in cells.iter().zip(node.values) {
                let v = normalize_value(value, ty, &|| {
                    format!(
                        "seed[{i}]: invalid value for property `{name}` of view {view} ({label})"
                    )
                })?;
                if let Some(Value::Object(_) | Value::Array(_)) = &v {
                    collect_direct_targets(
                        &self.schema,
                        *container,
                        *slot,
                        v.as_ref(),
                        &mut direct_targets,
                        i,
                    );
                }
                if let Some(r) = rows.iter_mut().find(|r| r.container == *container)
                    && let Some(cell) = r.values.get_mut(*slot)
                {
                    *cell = v;
                }
            }
            let id_text = || format!("node {}:{}", key.space, key.external_id);
            check_constraints(
                &self.schema,
                &rows,
                &touched,
                old_rows,
                &|| format!("seed[{i}]"),
                &id_text,
            )?;
            let data = InstanceData {
                ty: existing.and_then(|e| e.data.ty.clone()),
                start: None,
                end: None,
                rows,
            };
            if existing.is_none_or(|e| e.data != data) {
                planned.push((key, data));
            }
        }
        let auto: Vec<NodeId> = direct_targets
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| !self.store.node_exists(n))
            .collect();
        let changed = planned.len();
        for (key, data) in planned {
            self.store.write(key, data, now);
        }
        for n in auto {
            if !self.store.node_exists(&n) {
                let key = InstanceKey::new(Kind::Node, n.space, n.external_id);
                self.store.write(
                    key,
                    InstanceData {
                        ty: None,
                        start: None,
                        end: None,
                        rows: Vec::new(),
                    },
                    now,
                );
            }
        }
        Ok(changed)
    }
}
