//! Column names of property columns, with the rename rule for collisions.
//!
//! Rule (documented in the README): a property keeps its own identifier as column name
//! (a non-list direct relation `p` gets `p.space` and `p.externalId`). If any of its column
//! names is taken by a system column of the table, the property is renamed to `prop_<name>`;
//! if that is taken too (by a system column or by a property that really has that name),
//! to `prop_<name>_1`, `prop_<name>_2`, … Properties that do not collide always keep their
//! names, and renamed properties are assigned in property-name order, so the result depends
//! only on the set of property names.
//!
//! CDF property identifiers cannot contain `.`, so the expanded direct-relation names never
//! collide with a property's own name; they can only collide with system columns such as
//! `type.space` (a direct relation called `type`) or `startNode.space` on edges.

use std::collections::HashSet;

use super::system::TableKind;

/// The column(s) a property is stored in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyColumnNames {
    /// One column.
    Single(String),
    /// A non-list direct relation: the referenced node's space and external id.
    Direct { space: String, external_id: String },
}

impl PropertyColumnNames {
    fn for_base(base: &str, split_direct: bool) -> Self {
        if split_direct {
            PropertyColumnNames::Direct {
                space: format!("{base}.space"),
                external_id: format!("{base}.externalId"),
            }
        } else {
            PropertyColumnNames::Single(base.to_owned())
        }
    }

    /// The names in table order.
    pub fn names(&self) -> Vec<&str> {
        match self {
            PropertyColumnNames::Single(name) => vec![name],
            PropertyColumnNames::Direct { space, external_id } => vec![space, external_id],
        }
    }

    fn is_free(&self, taken: &HashSet<String>) -> bool {
        self.names().iter().all(|name| !taken.contains(*name))
    }
}

/// One property to be named: its identifier, and whether it expands to two direct-relation
/// columns.
pub struct NamingRequest<'a> {
    pub property: &'a str,
    pub split_direct: bool,
}

/// Assigns column names to `properties` (any order; results are returned in the same
/// order), together with a flag telling whether the property was renamed.
pub fn assign_column_names(
    kind: TableKind,
    properties: &[NamingRequest<'_>],
) -> Vec<(PropertyColumnNames, bool)> {
    let mut taken: HashSet<String> = kind
        .system_column_names()
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let natural: Vec<PropertyColumnNames> = properties
        .iter()
        .map(|p| PropertyColumnNames::for_base(p.property, p.split_direct))
        .collect();
    let keeps_name: Vec<bool> = natural.iter().map(|names| names.is_free(&taken)).collect();
    for (names, keep) in natural.iter().zip(&keeps_name) {
        if *keep {
            taken.extend(names.names().into_iter().map(str::to_owned));
        }
    }

    let mut renamed_order: Vec<usize> = (0..properties.len())
        .filter(|&index| !keeps_name[index])
        .collect();
    renamed_order.sort_by(|&a, &b| properties[a].property.cmp(properties[b].property));
    let mut assigned: Vec<Option<PropertyColumnNames>> = vec![None; properties.len()];
    for index in renamed_order {
        let request = &properties[index];
        let names = (0..)
            .map(|attempt: usize| {
                let base = match attempt {
                    0 => format!("prop_{}", request.property),
                    n => format!("prop_{}_{n}", request.property),
                };
                PropertyColumnNames::for_base(&base, request.split_direct)
            })
            .find(|candidate| candidate.is_free(&taken))
            .unwrap_or_else(|| natural[index].clone());
        taken.extend(names.names().into_iter().map(str::to_owned));
        assigned[index] = Some(names);
    }

    natural
        .into_iter()
        .zip(assigned)
        .map(|(natural, renamed)| match renamed {
            Some(names) => (names, true),
            None => (natural, false),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(name: &str) -> PropertyColumnNames {
        PropertyColumnNames::Single(name.to_owned())
    }

    fn request(property: &str) -> NamingRequest<'_> {
        NamingRequest {
            property,
            split_direct: false,
        }
    }

    #[test]
    fn system_collisions_are_renamed_and_real_names_win() {
        let requests = [
            request("prop_space"),
            request("space"),
            request("version"),
            request("ratedKw"),
        ];
        let names = assign_column_names(TableKind::Nodes, &requests);
        assert_eq!(
            names,
            [
                (single("prop_space"), false),
                (single("prop_space_1"), true),
                (single("prop_version"), true),
                (single("ratedKw"), false),
            ]
        );
    }

    #[test]
    fn numbered_suffixes_skip_every_taken_name() {
        let requests = [
            request("externalId"),
            request("prop_externalId"),
            request("prop_externalId_1"),
        ];
        let names = assign_column_names(TableKind::Edges, &requests);
        assert_eq!(names[0], (single("prop_externalId_2"), true));
    }

    #[test]
    fn direct_relations_collide_with_dotted_system_columns() {
        let requests = [
            NamingRequest {
                property: "type",
                split_direct: true,
            },
            NamingRequest {
                property: "startNode",
                split_direct: true,
            },
        ];
        let nodes = assign_column_names(TableKind::Nodes, &requests);
        assert_eq!(
            nodes[0].0.names(),
            ["prop_type.space", "prop_type.externalId"]
        );
        assert!(nodes[0].1);
        // Node tables have no startNode columns, so the property keeps its name there.
        assert_eq!(
            nodes[1],
            (
                PropertyColumnNames::Direct {
                    space: "startNode.space".into(),
                    external_id: "startNode.externalId".into()
                },
                false
            )
        );
        let edges = assign_column_names(TableKind::Edges, &requests);
        assert_eq!(
            edges[1].0.names(),
            ["prop_startNode.space", "prop_startNode.externalId"]
        );
        // A list of direct relations is one column, and `type` alone is not a system column.
        let list = assign_column_names(TableKind::Nodes, &[request("type")]);
        assert_eq!(list[0], (single("type"), false));
    }
}
