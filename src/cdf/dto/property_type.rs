//! The `type` object of a container or view property.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::refs::{ContainerReference, ViewReference};

/// The data type of a mapped property.
///
/// `list`, `max_list_size` apply to every kind, so they live here rather than in each
/// variant; the schema mapper checks `list` first and then the kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "WirePropertyType", into = "WirePropertyType")]
pub struct PropertyType {
    /// What values the property holds.
    pub kind: PropertyKind,
    /// Whether the property holds a list of `kind` values rather than one value.
    pub list: bool,
    pub(crate) max_list_size: Option<u32>,
}

/// The kind of value a property holds, with the kind-specific settings.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyKind {
    /// A string.
    Text {
        /// The collation CDF compares and sorts with, e.g. `ucs_basic`.
        collation: Option<String>,
        /// The longest value CDF accepts, in bytes, when the container sets a limit.
        max_text_size: Option<u64>,
    },
    /// `true` or `false`.
    Boolean,
    /// A 32-bit signed integer.
    Int32,
    /// A 64-bit signed integer; values beyond 2^53 stay exact.
    Int64,
    /// A 32-bit float.
    Float32 {
        /// The unit the values are stored in, when the property has one.
        unit: Option<UnitReference>,
    },
    /// A 64-bit float.
    Float64 {
        /// The unit the values are stored in, when the property has one.
        unit: Option<UnitReference>,
    },
    /// A point in time; an ISO 8601 string with a time zone on the wire.
    Timestamp,
    /// A calendar date; `YYYY-MM-DD` on the wire.
    Date,
    /// Any JSON value, nested to any depth.
    Json,
    /// A direct relation: a reference to a node (`{space, externalId}`).
    Direct {
        /// The container the target node must have data in, when the property requires one.
        container: Option<ContainerReference>,
        /// The view the target node is expected to have data in; a hint, not enforced by CDF.
        source: Option<ViewReference>,
    },
    /// One of a fixed set of values.
    Enum {
        /// The allowed values by identifier, with their optional names and descriptions.
        values: BTreeMap<String, EnumValue>,
        /// The value that stands for one this client does not know, if the enum defines one.
        unknown_value: Option<String>,
    },
    /// A reference to a CDF time series.
    TimeSeries,
    /// A reference to a CDF file.
    File,
    /// A reference to a CDF sequence.
    Sequence,
    /// A type this client does not know yet (CDF adds types over time). Carries the
    /// `type` tag so the caller can decide, e.g. keep the value as JSON text.
    Unknown(String),
}

