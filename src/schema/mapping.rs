//! Which column each property value of a table lands in.
//!
//! A raw table is written by one or more streams, and each stream reads the properties of
//! one or more source views (a node view's own properties; for a view's `edges` table the
//! edge view itself and the `edgeSource` views of its edge connections). The mapping is
//! computed for the whole table at once, from the definitions of all its source views and
//! the table's current schema, so that every stream of the table agrees on it:
//!
//! 1. **Existing columns stay.** A property whose values fit a column the table already has
//!    for it (field metadata `cdf.source` and `cdf.property`; the same CDF type family with
//!    the same Arrow type, or int32 into an int64/float64 column, or float32 into a float64
//!    column) keeps writing there, whatever the naming rule below would give today.
//! 2. **Type changes get a new column.** A property whose table column(s) cannot hold its
//!    new type (any other change: a view updated in place, a container property redefined)
//!    gets a new column `<name>__<type>` (see [`super::naming`]). The old column keeps every
//!    old value; new values go to the new column; both are published.
//! 3. **Same name from several source views.** When two or more source views of the table
//!    have a property of the same name (ignoring case), each of them gets a column qualified
//!    with its view: `<viewExternalId>_<property>` (renamed further by the naming rule if
//!    that is taken). A property only one source view has keeps its plain name.
//! 4. Everything else follows the rename rule of [`super::naming`], case-insensitively.
//!
//! Every property column carries `cdf.source` (the source view, `space:externalId/version`),
//! `cdf.property` and `cdf.type` (and `cdf.list`), so a column is identified by (source view,
//! property, type) and readers can map it back.

use std::collections::{BTreeMap, HashSet};

use deltalake::arrow::datatypes::{DataType, Field, Schema};

use super::evolution::equivalent_types;
use super::naming::{Fallback, NamingRequest, PropertyColumnNames, assign_column_names};
use super::system::TableKind;
use super::value_type::ValueType;
use super::view_schema::{
    METADATA_LIST, METADATA_PROPERTY, METADATA_SOURCE, METADATA_TYPE, PropertySource,
    column_data_type,
};
use crate::cdf::dto::PropertyType;

/// The properties one source view contributes to a table.
#[derive(Debug, Clone)]
pub(crate) struct SourceProperties<'a> {
    pub(crate) source: PropertySource,
    pub(crate) properties: Vec<(&'a str, &'a PropertyType)>,
}

/// One property of one source and the column(s) it fills.
#[derive(Debug, Clone)]
pub(crate) struct MappedProperty<'a> {
    pub(crate) source: PropertySource,
    pub(crate) property: &'a str,
    pub(crate) property_type: &'a PropertyType,
    pub(crate) columns: PropertyColumnNames,
    pub(crate) renamed: bool,
}

/// Types of the same family are stored alike (text-like kinds are all strings).
fn type_family(type_name: &str) -> &str {
    match type_name {
        "text" | "enum" | "timeseries" | "file" | "sequence" => "text",
        other => other,
    }
}

fn splits_direct(property_type: &PropertyType) -> bool {
    !property_type.list && ValueType::of_kind(&property_type.kind) == ValueType::Direct
}

/// Whether values of `property_type` can be written into the stored column `field`
/// without loss (and without the column's CDF type changing meaning).
fn fits_column(property_type: &PropertyType, data_type: &DataType, field: &Field) -> bool {
    let metadata = field.metadata();
    let Some(stored_type) = metadata.get(METADATA_TYPE) else {
        return false;
    };
    if metadata.contains_key(METADATA_LIST) != property_type.list {
        return false;
    }
    if type_family(stored_type) == type_family(property_type.kind.type_name()) {
        return equivalent_types(data_type, field.data_type());
    }
    !property_type.list
        && matches!(
            (data_type, field.data_type()),
            (DataType::Int32, DataType::Int64 | DataType::Float64)
                | (DataType::Float32, DataType::Float64)
        )
}

