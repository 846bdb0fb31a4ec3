//! Whole-history summaries kept between materialisations, so an incremental one does not read, group or
//! write every submission and decision ever stored.
//!
//! The backlog and the processing times need the first submission and the first decision of every
//! application, whenever it happened. `_views.sql` computes them as per-column minimums keyed by
//! `application_id` (`*_firsts`) over every stored event (`*_history`). A materialisation keeps each
//! `*_firsts` result under `marts/_summaries/`: a full one as the summary's base; an incremental one as a
//! delta beside it. An incremental run replaces `*_history` by the rows of the newest delta plus the rows of
//! the files committed since, lets the `*_firsts` view group only those (the next delta), and merges that
//! with the base here, key by key, taking the minimum of each column. The minimum of minimums is the
//! minimum of everything, and rows counted twice change no minimum, so a summary written by a run that
//! failed before its state record is still right. When a delta has grown to [`REWRITE_BASE_SHARE`] of its
//! base, the merged result is written as the new base instead.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::kernels::cmp::lt;
use arrow::compute::kernels::zip::zip;
use arrow::compute::{cast, concat, concat_batches, is_null, or, take};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use foldhash::fast::FixedState;
use permitflow_warehouse::{CommittedFile, Warehouse};
use tracing::debug;

use crate::files::{read_columns, read_files};
use crate::{MetricsError, collect_conformed, query_error};

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

/// A delta is written as the new base once it holds this share of the base's rows (one in eight): reading
/// the delta then costs about as much as rewriting the base.
const REWRITE_BASE_SHARE: usize = 8;

/// True when every summary an incremental materialisation needs exists.
pub(crate) fn summaries_exist(warehouse: &Warehouse) -> bool {
    HISTORIES.iter().all(|h| warehouse.mart_summary(h.firsts).is_some())
}

/// A `*_firsts` view an incremental run merged with its base: what to keep of it afterwards.
pub(crate) struct Merged {
    firsts: &'static str,
    /// The grouped rows of the newest delta and the new files: the summary's next delta.
    delta: RecordBatch,
    /// The merged result, registered as the view: the summary's next base.
    merged: RecordBatch,
    base_rows: usize,
}

/// Replaces `history.view` (just created) by the rows of its summary's newest delta plus the rows of
/// `new_files` of its table.
pub(crate) async fn replace_with_new_rows(
    ctx: &SessionContext,
    warehouse: &Warehouse,
    history: &History,
    new_files: &[&CommittedFile],
) -> Result<(), MetricsError> {
    let started = std::time::Instant::now();
    let context = format!("reading {} from the summary's delta and the new files", history.view);
    let schema: SchemaRef =
        Arc::new(ctx.table(history.view).await.map_err(query_error(&context))?.schema().as_arrow().clone());
    let mut batches = Vec::new();
    if let Some(delta) = warehouse.mart_summary_deltas(history.firsts)?.last() {
        batches.extend(read_columns(delta, &schema, "")?);
    }
    let new: Vec<&str> = new_files.iter().filter(|f| f.table == history.table).map(|f| f.path.as_str()).collect();
    batches.extend(read_files(warehouse.root(), &new, &schema, 1)?.into_iter().flatten());
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let table = MemTable::try_new(schema, vec![batches]).map_err(query_error(&context))?;
    ctx.deregister_table(history.view).map_err(query_error(&context))?;
    ctx.register_table(history.view, Arc::new(table)).map_err(query_error(&context))?;
    debug!(view = history.view, rows, new_files = new.len(), seconds = started.elapsed().as_secs_f64(), "replaced");
    Ok(())
}

/// Replaces `history.firsts` (just created over the replaced history) by its merge with the summary's base.
pub(crate) async fn merge_with_base(
    ctx: &SessionContext,
    warehouse: &Warehouse,
    history: &History,
) -> Result<Merged, MetricsError> {
    let started = std::time::Instant::now();
    let context = format!("merging {} with its summary", history.firsts);
    let frame = ctx.table(history.firsts).await.map_err(query_error(&context))?;
    let delta = collect_conformed(frame, &context).await?;
    let schema = delta.schema();
    let base_path = warehouse.mart_summary(history.firsts).ok_or_else(|| MetricsError::Query {
        context: context.clone(),
        source: datafusion::error::DataFusionError::Execution(format!(
            "marts/_summaries/{}.parquet is missing; run `permitflow materialize --full`",
            history.firsts
        )),
    })?;
    let base = concat_batches(&schema, &read_columns(&base_path, &schema, "")?)?;
    let merged = merge_minimums(&base, &delta)?;
    let table = MemTable::try_new(schema, vec![vec![merged.clone()]]).map_err(query_error(&context))?;
    ctx.deregister_table(history.firsts).map_err(query_error(&context))?;
    ctx.register_table(history.firsts, Arc::new(table)).map_err(query_error(&context))?;
    debug!(
        view = history.firsts,
        base_rows = base.num_rows(),
        delta_rows = delta.num_rows(),
        seconds = started.elapsed().as_secs_f64(),
        "merged"
    );
    Ok(Merged { firsts: history.firsts, delta, merged, base_rows: base.num_rows() })
}

