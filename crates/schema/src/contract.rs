//! Compiles the JSON Schema files of `schemas/` into field plans.
//!
//! The interpreter understands the subset of JSON Schema 2020-12 the contract
//! uses (`type`, `properties`, `required`, `enum`, `const`, `format`,
//! `minLength`, `minimum`, `exclusiveMinimum`, `maximum`, `multipleOf`,
//! `propertyNames`, `additionalProperties`, `$ref`, `allOf`) plus three
//! extensions: `x-permitflow-table`, `x-permitflow-partition`,
//! `x-permitflow-pseudonymise` and the cross-field `x-permitflow-rules`.
//! Anything else in a schema file is an error, so a contract change that the
//! pipeline would silently ignore cannot slip in.

use std::sync::{Arc, OnceLock};

use arrow::datatypes::SchemaRef;
use chrono::{Datelike, NaiveDate};
use serde_json::{Map, Value};

use crate::SchemaError;
use crate::columns;

/// The schema files, embedded at build time from the repository's `schemas/`.
pub const SCHEMA_FILES: &[(&str, &str)] = &[
    ("common.schema.json", include_str!("../../../schemas/common.schema.json")),
    ("envelope.schema.json", include_str!("../../../schemas/envelope.schema.json")),
    ("application.submitted.schema.json", include_str!("../../../schemas/application.submitted.schema.json")),
    ("decision.made.schema.json", include_str!("../../../schemas/decision.made.schema.json")),
    ("appeal.resolved.schema.json", include_str!("../../../schemas/appeal.resolved.schema.json")),
    ("staff.month_reported.schema.json", include_str!("../../../schemas/staff.month_reported.schema.json")),
    ("cost.booked.schema.json", include_str!("../../../schemas/cost.booked.schema.json")),
    ("appointment.booked.schema.json", include_str!("../../../schemas/appointment.booked.schema.json")),
];

/// Files that hold definitions only, not an event type.
const DEFINITION_FILES: &[&str] = &["common.schema.json", "envelope.schema.json"];

/// Keywords the interpreter understands; any other keyword is rejected at load.
const KNOWN_KEYWORDS: &[&str] = &[
    "$schema",
    "$id",
    "$defs",
    "$ref",
    "title",
    "description",
    "type",
    "properties",
    "required",
    "allOf",
    "enum",
    "const",
    "format",
    "minLength",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "multipleOf",
    "propertyNames",
    "additionalProperties",
    "x-permitflow-table",
    "x-permitflow-partition",
    "x-permitflow-pseudonymise",
    "x-permitflow-rules",
];

/// The compiled event contract: one [`EventSchema`] per event type.
#[derive(Debug)]
pub struct Contract {
    events: Vec<EventSchema>,
}

/// How one event type is validated, normalised and stored.
#[derive(Debug)]
pub struct EventSchema {
    /// The `event_type` value, e.g. `application.submitted`.
    pub event_type: String,
    /// The warehouse table, e.g. `applications`.
    pub table: String,
    /// The schema file this was compiled from.
    pub file: &'static str,
    /// Every property, envelope first, in the order written in the files.
    pub fields: Vec<Field>,
    /// Rules over several fields.
    pub rules: Vec<CrossRule>,
    /// How rows are laid out in Hive partitions.
    pub partition: PartitionSpec,
    arrow_schema: SchemaRef,
}

/// One property of an event.
#[derive(Debug, Clone)]
pub struct Field {
    /// Property name, also the column name.
    pub name: String,
    /// Type and constraints.
    pub kind: FieldKind,
    /// Listed in `required`.
    pub required: bool,
    /// Personal data: replaced by a keyed HMAC before storage.
    pub pseudonymise: bool,
}

