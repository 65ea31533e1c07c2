//! Column names of property columns, with the rename rule for collisions.
//!
//! Delta Lake, DuckDB and Athena/Glue compare column names without regard to case (Glue
//! lower-cases them), while CDF property identifiers are case-sensitive: `Name` and `name`,
//! or `Version` next to the system column `version`, are valid CDF properties. So every
//! comparison below is case-insensitive, and no two columns of a table are equal after
//! lower-casing.
//!
//! Rule (documented in the README):
//!
//! 1. A property keeps its own identifier as column name (a non-list direct relation `p` gets
//!    `p.space` and `p.externalId`), unless that name is taken, ignoring case, by a system
//!    column, by a column the table already has, or by a property earlier in byte order of
//!    the identifiers (`Name` sorts before `name`, so `Name` keeps its name).
//! 2. A property whose name is taken is renamed to `prop_<name>`, or if that is taken too
//!    (by anything in rule 1, or by a property that really has that name) to
//!    `prop_<name>_1`, `prop_<name>_2`, … Renamed properties are assigned in the same order,
//!    after every property that keeps its name.
//! 3. A property whose type changed so that its values no longer fit the column it has
//!    ([`super::mapping`]) gets a new column `<name>__<type>` (`<name>__<type>_list` for
//!    lists), or `<name>__<type>_1`, … when that is taken.
//!
//! The result depends only on the property names and the table's existing columns.
//!
//! CDF property identifiers cannot contain `.`, so the expanded direct-relation names never
//! collide with a property's own name; they can only collide with system columns such as
//! `type.space` (a direct relation called `type` or `Type`) or `startNode.space` on edges.

use std::collections::HashSet;

use super::system::TableKind;

/// The column(s) a property is stored in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PropertyColumnNames {
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
    pub(crate) fn names(&self) -> Vec<&str> {
        match self {
            PropertyColumnNames::Single(name) => vec![name],
            PropertyColumnNames::Direct { space, external_id } => vec![space, external_id],
        }
    }
}

/// How a property whose first choice of name is taken is named instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// `prop_<base>`, `prop_<base>_1`, …
    Rename,
    /// A new column for a new type: `<base>__<tag>`, `<base>__<tag>_1`, … (the base itself
    /// is never tried: the property's old column holds it).
    NewType(String),
}

/// One property to be named.
pub(crate) struct NamingRequest<'a> {
    /// The CDF property identifier; a column named exactly this is not "renamed".
    pub(crate) property: &'a str,
    /// The first-choice name: the identifier, or the identifier qualified with its source
    /// view (see [`super::mapping`]).
    pub(crate) base: String,
    /// Whether it expands to two direct-relation columns.
    pub(crate) split_direct: bool,
    pub(crate) fallback: Fallback,
}

impl<'a> NamingRequest<'a> {
    #[cfg(test)]
    /// A property named after its identifier, renamed on collision.
    pub(crate) fn plain(property: &'a str, split_direct: bool) -> Self {
        Self {
            property,
            base: property.to_owned(),
            split_direct,
            fallback: Fallback::Rename,
        }
    }
}

/// Case-insensitive set of names in use.
#[derive(Debug, Default)]
struct Taken(HashSet<String>);

impl Taken {
    fn insert(&mut self, name: &str) {
        self.0.insert(name.to_lowercase());
    }

    fn is_free(&self, names: &PropertyColumnNames) -> bool {
        names
            .names()
            .iter()
            .all(|name| !self.0.contains(&name.to_lowercase()))
    }

    fn take(&mut self, names: &PropertyColumnNames) {
        for name in names.names() {
            self.insert(name);
        }
    }
}

