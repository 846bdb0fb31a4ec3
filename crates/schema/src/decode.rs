//! JSON line → validated, normalised, pseudonymised Arrow rows.
//!
//! One pass: the members of the top-level object are located as borrowed raw
//! values (no tree is built), each field of the event's plan is parsed from its
//! raw text, the cross-field rules run, and only then is the row appended, so a
//! rejected line leaves no partial row behind.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Builder, RecordBatch};
use chrono::{DateTime, NaiveDate, SecondsFormat};
use foldhash::fast::FixedState;
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::columns::{ColumnBuilder, SourceBuilder, Staged, finish_keeping_room};
use crate::contract::{Contract, CrossCheck, EventSchema, Field, FieldKind, month_key};
use crate::privacy::Pseudonymiser;
use crate::rejection::{Rejection, rule};
use crate::{MAX_EVENT_BYTES, SchemaError};

/// Where an input came from: a source name and a position in it.
#[derive(Debug, Clone, Copy)]
pub struct Position<'a> {
    /// `file:<path>` or `kafka:<topic>/<partition>`.
    pub source: &'a str,
    /// Line number (1-based) in a file, or the Kafka offset.
    pub offset: i64,
}

/// Rows of one event table decoded since the last [`Decoder::finish`].
#[derive(Debug, Clone)]
pub struct DecodedBatch {
    /// Index of the event type in [`Contract::events`].
    pub event: usize,
    /// The rows, in the table's Arrow schema.
    pub batch: RecordBatch,
    /// The Hive partition key of every row: its month (see [`crate::PartitionSpec::value`]).
    pub partition_keys: Vec<i32>,
}

struct TableBuffer {
    columns: Vec<ColumnBuilder>,
    source: SourceBuilder,
    offset: Int64Builder,
    partition_keys: Vec<i32>,
}

impl TableBuffer {
    fn new(schema: &EventSchema) -> Self {
        TableBuffer {
            columns: schema.fields.iter().map(|f| ColumnBuilder::new(&f.kind)).collect(),
            source: SourceBuilder::default(),
            offset: Int64Builder::new(),
            partition_keys: Vec::new(),
        }
    }
}

/// Strings mapped to their index in the list they came from (the first index when one is listed twice).
struct Lookup(HashMap<Box<str>, usize, FixedState>);

impl Lookup {
    fn new<'s>(names: impl IntoIterator<Item = &'s str>) -> Self {
        let mut map = HashMap::with_hasher(FixedState::default());
        for (i, name) in names.into_iter().enumerate() {
            map.entry(name.into()).or_insert(i);
        }
        Lookup(map)
    }

    fn get(&self, name: &str) -> Option<usize> {
        self.0.get(name).copied()
    }
}

/// Member slot of `event_type` in [`Plan::members`].
const EVENT_TYPE_SLOT: usize = 0;
/// Member slot of `event_id` in [`Plan::members`].
const EVENT_ID_SLOT: usize = 1;

/// The contract turned into lookups, so decoding a line compares no names one by one.
struct Plan {
    /// Every field name of every event type → its slot in [`Decoder::members`].
    members: Lookup,
    /// The name of each slot.
    names: Vec<Box<str>>,
    /// Per slot, whether every field of that name is a string, so the locator can read its value as one.
    text_slots: Vec<bool>,
    /// `event_type` value → index in [`Contract::events`].
    event_types: Lookup,
    /// Per event type, per field.
    fields: Vec<Vec<FieldPlan>>,
}

struct FieldPlan {
    /// Slot of the field in [`Decoder::members`].
    slot: usize,
    /// Enum values or share keys → their index; empty for other kinds.
    values: Lookup,
}

impl Plan {
    fn new(contract: &Contract) -> Self {
        let mut names = vec!["event_type", "event_id"];
        for field in contract.events().iter().flat_map(|e| &e.fields) {
            if !names.contains(&field.name.as_str()) {
                names.push(&field.name);
            }
        }
        let members = Lookup::new(names.iter().copied());
        let fields = contract
            .events()
            .iter()
            .map(|event| {
                event
                    .fields
                    .iter()
                    .map(|field| FieldPlan {
                        slot: members.get(&field.name).unwrap_or_else(|| unreachable!("every field name is a member")),
                        values: match &field.kind {
                            FieldKind::Enum(values) | FieldKind::Shares { keys: values, .. } => {
                                Lookup::new(values.iter().map(String::as_str))
                            }
                            _ => Lookup::new([]),
                        },
                    })
                    .collect()
            })
            .collect();
        let event_types = Lookup::new(contract.events().iter().map(|e| e.event_type.as_str()));
        let text_slots = names
            .iter()
            .map(|name| {
                let mut fields = contract.events().iter().flat_map(|e| &e.fields).filter(|f| f.name == *name);
                fields.all(|f| f.kind.is_string())
            })
            .collect();
        Plan { members, names: names.into_iter().map(Box::from).collect(), text_slots, event_types, fields }
    }
}

