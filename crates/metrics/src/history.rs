//! Whole-history summaries kept between materialisations, so an incremental one does not read every
//! submission and decision ever stored.
//!
//! The backlog and the processing times need the first submission and the first decision of every
//! application, whenever it happened. `_views.sql` computes them as minimums (`*_firsts`) over every stored
//! event (`*_history`). A materialisation stores each `*_firsts` result under `marts/_summaries/`; the next
//! incremental one replaces `*_history` by those rows plus the rows of the files committed since. The
//! minimum of a minimum and new rows is the minimum of everything, and a file counted twice changes no
//! minimum, so a summary written by a run that failed before its state record is still right.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use permitflow_warehouse::{CommittedFile, Warehouse, WarehouseError};
use tracing::debug;

use crate::{MetricsError, conform, mart_schema, query_error};

/// A `*_history` view of `_views.sql`, the event table it reads and the `*_firsts` view that summarises it
/// (with the same columns).
pub(crate) struct History {
    pub view: &'static str,
    pub table: &'static str,
    pub firsts: &'static str,
}

/// The whole-history views and their summaries.
pub(crate) const HISTORIES: &[History] = &[
    History { view: "application_history", table: "applications", firsts: "application_firsts" },
    History { view: "decision_history", table: "decisions", firsts: "decision_firsts" },
];

/// True when every summary an incremental materialisation needs exists.
pub(crate) fn summaries_exist(warehouse: &Warehouse) -> bool {
    HISTORIES.iter().all(|h| warehouse.mart_summary(h.firsts).is_some())
}

/// Replaces `history.view` (just created) by its stored summary plus the rows of `new_files` of its table.
pub(crate) async fn replace_with_summary(
    ctx: &SessionContext,
    warehouse: &Warehouse,
    history: &History,
    new_files: &[&CommittedFile],
) -> Result<(), MetricsError> {
    let started = std::time::Instant::now();
    let context = format!("reading {} from its summary and the new files", history.view);
    let schema: SchemaRef =
        Arc::new(ctx.table(history.view).await.map_err(query_error(&context))?.schema().as_arrow().clone());
    let summary = warehouse.mart_summary(history.firsts).ok_or_else(|| MetricsError::Query {
        context: context.clone(),
        source: datafusion::error::DataFusionError::Execution(format!(
            "marts/_summaries/{}.parquet is missing; run `permitflow materialize --full`",
            history.firsts
        )),
    })?;
    let mut batches = read_columns(&summary, &schema, "")?;
    let new: Vec<&&CommittedFile> = new_files.iter().filter(|f| f.table == history.table).collect();
    for file in &new {
        batches.extend(read_columns(&warehouse.root().join(&file.path), &schema, &file.path)?);
    }
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let table = MemTable::try_new(schema, vec![batches]).map_err(query_error(&context))?;
    ctx.deregister_table(history.view).map_err(query_error(&context))?;
    ctx.register_table(history.view, Arc::new(table)).map_err(query_error(&context))?;
    debug!(view = history.view, rows, new_files = new.len(), seconds = started.elapsed().as_secs_f64(), "replaced");
    Ok(())
}

/// Stores every `*_firsts` view of the session as the summary the next incremental run starts from.
pub(crate) async fn store_summaries(ctx: &SessionContext, warehouse: &Warehouse) -> Result<(), MetricsError> {
    let mut summaries = Vec::with_capacity(HISTORIES.len());
    for history in HISTORIES {
        let context = format!("storing the summary {}", history.firsts);
        let frame = ctx.table(history.firsts).await.map_err(query_error(&context))?;
        let schema = mart_schema(frame.schema().as_arrow());
        let batches = frame.collect().await.map_err(query_error(&context))?;
        let batches = batches.iter().map(|b| conform(b, &schema)).collect::<Result<Vec<_>, _>>()?;
        summaries.push((history.firsts, concat_batches(&schema, &batches)?));
    }
    Ok(warehouse.set_mart_summaries(&summaries)?)
}

/// The columns of `schema` from the Parquet file at `path`, cast to the schema's types; a column the file
/// lacks is a Hive partition of `partition_path` (`…/event_date=2026-03-01/…`), the same on every row.
fn read_columns(path: &Path, schema: &SchemaRef, partition_path: &str) -> Result<Vec<RecordBatch>, MetricsError> {
    let parquet_error = |source| MetricsError::Parquet { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(|e| WarehouseError::Io { path: path.to_path_buf(), source: e })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_error)?;
    let stored = builder.schema().clone();
    let indices: Vec<usize> = schema.fields().iter().filter_map(|f| stored.index_of(f.name()).ok()).collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
    let mut out = Vec::new();
    for batch in builder.with_projection(mask).build().map_err(parquet_error)? {
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
fn partition_value<'a>(path: &'a str, column: &str) -> Option<&'a str> {
    path.split('/').find_map(|segment| segment.split_once('=').filter(|(name, _)| *name == column).map(|(_, v)| v))
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
