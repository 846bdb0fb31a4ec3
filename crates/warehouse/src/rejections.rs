//! The `_rejections` table: one row per rejected input, with its position and
//! the reason, never the payload (it may hold personal data; the input is
//! still where it came from).

use std::sync::Arc;

use arrow::array::{Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use permitflow_schema::{Position, Rejection};

/// Table name of the rejections.
pub const REJECTIONS_TABLE: &str = "_rejections";
/// Directory of the rejections table inside the warehouse.
pub const REJECTIONS_DIR: &str = "_rejections";

/// Schema of `_rejections`.
pub fn rejections_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("source_offset", DataType::Int64, false),
        Field::new("event_type", DataType::Utf8, true),
        Field::new("event_id", DataType::Utf8, true),
        Field::new("rule", DataType::Utf8, false),
        Field::new("field", DataType::Utf8, true),
        Field::new("message", DataType::Utf8, false),
        Field::new("received_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
    ]))
}

/// Rejections waiting for the next commit.
#[derive(Debug, Default)]
pub struct RejectionBuffer {
    source: StringBuilder,
    offset: Int64Builder,
    event_type: StringBuilder,
    event_id: StringBuilder,
    rule: StringBuilder,
    field: StringBuilder,
    message: StringBuilder,
    received_at: TimestampMicrosecondBuilder,
    rows: usize,
}

impl RejectionBuffer {
    /// Records one rejection at its source position; `received_at_us` is when the input arrived (the Kafka
    /// message timestamp, or the time a file was ingested), microseconds since the epoch, UTC.
    pub fn push(&mut self, position: Position<'_>, received_at_us: i64, rejection: &Rejection) {
        self.source.append_value(position.source);
        self.offset.append_value(position.offset);
        self.event_type.append_option(rejection.event_type.as_deref());
        self.event_id.append_option(rejection.event_id.as_deref());
        self.rule.append_value(&rejection.rule);
        self.field.append_option(rejection.field.as_deref());
        self.message.append_value(&rejection.message);
        self.received_at.append_value(received_at_us);
        self.rows += 1;
    }

    /// Rejections buffered.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Takes the buffered rows as a batch.
    pub fn finish(&mut self) -> Result<RecordBatch, arrow::error::ArrowError> {
        self.rows = 0;
        RecordBatch::try_new(
            rejections_schema(),
            vec![
                Arc::new(self.source.finish()),
                Arc::new(self.offset.finish()),
                Arc::new(self.event_type.finish()),
                Arc::new(self.event_id.finish()),
                Arc::new(self.rule.finish()),
                Arc::new(self.field.finish()),
                Arc::new(self.message.finish()),
                Arc::new(self.received_at.finish().with_timezone("UTC")),
            ],
        )
    }
}
