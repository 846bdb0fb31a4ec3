//! Committed Parquet files read straight into memory with the columns a session needs.
//!
//! A warehouse holds at least one file per table and month, so a scan of a whole table opens hundreds of files;
//! DataFusion's listing scan pays its per-file set-up (listing, footers, statistics, pruning) for each, while
//! the commit log already names every live file. Materialisation reads the files it needs here, on every
//! core, and hands DataFusion the rows as memory tables.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, new_empty_array};
use arrow::compute::{cast, concat, concat_batches};
use arrow::datatypes::{FieldRef, Schema, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use permitflow_warehouse::Warehouse;
use rayon::prelude::*;

use crate::MetricsError;

/// Rows per batch read from a summary or event file (a summary's base holds a row per application).
const READ_BATCH_ROWS: usize = 64 * 1024;

/// The columns of `schema` from the Parquet file `path` (relative to the warehouse; its bytes `file`), cast
/// to the schema's types; a column the file lacks is a Hive partition of `path` (`…/event_month=2026-03/…`),
/// the same on every row.
pub(crate) fn read_columns(file: Bytes, path: &str, schema: &SchemaRef) -> Result<Vec<RecordBatch>, MetricsError> {
    let parquet_error = |source| MetricsError::Parquet { path: path.into(), source };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_error)?;
    let stored = builder.schema().clone();
    let indices: Vec<usize> = schema.fields().iter().filter_map(|f| stored.index_of(f.name()).ok()).collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let mut out = Vec::new();
    for batch in builder.with_projection(mask).with_batch_size(READ_BATCH_ROWS).build().map_err(parquet_error)? {
        let batch = batch?;
        let columns = schema
            .fields()
            .iter()
            .map(|field| {
                let column: ArrayRef = match batch.column_by_name(field.name()) {
                    Some(column) => column.clone(),
                    None => {
                        let value = partition_value(path, field.name()).ok_or_else(|| {
                            arrow::error::ArrowError::SchemaError(format!(
                                "{path}: no column {} and no partition of that name in its path",
                                field.name()
                            ))
                        })?;
                        Arc::new(StringArray::from(vec![value; batch.num_rows()]))
                    }
                };
                cast(&column, field.data_type())
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    Ok(out)
}

/// The columns of `schema` from the Parquet file `path` of the warehouse as one batch, each column decoded
/// on its own core (a summary's base is a single file of a row per application).
pub(crate) fn read_whole(warehouse: &Warehouse, path: &str, schema: &SchemaRef) -> Result<RecordBatch, MetricsError> {
    let file = warehouse.read_file(path)?;
    let fields: Vec<&FieldRef> = schema.fields().iter().collect();
    let columns = fields
        .par_iter()
        .map(|field| {
            let single = Arc::new(Schema::new(vec![Arc::clone(field)]));
            let batches = read_columns(file.clone(), path, &single)?;
            let parts: Vec<&dyn Array> = batches.iter().map(|batch| batch.column(0).as_ref()).collect();
            Ok(if parts.is_empty() { new_empty_array(field.data_type()) } else { concat(&parts)? })
        })
        .collect::<Result<Vec<ArrayRef>, MetricsError>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The value of the Hive partition `column` in a relative file path.
pub(crate) fn partition_value<'a>(path: &'a str, column: &str) -> Option<&'a str> {
    path.split('/').find_map(|segment| segment.split_once('=').filter(|(name, _)| *name == column).map(|(_, v)| v))
}

/// Rows per batch handed to DataFusion (its default batch size).
const BATCH_ROWS: usize = 8192;

/// The rows of `files` (paths relative to the warehouse, with their Hive partition segment) with the columns of
/// `schema`, read on every core, as `partitions` lists of batches of about [`BATCH_ROWS`] rows (one empty
/// list without rows; for a `MemTable`). Each file's rows are dropped once copied into a batch.
pub(crate) fn read_files(
    warehouse: &Warehouse,
    files: &[&str],
    schema: &SchemaRef,
    partitions: usize,
) -> Result<Vec<Vec<RecordBatch>>, MetricsError> {
    let read: Vec<Vec<RecordBatch>> = files
        .par_iter()
        .map(|file| read_columns(warehouse.read_file(file)?, file, schema))
        .collect::<Result<_, _>>()?;
    let mut batches = Vec::new();
    let mut pending = Vec::new();
    let mut pending_rows = 0;
    for batch in read.into_iter().flatten() {
        pending_rows += batch.num_rows();
        pending.push(batch);
        if pending_rows >= BATCH_ROWS {
            batches.push(concat_batches(schema, &std::mem::take(&mut pending))?);
            pending_rows = 0;
        }
    }
    if pending_rows > 0 {
        batches.push(concat_batches(schema, &pending)?);
    }
    if batches.is_empty() {
        return Ok(vec![Vec::new()]);
    }
    let per_partition = batches.len().div_ceil(partitions.max(1));
    let mut out = Vec::new();
    let mut batches = batches.into_iter().peekable();
    while batches.peek().is_some() {
        out.push(batches.by_ref().take(per_partition).collect());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use parquet::arrow::ArrowWriter;
    use permitflow_warehouse::Warehouse;

    use super::{BATCH_ROWS, partition_value, read_files};

    #[test]
    fn files_are_read_with_their_partition_column_into_batches_split_between_partitions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let stored = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let mut paths = Vec::new();
        for (month, rows) in [("2026-03", BATCH_ROWS as i64), ("2026-04", 5)] {
            let path = format!("events/t/event_month={month}/part-1.parquet");
            std::fs::create_dir_all(dir.path().join(&path).parent().expect("parent")).expect("mkdir");
            let file = std::fs::File::create(dir.path().join(&path)).expect("create");
            let mut writer = ArrowWriter::try_new(file, stored.clone(), None).expect("writer");
            let batch = RecordBatch::try_new(stored.clone(), vec![Arc::new(Int64Array::from_iter_values(0..rows))])
                .expect("batch");
            writer.write(&batch).expect("write");
            writer.close().expect("close");
            paths.push(path);
        }
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("event_month", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let warehouse = Warehouse::open(dir.path()).expect("open");
        let partitions = read_files(&warehouse, &paths, &schema, 2).expect("read");
        assert_eq!(partitions.len(), 2, "{partitions:?}");
        let batches: Vec<&RecordBatch> = partitions.iter().flatten().collect();
        assert_eq!(batches.iter().map(|b| b.num_rows()).collect::<Vec<_>>(), [BATCH_ROWS, 5]);
        let last = batches[1];
        assert!(last.column(0).as_string::<i32>().iter().all(|d| d == Some("2026-04")));
        assert_eq!(last.column(1).as_primitive::<Int64Type>().values().iter().sum::<i64>(), 10);
        let empty = read_files(&warehouse, &[], &schema, 2).expect("read nothing");
        assert_eq!(empty.len(), 1, "a table without files is one empty partition");
    }

    #[test]
    fn partition_value_is_read_from_the_hive_segment_of_the_path() {
        let path = "events/applications/event_month=2026-03/part-00001.parquet";
        assert_eq!(partition_value(path, "event_month"), Some("2026-03"));
        assert_eq!(partition_value(path, "month"), None);
    }
}
