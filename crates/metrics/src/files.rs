//! Committed Parquet files read straight into memory with the columns a session needs.
//!
//! A warehouse holds one file per table and day, so a scan of a whole table opens thousands of small files;
//! DataFusion's listing scan pays its per-file set-up (listing, footers, statistics, pruning) for each, while
//! the commit log already names every live file. Materialisation reads the files it needs here, on every
//! core, and hands DataFusion the rows as memory tables.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::SchemaRef;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use permitflow_warehouse::WarehouseError;
use rayon::prelude::*;

use crate::MetricsError;

/// Rows per batch read from a summary or event file (a summary's base holds a row per application).
const READ_BATCH_ROWS: usize = 64 * 1024;

/// The columns of `schema` from the Parquet file at `path`, cast to the schema's types; a column the file
/// lacks is a Hive partition of `partition_path` (`…/event_date=2026-03-01/…`), the same on every row.
pub(crate) fn read_columns(
    path: &Path,
    schema: &SchemaRef,
    partition_path: &str,
) -> Result<Vec<RecordBatch>, MetricsError> {
    let parquet_error = |source| MetricsError::Parquet { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(|source| {
        let gone = source.kind() == std::io::ErrorKind::NotFound;
        MetricsError::Warehouse(WarehouseError::Io {
            path: path.to_path_buf(),
            source: if gone {
                std::io::Error::new(
                    source.kind(),
                    "the commit log lists this file but it is gone: a compaction replaced it after this process \
                     read the log (run `permitflow materialize` again), or it was removed by hand (restore it)",
                )
            } else {
                source
            },
        })
    })?;
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
                        let value = partition_value(partition_path, field.name()).ok_or_else(|| {
                            arrow::error::ArrowError::SchemaError(format!(
                                "{}: no column {} and no partition of that name in its path",
                                path.display(),
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

/// The value of the Hive partition `column` in a relative file path.
pub(crate) fn partition_value<'a>(path: &'a str, column: &str) -> Option<&'a str> {
    path.split('/').find_map(|segment| segment.split_once('=').filter(|(name, _)| *name == column).map(|(_, v)| v))
}

/// Rows per batch handed to DataFusion (its default batch size).
const BATCH_ROWS: usize = 8192;

/// The rows of `files` (paths relative to `root`, with their Hive partition segment) with the columns of
/// `schema`, read on every core, as `partitions` lists of batches of [`BATCH_ROWS`] rows (one empty list without rows; for a `MemTable`).
pub(crate) fn read_files(
    root: &Path,
    files: &[&str],
    schema: &SchemaRef,
    partitions: usize,
) -> Result<Vec<Vec<RecordBatch>>, MetricsError> {
    let batches: Vec<Vec<RecordBatch>> =
        files.par_iter().map(|file| read_columns(&root.join(file), schema, file)).collect::<Result<_, _>>()?;
    let all = concat_batches(schema, batches.iter().flatten())?;
    if all.num_rows() == 0 {
        return Ok(vec![Vec::new()]);
    }
    let per_partition = all.num_rows().div_ceil(partitions.max(1));
    Ok((0..all.num_rows())
        .step_by(per_partition)
        .map(|start| {
            let end = (start + per_partition).min(all.num_rows());
            (start..end).step_by(BATCH_ROWS).map(|at| all.slice(at, BATCH_ROWS.min(end - at))).collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::partition_value;

    #[test]
    fn partition_value_is_read_from_the_hive_segment_of_the_path() {
        let path = "events/applications/event_date=2026-03-01/part-00001.parquet";
        assert_eq!(partition_value(path, "event_date"), Some("2026-03-01"));
        assert_eq!(partition_value(path, "month"), None);
    }
}
