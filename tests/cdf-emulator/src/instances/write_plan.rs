//! Per-batch resolution of write sources (views and containers) to container slots, so each
//! instance in a batch costs hash lookups instead of repeated schema traversal and cloning.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;

use super::store::Kind;
use crate::error::{ApiError, ApiResult};
use crate::ids::{SourceRef, parse_source_ref};
use crate::schema::types::PropertyType;
use crate::schema::views::ViewProperty;
use crate::schema::{ContainerIdx, Schema, UsedFor};

pub enum Target {
    Cell {
        container: ContainerIdx,
        slot: usize,
        ty: PropertyType,
        label: String,
    },
    Connection,
}

/// How one source maps property names onto container cells.
pub struct SourcePlan {
    /// `view sp:Xid/v` or `container sp:Xid`, for messages.
    pub label: String,
    pub used_for: UsedFor,
    /// Containers that get a row when this source is written, with their `usedFor`.
    pub containers: Vec<(ContainerIdx, UsedFor, String)>,
    pub props: HashMap<String, Target>,
}

impl SourcePlan {
    fn build(schema: &Schema, source: &SourceRef) -> ApiResult<SourcePlan> {
        match source {
            SourceRef::View(vid) => {
                let view = schema.view(vid).ok_or_else(|| {
                    ApiError::bad_request(format!("view {vid} does not exist"))
                        .with_missing(vec![vid.to_json()])
                })?;
                let mut containers = Vec::new();
                for cid in view.mapped_containers() {
                    let (idx, c) = schema.container(&cid).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "view {vid} maps container {cid}, which no longer exists"
                        ))
                    })?;
                    containers.push((idx, c.used_for, cid.to_string()));
                }
                let mut props = HashMap::new();
                for (name, p) in &view.all {
                    let target = match p {
                        ViewProperty::Connection(_) => Target::Connection,
                        ViewProperty::Mapped(m) => {
                            let Some((idx, c)) = schema.container(&m.container) else {
                                continue;
                            };
                            let Some((slot, cp)) = c.prop(&m.container_prop) else {
                                continue;
                            };
                            Target::Cell {
                                container: idx,
                                slot,
                                ty: cp.ty.clone(),
                                label: format!("{}.{}", m.container, m.container_prop),
                            }
                        }
                    };
                    props.insert(name.clone(), target);
                }
                Ok(SourcePlan {
                    label: format!("view {vid}"),
                    used_for: view.used_for,
                    containers,
                    props,
                })
            }
            SourceRef::Container(cid) => {
                let (idx, c) = schema.container(cid).ok_or_else(|| {
                    ApiError::bad_request(format!("container {cid} does not exist"))
                        .with_missing(vec![cid.to_json()])
                })?;
                let props = c
                    .properties
                    .iter()
                    .enumerate()
                    .map(|(slot, p)| {
                        let label = format!("{cid}.{}", p.identifier);
                        (
                            p.identifier.clone(),
                            Target::Cell {
                                container: idx,
                                slot,
                                ty: p.ty.clone(),
                                label,
                            },
                        )
                    })
                    .collect();
                Ok(SourcePlan {
                    label: format!("container {cid}"),
                    used_for: c.used_for,
                    containers: vec![(idx, c.used_for, cid.to_string())],
                    props,
                })
            }
        }
    }

    /// Checks that this source (and every container it writes) may hold `kind` data.
    pub fn check_kind(&self, kind: Kind) -> Result<(), String> {
        if !self.used_for.allows(kind) {
            return Err(format!(
                "{} is used for {}s and cannot hold {} data",
                self.label,
                self.used_for.as_str(),
                kind.as_str()
            ));
        }
        for (_, used_for, cid) in &self.containers {
            if !used_for.allows(kind) {
                return Err(format!(
                    "container {cid} (written through {}) is used for {}s and cannot hold {} data",
                    self.label,
                    used_for.as_str(),
                    kind.as_str()
                ));
            }
        }
        Ok(())
    }
}

/// Source plans of one batch, keyed by the source reference exactly as sent.
#[derive(Default)]
pub struct PlanCache {
    plans: Vec<(Value, Rc<SourcePlan>)>,
}

impl PlanCache {
    pub fn get(
        &mut self,
        schema: &Schema,
        source: &Value,
        what: &dyn Fn() -> String,
    ) -> ApiResult<Rc<SourcePlan>> {
        if let Some((_, p)) = self.plans.iter().find(|(v, _)| v == source) {
            return Ok(p.clone());
        }
        let sref = parse_source_ref(source, &format!("{}.source", what()))?;
        let plan = Rc::new(SourcePlan::build(schema, &sref).map_err(|e| ApiError {
            message: format!("{}: {}", what(), e.message),
            ..e
        })?);
        self.plans.push((source.clone(), plan.clone()));
        Ok(plan)
    }
}