/// Assigns column names to `properties` (results are returned in the same order), together
/// with a flag telling whether the name differs from the property identifier. `existing`
/// lists the names the table already uses beyond its system columns; new names avoid them.
/// Properties are considered in byte order of their base names (then identifiers), so the
/// result does not depend on the order of `properties`.
pub(crate) fn assign_column_names<'e>(
    kind: TableKind,
    existing: impl IntoIterator<Item = &'e str>,
    properties: &[NamingRequest<'_>],
) -> Vec<(PropertyColumnNames, bool)> {
    let mut taken = Taken::default();
    for name in kind.system_column_names() {
        taken.insert(name);
    }
    for name in existing {
        taken.insert(name);
    }
    let mut order: Vec<usize> = (0..properties.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&properties[a], &properties[b]);
        (a.base.as_str(), a.property).cmp(&(b.base.as_str(), b.property))
    });

    let mut assigned: Vec<Option<PropertyColumnNames>> = vec![None; properties.len()];
    for &index in &order {
        let request = &properties[index];
        if request.fallback != Fallback::Rename {
            continue;
        }
        let natural = PropertyColumnNames::for_base(&request.base, request.split_direct);
        if taken.is_free(&natural) {
            taken.take(&natural);
            assigned[index] = Some(natural);
        }
    }
    for &index in &order {
        if assigned[index].is_some() {
            continue;
        }
        let request = &properties[index];
        let names = (0..)
            .map(|attempt: usize| {
                let name = match (&request.fallback, attempt) {
                    (Fallback::Rename, 0) => format!("prop_{}", request.base),
                    (Fallback::Rename, n) => format!("prop_{}_{n}", request.base),
                    (Fallback::NewType(tag), 0) => format!("{}__{tag}", request.base),
                    (Fallback::NewType(tag), n) => format!("{}__{tag}_{n}", request.base),
                };
                PropertyColumnNames::for_base(&name, request.split_direct)
            })
            .find(|candidate| taken.is_free(candidate))
            .unwrap_or_else(|| PropertyColumnNames::for_base(&request.base, request.split_direct));
        taken.take(&names);
        assigned[index] = Some(names);
    }

    properties
        .iter()
        .zip(assigned)
        .map(|(request, names)| {
            let names = names.unwrap_or_else(|| {
                PropertyColumnNames::for_base(request.property, request.split_direct)
            });
            let natural = PropertyColumnNames::for_base(request.property, request.split_direct);
            let renamed = names != natural;
            (names, renamed)
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
        NamingRequest::plain(property, false)
    }

    #[test]
    fn system_collisions_are_renamed_and_real_names_win() {
        let requests = [
            request("prop_space"),
            request("space"),
            request("version"),
            request("ratedKw"),
        ];
        let names = assign_column_names(TableKind::Nodes, [], &requests);
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
        let names = assign_column_names(TableKind::Edges, [], &requests);
        assert_eq!(names[0], (single("prop_externalId_2"), true));
    }

    #[test]
    fn direct_relations_collide_with_dotted_system_columns() {
        let requests = [
            NamingRequest::plain("type", true),
            NamingRequest::plain("startNode", true),
        ];
        let nodes = assign_column_names(TableKind::Nodes, [], &requests);
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
        let edges = assign_column_names(TableKind::Edges, [], &requests);
        assert_eq!(
            edges[1].0.names(),
            ["prop_startNode.space", "prop_startNode.externalId"]
        );
        // A list of direct relations is one column, and `type` alone is not a system column.
        let list = assign_column_names(TableKind::Nodes, [], &[request("type")]);
        assert_eq!(list[0], (single("type"), false));
    }

    #[test]
    fn names_equal_but_for_case_are_collisions() {
        let requests = [
            request("name"),
            request("Version"),
            request("Space"),
            request("ExternalId"),
            request("Name"),
            request("prop_name"),
            NamingRequest::plain("Type", true),
        ];
        let names = assign_column_names(TableKind::Nodes, [], &requests);
        let columns: Vec<Vec<&str>> = names.iter().map(|(n, _)| n.names()).collect();
        assert_eq!(
            columns,
            [
                vec!["prop_name_1"],
                vec!["prop_Version"],
                vec!["prop_Space"],
                vec!["prop_ExternalId"],
                vec!["Name"],
                vec!["prop_name"],
                vec!["prop_Type.space", "prop_Type.externalId"],
            ]
        );
        let renamed: Vec<bool> = names.iter().map(|(_, r)| *r).collect();
        assert_eq!(renamed, [true, true, true, true, false, false, true]);
        // The order of the requests does not matter.
        let reversed: Vec<NamingRequest<'_>> = requests
            .iter()
            .rev()
            .map(|r| NamingRequest::plain(r.property, r.split_direct))
            .collect();
        let mut again = assign_column_names(TableKind::Nodes, [], &reversed);
        again.reverse();
        assert_eq!(again, names);
    }

    #[test]
    fn no_two_columns_are_equal_after_lower_casing() {
        let requests = [
            request("prop_VERSION"),
            request("VERSION"),
            request("version"),
            request("Prop_Version"),
            request("StartNode"),
            NamingRequest::plain("endNode", true),
        ];
        let names = assign_column_names(TableKind::Edges, [], &requests);
        let mut lower: Vec<String> = TableKind::Edges
            .system_column_names()
            .iter()
            .map(|n| n.to_lowercase())
            .collect();
        for (columns, _) in &names {
            lower.extend(columns.names().iter().map(|n| n.to_lowercase()));
        }
        let count = lower.len();
        lower.sort();
        lower.dedup();
        assert_eq!(lower.len(), count, "{names:?}");
        // `StartNode` alone is no system column (only `startNode.space` is).
        assert_eq!(names[4], (single("StartNode"), false));
        assert_eq!(
            names[5].0.names(),
            ["prop_endNode.space", "prop_endNode.externalId"]
        );
    }

    #[test]
    fn existing_columns_and_new_types_are_avoided() {
        let requests = [
            NamingRequest {
                property: "weight",
                base: "weight".into(),
                split_direct: false,
                fallback: Fallback::NewType("text".into()),
            },
            request("Weight__Text"),
            request("Rating"),
        ];
        let names = assign_column_names(TableKind::Edges, ["weight", "rating"], &requests);
        assert_eq!(names[0], (single("weight__text_1"), true));
        assert_eq!(names[1], (single("Weight__Text"), false));
        assert_eq!(names[2], (single("prop_Rating"), true));
    }
}