/// Keeps every `*_firsts` view of the session as the summary the next incremental run starts from: the
/// whole view as the base after a full run (`merged` empty); after an incremental one, each delta beside
/// its base, or the merged view as the new base once the delta has grown.
pub(crate) async fn store_summaries(
    ctx: &SessionContext,
    warehouse: &Warehouse,
    merged: Vec<Merged>,
    through_seq: u64,
) -> Result<(), MetricsError> {
    let mut bases = Vec::new();
    let mut deltas = Vec::new();
    if merged.is_empty() {
        for history in HISTORIES {
            let context = format!("storing the summary {}", history.firsts);
            let frame = ctx.table(history.firsts).await.map_err(query_error(&context))?;
            bases.push((history.firsts, collect_conformed(frame, &context).await?));
        }
    }
    for m in merged {
        if m.delta.num_rows() * REWRITE_BASE_SHARE >= m.base_rows {
            bases.push((m.firsts, m.merged));
        } else {
            deltas.push((m.firsts, m.delta));
        }
    }
    warehouse.set_mart_summaries(&bases)?;
    Ok(warehouse.add_mart_summary_deltas(through_seq, &deltas)?)
}

/// `base` and `delta` (same schema, each key of the first column, a string, at most once per batch) as one
/// batch with each key once and, for a key in both, the minimum of each other column (NULL only when both
/// are NULL): the rows of `base` whose key is not in `delta`, then one row per key of `delta`.
fn merge_minimums(base: &RecordBatch, delta: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let key = |batch: &RecordBatch| -> Result<StringArray, ArrowError> {
        Ok(cast(batch.column(0), &arrow::datatypes::DataType::Utf8)?.as_string::<i32>().clone())
    };
    let (base_keys, delta_keys) = (key(base)?, key(delta)?);
    let mut in_delta: HashMap<&str, u32, FixedState> = HashMap::with_hasher(FixedState::default());
    in_delta.extend(delta_keys.iter().enumerate().filter_map(|(i, k)| Some((k?, i as u32))));
    let mut kept = Vec::with_capacity(base.num_rows());
    // For each row of `delta`, the row of `base` with the same key, if any.
    let mut matched = vec![None::<u32>; delta.num_rows()];
    for (i, k) in base_keys.iter().enumerate() {
        match k.and_then(|k| in_delta.get(k)) {
            Some(&j) => matched[j as usize] = Some(i as u32),
            None => kept.push(i as u32),
        }
    }
    let kept = UInt32Array::from(kept);
    let matched = UInt32Array::from(matched);
    let columns = (0..base.num_columns())
        .map(|c| {
            let (old, new) = (base.column(c), delta.column(c));
            // Per delta row: its base row's value (NULL when the key is new), then the smaller of the two.
            let minimum = if c == 0 {
                new.clone()
            } else {
                let old_of_new = take(old, &matched, None)?;
                let new_is_smaller = or(&is_null(&old_of_new)?, &null_as_false(&lt(new, &old_of_new)?))?;
                zip(&new_is_smaller, new, &old_of_new)?
            };
            concat(&[take(old, &kept, None)?.as_ref(), minimum.as_ref()])
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    RecordBatch::try_new(base.schema(), columns)
}

/// `mask` with NULL read as false.
fn null_as_false(mask: &BooleanArray) -> BooleanArray {
    match mask.nulls() {
        Some(nulls) => BooleanArray::new(mask.values() & nulls.inner(), None),
        None => mask.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::merge_minimums;

    fn batch(keys: &[&str], a: &[Option<i64>], b: &[Option<&str>]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(keys.to_vec())),
                Arc::new(Int64Array::from(a.to_vec())),
                Arc::new(StringArray::from(b.to_vec())),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn merging_takes_the_minimum_of_each_column_per_key_and_keeps_every_key_once() {
        let base = batch(&["x", "y", "z"], &[Some(5), Some(1), None], &[Some("m"), None, Some("q")]);
        let delta = batch(&["y", "w", "z"], &[Some(3), Some(7), Some(2)], &[Some("k"), None, Some("r")]);
        let merged = merge_minimums(&base, &delta).expect("merge");
        let expected = batch(
            &["x", "y", "w", "z"],
            &[Some(5), Some(1), Some(7), Some(2)],
            &[Some("m"), Some("k"), None, Some("q")],
        );
        assert_eq!(merged, expected);
    }
}
