//! The instance store, indexed for sync: by change sequence (onePhase and streaming),
//! by `(kind, space, externalId)` (backfill order and lookups), by deletion time (purge),
//! and from nodes to the edges that touch them (cascading deletes).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::ids::NodeId;
use crate::schema::ContainerIdx;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Node,
    Edge,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Edge => "edge",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "node" => Some(Kind::Node),
            "edge" => Some(Kind::Edge),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceKey {
    pub kind: Kind,
    pub space: String,
    pub external_id: String,
}

impl InstanceKey {
    pub fn new(kind: Kind, space: impl Into<String>, external_id: impl Into<String>) -> Self {
        InstanceKey {
            kind,
            space: space.into(),
            external_id: external_id.into(),
        }
    }
    pub fn node_id(&self) -> NodeId {
        NodeId::new(&self.space, &self.external_id)
    }
    pub fn to_json(&self) -> Value {
        serde_json::json!({"instanceType": self.kind.as_str(), "space": self.space, "externalId": self.external_id})
    }
}

/// The values an instance holds in one container, indexed by the container's property slots.
/// `None` means null or never set.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRow {
    pub container: ContainerIdx,
    pub values: Vec<Option<Value>>,
}

/// Stored values may be deeply nested json (see `crate::deep`); they are dropped without
/// recursion wherever the row goes (replaced, purged, reset or the emulator dropped).
impl Drop for ContainerRow {
    fn drop(&mut self) {
        for value in self.values.iter_mut().flatten() {
            if crate::deep::is_nested(value) {
                crate::deep::drop_without_recursion(std::mem::take(value));
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceData {
    pub ty: Option<NodeId>,
    pub start: Option<NodeId>,
    pub end: Option<NodeId>,
    /// Sorted by container index.
    pub rows: Vec<ContainerRow>,
}

impl InstanceData {
    pub fn row(&self, c: ContainerIdx) -> Option<&ContainerRow> {
        self.rows.iter().find(|r| r.container == c)
    }
    pub fn value(&self, c: ContainerIdx, slot: usize) -> Option<&Value> {
        self.row(c)?.values.get(slot)?.as_ref()
    }
    pub fn has_row(&self, c: ContainerIdx) -> bool {
        self.rows.iter().any(|r| r.container == c)
    }
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub key: InstanceKey,
    pub version: u64,
    pub created: i64,
    pub updated: i64,
    /// Change sequence number of the instance's latest change (write or delete).
    pub seq: u64,
    /// Set on soft-deleted instances (tombstones); the last live data is kept so that filters
    /// can still decide whether the deletion belongs to a result set.
    pub deleted: Option<i64>,
    pub data: InstanceData,
}

pub type Slot = u32;

#[derive(Debug, Default)]
pub struct Store {
    slots: Vec<Option<Instance>>,
    free: Vec<Slot>,
    by_key: BTreeMap<InstanceKey, Slot>,
    by_seq: BTreeMap<u64, Slot>,
    tombstones: BTreeSet<(i64, Slot)>,
    edges_by_node: HashMap<NodeId, Vec<Slot>>,
    seq: u64,
    kind_counts: [usize; 2],
}

impl Store {
    /// The sequence number of the latest change.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn get(&self, slot: Slot) -> Option<&Instance> {
        self.slots.get(slot as usize)?.as_ref()
    }

    pub fn lookup(&self, key: &InstanceKey) -> Option<(Slot, &Instance)> {
        let slot = *self.by_key.get(key)?;
        Some((slot, self.get(slot)?))
    }

    pub fn live(&self, key: &InstanceKey) -> Option<&Instance> {
        self.lookup(key)
            .map(|(_, i)| i)
            .filter(|i| i.deleted.is_none())
    }

    /// Live instance by parts, for callers that hold borrowed strings.
    pub fn live_by_parts(&self, kind: Kind, space: &str, external_id: &str) -> Option<&Instance> {
        // BTreeMap lookups need an owned key; skip building one when no instance of this kind
        // exists at all (the common case when seeding only nodes).
        if self.count_by_kind(kind) == 0 {
            return None;
        }
        self.live(&InstanceKey::new(kind, space, external_id))
    }

    /// Instances (live or tombstoned) of one kind.
    pub fn count_by_kind(&self, kind: Kind) -> usize {
        self.kind_counts[kind as usize]
    }

    pub fn node_exists(&self, id: &NodeId) -> bool {
        self.live(&InstanceKey::new(Kind::Node, &id.space, &id.external_id))
            .is_some()
    }

    pub fn live_count(&self) -> usize {
        self.by_key.len() - self.tombstones.len()
    }

    pub fn tombstone_count(&self) -> usize {
        self.tombstones.len()
    }

    pub fn has_live_in_space(&self, space: &str) -> bool {
        self.by_key
            .iter()
            .any(|(k, s)| k.space == space && self.get(*s).is_some_and(|i| i.deleted.is_none()))
    }

    /// Instances of one kind in `(space, externalId)` order, starting after `after`.
    pub fn iter_by_key_after<'a>(
        &'a self,
        kind: Kind,
        after: Option<&InstanceKey>,
    ) -> impl Iterator<Item = (&'a InstanceKey, &'a Instance)> + 'a {
        use std::ops::Bound;
        let start = match after {
            Some(k) => Bound::Excluded(k.clone()),
            None => Bound::Included(InstanceKey::new(kind, "", "")),
        };
        self.by_key
            .range((start, Bound::Unbounded))
            .take_while(move |(k, _)| k.kind == kind)
            .filter_map(|(k, s)| Some((k, self.get(*s)?)))
    }

    /// Instances changed after sequence `after`, oldest change first.
    pub fn iter_by_seq_after(&self, after: u64) -> impl Iterator<Item = (u64, &Instance)> + '_ {
        self.by_seq
            .range(after.saturating_add(1)..)
            .filter_map(|(seq, s)| Some((*seq, self.get(*s)?)))
    }

