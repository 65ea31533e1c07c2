//! Unit ids: `<kind>:<space>:<model>/<version>:<view folder>[:<nodes|edges>[:<i>-of-<n>]]`.
//!
//! An id is opaque to whoever runs the unit (the state machine passes it back unchanged) and
//! model-qualified, because two models can publish a view of the same name:
//!
//! - `view:plant:PlantModel/1:Pump`: the whole view, both files and the manifest;
//! - `part:plant:PlantModel/1:Pump:nodes:3-of-16`: part 3 (from 0) of the view's nodes in
//!   16 parts;
//! - `file:plant:PlantModel/1:Pump:edges`: the single edges file of a view whose other kind
//!   is in parts;
//! - `shard:plant:PlantModel/1:Pump:nodes:<build-id>:1-of-8`: shard 1 of a sharded full
//!   rebuild of the view's nodes ([`crate::snapshot::shards`]), run before the parts.
//!
//! CDF identifiers never hold `:`, so the form is unambiguous. The run that receives an id
//! finds the view by matching the id's prefix against the views of its own plan, so an id
//! that names nothing planned is refused, naming it; the rest (kind and part) is read from
//! the id, because the plan that gave the id out decided the view's form.

use super::UnitKind;
use crate::lake::InstanceKind;
use crate::snapshot::ViewTarget;
use crate::snapshot::parts::MAX_PARTS;
use crate::snapshot::scope::{PartOf, Piece};

/// The id of the unit of `kind` that publishes `target`.
pub(crate) fn unit_id(kind: UnitKind, target: &ViewTarget) -> String {
    format!(
        "{}:{}:{}",
        kind.as_str(),
        target.model_label(),
        target.folder.name()
    )
}

/// The id of the unit that publishes one object of `target`.
pub(crate) fn piece_id(target: &ViewTarget, piece: &Piece) -> String {
    match piece.part {
        Some(part) => format!(
            "{}:{}:{}-of-{}",
            unit_id(UnitKind::Part, target),
            piece.kind,
            part.index,
            part.count
        ),
        None => format!("{}:{}", unit_id(UnitKind::File, target), piece.kind),
    }
}

/// The id of shard `shard` of `shards` of the sharded rebuild `build_id` of `target`'s
/// `kind`: `shard:<space>:<model>/<version>:<view>:<kind>:<build-id>:<s>-of-<S>`.
pub(crate) fn shard_id(
    target: &ViewTarget,
    kind: InstanceKind,
    build_id: &str,
    shard: u32,
    shards: u32,
) -> String {
    format!(
        "{}:{kind}:{build_id}:{shard}-of-{shards}",
        unit_id(UnitKind::Shard, target)
    )
}

/// The shard of `target` that `id` names, if it names one: its kind, build and index.
pub(crate) fn shard_of(id: &str, target: &ViewTarget) -> Option<(InstanceKind, String, u32)> {
    let rest = id.strip_prefix(&format!("{}:", unit_id(UnitKind::Shard, target)))?;
    let mut fields = rest.split(':');
    let (kind, build, range) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() || build.is_empty() || !build.chars().all(|c| c.is_ascii_hexdigit())
    {
        return None;
    }
    let (index, count) = range.split_once("-of-")?;
    let (index, count): (u32, u32) = (index.parse().ok()?, count.parse().ok()?);
    if index >= count {
        return None;
    }
    Some((kind_named(kind)?, build.to_owned(), index))
}

/// The object of `target` that `id` names, if it names one: a well-formed part (a power of
/// two of at most [`MAX_PARTS`] parts, the index below the count) or file of the view.
pub(crate) fn piece_of(id: &str, target: &ViewTarget) -> Option<Piece> {
    if let Some(rest) = id.strip_prefix(&format!("{}:", unit_id(UnitKind::Part, target))) {
        let (kind, part) = rest.split_once(':')?;
        let (index, count) = part.split_once("-of-")?;
        let (index, count): (u32, u32) = (index.parse().ok()?, count.parse().ok()?);
        let valid = count > 1 && count <= MAX_PARTS && count.is_power_of_two() && index < count;
        return valid.then_some(Piece {
            kind: kind_named(kind)?,
            part: Some(PartOf { index, count }),
        });
    }
    let kind = id.strip_prefix(&format!("{}:", unit_id(UnitKind::File, target)))?;
    Some(Piece {
        kind: kind_named(kind)?,
        part: None,
    })
}

fn kind_named(name: &str) -> Option<InstanceKind> {
    [InstanceKind::Nodes, InstanceKind::Edges]
        .into_iter()
        .find(|kind| kind.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::scope::Forms;

    fn view_target(view: &str) -> ViewTarget {
        use crate::lake::ModelRef;
        use crate::lake::layout::ViewFolder;
        use crate::schema::PropertySource;
        use crate::snapshot::TableTarget;
        let source = PropertySource {
            space: "plant".into(),
            key: format!("{view}/1"),
        };
        ViewTarget {
            model: ModelRef::new("plant", "PlantModel", "1").unwrap(),
            folder: ViewFolder::plain(view).unwrap(),
            nodes: TableTarget::without_streams(InstanceKind::Nodes, source.clone()),
            edges: TableTarget::without_streams(InstanceKind::Edges, source),
        }
    }

    #[test]
    fn every_piece_id_names_its_piece_and_nothing_else_does() {
        let (target, other) = (view_target("Pump"), view_target("Pumps"));
        let forms = Forms { nodes: 4, edges: 1 };
        for piece in forms.pieces() {
            let id = piece_id(&target, &piece);
            assert_eq!(piece_of(&id, &target), Some(piece), "{id}");
            assert_eq!(piece_of(&id, &other), None, "{id}");
        }
        assert_eq!(
            piece_id(&target, &forms.pieces()[3]),
            "part:plant:PlantModel/1:Pump:nodes:3-of-4"
        );
        assert_eq!(
            piece_id(&target, &forms.pieces()[4]),
            "file:plant:PlantModel/1:Pump:edges"
        );
        let shard = shard_id(&target, InstanceKind::Edges, "00ff", 2, 3);
        assert_eq!(shard, "shard:plant:PlantModel/1:Pump:edges:00ff:2-of-3");
        assert_eq!(
            shard_of(&shard, &target),
            Some((InstanceKind::Edges, "00ff".to_owned(), 2))
        );
        assert_eq!(shard_of(&shard, &other), None);
        assert_eq!(piece_of(&shard, &target), None);
        for wrong in [
            "shard:plant:PlantModel/1:Pump:edges:00ff:3-of-3",
            "shard:plant:PlantModel/1:Pump:rows:00ff:0-of-3",
            "shard:plant:PlantModel/1:Pump:edges:../x:0-of-3",
            "shard:plant:PlantModel/1:Pump:edges:00ff:0-of-3:more",
        ] {
            assert_eq!(shard_of(wrong, &target), None, "{wrong}");
        }
        for wrong in [
            "view:plant:PlantModel/1:Pump",
            "part:plant:PlantModel/1:Pump:nodes:4-of-4",
            "part:plant:PlantModel/1:Pump:nodes:1-of-3",
            "part:plant:PlantModel/1:Pump:nodes:0-of-1",
            "part:plant:PlantModel/1:Pump:nodes:0-of-2048",
            "part:plant:PlantModel/1:Pump:rows:0-of-2",
            "part:plant:PlantModel/1:Pump:nodes",
            "file:plant:PlantModel/1:Pump:nodes:0-of-2",
            "file:plant:PlantModel/1:Pump",
        ] {
            assert_eq!(piece_of(wrong, &target), None, "{wrong}");
        }
    }
}
