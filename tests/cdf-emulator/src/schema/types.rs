//! Property type objects (`{"type":"text","list":false,...}`) of containers.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::ids::parse_view_id;

#[derive(Debug, Clone, PartialEq)]
pub enum TypeKind {
    Text,
    Boolean,
    Int32,
    Int64,
    Float32,
    Float64,
    Timestamp,
    Date,
    Json,
    Direct,
    Enum {
        values: Vec<String>,
        unknown_value: Option<String>,
    },
    TimeSeries,
    File,
    Sequence,
}

/// A parsed property type together with its normalized JSON form for responses.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyType {
    pub kind: TypeKind,
    pub list: bool,
    pub max_list_size: Option<usize>,
    pub max_text_size: Option<usize>,
    /// The type object as answered by the API (defaults such as `list:false` filled in).
    pub json: Value,
}

impl PropertyType {
    pub fn name(&self) -> &'static str {
        match self.kind {
            TypeKind::Text => "text",
            TypeKind::Boolean => "boolean",
            TypeKind::Int32 => "int32",
            TypeKind::Int64 => "int64",
            TypeKind::Float32 => "float32",
            TypeKind::Float64 => "float64",
            TypeKind::Timestamp => "timestamp",
            TypeKind::Date => "date",
            TypeKind::Json => "json",
            TypeKind::Direct => "direct",
            TypeKind::Enum { .. } => "enum",
            TypeKind::TimeSeries => "timeseries",
            TypeKind::File => "file",
            TypeKind::Sequence => "sequence",
        }
    }

    /// Describes the expected JSON shape, e.g. `list of int64`.
    pub fn describe(&self) -> String {
        if self.list {
            format!("list of {}", self.name())
        } else {
            self.name().to_string()
        }
    }

    /// Default list size cap: 1000 items, 100 for direct relations, unless `maxListSize` is set.
    pub fn list_cap(&self) -> usize {
        self.max_list_size
            .unwrap_or(if self.kind == TypeKind::Direct {
                100
            } else {
                1000
            })
    }

    pub fn parse(v: &Value, what: &str) -> ApiResult<PropertyType> {
        let o = v.as_object().ok_or_else(|| {
            ApiError::bad_request(format!("{what}: `type` must be an object, got {v}"))
        })?;
        let type_name = o.get("type").and_then(Value::as_str).ok_or_else(|| {
            ApiError::bad_request(format!("{what}: `type.type` must be a string"))
        })?;
        let list = match o.get("list") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "{what}: `type.list` must be a boolean, got {other}"
                )));
            }
        };
        let usize_field = |key: &str| -> ApiResult<Option<usize>> {
            match o.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(n) => n
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "{what}: `type.{key}` must be a positive integer, got {n}"
                        ))
                    }),
            }
        };
        let max_list_size = usize_field("maxListSize")?;
        let max_text_size = usize_field("maxTextSize")?;
        let mut json: Map<String, Value> = o.clone();
        json.insert("list".into(), Value::Bool(list));
        let kind = match type_name {
            "text" => {
                json.entry("collation")
                    .or_insert_with(|| Value::String("ucs_basic".into()));
                TypeKind::Text
            }
            "boolean" => TypeKind::Boolean,
            "int32" => TypeKind::Int32,
            "int64" => TypeKind::Int64,
            "float32" => TypeKind::Float32,
            "float64" => TypeKind::Float64,
            "timestamp" => TypeKind::Timestamp,
            "date" => TypeKind::Date,
            "json" => TypeKind::Json,
            "direct" => {
                if let Some(src) = o.get("source").filter(|s| !s.is_null()) {
                    parse_view_id(src, &format!("{what}: `type.source`"))?;
                }
                TypeKind::Direct
            }
            "timeseries" => TypeKind::TimeSeries,
            "file" => TypeKind::File,
            "sequence" => TypeKind::Sequence,
            "enum" => {
                json.remove("list");
                let values = o.get("values").and_then(Value::as_object).ok_or_else(|| {
                    ApiError::bad_request(format!("{what}: enum type needs a `values` object"))
                })?;
                if values.is_empty() || values.len() > 32 {
                    return Err(ApiError::bad_request(format!(
                        "{what}: enum type needs 1-32 values, got {}",
                        values.len()
                    )));
                }
                for id in values.keys() {
                    validate_enum_id(id, what)?;
                }
                let unknown_value = match o.get("unknownValue") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if values.contains_key(s) => Some(s.clone()),
                    Some(other) => {
                        return Err(ApiError::bad_request(format!(
                            "{what}: enum `unknownValue` must be one of the enum values, got {other}"
                        )));
                    }
                };
                TypeKind::Enum {
                    values: values.keys().cloned().collect(),
                    unknown_value,
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "{what}: unknown property type `{other}`; expected one of text, boolean, int32, int64, \
                     float32, float64, timestamp, date, json, direct, enum, timeseries, file, sequence"
                )));
            }
        };
        if list && matches!(kind, TypeKind::Enum { .. }) {
            return Err(ApiError::bad_request(format!(
                "{what}: enum properties cannot be lists"
            )));
        }
        Ok(PropertyType {
            kind,
            list,
            max_list_size,
            max_text_size,
            json: Value::Object(json),
        })
    }
}

fn validate_enum_id(id: &str, what: &str) -> ApiResult<()> {
    let b = id.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !matches!(id.to_ascii_lowercase().as_str(), "true" | "false" | "null");
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{what}: invalid enum value id `{id}`: must match ^[_A-Za-z][_0-9A-Za-z]{{0,127}}$ and not be true/false/null"
        )))
    }
}