    /// Live edges whose start or end node is `node`.
    pub fn edges_touching(&self, node: &NodeId) -> Vec<InstanceKey> {
        self.edges_by_node
            .get(node)
            .map(|slots| {
                slots
                    .iter()
                    .filter_map(|s| self.get(*s))
                    .filter(|i| i.deleted.is_none())
                    .map(|i| i.key.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn index_edge(&mut self, slot: Slot, ends: &[Option<NodeId>; 2]) {
        for n in ends.iter().flatten() {
            let v = self.edges_by_node.entry(n.clone()).or_default();
            if !v.contains(&slot) {
                v.push(slot);
            }
        }
    }

    fn unindex_edge(&mut self, slot: Slot, ends: &[Option<NodeId>; 2]) {
        for n in ends.iter().flatten() {
            if let Some(v) = self.edges_by_node.get_mut(n) {
                v.retain(|s| *s != slot);
                if v.is_empty() {
                    self.edges_by_node.remove(n);
                }
            }
        }
    }

    /// Writes new data for an instance, creating it (or reviving a tombstone) as needed.
    /// Returns the instance's slot. Callers only call this for real changes.
    pub fn write(&mut self, key: InstanceKey, data: InstanceData, now: i64) -> Slot {
        let seq = self.next_seq();
        let slot = match self.by_key.get(&key).copied() {
            Some(slot) => {
                let old = self.slots[slot as usize].take();
                let (version, created, old_seq, was_deleted, old_ends) = match old {
                    Some(o) => (
                        o.version,
                        o.created,
                        o.seq,
                        o.deleted,
                        [o.data.start, o.data.end],
                    ),
                    None => (0, now, 0, None, [None, None]),
                };
                self.by_seq.remove(&old_seq);
                if key.kind == Kind::Edge && was_deleted.is_none() {
                    self.unindex_edge(slot, &old_ends);
                }
                if let Some(t) = was_deleted {
                    self.tombstones.remove(&(t, slot));
                }
                // A revived tombstone continues the version count so that "keep the highest
                // version" clients never mistake the new instance for a stale one.
                let created = if was_deleted.is_some() { now } else { created };
                self.slots[slot as usize] = Some(Instance {
                    key,
                    version: version + 1,
                    created,
                    updated: now,
                    seq,
                    deleted: None,
                    data,
                });
                slot
            }
            None => {
                let slot = match self.free.pop() {
                    Some(s) => s,
                    None => {
                        self.slots.push(None);
                        Slot::try_from(self.slots.len() - 1).unwrap_or(Slot::MAX)
                    }
                };
                self.kind_counts[key.kind as usize] += 1;
                self.by_key.insert(key.clone(), slot);
                self.slots[slot as usize] = Some(Instance {
                    key,
                    version: 1,
                    created: now,
                    updated: now,
                    seq,
                    deleted: None,
                    data,
                });
                slot
            }
        };
        self.by_seq.insert(seq, slot);
        if let Some(Some(inst)) = self.slots.get(slot as usize)
            && inst.key.kind == Kind::Edge
        {
            let ends = [inst.data.start.clone(), inst.data.end.clone()];
            self.index_edge(slot, &ends);
        }
        slot
    }

    /// Soft-deletes a live instance. Returns false when it is missing or already deleted.
    pub fn soft_delete(&mut self, key: &InstanceKey, now: i64) -> bool {
        let Some(slot) = self.by_key.get(key).copied() else {
            return false;
        };
        let live = matches!(self.get(slot), Some(i) if i.deleted.is_none());
        if !live {
            return false;
        }
        let seq = self.next_seq();
        let Some(inst) = self.slots[slot as usize].as_mut() else {
            return false;
        };
        let old_seq = inst.seq;
        inst.seq = seq;
        inst.version += 1;
        inst.updated = now;
        inst.deleted = Some(now);
        let ends =
            (key.kind == Kind::Edge).then(|| [inst.data.start.clone(), inst.data.end.clone()]);
        self.by_seq.remove(&old_seq);
        self.by_seq.insert(seq, slot);
        self.tombstones.insert((now, slot));
        if let Some(e) = ends {
            self.unindex_edge(slot, &e);
        }
        true
    }

    /// Purges tombstones deleted at or before `cutoff`. Returns how many were purged.
    pub fn purge_deleted_before(&mut self, cutoff: i64) -> usize {
        let doomed: Vec<(i64, Slot)> = self
            .tombstones
            .range(..=(cutoff, Slot::MAX))
            .copied()
            .collect();
        for (t, slot) in &doomed {
            self.tombstones.remove(&(*t, *slot));
            if let Some(inst) = self.slots[*slot as usize].take() {
                self.kind_counts[inst.key.kind as usize] -= 1;
                self.by_key.remove(&inst.key);
                self.by_seq.remove(&inst.seq);
                self.free.push(*slot);
            }
        }
        doomed.len()
    }

    pub fn purge_all(&mut self) -> usize {
        self.purge_deleted_before(i64::MAX)
    }
}
