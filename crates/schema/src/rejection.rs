//! Why an input was rejected: a stable rule name, the field, and a message for people.

use std::borrow::Cow;
use std::fmt;

/// Stable rule names of the checks the decoder makes itself.
///
/// Cross-field rules are named in the schema files (`x-permitflow-rules[].name`).
pub mod rule {
    /// The line is longer than [`crate::MAX_EVENT_BYTES`].
    pub const LINE_TOO_LARGE: &str = "line_too_large";
    /// The bytes are not UTF-8.
    pub const INVALID_UTF8: &str = "invalid_utf8";
    /// The text is not JSON.
    pub const INVALID_JSON: &str = "invalid_json";
    /// The JSON value is not an object.
    pub const NOT_AN_OBJECT: &str = "not_an_object";
    /// The same key appears twice in one object.
    pub const DUPLICATE_FIELD: &str = "duplicate_field";
    /// A required field is absent.
    pub const MISSING_FIELD: &str = "missing_field";
    /// A field has the wrong JSON type.
    pub const WRONG_TYPE: &str = "wrong_type";
    /// `event_type` names no known event.
    pub const UNKNOWN_EVENT_TYPE: &str = "unknown_event_type";
    /// `schema_version` is not a supported version.
    pub const UNKNOWN_SCHEMA_VERSION: &str = "unknown_schema_version";
    /// A value is not one of the enumeration's values.
    pub const UNKNOWN_ENUM_VALUE: &str = "unknown_enum_value";
    /// A timestamp is not RFC 3339 with an offset.
    pub const INVALID_TIMESTAMP: &str = "invalid_timestamp";
    /// A month is not `YYYY-MM` with month 01–12.
    pub const INVALID_MONTH: &str = "invalid_month";
    /// An id that must be a UUID is not one.
    pub const INVALID_UUID: &str = "invalid_uuid";
    /// A string holds an escape that is not a Unicode scalar value (a lone surrogate).
    pub const INVALID_STRING: &str = "invalid_string";
    /// A string is shorter than its minimum length (usually: empty).
    pub const EMPTY_STRING: &str = "empty_string";
    /// A number is outside its allowed range.
    pub const OUT_OF_RANGE: &str = "out_of_range";
    /// A decimal has more decimals than the contract allows.
    pub const TOO_MANY_DECIMALS: &str = "too_many_decimals";
}

/// A rejected input: which rule failed, on which field, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Stable rule name (see [`rule`] and the schema files' `x-permitflow-rules`).
    pub rule: Cow<'static, str>,
    /// The field the rule is about, when there is one.
    pub field: Option<String>,
    /// What was wrong, for people.
    pub message: String,
    /// The event type, when it could be read.
    pub event_type: Option<String>,
    /// The event id, when it could be read.
    pub event_id: Option<String>,
}

impl Rejection {
    /// The rejection of an input longer than [`crate::MAX_EVENT_BYTES`] (whose bytes need not be kept).
    pub fn too_large(len: u64) -> Rejection {
        Rejection::new(
            rule::LINE_TOO_LARGE,
            None,
            format!("{len} bytes; the limit is {} bytes (1 MiB) per event", crate::MAX_EVENT_BYTES),
        )
    }

    pub(crate) fn new(rule: impl Into<Cow<'static, str>>, field: Option<&str>, message: impl Into<String>) -> Self {
        Rejection {
            rule: rule.into(),
            field: field.map(str::to_string),
            message: message.into(),
            event_type: None,
            event_id: None,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.rule)?;
        if let Some(field) = &self.field {
            write!(f, " (field `{field}`)")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for Rejection {}