/// A member of a line's top-level object, if given exactly once.
#[derive(Debug, Clone, Copy)]
enum Member<'a> {
    Absent,
    /// Its raw JSON text.
    Once(&'a str),
    /// A string read by the locator: its content, which has no escapes.
    Text(&'a str),
    Repeated,
}

/// A member of a line, as the field parsers read it.
#[derive(Debug, Clone, Copy)]
struct Raw<'a> {
    /// The member's JSON text; for a string the locator has read, only the opening quote (which is all
    /// that the other kinds' parsers look at before they reject a string).
    text: &'a str,
    /// The content of a string the locator has read.
    content: Option<&'a str>,
    /// Whether the line has a backslash anywhere; when not, no string in it needs unescaping.
    line_escapes: bool,
}

/// The line being decoded, with its members located.
struct Line<'a, 'm> {
    escapes: bool,
    members: &'m [Member<'a>],
}

impl<'a> Line<'a, '_> {
    /// The raw value of the member in `slot`; a key given twice is a rejection, not a silent choice.
    #[inline]
    fn get(&self, slot: usize, name: &str) -> Result<Option<Raw<'a>>, Rejection> {
        match self.members[slot] {
            Member::Absent => Ok(None),
            Member::Once(text) => Ok(Some(Raw { text, content: None, line_escapes: self.escapes })),
            Member::Text(content) => Ok(Some(Raw { text: "\"", content: Some(content), line_escapes: false })),
            Member::Repeated => {
                Err(Rejection::new(rule::DUPLICATE_FIELD, Some(name), format!("`{name}` is given twice")))
            }
        }
    }
}

/// Decodes event lines into per-table Arrow buffers.
pub struct Decoder {
    contract: Arc<Contract>,
    pseudonymiser: Pseudonymiser,
    plan: Plan,
    /// Spare buffers lent to each line in turn (see [`reuse`]), so that a line allocates nothing.
    members: Vec<Member<'static>>,
    staged: Vec<Staged<'static>>,
    /// Per slot, the slot of the key that followed it in the last line (the last entry: the first key).
    next_key: Vec<usize>,
    tables: Vec<TableBuffer>,
    buffered_rows: usize,
    buffered_bytes: usize,
}

impl Decoder {
    /// A decoder for `contract` that pseudonymises personal fields with `pseudonymiser`.
    pub fn new(contract: Arc<Contract>, pseudonymiser: Pseudonymiser) -> Self {
        let tables = contract.events().iter().map(TableBuffer::new).collect();
        let plan = Plan::new(&contract);
        Decoder {
            next_key: vec![EVENT_TYPE_SLOT; plan.names.len() + 1],
            contract,
            pseudonymiser,
            plan,
            members: Vec::new(),
            staged: Vec::new(),
            tables,
            buffered_rows: 0,
            buffered_bytes: 0,
        }
    }

    /// The contract this decoder validates against.
    pub fn contract(&self) -> &Arc<Contract> {
        &self.contract
    }

    /// Rows buffered since the last [`Decoder::finish`].
    pub fn buffered_rows(&self) -> usize {
        self.buffered_rows
    }

    /// Input bytes of the rows buffered since the last [`Decoder::finish`].
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Validates one event and buffers it; returns the index of its event type.
    ///
    /// On rejection nothing is buffered.
    pub fn decode(&mut self, line: &[u8], position: Position<'_>) -> Result<usize, Rejection> {
        let mut members = reuse(std::mem::take(&mut self.members));
        let mut staged = reuse(std::mem::take(&mut self.staged));
        let result = self.validate(line, &mut members, &mut staged);
        if let Ok((event, partition_key)) = result {
            let table = &mut self.tables[event];
            for (column, value) in table.columns.iter_mut().zip(&staged) {
                column.append(value, &self.pseudonymiser);
            }
            table.source.append_value(position.source);
            table.offset.append_value(position.offset);
            table.partition_keys.push(partition_key);
            self.buffered_rows += 1;
            self.buffered_bytes += line.len();
        }
        self.members = reuse(members);
        self.staged = reuse(staged);
        result.map(|(event, _)| event)
    }

