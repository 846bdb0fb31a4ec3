//! Arrow types of the contract's fields and the builders the decoder appends to.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Decimal128Builder, DictionaryArray, Float64Builder, Int8Builder, Int64Builder,
    MapBuilder, MapFieldNames, PrimitiveArray, PrimitiveBuilder, StringArray, StringBuilder, StringDictionaryBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field as ArrowField, Int8Type, Int32Type, Schema, SchemaRef, TimeUnit,
};
use arrow::error::ArrowError;

use crate::contract::{Field, FieldKind};
use crate::privacy::Pseudonymiser;

/// Name of the lineage column holding the source of a row (`file:<path>` or `kafka:<topic>/<partition>`).
pub const SOURCE_COLUMN: &str = "source";
/// Name of the lineage column holding the row's position in its source (line number or Kafka offset).
pub const SOURCE_OFFSET_COLUMN: &str = "source_offset";
/// Precision of stored decimals (enough for any euro amount the agency books).
pub const DECIMAL_PRECISION: u8 = 18;
/// Time zone of every stored timestamp.
pub const UTC: &str = "UTC";

fn dictionary_utf8() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8))
}

/// Map entries named as in the Parquet `MAP` logical type (`key_value`, `key`, `value`), which
/// DuckDB, Spark and Trino expect.
fn map_entries() -> ArrowField {
    ArrowField::new(
        "key_value",
        DataType::Struct(
            vec![ArrowField::new("key", DataType::Utf8, false), ArrowField::new("value", DataType::Float64, true)]
                .into(),
        ),
        false,
    )
}

/// The Arrow type of a field.
pub fn data_type(kind: &FieldKind) -> DataType {
    match kind {
        FieldKind::ConstString(_) | FieldKind::Enum(_) => dictionary_utf8(),
        FieldKind::String { .. } | FieldKind::Uuid | FieldKind::YearMonth => DataType::Utf8,
        FieldKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        FieldKind::Integer { .. } => DataType::Int64,
        FieldKind::Decimal { scale, .. } => DataType::Decimal128(DECIMAL_PRECISION, *scale as i8),
        FieldKind::Float { .. } => DataType::Float64,
        FieldKind::Bool => DataType::Boolean,
        FieldKind::Shares { .. } => DataType::Map(Arc::new(map_entries()), false),
    }
}

/// The Arrow schema of a stored event table: every field, then the lineage columns.
pub fn arrow_schema(fields: &[Field]) -> SchemaRef {
    let mut columns: Vec<ArrowField> =
        fields.iter().map(|f| ArrowField::new(&f.name, data_type(&f.kind), !f.required)).collect();
    columns.push(ArrowField::new(
        SOURCE_COLUMN,
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
        false,
    ));
    columns.push(ArrowField::new(SOURCE_OFFSET_COLUMN, DataType::Int64, false));
    Arc::new(Schema::new(columns))
}

/// A validated, normalised value waiting to be appended.
#[derive(Debug, Clone, PartialEq)]
pub enum Staged<'a> {
    /// Absent optional field.
    Null,
    /// A string stored as given.
    Str(Cow<'a, str>),
    /// A personal reference, stored as its pseudonym (computed when the row is appended, so a
    /// rejected line costs no HMAC).
    Personal(Cow<'a, str>),
    /// Index into an enum's values.
    Enum(i8),
    /// A whole number.
    Int(i64),
    /// A float.
    Float(f64),
    /// A decimal in units of 10^-scale.
    Decimal(i128),
    /// A boolean.
    Bool(bool),
    /// Microseconds since the epoch, UTC.
    Timestamp(i64),
    /// A `YYYY-MM` month with its partition key and days in that month.
    Month {
        /// The month as written.
        text: Cow<'a, str>,
        /// year × 12 + month − 1.
        key: i32,
        /// 28–31.
        days: u32,
    },
    /// Shares by enum-key index.
    Shares(Vec<(i8, f64)>),
}

/// A column being built, one variant per Arrow type the contract produces.
#[expect(
    clippy::large_enum_variant,
    reason = "a few builders per decoder; boxing the map builder made decoding ~10 % slower in the decode bench"
)]
pub(crate) enum ColumnBuilder {
    Dictionary { keys: Int8Builder, values: Arc<StringArray> },
    Utf8(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Int64(Int64Builder),
    Decimal { builder: Decimal128Builder, scale: i8 },
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    Shares { builder: MapBuilder<StringBuilder, Float64Builder>, keys: Arc<[String]> },
}

impl ColumnBuilder {
    pub(crate) fn new(kind: &FieldKind) -> Self {
        match kind {
            FieldKind::ConstString(value) => ColumnBuilder::Dictionary {
                keys: Int8Builder::new(),
                values: Arc::new(StringArray::from(vec![value.as_str()])),
            },
            FieldKind::Enum(values) => ColumnBuilder::Dictionary {
                keys: Int8Builder::new(),
                values: Arc::new(StringArray::from_iter_values(values)),
            },
            FieldKind::String { .. } | FieldKind::Uuid | FieldKind::YearMonth => {
                ColumnBuilder::Utf8(StringBuilder::new())
            }
            FieldKind::Timestamp => ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::new()),
            FieldKind::Integer { .. } => ColumnBuilder::Int64(Int64Builder::new()),
            FieldKind::Decimal { scale, .. } => {
                ColumnBuilder::Decimal { builder: Decimal128Builder::new(), scale: *scale as i8 }
            }
            FieldKind::Float { .. } => ColumnBuilder::Float64(Float64Builder::new()),
            FieldKind::Bool => ColumnBuilder::Bool(BooleanBuilder::new()),
            FieldKind::Shares { keys, .. } => ColumnBuilder::Shares {
                builder: MapBuilder::new(
                    Some(MapFieldNames { entry: "key_value".into(), key: "key".into(), value: "value".into() }),
                    StringBuilder::new(),
                    Float64Builder::new(),
                ),
                keys: keys.clone().into(),
            },
        }
    }

