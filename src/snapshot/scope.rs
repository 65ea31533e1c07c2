//! Which of a view's objects one publish builds.
//!
//! A whole run, or a unit of one view, builds both files of the view and then writes its
//! manifest. A view in parts is too large for one worker, so a run split into units gives
//! each part of it (and each other file of the view) a unit of its own ([`super::units`]):
//! such a unit builds exactly one object and never writes the manifest, because the other
//! units of the view are still building theirs. The finalize step then assembles the
//! manifest from what the units left at the keys, reading each object's own stamp
//! ([`super::stamp`]) as a run does for any object its manifest does not name; it builds
//! nothing.

use crate::lake::InstanceKind;

/// One part of a file in parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartOf {
    /// The part, from 0.
    pub(crate) index: u32,
    /// How many parts the file has.
    pub(crate) count: u32,
}

/// One object of a view: a single file, or one part of a file in parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) kind: InstanceKind,
    /// `None`: the kind is one file.
    pub(crate) part: Option<PartOf>,
}

/// The form of each kind of a view: 1 for one file, else the part count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Forms {
    pub(crate) nodes: u32,
    pub(crate) edges: u32,
}

impl Forms {
    pub(crate) fn of(&self, kind: InstanceKind) -> u32 {
        match kind {
            InstanceKind::Nodes => self.nodes,
            InstanceKind::Edges => self.edges,
        }
    }

    /// Whether a kind is in parts, so that the view is published in pieces.
    pub(crate) fn has_parts(&self) -> bool {
        self.nodes > 1 || self.edges > 1
    }

    /// The objects of a view of these forms, one unit each: every part of a kind in parts,
    /// and the single file of a kind that is not.
    pub(crate) fn pieces(&self) -> Vec<Piece> {
        [InstanceKind::Nodes, InstanceKind::Edges]
            .into_iter()
            .flat_map(|kind| {
                let count = self.of(kind);
                let parts: Vec<Piece> = if count > 1 {
                    (0..count)
                        .map(|index| Piece {
                            kind,
                            part: Some(PartOf { index, count }),
                        })
                        .collect()
                } else {
                    vec![Piece { kind, part: None }]
                };
                parts
            })
            .collect()
    }
}

/// What a publish of one view builds and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Scope {
    /// Both files, each in the form its size calls for, then the manifest.
    #[default]
    Whole,
    /// One object, in the form the unit's id names, and no manifest.
    Piece(Piece),
    /// No object: the manifest, describing the objects of these forms as they are.
    Assemble(Forms),
}

impl Scope {
    /// Whether the kind is published at all in this scope.
    pub(crate) fn includes(&self, kind: InstanceKind) -> bool {
        match self {
            Scope::Piece(piece) => piece.kind == kind,
            Scope::Whole | Scope::Assemble(_) => true,
        }
    }

    /// Whether the publish ends with the manifest.
    pub(crate) fn writes_manifest(&self) -> bool {
        !matches!(self, Scope::Piece(_))
    }

    /// The form this scope fixes for a kind, if it fixes one (a whole publish decides it
    /// from the rows).
    pub(crate) fn fixed_count(&self, kind: InstanceKind) -> Option<u32> {
        match self {
            Scope::Whole => None,
            Scope::Piece(piece) => Some(piece.part.map_or(1, |p| p.count)),
            Scope::Assemble(forms) => Some(forms.of(kind)),
        }
    }

    /// The one part this scope builds, when it builds one.
    pub(crate) fn only_part(&self) -> Option<u32> {
        match self {
            Scope::Piece(Piece {
                part: Some(part), ..
            }) => Some(part.index),
            _ => None,
        }
    }

    pub(crate) fn is_assemble(&self) -> bool {
        matches!(self, Scope::Assemble(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_in_parts_has_one_piece_per_part_and_per_single_file() {
        let forms = Forms { nodes: 4, edges: 1 };
        let pieces = forms.pieces();
        assert_eq!(pieces.len(), 5);
        assert!(
            pieces[..4]
                .iter()
                .enumerate()
                .all(|(i, p)| p.kind == InstanceKind::Nodes
                    && p.part
                        == Some(PartOf {
                            index: i as u32,
                            count: 4
                        }))
        );
        assert_eq!(
            pieces[4],
            Piece {
                kind: InstanceKind::Edges,
                part: None
            }
        );
        assert!(forms.has_parts());
        assert!(!Forms { nodes: 1, edges: 1 }.has_parts());
    }

    #[test]
    fn only_a_whole_publish_decides_the_form_and_a_piece_writes_no_manifest() {
        let piece = Scope::Piece(Piece {
            kind: InstanceKind::Edges,
            part: Some(PartOf { index: 2, count: 8 }),
        });
        assert_eq!(Scope::Whole.fixed_count(InstanceKind::Nodes), None);
        assert_eq!(piece.fixed_count(InstanceKind::Edges), Some(8));
        assert_eq!(piece.only_part(), Some(2));
        assert!(!piece.includes(InstanceKind::Nodes));
        assert!(!piece.writes_manifest());
        let assemble = Scope::Assemble(Forms { nodes: 1, edges: 4 });
        assert_eq!(assemble.fixed_count(InstanceKind::Edges), Some(4));
        assert!(assemble.writes_manifest() && assemble.is_assemble());
    }
}