    /// Checks a line and stages its row; returns the event index and the partition key.
    fn validate<'a>(
        &mut self,
        line: &'a [u8],
        members: &mut Vec<Member<'a>>,
        staged: &mut Vec<Staged<'a>>,
    ) -> Result<(usize, i32), Rejection> {
        if line.len() > MAX_EVENT_BYTES {
            return Err(Rejection::too_large(line.len() as u64));
        }
        let text = simdutf8::compat::from_utf8(line).map_err(|e| {
            Rejection::new(rule::INVALID_UTF8, None, format!("not UTF-8 at byte {}", e.valid_up_to() + 1))
        })?;
        members.resize(self.plan.names.len(), Member::Absent);
        let escapes = memchr::memchr(b'\\', line).is_some();
        locate_members(text, &self.plan, !escapes, &mut self.next_key, members)?;
        let line = Line { escapes, members };
        let event_type = match line.get(EVENT_TYPE_SLOT, "event_type")? {
            None => return Err(Rejection::new(rule::MISSING_FIELD, Some("event_type"), "`event_type` is required")),
            Some(raw) => parse_str(raw, "event_type")?,
        };
        let with_context = |mut r: Rejection| {
            r.event_type = Some(event_type.to_string());
            r.event_id = line
                .get(EVENT_ID_SLOT, "event_id")
                .ok()
                .flatten()
                .and_then(|raw| parse_str(raw, "event_id").ok())
                .map(Cow::into_owned);
            r
        };
        let Some(event) = self.plan.event_types.get(&event_type) else {
            let known: Vec<&str> = self.contract.events().iter().map(|e| e.event_type.as_str()).collect();
            return Err(with_context(Rejection::new(
                rule::UNKNOWN_EVENT_TYPE,
                Some("event_type"),
                format!("`{event_type}` is not one of {}", known.join(", ")),
            )));
        };
        let schema = &self.contract.events()[event];
        for (field, plan) in schema.fields.iter().zip(&self.plan.fields[event]) {
            let value = match line.get(plan.slot, &field.name).map_err(with_context)? {
                None if field.required => {
                    return Err(with_context(Rejection::new(
                        rule::MISSING_FIELD,
                        Some(&field.name),
                        format!("`{}` is required for {}", field.name, schema.event_type),
                    )));
                }
                None => Staged::Null,
                Some(raw) if !field.required && raw.text == "null" => Staged::Null,
                Some(raw) => self.parse_field(field, plan, raw).map_err(with_context)?,
            };
            staged.push(value);
        }
        check_cross_rules(schema, staged).map_err(with_context)?;
        let partition_key = match &staged[schema.partition.from] {
            Staged::Timestamp(micros) => DateTime::from_timestamp_micros(*micros).map(|t| month_key(t.date_naive())),
            Staged::Month { key, .. } => Some(*key),
            _ => None,
        };
        let Some(partition_key) = partition_key else {
            return Err(with_context(Rejection::new(
                rule::MISSING_FIELD,
                Some(&schema.fields[schema.partition.from].name),
                format!("partition field has no value ({:?})", staged[schema.partition.from]),
            )));
        };
        Ok((event, partition_key))
    }

    // Inlined into its one caller: returned through memory, the staged value was written in parts and
    // read back whole at once, and that stalled the CPU on every field (about 6 % of the decode time
    // in `perf`); inlined, it is 7-12 % faster in the decode bench.
    #[inline(always)]
    fn parse_field<'a>(&self, field: &Field, plan: &FieldPlan, raw: Raw<'a>) -> Result<Staged<'a>, Rejection> {
        let name = field.name.as_str();
        let text = raw.text;
        match &field.kind {
            FieldKind::ConstString(expected) => {
                let s = parse_str(raw, name)?;
                if &*s == expected {
                    Ok(Staged::Enum(0))
                } else {
                    Err(Rejection::new(
                        rule::UNKNOWN_ENUM_VALUE,
                        Some(name),
                        format!("must be `{expected}`, got `{s}`"),
                    ))
                }
            }
            FieldKind::String { min_len } => {
                let s = parse_str(raw, name)?;
                if s.chars().take(*min_len).count() < *min_len {
                    return Err(Rejection::new(
                        rule::EMPTY_STRING,
                        Some(name),
                        format!("must have at least {min_len} character(s)"),
                    ));
                }
                Ok(if field.pseudonymise { Staged::Personal(s) } else { Staged::Str(s) })
            }
            FieldKind::Uuid => {
                let s = parse_str(raw, name)?;
                let id = uuid::Uuid::try_parse(&s)
                    .map_err(|e| Rejection::new(rule::INVALID_UUID, Some(name), format!("`{s}` is not a UUID: {e}")))?;
                // 36 characters is the hyphenated form; without upper-case letters it is already normal.
                if s.len() == uuid::fmt::Hyphenated::LENGTH && !s.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Ok(Staged::Str(s));
                }
                let mut buf = uuid::Uuid::encode_buffer();
                let normal = id.hyphenated().encode_lower(&mut buf);
                Ok(Staged::Str(if *normal == *s { s } else { Cow::Owned(normal.to_string()) }))
            }
            FieldKind::Enum(values) => {
                let s = parse_str(raw, name)?;
                match plan.values.get(&s) {
                    Some(i) => Ok(Staged::Enum(i as i8)),
                    None => Err(Rejection::new(
                        rule::UNKNOWN_ENUM_VALUE,
                        Some(name),
                        format!("`{s}` is not one of {}", values.join(", ")),
                    )),
                }
            }
            FieldKind::Timestamp => Ok(Staged::Timestamp(parse_timestamp(&parse_str(raw, name)?, name)?)),
            FieldKind::YearMonth => {
                let s = parse_str(raw, name)?;
                let (key, days) = parse_month(&s).ok_or_else(|| {
                    Rejection::new(rule::INVALID_MONTH, Some(name), format!("`{s}` is not a month YYYY-MM (01-12)"))
                })?;
                Ok(Staged::Month { text: s, key, days })
            }
            FieldKind::Integer { min, max, constant } => {
                let v = parse_integer(text, name)?;
                if let Some(c) = constant
                    && v != *c
                {
                    return Err(Rejection::new(
                        format!("unknown_{name}"),
                        Some(name),
                        format!("{v} is not supported; this pipeline reads {name} {c}"),
                    ));
                }
                if min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m) {
                    return Err(Rejection::new(
                        rule::OUT_OF_RANGE,
                        Some(name),
                        format!("{v} is outside {}..={}", fmt_bound(*min), fmt_bound(*max)),
                    ));
                }
                Ok(Staged::Int(v))
            }
            FieldKind::Decimal { scale, min } => {
                let v = parse_decimal(text, *scale, name)?;
                if let Some(m) = min
                    && v < *m
                {
                    return Err(Rejection::new(
                        rule::OUT_OF_RANGE,
                        Some(name),
                        format!("{text} is below the minimum {}", fmt_decimal(*m, *scale)),
                    ));
                }
                Ok(Staged::Decimal(v))
            }
            FieldKind::Float { min, exclusive_min, max } => {
                let v = parse_float(text, name)?;
                let below = min.is_some_and(|m| v < m) || exclusive_min.is_some_and(|m| v <= m);
                if below || max.is_some_and(|m| v > m) {
                    let lower = match (min, exclusive_min) {
                        (_, Some(m)) => format!("greater than {m}"),
                        (Some(m), None) => format!("at least {m}"),
                        (None, None) => "any".into(),
                    };
                    let upper = max.map(|m| format!(" and at most {m}")).unwrap_or_default();
                    return Err(Rejection::new(rule::OUT_OF_RANGE, Some(name), format!("{v} must be {lower}{upper}")));
                }
                Ok(Staged::Float(v))
            }
            FieldKind::Bool => match text {
                "true" => Ok(Staged::Bool(true)),
                "false" => Ok(Staged::Bool(false)),
                _ => Err(wrong_type(name, "a boolean", text)),
            },
            FieldKind::Shares { keys, min_value } => {
                if !text.starts_with('{') {
                    return Err(wrong_type(name, "an object", text));
                }
                let object = parse_object(text).map_err(|mut r| {
                    r.field = Some(name.to_string());
                    r
                })?;
                let mut shares = Vec::with_capacity(object.0.len());
                for (key, value) in &object.0 {
                    let path = format!("{name}.{key}");
                    let index = plan.values.get(key).ok_or_else(|| {
                        Rejection::new(
                            rule::UNKNOWN_ENUM_VALUE,
                            Some(name),
                            format!("key `{key}` is not one of {}", keys.join(", ")),
                        )
                    })?;
                    let share = parse_float(value.get(), &path)?;
                    if min_value.is_some_and(|m| share < m) {
                        return Err(Rejection::new(rule::OUT_OF_RANGE, Some(&path), format!("{share} is negative")));
                    }
                    shares.push((index as i8, share));
                }
                Ok(Staged::Shares(shares))
            }
        }
    }

    /// Takes the buffered rows as one batch per event type that has rows.
    pub fn finish(&mut self) -> Result<Vec<DecodedBatch>, SchemaError> {
        let mut out = Vec::new();
        for (event, (table, schema)) in self.tables.iter_mut().zip(self.contract.events()).enumerate() {
            if table.partition_keys.is_empty() {
                continue;
            }
            // The builders keep room for a batch this size: the next batch of a stream is usually alike.
            let mut arrays: Vec<ArrayRef> =
                table.columns.iter_mut().map(ColumnBuilder::finish).collect::<Result<_, _>>()?;
            arrays.push(Arc::new(table.source.finish()));
            arrays.push(Arc::new(finish_keeping_room(&mut table.offset)));
            let batch = RecordBatch::try_new(schema.arrow_schema().clone(), arrays)?;
            let rows = table.partition_keys.len();
            let partition_keys = std::mem::replace(&mut table.partition_keys, Vec::with_capacity(rows));
            out.push(DecodedBatch { event, batch, partition_keys });
        }
        self.buffered_rows = 0;
        self.buffered_bytes = 0;
        Ok(out)
    }
}