    /// Appends a staged value; the decoder only stages values of the column's kind.
    pub(crate) fn append(&mut self, value: &Staged<'_>, pseudonymiser: &Pseudonymiser) {
        match (self, value) {
            (ColumnBuilder::Dictionary { keys, .. }, Staged::Enum(i)) => keys.append_value(*i),
            (ColumnBuilder::Utf8(b), Staged::Str(s)) => b.append_value(s),
            (ColumnBuilder::Utf8(b), Staged::Personal(s)) => {
                let mut out = [0u8; 64];
                b.append_value(pseudonymiser.pseudonymise(s, &mut out));
            }
            (ColumnBuilder::Utf8(b), Staged::Month { text, .. }) => b.append_value(text),
            (ColumnBuilder::Timestamp(b), Staged::Timestamp(t)) => b.append_value(*t),
            (ColumnBuilder::Int64(b), Staged::Int(v)) => b.append_value(*v),
            (ColumnBuilder::Decimal { builder, .. }, Staged::Decimal(v)) => builder.append_value(*v),
            (ColumnBuilder::Float64(b), Staged::Float(v)) => b.append_value(*v),
            (ColumnBuilder::Bool(b), Staged::Bool(v)) => b.append_value(*v),
            (ColumnBuilder::Shares { builder, keys }, Staged::Shares(shares)) => {
                for (key, share) in shares {
                    builder.keys().append_value(&keys[*key as usize]);
                    builder.values().append_value(*share);
                }
                // Cannot fail: keys and values were appended in pairs just above.
                let _ = builder.append(true);
            }
            (builder, _) => builder.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Dictionary { keys, .. } => keys.append_null(),
            ColumnBuilder::Utf8(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Decimal { builder, .. } => builder.append_null(),
            ColumnBuilder::Float64(b) => b.append_null(),
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Shares { builder, .. } => {
                let _ = builder.append(false);
            }
        }
    }

    /// Takes the column built so far and leaves the builder empty, with room for as many rows again.
    ///
    /// Arrow's `finish` hands the builder's buffers to the array and leaves it without capacity, so
    /// without the reservation every batch would grow its buffers again from nothing. The map column
    /// (allocation shares of the small monthly staff table) is left to grow as it goes.
    pub(crate) fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            ColumnBuilder::Dictionary { keys, values } => {
                Arc::new(DictionaryArray::<Int8Type>::try_new(finish_keeping_room(keys), values.clone())?)
            }
            ColumnBuilder::Utf8(b) => {
                let array = b.finish();
                *b = StringBuilder::with_capacity(array.len(), array.value_data().len());
                Arc::new(array)
            }
            ColumnBuilder::Timestamp(b) => Arc::new(finish_keeping_room(b).with_timezone(UTC)),
            ColumnBuilder::Int64(b) => Arc::new(finish_keeping_room(b)),
            ColumnBuilder::Decimal { builder, scale } => {
                Arc::new(finish_keeping_room(builder).with_precision_and_scale(DECIMAL_PRECISION, *scale)?)
            }
            ColumnBuilder::Float64(b) => Arc::new(finish_keeping_room(b)),
            ColumnBuilder::Bool(b) => {
                let array = b.finish();
                *b = BooleanBuilder::with_capacity(array.len());
                Arc::new(array)
            }
            ColumnBuilder::Shares { builder, .. } => Arc::new(builder.finish()),
        })
    }
}

/// Finishes a primitive column and leaves its builder with room for as many values again (see
/// [`ColumnBuilder::finish`]).
pub(crate) fn finish_keeping_room<T: ArrowPrimitiveType>(builder: &mut PrimitiveBuilder<T>) -> PrimitiveArray<T> {
    let array = builder.finish();
    *builder = PrimitiveBuilder::with_capacity(array.len());
    array
}

/// Builder of the `source` lineage column.
///
/// Consecutive rows nearly always share their source, so rows are appended in runs: one
/// dictionary lookup per run instead of one per row.
#[derive(Default)]
pub(crate) struct SourceBuilder {
    builder: StringDictionaryBuilder<Int32Type>,
    run: String,
    run_rows: usize,
}

impl SourceBuilder {
    pub(crate) fn append_value(&mut self, source: &str) {
        if self.run_rows > 0 && self.run == source {
            self.run_rows += 1;
            return;
        }
        self.end_run();
        self.run.clear();
        self.run.push_str(source);
        self.run_rows = 1;
    }

    fn end_run(&mut self) {
        if self.run_rows > 0 {
            self.builder.append_values(&self.run, self.run_rows);
            self.run_rows = 0;
        }
    }

    pub(crate) fn finish(&mut self) -> DictionaryArray<Int32Type> {
        self.end_run();
        self.builder.finish()
    }
}