/// Whether the stored column `field` was written for `property` of `source`. Columns
/// written before `cdf.source` existed belong to any source with that property.
fn belongs_to(field: &Field, source: &str, property: &str) -> bool {
    let metadata = field.metadata();
    metadata.get(METADATA_PROPERTY).map(String::as_str) == Some(property)
        && metadata
            .get(METADATA_SOURCE)
            .is_none_or(|stored| stored == source)
}

/// What the table already has for one property.
enum Existing {
    /// A column (pair) the values fit.
    Fits(PropertyColumnNames),
    /// Columns of the property exist, but none can hold the current type.
    TypeChanged,
    None,
}

fn find_existing(
    schema: &Schema,
    claimed: &mut HashSet<String>,
    source: &str,
    property: &str,
    property_type: &PropertyType,
) -> Existing {
    let mut any = false;
    let value_type = ValueType::of_kind(&property_type.kind);
    for field in schema.fields() {
        if !belongs_to(field, source, property) {
            continue;
        }
        any = true;
        if claimed.contains(field.name()) {
            continue;
        }
        if splits_direct(property_type) {
            let Some(prefix) = field.name().strip_suffix(".space") else {
                continue;
            };
            let external_id = format!("{prefix}.externalId");
            let Ok(sibling) = schema.field_with_name(&external_id) else {
                continue;
            };
            if belongs_to(sibling, source, property)
                && !claimed.contains(&external_id)
                && fits_column(property_type, &DataType::Utf8, field)
                && fits_column(property_type, &DataType::Utf8, sibling)
            {
                let names = PropertyColumnNames::Direct {
                    space: field.name().clone(),
                    external_id,
                };
                for name in names.names() {
                    claimed.insert(name.to_owned());
                }
                return Existing::Fits(names);
            }
        } else if fits_column(
            property_type,
            &column_data_type(value_type, property_type.list),
            field,
        ) {
            claimed.insert(field.name().clone());
            return Existing::Fits(PropertyColumnNames::Single(field.name().clone()));
        }
    }
    if any {
        Existing::TypeChanged
    } else {
        Existing::None
    }
}

/// The tag of a type in `<name>__<tag>` columns.
fn type_tag(property_type: &PropertyType) -> String {
    let name = property_type.kind.type_name();
    if property_type.list {
        format!("{name}_list")
    } else {
        name.to_owned()
    }
}