/// The members of a JSON object as borrowed raw values, in input order.
struct Object<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Object<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some(Key(key)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(Object(members))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Reads a line's top-level object into member slots: only the members the contract names are kept.
struct Members<'s, 'de> {
    plan: &'s Plan,
    /// Whether the values of text slots are read as strings (the line has no escapes).
    read_text: bool,
    next_key: &'s mut [usize],
    slots: &'s mut [Member<'de>],
}

impl<'de> DeserializeSeed<'de> for Members<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Members<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Lines from one producer list their keys in the same order, so the key that followed the
        // previous one last time is tried before the key is hashed.
        let mut previous = self.plan.names.len();
        while let Some(Key(key)) = map.next_key()? {
            let guess = self.next_key[previous];
            let slot = if same_text(&self.plan.names[guess], &key) { Some(guess) } else { self.plan.members.get(&key) };
            let Some(slot) = slot else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            self.next_key[previous] = slot;
            previous = slot;
            let value = if self.read_text && self.plan.text_slots[slot] {
                map.next_value_seed(TextValue)?
            } else {
                Member::Once(map.next_value::<&'de RawValue>()?.get())
            };
            self.slots[slot] = match self.slots[slot] {
                Member::Absent => value,
                Member::Once(_) | Member::Text(_) | Member::Repeated => Member::Repeated,
            };
        }
        Ok(())
    }
}