/// The type of a property and the constraints that come with it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    /// A string that must equal this value (`const`); stored dictionary-encoded.
    ConstString(String),
    /// A string with a minimum length in characters.
    String {
        /// `minLength`.
        min_len: usize,
    },
    /// A UUID string (`format: uuid`), stored lower-case hyphenated.
    Uuid,
    /// One of a fixed set of strings (`enum`); stored dictionary-encoded.
    Enum(Vec<String>),
    /// RFC 3339 timestamp with offset (`format: date-time`); stored as UTC microseconds.
    Timestamp,
    /// `YYYY-MM` (`format: year-month`); stored as the string.
    YearMonth,
    /// A whole number.
    Integer {
        /// `minimum`.
        min: Option<i64>,
        /// `maximum`.
        max: Option<i64>,
        /// `const`: the only accepted value.
        constant: Option<i64>,
    },
    /// An exact decimal with at most `scale` decimals (`multipleOf: 0.01` gives 2).
    Decimal {
        /// Number of decimals kept.
        scale: u32,
        /// `minimum`, in units of 10^-scale.
        min: Option<i128>,
    },
    /// A floating-point number.
    Float {
        /// `minimum`.
        min: Option<f64>,
        /// `exclusiveMinimum`.
        exclusive_min: Option<f64>,
        /// `maximum`.
        max: Option<f64>,
    },
    /// `true` or `false`.
    Bool,
    /// An object from enum keys to non-negative numbers (`propertyNames` + `additionalProperties`).
    Shares {
        /// The allowed keys.
        keys: Vec<String>,
        /// `minimum` of every value.
        min_value: Option<f64>,
    },
}

impl FieldKind {
    /// Whether the field's JSON value is a string.
    pub fn is_string(&self) -> bool {
        matches!(
            self,
            FieldKind::ConstString(_)
                | FieldKind::String { .. }
                | FieldKind::Uuid
                | FieldKind::Enum(_)
                | FieldKind::Timestamp
                | FieldKind::YearMonth
        )
    }
}

/// A rule over several fields (`x-permitflow-rules`).
#[derive(Debug, Clone)]
pub struct CrossRule {
    /// The rule name reported in rejections.
    pub name: String,
    /// What is checked.
    pub check: CrossCheck,
}

/// The checks a cross-field rule can make; field references are indexes into [`EventSchema::fields`].
#[derive(Debug, Clone)]
pub enum CrossCheck {
    /// The values of a shares object sum to `value` within `tolerance`.
    SumEquals {
        /// The shares field.
        field: usize,
        /// Expected sum.
        value: f64,
        /// Allowed difference.
        tolerance: f64,
    },
    /// An integer is at most the number of days in the month of a `YYYY-MM` field.
    AtMostDaysInMonth {
        /// The integer field.
        field: usize,
        /// The month field.
        month_field: usize,
    },
    /// A timestamp is not before another one (compared in UTC).
    NotBefore {
        /// The later timestamp.
        field: usize,
        /// The earlier timestamp.
        than: usize,
    },
}

/// Hive partitioning of a table: one partition per month (`column=YYYY-MM`, UTC).
///
/// Event tables are partitioned by the month of `occurred_at`, staff and costs by their accounting `month`:
/// a day per partition made files of a few kilobytes, and every reader pays per file.
#[derive(Debug, Clone)]
pub struct PartitionSpec {
    /// Partition column name in the path (`event_month`, `month`).
    pub column: String,
    /// Index of the field the partition value comes from: a timestamp (its UTC month) or a `YYYY-MM` month.
    pub from: usize,
    /// A stored column that holds the UTC date (`YYYY-MM-DD`) of the timestamp `from`, if the table has one
    /// (`event_date`): the day that day filters and the models group by, kept beside the month partition.
    pub date_column: Option<String>,
}

impl PartitionSpec {
    /// The `column=value` directory name of a partition key.
    pub fn dir_name(&self, key: i32) -> String {
        format!("{}={}", self.column, self.value(key))
    }

    /// The partition value of a key (year × 12 + month − 1) as written in paths: `2024-03`.
    pub fn value(&self, key: i32) -> String {
        format!("{:04}-{:02}", key.div_euclid(12), key.rem_euclid(12) + 1)
    }
}