impl PropertyKind {
    /// The wire name of the kind, e.g. `int64`.
    pub(crate) fn type_name(&self) -> &str {
        match self {
            PropertyKind::Text { .. } => "text",
            PropertyKind::Boolean => "boolean",
            PropertyKind::Int32 => "int32",
            PropertyKind::Int64 => "int64",
            PropertyKind::Float32 { .. } => "float32",
            PropertyKind::Float64 { .. } => "float64",
            PropertyKind::Timestamp => "timestamp",
            PropertyKind::Date => "date",
            PropertyKind::Json => "json",
            PropertyKind::Direct { .. } => "direct",
            PropertyKind::Enum { .. } => "enum",
            PropertyKind::TimeSeries => "timeseries",
            PropertyKind::File => "file",
            PropertyKind::Sequence => "sequence",
            PropertyKind::Unknown(name) => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitReference {
    pub(crate) external_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) source_unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnumValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
}

/// The flat wire form: one object with a `type` tag and optional keys for every kind.
/// Going through it (instead of an internally tagged enum) is what lets an unknown tag
/// become `Unknown` instead of an error.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePropertyType {
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    list: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_list_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    collation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_text_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<UnitReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    container: Option<ContainerReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source: Option<ViewReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    values: Option<BTreeMap<String, EnumValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unknown_value: Option<String>,
}

impl From<WirePropertyType> for PropertyType {
    fn from(wire: WirePropertyType) -> Self {
        let kind = match wire.type_name.as_str() {
            "text" => PropertyKind::Text {
                collation: wire.collation,
                max_text_size: wire.max_text_size,
            },
            "boolean" => PropertyKind::Boolean,
            "int32" => PropertyKind::Int32,
            "int64" => PropertyKind::Int64,
            "float32" => PropertyKind::Float32 { unit: wire.unit },
            "float64" => PropertyKind::Float64 { unit: wire.unit },
            "timestamp" => PropertyKind::Timestamp,
            "date" => PropertyKind::Date,
            "json" => PropertyKind::Json,
            "direct" => PropertyKind::Direct {
                container: wire.container,
                source: wire.source,
            },
            "enum" => PropertyKind::Enum {
                values: wire.values.unwrap_or_default(),
                unknown_value: wire.unknown_value,
            },
            "timeseries" => PropertyKind::TimeSeries,
            "file" => PropertyKind::File,
            "sequence" => PropertyKind::Sequence,
            _ => PropertyKind::Unknown(wire.type_name),
        };
        PropertyType {
            kind,
            list: wire.list,
            max_list_size: wire.max_list_size,
        }
    }
}

impl From<PropertyType> for WirePropertyType {
    fn from(value: PropertyType) -> Self {
        let mut wire = WirePropertyType {
            type_name: value.kind.type_name().to_owned(),
            list: value.list,
            max_list_size: value.max_list_size,
            collation: None,
            max_text_size: None,
            unit: None,
            container: None,
            source: None,
            values: None,
            unknown_value: None,
        };
        match value.kind {
            PropertyKind::Text {
                collation,
                max_text_size,
            } => {
                wire.collation = collation;
                wire.max_text_size = max_text_size;
            }
            PropertyKind::Float32 { unit } | PropertyKind::Float64 { unit } => wire.unit = unit,
            PropertyKind::Direct { container, source } => {
                wire.container = container;
                wire.source = source;
            }
            PropertyKind::Enum {
                values,
                unknown_value,
            } => {
                wire.values = Some(values);
                wire.unknown_value = unknown_value;
            }
            _ => {}
        }
        wire
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> PropertyType {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn every_known_tag_maps_to_its_kind_and_list_defaults_to_false() {
        for tag in [
            "text",
            "boolean",
            "int32",
            "int64",
            "float32",
            "float64",
            "timestamp",
            "date",
            "json",
            "direct",
            "enum",
            "timeseries",
            "file",
            "sequence",
        ] {
            let parsed = parse(json!({"type": tag}));
            assert_eq!(parsed.kind.type_name(), tag);
            assert!(!matches!(parsed.kind, PropertyKind::Unknown(_)), "{tag}");
            assert!(!parsed.list);
        }
    }

    #[test]
    fn unknown_tags_are_kept_not_rejected() {
        let parsed = parse(json!({"type": "vector", "list": true, "dimensions": 3}));
        assert_eq!(parsed.kind, PropertyKind::Unknown("vector".into()));
        assert!(parsed.list);
    }

    #[test]
    fn kind_specific_settings_are_read() {
        let text =
            parse(json!({"type":"text","list":true,"maxListSize":2000,"collation":"ucs_basic"}));
        assert_eq!(
            text,
            PropertyType {
                kind: PropertyKind::Text {
                    collation: Some("ucs_basic".into()),
                    max_text_size: None
                },
                list: true,
                max_list_size: Some(2000),
            }
        );
        let float = parse(json!({"type":"float64","unit":{"externalId":"power:kilowatt"}}));
        assert_eq!(
            float.kind,
            PropertyKind::Float64 {
                unit: Some(UnitReference {
                    external_id: "power:kilowatt".into(),
                    source_unit: None
                })
            }
        );
        let direct = parse(
            json!({"type":"direct","source":{"type":"view","space":"s","externalId":"Site","version":"1"}}),
        );
        assert_eq!(
            direct.kind,
            PropertyKind::Direct {
                container: None,
                source: Some(ViewReference::new("s", "Site", "1"))
            }
        );
        let enumeration = parse(
            json!({"type":"enum","values":{"running":{"name":"Running"},"stopped":{}},"unknownValue":"unknown"}),
        );
        match enumeration.kind {
            PropertyKind::Enum {
                values,
                unknown_value,
            } => {
                assert_eq!(values.len(), 2);
                assert_eq!(values["running"].name.as_deref(), Some("Running"));
                assert_eq!(unknown_value.as_deref(), Some("unknown"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn round_trips_through_the_wire_form() {
        let original = json!({"type":"enum","list":false,"values":{"a":{}},"unknownValue":"a"});
        let parsed = parse(original.clone());
        assert_eq!(serde_json::to_value(&parsed).unwrap(), original);
    }
}