/// Maps every property of `sources` to its column(s) in a `kind` table whose current
/// schema is `existing` (`None` while the table does not exist).
pub(crate) fn map_columns<'a>(
    kind: TableKind,
    sources: &[SourceProperties<'a>],
    existing: Option<&Schema>,
) -> Vec<MappedProperty<'a>> {
    // One entry per (source, property), sources in a fixed order.
    let mut by_source: BTreeMap<(String, String), BTreeMap<&'a str, &'a PropertyType>> =
        BTreeMap::new();
    for source in sources {
        let entry = by_source
            .entry((source.source.space.clone(), source.source.key.clone()))
            .or_default();
        for (name, property_type) in &source.properties {
            entry.entry(*name).or_insert(*property_type);
        }
    }
    let mut sources_per_name: BTreeMap<String, usize> = BTreeMap::new();
    for properties in by_source.values() {
        let names: HashSet<String> = properties.keys().map(|n| n.to_lowercase()).collect();
        for name in names {
            *sources_per_name.entry(name).or_default() += 1;
        }
    }

    let mut claimed = HashSet::new();
    let mut fixed: Vec<Option<PropertyColumnNames>> = Vec::new();
    let mut entries: Vec<(PropertySource, &'a str, &'a PropertyType)> = Vec::new();
    let mut requests: Vec<NamingRequest<'a>> = Vec::new();
    for ((space, key), properties) in &by_source {
        let source = PropertySource {
            space: space.clone(),
            key: key.clone(),
        };
        let label = source.to_string();
        let view_external_id = key.rsplit_once('/').map_or(key.as_str(), |(xid, _)| xid);
        for (&property, &property_type) in properties {
            let existing = existing.map_or(Existing::None, |schema| {
                find_existing(schema, &mut claimed, &label, property, property_type)
            });
            let base = if sources_per_name
                .get(&property.to_lowercase())
                .is_some_and(|&n| n > 1)
            {
                format!("{view_external_id}_{property}")
            } else {
                property.to_owned()
            };
            let fallback = match &existing {
                Existing::TypeChanged => Fallback::NewType(type_tag(property_type)),
                _ => Fallback::Rename,
            };
            fixed.push(match existing {
                Existing::Fits(names) => Some(names),
                _ => None,
            });
            requests.push(NamingRequest {
                property,
                base,
                split_direct: splits_direct(property_type),
                fallback,
            });
            entries.push((source.clone(), property, property_type));
        }
    }

    // Only the properties without a column are named; the others' columns are in `existing`.
    let open: Vec<usize> = (0..requests.len())
        .filter(|&i| fixed[i].is_none())
        .collect();
    let existing_names: Vec<&str> = existing
        .map(|schema| schema.fields().iter().map(|f| f.name().as_str()).collect())
        .unwrap_or_default();
    let open_requests: Vec<NamingRequest<'a>> = open
        .iter()
        .map(|&i| NamingRequest {
            property: requests[i].property,
            base: requests[i].base.clone(),
            split_direct: requests[i].split_direct,
            fallback: requests[i].fallback.clone(),
        })
        .collect();
    let named = assign_column_names(kind, existing_names, &open_requests);
    let mut named = open.into_iter().zip(named).collect::<BTreeMap<_, _>>();

    entries
        .into_iter()
        .enumerate()
        .map(|(index, (source, property, property_type))| {
            let (columns, renamed) = match fixed[index].take() {
                Some(columns) => {
                    let natural = PropertyColumnNames::Single(property.to_owned());
                    let direct = PropertyColumnNames::Direct {
                        space: format!("{property}.space"),
                        external_id: format!("{property}.externalId"),
                    };
                    let renamed = columns != natural && columns != direct;
                    (columns, renamed)
                }
                None => named
                    .remove(&index)
                    .unwrap_or_else(|| (PropertyColumnNames::Single(property.to_owned()), false)),
            };
            MappedProperty {
                source,
                property,
                property_type,
                columns,
                renamed,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ViewSchema;
    use serde_json::json;

    fn types(value: serde_json::Value) -> Vec<(String, PropertyType)> {
        value
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, t)| (name.clone(), serde_json::from_value(t.clone()).unwrap()))
            .collect()
    }

    fn source(xid: &str) -> PropertySource {
        PropertySource {
            space: "s".into(),
            key: format!("{xid}/1"),
        }
    }

    fn sources<'a>(
        defs: &'a [(PropertySource, Vec<(String, PropertyType)>)],
    ) -> Vec<SourceProperties<'a>> {
        defs.iter()
            .map(|(source, properties)| SourceProperties {
                source: source.clone(),
                properties: properties.iter().map(|(n, t)| (n.as_str(), t)).collect(),
            })
            .collect()
    }

    fn columns(schema: &ViewSchema) -> Vec<(String, String, String)> {
        schema.arrow_schema().fields()[schema.kind().system_column_names().len()..]
            .iter()
            .map(|f| {
                (
                    f.name().clone(),
                    f.metadata()[METADATA_SOURCE].clone(),
                    f.metadata()[METADATA_TYPE].clone(),
                )
            })
            .collect()
    }

    fn names(schema: &ViewSchema) -> Vec<String> {
        columns(schema).into_iter().map(|(n, _, _)| n).collect()
    }

    #[test]
    fn same_names_of_different_edge_sources_are_qualified_with_their_view() {
        let defs = [
            (
                source("LinkA"),
                types(json!({"weight": {"type": "float64"}, "note": {"type": "text"}})),
            ),
            (
                source("LinkB"),
                types(
                    json!({"weight": {"type": "text"}, "Note": {"type": "text"}, "rank": {"type": "int32"}}),
                ),
            ),
        ];
        let table = sources(&defs);
        let both = [source("LinkA"), source("LinkB")];
        let schema = ViewSchema::for_table(TableKind::Edges, source("LinkA"), &table, &both, None);
        assert_eq!(
            columns(&schema),
            [
                ("LinkB_Note".into(), "s:LinkB/1".into(), "text".into()),
                ("LinkA_note".into(), "s:LinkA/1".into(), "text".into()),
                ("rank".into(), "s:LinkB/1".into(), "int32".into()),
                ("LinkA_weight".into(), "s:LinkA/1".into(), "float64".into()),
                ("LinkB_weight".into(), "s:LinkB/1".into(), "text".into()),
            ]
        );
        // A stream reading only LinkB gets LinkB's columns, under the same names.
        let only_b = ViewSchema::for_table(
            TableKind::Edges,
            source("LinkB"),
            &table,
            &[source("LinkB")],
            None,
        );
        assert_eq!(names(&only_b), ["LinkB_Note", "rank", "LinkB_weight"]);
        let weight = only_b.property_of_column("LinkB_weight").unwrap();
        assert_eq!(
            (weight.property.as_str(), weight.source.clone()),
            ("weight", source("LinkB"))
        );
    }

    #[test]
    fn a_changed_type_gets_a_new_column_and_existing_columns_stay() {
        let old = [(
            source("Pump"),
            types(json!({
                "rating": {"type": "int32"},
                "count": {"type": "int64"},
                "site": {"type": "direct"},
                "tags": {"type": "text", "list": true},
                "Name": {"type": "text"},
            })),
        )];
        let table = sources(&old);
        let stored = ViewSchema::for_table(
            TableKind::Nodes,
            source("Pump"),
            &table,
            &[source("Pump")],
            None,
        );
        let stored = stored.arrow_schema().clone();

        // Updated in place: rating becomes text, count becomes int32 (fits int64), site stays,
        // tags become a list of int64, a new property `name` clashes with `Name` by case.
        let new = [(
            source("Pump"),
            types(json!({
                "rating": {"type": "text"},
                "count": {"type": "int32"},
                "site": {"type": "direct"},
                "tags": {"type": "int64", "list": true},
                "Name": {"type": "text"},
                "name": {"type": "text"},
            })),
        )];
        let table = sources(&new);
        let schema = ViewSchema::for_table(
            TableKind::Nodes,
            source("Pump"),
            &table,
            &[source("Pump")],
            Some(&stored),
        );
        assert_eq!(
            names(&schema),
            [
                "Name",
                "count",
                "prop_name",
                "rating__text",
                "site.space",
                "site.externalId",
                "tags__int64_list"
            ]
        );
        let count = schema.property_of_column("count").unwrap();
        assert!(!count.renamed);
        let rating = schema.property_of_column("rating__text").unwrap();
        assert_eq!((rating.property.as_str(), rating.renamed), ("rating", true));

        // Once the new columns exist, the mapping is the same; going back to int32 finds the
        // old column again.
        let grown = {
            let mut fields: Vec<_> = stored.fields().iter().cloned().collect();
            for field in schema.arrow_schema().fields() {
                if stored.field_with_name(field.name()).is_err() {
                    fields.push(field.clone());
                }
            }
            Schema::new(fields)
        };
        let again = ViewSchema::for_table(
            TableKind::Nodes,
            source("Pump"),
            &table,
            &[source("Pump")],
            Some(&grown),
        );
        assert_eq!(again.arrow_schema(), schema.arrow_schema());
        let back = ViewSchema::for_table(
            TableKind::Nodes,
            source("Pump"),
            &sources(&old),
            &[source("Pump")],
            Some(&grown),
        );
        assert_eq!(
            names(&back),
            [
                "Name",
                "count",
                "rating",
                "site.space",
                "site.externalId",
                "tags"
            ]
        );
    }
}