/// The partition key of a date's month (see [`PartitionSpec::value`]).
pub fn month_key(date: NaiveDate) -> i32 {
    date.year() * 12 + date.month0() as i32
}

impl Contract {
    /// The contract compiled from the embedded `schemas/` files (compiled once).
    pub fn embedded() -> Result<Arc<Contract>, SchemaError> {
        static CONTRACT: OnceLock<Result<Arc<Contract>, String>> = OnceLock::new();
        CONTRACT
            .get_or_init(|| Contract::compile(SCHEMA_FILES).map(Arc::new).map_err(|e| e.to_string()))
            .clone()
            .map_err(|message| SchemaError::Embedded { message })
    }

    /// Compiles a set of schema files given as `(file name, JSON text)`.
    pub fn compile(files: &[(&'static str, &str)]) -> Result<Contract, SchemaError> {
        let mut docs = Vec::with_capacity(files.len());
        for (name, text) in files {
            let doc: Value = serde_json::from_str(text).map_err(|e| SchemaError::Invalid {
                file: (*name).to_string(),
                pointer: String::new(),
                message: format!("not valid JSON: {e}"),
            })?;
            docs.push((*name, doc));
        }
        let resolver = Resolver { docs: &docs };
        let mut events = Vec::new();
        for (name, doc) in &docs {
            if DEFINITION_FILES.contains(name) {
                continue;
            }
            events.push(compile_event(&resolver, name, doc)?);
        }
        Ok(Contract { events })
    }

    /// The schema of an event type.
    pub fn event(&self, event_type: &str) -> Option<&EventSchema> {
        self.events.iter().find(|e| e.event_type == event_type)
    }

    /// Index of an event type in [`Contract::events`].
    pub fn event_index(&self, event_type: &str) -> Option<usize> {
        self.events.iter().position(|e| e.event_type == event_type)
    }

    /// The schema whose table has this name.
    pub fn table(&self, table: &str) -> Option<&EventSchema> {
        self.events.iter().find(|e| e.table == table)
    }

    /// All event types, in file order.
    pub fn events(&self) -> &[EventSchema] {
        &self.events
    }
}

impl EventSchema {
    /// The Arrow schema of the stored table (without the partition column, which lives in the path).
    pub fn arrow_schema(&self) -> &SchemaRef {
        &self.arrow_schema
    }

    /// Index of a field by name.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

struct Resolver<'a> {
    docs: &'a [(&'static str, Value)],
}

impl Resolver<'_> {
    /// Follows `file#/json/pointer` or `#/json/pointer` (relative to `current`).
    fn resolve(&self, current: &'static str, reference: &str) -> Result<(&'static str, &Value), String> {
        let (file, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let file = if file.is_empty() { current } else { file };
        let (name, doc) = self
            .docs
            .iter()
            .find(|(name, _)| *name == file)
            .ok_or_else(|| format!("$ref `{reference}`: no schema file `{file}`"))?;
        let target =
            doc.pointer(pointer).ok_or_else(|| format!("$ref `{reference}`: `{pointer}` not found in `{file}`"))?;
        Ok((name, target))
    }

    /// A schema object with its `$ref` (if any) merged under its own keywords.
    fn flatten(&self, file: &'static str, schema: &Value) -> Result<Map<String, Value>, String> {
        let obj = schema.as_object().ok_or("a schema must be a JSON object")?;
        for key in obj.keys() {
            if !KNOWN_KEYWORDS.contains(&key.as_str()) {
                return Err(format!("unsupported keyword `{key}`"));
            }
        }
        let mut merged = match obj.get("$ref") {
            Some(Value::String(reference)) => {
                let (target_file, target) = self.resolve(file, reference)?;
                self.flatten(target_file, target)?
            }
            Some(_) => return Err("`$ref` must be a string".into()),
            None => Map::new(),
        };
        for (k, v) in obj {
            if k != "$ref" {
                merged.insert(k.clone(), v.clone());
            }
        }
        Ok(merged)
    }
}