/// The value of a member whose fields are all strings, read in the same pass that locates it.
///
/// A string becomes [`Member::Text`]. Any other value, which its field will reject, becomes a JSON text of
/// the same kind: the rejection names only the kind. (A number beyond the range of `f64` here is
/// rejected by serde_json as invalid JSON instead.)
struct TextValue;

impl<'de> DeserializeSeed<'de> for TextValue {
    type Value = Member<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Member<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TextValue {
    type Value = Member<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Member<'de>, E> {
        Ok(Member::Text(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Member<'de>, E> {
        Ok(Member::Once("null"))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Member<'de>, E> {
        Ok(Member::Once(if v { "true" } else { "false" }))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Member<'de>, E> {
        Ok(Member::Once("0"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Member<'de>, E> {
        Ok(Member::Once("0"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Member<'de>, E> {
        Ok(Member::Once("0"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Member<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Member::Once("[]"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Member::Once("{}"))
    }
}

/// Whether two short texts are equal, compared without a call to `memcmp`.
///
/// Member names are 4 to 16 bytes long, and a line compares a dozen of them: two overlapping
/// word loads are much cheaper than a library call each.
#[inline]
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().unwrap_or_default());
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().unwrap_or_default());
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => a == b,
    }
}

/// Finds the members of the object in `line` that the plan names, by slot (all absent on entry).
fn locate_members<'a>(
    line: &'a str,
    plan: &Plan,
    read_text: bool,
    next_key: &mut [usize],
    slots: &mut [Member<'a>],
) -> Result<(), Rejection> {
    let mut deserializer = serde_json::Deserializer::from_str(line);
    Members { plan, read_text, next_key, slots }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(|e| json_error(line, e))
}

/// An empty vector that reuses the allocation of `v`, for elements of another lifetime.
///
/// The standard library collects a `vec::IntoIter` into a vector of a type of the same size and
/// alignment in place, so this does not allocate; the closure never runs as `v` is emptied first.
fn reuse<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().map(|_| unreachable!("the vector was emptied")).collect()
}

fn parse_object(text: &str) -> Result<Object<'_>, Rejection> {
    serde_json::from_str::<Object<'_>>(text).map_err(|e| json_error(text, e))
}

fn json_error(text: &str, e: serde_json::Error) -> Rejection {
    if e.is_data() {
        Rejection::new(rule::NOT_AN_OBJECT, None, format!("an event must be a JSON object, got {}", json_kind(text)))
    } else {
        Rejection::new(rule::INVALID_JSON, None, format!("not valid JSON: {e}"))
    }
}

fn json_kind(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        Some(b'{') => "an object",
        _ => "a number",
    }
}

fn wrong_type(field: &str, expected: &str, text: &str) -> Rejection {
    Rejection::new(rule::WRONG_TYPE, Some(field), format!("expected {expected}, got {}", json_kind(text)))
}

/// A JSON string's value, borrowed when it has no escapes.
fn parse_str<'a>(raw: Raw<'a>, field: &str) -> Result<Cow<'a, str>, Rejection> {
    if let Some(content) = raw.content {
        return Ok(Cow::Borrowed(content));
    }
    let text = raw.text;
    if !text.starts_with('"') {
        return Err(wrong_type(field, "a string", text));
    }
    let inner = &text[1..text.len() - 1];
    if !raw.line_escapes || !inner.as_bytes().contains(&b'\\') {
        return Ok(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(text)
        .map(Cow::Owned)
        .map_err(|e| Rejection::new(rule::INVALID_STRING, Some(field), format!("invalid string escape: {e}")))
}

/// RFC 3339 text → microseconds since the epoch, in UTC.
///
/// The shape producers send is read by position ([`common_shape_micros`]); every other text, and every
/// rejection, is chrono's full RFC 3339 parser's.
fn parse_timestamp(s: &str, field: &str) -> Result<i64, Rejection> {
    if let Some(micros) = common_shape_micros(s) {
        return Ok(micros);
    }
    DateTime::parse_from_rfc3339(s).map(|t| t.timestamp_micros()).map_err(|e| {
        Rejection::new(
            rule::INVALID_TIMESTAMP,
            Some(field),
            format!("`{s}` is not an RFC 3339 timestamp with offset such as 2024-03-01T11:15:00+02:00 ({e})"),
        )
    })
}

/// `YYYY-MM-DDTHH:MM:SS`, an optional fraction of 1 to 9 digits, then `Z` or `±HH:MM` → microseconds
/// since the epoch, in UTC; `None` for any other text (chrono's parser then decides).
///
/// chrono checks the calendar (days in the month, hours, minutes); this only reads the digits in their
/// fixed places, which costs fewer instructions than chrono's general parser. Leap seconds (`:60`) and
/// offsets beyond ±23:59 are left to chrono.
fn common_shape_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |value, d| d.is_ascii_digit().then(|| value * 10 + u32::from(d - b'0')))
    };
    let (year, month, day) = (number(&b[0..4])?, number(&b[5..7])?, number(&b[8..10])?);
    let (hour, minute, second) = (number(&b[11..13])?, number(&b[14..16])?, number(&b[17..19])?);
    let (nanos, zone) = match &b[19..] {
        [b'.', rest @ ..] => {
            let n = rest.iter().take_while(|d| d.is_ascii_digit()).count();
            if !(1..=9).contains(&n) {
                return None;
            }
            (number(&rest[..n])? * 10u32.pow(9 - n as u32), &rest[n..])
        }
        rest => (0, rest),
    };
    let offset_seconds = match zone {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (hours, minutes) = (number(&[*h1, *h2])?, number(&[*m1, *m2])?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = i64::from(hours * 3600 + minutes * 60);
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    if second > 59 {
        return None;
    }
    let local = NaiveDate::from_ymd_opt(year as i32, month, day)?.and_hms_nano_opt(hour, minute, second, nanos)?;
    Some((local.and_utc().timestamp() - offset_seconds) * 1_000_000 + i64::from(nanos / 1000))
}

/// `YYYY-MM` → (year × 12 + month − 1, days in that month).
fn parse_month(s: &str) -> Option<(i32, u32)> {
    let bytes = s.as_bytes();
    if bytes.len() != 7 || bytes[4] != b'-' || !s[..4].bytes().chain(s[5..].bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = s[..4].parse().ok()?;
    let month: u32 = s[5..].parse().ok()?;
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    Some((year * 12 + month as i32 - 1, (next - first).num_days() as u32))
}

fn is_json_number(text: &str) -> bool {
    matches!(text.as_bytes().first(), Some(b'-' | b'0'..=b'9'))
}

fn parse_integer(text: &str, field: &str) -> Result<i64, Rejection> {
    if !is_json_number(text) {
        return Err(wrong_type(field, "an integer", text));
    }
    if text.contains(['.', 'e', 'E']) {
        return Err(Rejection::new(rule::WRONG_TYPE, Some(field), format!("expected an integer, got {text}")));
    }
    text.parse::<i64>()
        .map_err(|_| Rejection::new(rule::OUT_OF_RANGE, Some(field), format!("{text} does not fit in 64 bits")))
}

fn parse_float(text: &str, field: &str) -> Result<f64, Rejection> {
    if !is_json_number(text) {
        return Err(wrong_type(field, "a number", text));
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(Rejection::new(rule::OUT_OF_RANGE, Some(field), format!("{text} is not a finite number"))),
    }
}

/// Largest magnitude stored, in units of 10^-scale (fits Decimal128(18, scale)).
const DECIMAL_MAX_UNITS: i128 = 999_999_999_999_999_999;

/// A JSON number as an exact integer count of 10^-scale units.
///
/// `455`, `455.5`, `455.50` and `4.555e2` are all fine at scale 2; `12.345` is not.
fn parse_decimal(text: &str, scale: u32, field: &str) -> Result<i128, Rejection> {
    if !is_json_number(text) {
        return Err(wrong_type(field, "a number", text));
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().unwrap_or(i32::MAX)),
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let frac_part = frac_part.trim_end_matches('0');
    // The significant digits: integer then kept fraction digits, without leading zeros.
    let digits = || int_part.bytes().chain(frac_part.bytes()).skip_while(|b| *b == b'0');
    let digit_count = digits().count();
    // value = digits × 10^(exponent − kept fraction digits)
    let shift = exponent as i64 - frac_part.len() as i64 + scale as i64;
    let too_large = || Rejection::new(rule::OUT_OF_RANGE, Some(field), format!("{text} is too large"));
    if digit_count == 0 {
        return Ok(0);
    }
    if shift < 0 {
        return Err(Rejection::new(
            rule::TOO_MANY_DECIMALS,
            Some(field),
            format!("{text} has more than {scale} decimals"),
        ));
    }
    if digit_count as i64 + shift > 18 {
        return Err(too_large());
    }
    // At most 18 digits (checked above), so this cannot overflow.
    let significand = digits().fold(0i128, |value, digit| value * 10 + i128::from(digit - b'0'));
    let units = significand * 10i128.pow(shift as u32);
    if units > DECIMAL_MAX_UNITS {
        return Err(too_large());
    }
    Ok(if negative { -units } else { units })
}

fn fmt_decimal(units: i128, scale: u32) -> String {
    let div = 10i128.pow(scale);
    format!("{}.{:0width$}", units / div, (units % div).abs(), width = scale as usize)
}

fn fmt_bound(bound: Option<i64>) -> String {
    bound.map(|b| b.to_string()).unwrap_or_default()
}

fn fmt_micros(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| micros.to_string())
}

fn check_cross_rules(schema: &EventSchema, staged: &[Staged<'_>]) -> Result<(), Rejection> {
    for rule in &schema.rules {
        let failure = match &rule.check {
            CrossCheck::SumEquals { field, value, tolerance } => match &staged[*field] {
                Staged::Shares(shares) => {
                    let sum: f64 = shares.iter().map(|(_, s)| s).sum();
                    ((sum - value).abs() > *tolerance)
                        .then(|| (*field, format!("shares sum to {sum:.4}, not {value} (±{tolerance})")))
                }
                _ => None,
            },
            CrossCheck::AtMostDaysInMonth { field, month_field } => match (&staged[*field], &staged[*month_field]) {
                (Staged::Int(v), Staged::Month { text, days, .. }) if *v > i64::from(*days) => {
                    Some((*field, format!("{v} is more than the {days} days of {text}")))
                }
                _ => None,
            },
            CrossCheck::NotBefore { field, than } => match (&staged[*field], &staged[*than]) {
                (Staged::Timestamp(later), Staged::Timestamp(earlier)) if later < earlier => Some((
                    *field,
                    format!(
                        "{} ({}) is before {} ({}) when compared in UTC",
                        schema.fields[*field].name,
                        fmt_micros(*later),
                        schema.fields[*than].name,
                        fmt_micros(*earlier)
                    ),
                )),
                _ => None,
            },
        };
        if let Some((field, message)) = failure {
            return Err(Rejection::new(rule.name.clone(), Some(&schema.fields[field].name), message));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("455", 2, "f"), Ok(45500));
        assert_eq!(parse_decimal("455.5", 2, "f"), Ok(45550));
        assert_eq!(parse_decimal("455.50", 2, "f"), Ok(45550));
        assert_eq!(parse_decimal("4.555e2", 2, "f"), Ok(45550));
        assert_eq!(parse_decimal("-0.01", 2, "f"), Ok(-1));
        assert_eq!(parse_decimal("0", 2, "f"), Ok(0));
        assert_eq!(parse_decimal("12.345", 2, "f").map_err(|r| r.rule), Err(rule::TOO_MANY_DECIMALS.into()));
        assert_eq!(parse_decimal("1e400", 2, "f").map_err(|r| r.rule), Err(rule::OUT_OF_RANGE.into()));
        assert_eq!(parse_decimal("\"5\"", 2, "f").map_err(|r| r.rule), Err(rule::WRONG_TYPE.into()));
    }

    /// A generated year at 1 % scale (about 3,900 valid events), one line each.
    fn generated_year() -> Vec<u8> {
        let config = permitflow_gen::GenConfig { scale: 0.01, ..permitflow_gen::GenConfig::default() };
        let mut input = Vec::new();
        permitflow_gen::generate_year(&config, config.start_year, &mut input).expect("generate");
        input
    }

    fn lines(input: &[u8]) -> impl Iterator<Item = &[u8]> {
        input.split(|b| *b == b'\n').filter(|l| !l.is_empty())
    }

    /// Decodes valid lines and takes the batches.
    fn decode_all<'l>(decoder: &mut Decoder, lines: impl Iterator<Item = &'l [u8]>) -> Vec<DecodedBatch> {
        for (i, line) in lines.enumerate() {
            decoder
                .decode(line, Position { source: "file:test", offset: i as i64 + 1 })
                .expect("generated lines are valid");
        }
        decoder.finish().expect("finish")
    }

    #[track_caller]
    fn assert_same_batches(first: &[DecodedBatch], second: &[DecodedBatch]) {
        assert_eq!(first.len(), 6, "every event table has rows");
        for (a, b) in first.iter().zip(second) {
            assert_eq!((a.event, &a.batch, &a.partition_keys), (b.event, &b.batch, &b.partition_keys));
        }
    }

    fn decoder() -> Decoder {
        Decoder::new(Contract::embedded().expect("contract"), Pseudonymiser::development())
    }

    #[test]
    fn a_decoder_finished_and_reused_builds_the_same_batches_again() {
        let input = generated_year();
        let mut decoder = decoder();
        let first = decode_all(&mut decoder, lines(&input));
        let second = decode_all(&mut decoder, lines(&input));
        assert_same_batches(&first, &second);
    }

    /// Lines without a backslash have their strings read while the members are located; lines with one
    /// go through the raw-text path. Both must build the same rows.
    #[test]
    fn strings_read_while_locating_equal_strings_read_from_raw_text() {
        let input = generated_year();
        let escaped: Vec<Vec<u8>> = lines(&input)
            .map(|line| {
                assert!(!line.contains(&b'\\'), "generated lines have no escapes");
                let mut line = line[..line.len() - 1].to_vec();
                line.extend_from_slice(br#","x_note":"\u0041"}"#);
                line
            })
            .collect();
        let plain = decode_all(&mut decoder(), lines(&input));
        let raw = decode_all(&mut decoder(), escaped.iter().map(Vec::as_slice));
        assert_same_batches(&plain, &raw);
    }

    #[test]
    fn short_texts_compare_by_every_byte() {
        for text in ["", "a", "abc", "unit", "channel", "event_id", "schema_version", "first_free_slot_at_x"] {
            assert!(same_text(text, text), "{text}");
            for i in 0..text.len() {
                let mut other = text.as_bytes().to_vec();
                other[i] ^= 1;
                let other = String::from_utf8(other).expect("ASCII");
                assert!(!same_text(text, &other), "{text} against {other}");
            }
            assert!(!same_text(text, &format!("{text}x")), "{text} against a longer text");
        }
    }

    #[test]
    fn common_timestamps_are_read_without_chrono_parser() {
        for text in [
            "2017-01-01T01:27:37Z",
            "2017-01-01T07:19:19+02:00",
            "2024-02-29T23:59:59.999999-05:30",
            "2024-03-31T00:00:00.5+03:00",
            "1999-12-31T23:00:00.123456789Z",
        ] {
            let expected = DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_micros()).ok();
            assert_eq!(common_shape_micros(text), expected, "{text}");
            assert!(expected.is_some(), "{text} is a valid timestamp");
        }
        for text in ["2023-02-29T10:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T10:00:00+24:00", "2024-01-01"] {
            assert_eq!(common_shape_micros(text), None, "{text}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        /// Whatever the positional reader accepts, chrono's parser accepts with the same instant.
        #[test]
        fn the_positional_timestamp_reader_agrees_with_chrono(
            text in "[0-9]{4}-[01][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,11})?(Z|z|[+-][0-2][0-9]:[0-6][0-9]|[+-][0-9]{2,4})?"
        ) {
            let fast = common_shape_micros(&text);
            let chrono = DateTime::parse_from_rfc3339(&text).map(|t| t.timestamp_micros()).ok();
            proptest::prop_assert!(fast.is_none() || fast == chrono, "{text}: {fast:?} against chrono {chrono:?}");
        }
    }

    #[test]
    fn months_know_their_days() {
        assert_eq!(parse_month("2024-02"), Some((2024 * 12 + 1, 29)));
        assert_eq!(parse_month("2023-02"), Some((2023 * 12 + 1, 28)));
        assert_eq!(parse_month("2024-12"), Some((2024 * 12 + 11, 31)));
        assert_eq!(parse_month("2024-13"), None);
        assert_eq!(parse_month("2024-00"), None);
        assert_eq!(parse_month("2024-1"), None);
        assert_eq!(parse_month("２０２４-01"), None);
    }
}