fn invalid(file: &str, pointer: impl Into<String>, message: impl Into<String>) -> SchemaError {
    SchemaError::Invalid { file: file.to_string(), pointer: pointer.into(), message: message.into() }
}

fn compile_event(resolver: &Resolver<'_>, file: &'static str, doc: &Value) -> Result<EventSchema, SchemaError> {
    let root = resolver.flatten(file, doc).map_err(|m| invalid(file, "", m))?;
    // Properties and required lists of allOf members (the envelope) come first.
    let mut properties: Vec<(String, Value)> = Vec::new();
    let mut required: Vec<String> = Vec::new();
    let mut members: Vec<(&'static str, Map<String, Value>)> = Vec::new();
    if let Some(all_of) = root.get("allOf") {
        let list = all_of.as_array().ok_or_else(|| invalid(file, "/allOf", "must be an array"))?;
        for (i, member) in list.iter().enumerate() {
            let flat = resolver.flatten(file, member).map_err(|m| invalid(file, format!("/allOf/{i}"), m))?;
            members.push((file, flat));
        }
    }
    members.push((file, root.clone()));
    for (_, member) in &members {
        if let Some(props) = member.get("properties").and_then(Value::as_object) {
            for (name, schema) in props {
                match properties.iter_mut().find(|(n, _)| n == name) {
                    Some((_, existing)) => {
                        // A later member narrows an earlier property (e.g. event_type's const).
                        if let (Some(base), Some(over)) = (existing.as_object_mut(), schema.as_object()) {
                            for (k, v) in over {
                                base.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    None => properties.push((name.clone(), schema.clone())),
                }
            }
        }
        if let Some(list) = member.get("required").and_then(Value::as_array) {
            required.extend(list.iter().filter_map(Value::as_str).map(str::to_string));
        }
    }

    let event_type = match properties.iter().find(|(n, _)| n == "event_type").map(|(_, s)| s.get("const")) {
        Some(Some(Value::String(t))) => t.clone(),
        _ => return Err(invalid(file, "/properties/event_type", "event_type needs a string `const`")),
    };
    let table = root
        .get("x-permitflow-table")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(file, "/x-permitflow-table", "missing table name"))?
        .to_string();

    let mut fields = Vec::with_capacity(properties.len());
    for (name, schema) in &properties {
        let pointer = format!("/properties/{name}");
        let mut flat = resolver.flatten(file, schema).map_err(|m| invalid(file, &pointer, m))?;
        for nested in ["propertyNames", "additionalProperties"] {
            if let Some(inner) = flat.get(nested) {
                let resolved =
                    resolver.flatten(file, inner).map_err(|m| invalid(file, format!("{pointer}/{nested}"), m))?;
                flat.insert(nested.to_string(), Value::Object(resolved));
            }
        }
        let kind = field_kind(&flat).map_err(|m| invalid(file, &pointer, m))?;
        let pseudonymise = flat.get("x-permitflow-pseudonymise").and_then(Value::as_bool).unwrap_or(false);
        if pseudonymise && !matches!(kind, FieldKind::String { .. }) {
            return Err(invalid(file, &pointer, "only plain strings can be pseudonymised"));
        }
        fields.push(Field { name: name.clone(), kind, required: required.contains(name), pseudonymise });
    }
    for name in &required {
        if !fields.iter().any(|f| &f.name == name) {
            return Err(invalid(file, "/required", format!("`{name}` is required but has no property")));
        }
    }

    let index_of = |name: &str, pointer: &str| {
        fields.iter().position(|f| f.name == name).ok_or_else(|| invalid(file, pointer, format!("no field `{name}`")))
    };
    let partition = {
        let p = root
            .get("x-permitflow-partition")
            .ok_or_else(|| invalid(file, "/x-permitflow-partition", "missing partition spec"))?;
        let text = |key: &str| {
            p.get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(file, format!("/x-permitflow-partition/{key}"), "must be a string"))
        };
        let from = index_of(text("from")?, "/x-permitflow-partition/from")?;
        match (text("granularity")?, &fields[from].kind) {
            ("month", FieldKind::Timestamp | FieldKind::YearMonth) => {}
            (g, k) => {
                return Err(invalid(
                    file,
                    "/x-permitflow-partition",
                    format!(
                        "granularity `{g}` does not fit field type {k:?} (partitions are months of a timestamp or a month field)"
                    ),
                ));
            }
        }
        let date_column = match p.get("date_column") {
            None => None,
            Some(_) if fields[from].kind != FieldKind::Timestamp => {
                return Err(invalid(file, "/x-permitflow-partition/date_column", "needs a timestamp `from` field"));
            }
            Some(_) => Some(text("date_column")?.to_string()),
        };
        PartitionSpec { column: text("column")?.to_string(), from, date_column }
    };

    let mut rules = Vec::new();
    if let Some(list) = root.get("x-permitflow-rules") {
        let list = list.as_array().ok_or_else(|| invalid(file, "/x-permitflow-rules", "must be an array"))?;
        for (i, rule) in list.iter().enumerate() {
            let pointer = format!("/x-permitflow-rules/{i}");
            let text = |key: &str| {
                rule.get(key)
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(file, &pointer, format!("`{key}` must be a string")))
            };
            let number = |key: &str| {
                rule.get(key)
                    .and_then(Value::as_f64)
                    .ok_or_else(|| invalid(file, &pointer, format!("`{key}` must be a number")))
            };
            let field = index_of(text("field")?, &pointer)?;
            let check = match text("check")? {
                "sum_equals" => {
                    CrossCheck::SumEquals { field, value: number("value")?, tolerance: number("tolerance")? }
                }
                "at_most_days_in_month" => {
                    CrossCheck::AtMostDaysInMonth { field, month_field: index_of(text("month_field")?, &pointer)? }
                }
                "not_before" => CrossCheck::NotBefore { field, than: index_of(text("than")?, &pointer)? },
                other => return Err(invalid(file, &pointer, format!("unknown check `{other}`"))),
            };
            rules.push(CrossRule { name: text("name")?.to_string(), check });
        }
    }

    let arrow_schema = columns::arrow_schema(&fields);
    Ok(EventSchema { event_type, table, file, fields, rules, partition, arrow_schema })
}

fn field_kind(schema: &Map<String, Value>) -> Result<FieldKind, String> {
    let ty = schema.get("type").and_then(Value::as_str);
    let num = |key: &str| schema.get(key).and_then(Value::as_f64);
    match (ty, schema.get("const"), schema.get("enum")) {
        (None | Some("string"), Some(Value::String(c)), _) => return Ok(FieldKind::ConstString(c.clone())),
        (Some("string"), None, Some(Value::Array(values))) => {
            let values: Option<Vec<String>> = values.iter().map(|v| v.as_str().map(str::to_string)).collect();
            let values = values.ok_or("enum values must be strings")?;
            if values.len() > i8::MAX as usize {
                return Err("an enum may have at most 127 values".into());
            }
            return Ok(FieldKind::Enum(values));
        }
        _ => {}
    }
    match ty {
        Some("string") => match schema.get("format").and_then(Value::as_str) {
            None => Ok(FieldKind::String { min_len: num("minLength").unwrap_or(0.0) as usize }),
            Some("uuid") => Ok(FieldKind::Uuid),
            Some("date-time") => Ok(FieldKind::Timestamp),
            Some("year-month") => Ok(FieldKind::YearMonth),
            Some(other) => Err(format!("unsupported string format `{other}`")),
        },
        Some("integer") => Ok(FieldKind::Integer {
            min: num("minimum").map(|v| v as i64),
            max: num("maximum").map(|v| v as i64),
            constant: schema.get("const").and_then(Value::as_i64),
        }),
        Some("number") => match num("multipleOf") {
            Some(step) => {
                let scale = (-step.log10()).round();
                if !(0.0..=18.0).contains(&scale) || (10f64.powi(-(scale as i32)) - step).abs() > f64::EPSILON {
                    return Err(format!("multipleOf {step} must be a power of ten such as 0.01"));
                }
                let scale = scale as u32;
                Ok(FieldKind::Decimal {
                    scale,
                    min: num("minimum").map(|m| (m * 10f64.powi(scale as i32)).round() as i128),
                })
            }
            None => Ok(FieldKind::Float {
                min: num("minimum"),
                exclusive_min: num("exclusiveMinimum"),
                max: num("maximum"),
            }),
        },
        Some("boolean") => Ok(FieldKind::Bool),
        Some("object") => {
            let keys = match schema.get("propertyNames").and_then(|p| p.get("enum")).and_then(Value::as_array) {
                Some(values) => values.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                None => return Err("an object field needs `propertyNames` with an enum".into()),
            };
            let values = schema.get("additionalProperties").ok_or("an object field needs `additionalProperties`")?;
            if values.get("type").and_then(Value::as_str) != Some("number") {
                return Err("object values must be numbers".into());
            }
            Ok(FieldKind::Shares { keys, min_value: values.get("minimum").and_then(Value::as_f64) })
        }
        other => Err(format!("unsupported type {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_contract_has_the_six_event_types() {
        let contract = Contract::embedded().expect("embedded schemas compile");
        let tables: Vec<&str> = contract.events().iter().map(|e| e.table.as_str()).collect();
        assert_eq!(tables, ["applications", "decisions", "appeals", "staff", "costs", "appointments"]);
    }

    #[test]
    fn every_file_in_schemas_dir_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("schemas/ exists")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.ends_with(".json"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = SCHEMA_FILES.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn envelope_fields_come_first_and_event_type_is_narrowed() {
        let contract = Contract::embedded().expect("compiles");
        let decisions = contract.event("decision.made").expect("decision.made");
        let names: Vec<&str> = decisions.fields.iter().take(5).map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["event_id", "event_type", "schema_version", "occurred_at", "producer"]);
        assert_eq!(decisions.fields[1].kind, FieldKind::ConstString("decision.made".into()));
        assert!(!decisions.fields[4].required, "producer is optional");
    }

    #[test]
    fn fee_is_a_two_decimal_non_negative_decimal() {
        let contract = Contract::embedded().expect("compiles");
        let apps = contract.event("application.submitted").expect("application.submitted");
        let fee = &apps.fields[apps.field_index("fee_eur").expect("fee")];
        assert_eq!(fee.kind, FieldKind::Decimal { scale: 2, min: Some(0) });
    }

    #[test]
    fn unknown_keyword_is_a_load_error_naming_file_and_pointer() {
        let files = [
            ("envelope.schema.json", r#"{"properties":{"event_type":{"type":"string"}},"required":["event_type"]}"#),
            (
                "x.schema.json",
                r#"{"x-permitflow-table":"x","allOf":[{"$ref":"envelope.schema.json"}],
                    "x-permitflow-partition":{"column":"d","from":"t","granularity":"month"},
                    "properties":{"event_type":{"const":"x"},"t":{"type":"string","format":"date-time","pattern":"^2"}}}"#,
            ),
        ];
        let err = Contract::compile(&files).expect_err("pattern is unsupported").to_string();
        assert!(err.contains("x.schema.json") && err.contains("/properties/t") && err.contains("pattern"), "{err}");
    }

    #[test]
    fn partition_values_format_as_hive_paths() {
        let contract = Contract::embedded().expect("compiles");
        let apps = contract.table("applications").expect("applications");
        let date = NaiveDate::from_ymd_opt(2024, 2, 29).expect("date");
        assert_eq!(apps.partition.dir_name(month_key(date)), "event_month=2024-02");
        assert_eq!(apps.partition.date_column.as_deref(), Some("event_date"));
        let staff = contract.table("staff").expect("staff");
        assert_eq!(staff.partition.dir_name(month_key(date)), "month=2024-02");
        assert_eq!(staff.partition.date_column, None);
    }
}
