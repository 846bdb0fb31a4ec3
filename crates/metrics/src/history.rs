//! Whole-history summaries kept between materialisations, so an incremental one does not read, group or
//! write every submission and decision ever stored.
//!
//! The backlog and the processing times need the first submission and the first decision of every
//! application, whenever it happened. `_views.sql` computes them as per-column minimums keyed by
//! `application_id` (`application_firsts`) over every stored submission and decision (the `*_history`
//! views). A materialisation keeps the `application_firsts` result under `marts/_summaries/`: a full one as
//! the summary's base; an incremental one as a delta beside it. An incremental run replaces each
//! `*_history` view by the rows of the files committed since, lets `application_firsts` group only those,
//! merges that with the newest delta (the next delta) and the next delta with the base, key by key, taking
//! the minimum of each column. The minimum of minimums is the minimum of everything, and rows counted twice
//! change no minimum, so a summary written by a run that failed before its state record is still right.
//! When a delta has grown to [`REWRITE_BASE_SHARE`] of its base, the merged result is written as the new
//! base instead.
//!
//! The run's `application_firsts` is then only the part of the merged summary the recomputed periods can
//! need (see [`needed`]): most applications were submitted and decided years before.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::kernels::cmp::lt;
use arrow::compute::kernels::zip::zip;
use arrow::compute::{cast, concat, filter_record_batch, is_null, or, take};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use foldhash::fast::FixedState;
use permitflow_warehouse::Warehouse;
use tracing::debug;

use crate::files::read_whole;
use crate::materialize::collect_conformed;
use crate::{MetricsError, query_error};

/// The whole-history views of `_views.sql`, each with the event table it reads.
const HISTORIES: &[(&str, &str)] = &[("application_history", "applications"), ("decision_history", "decisions")];

/// The view of `_views.sql` that summarises the histories; also the summary's name.
pub(crate) const FIRSTS: &str = "application_firsts";

/// A delta is written as the new base once it holds this share of the base's rows (one in eight): reading
/// the delta then costs about as much as rewriting the base.
const REWRITE_BASE_SHARE: usize = 8;

/// The event table a whole-history view reads, if `view` is one.
pub(crate) fn history_table(view: &str) -> Option<&'static str> {
    HISTORIES.iter().find(|(name, _)| *name == view).map(|(_, table)| *table)
}

/// True when the summary an incremental materialisation needs exists.
pub(crate) fn summaries_exist(warehouse: &Warehouse) -> Result<bool, MetricsError> {
    Ok(warehouse.mart_summary(FIRSTS)?.is_some())
}

/// What an incremental run keeps of the summary after it merged it.
pub(crate) struct Merged {
    /// The grouped rows of the newest delta and the new files: the summary's next delta.
    delta: RecordBatch,
    /// The merged summary, when the delta has grown so that it is written as the next base.
    merged: Option<RecordBatch>,
}

/// True when a whole-history view reads the event table `table`.
pub(crate) fn reads_history(table: &str) -> bool {
    HISTORIES.iter().any(|(_, read)| *read == table)
}

/// Replaces `view` (a whole-history view, just created) by its columns of `new_rows`, the rows of the files
/// of its table committed since the last materialisation (read with more columns, as the cached table).
pub(crate) async fn replace_with_new_rows(
    ctx: &SessionContext,
    view: &str,
    new_rows: Vec<RecordBatch>,
) -> Result<(), MetricsError> {
    let context = format!("reading {view} from the new files");
    let schema: SchemaRef = Arc::new(ctx.table(view).await.map_err(query_error(&context))?.schema().as_arrow().clone());
    let batches = new_rows
        .iter()
        .map(|batch| {
            let columns = schema
                .fields()
                .iter()
                .map(|field| {
                    let column = batch.column_by_name(field.name()).ok_or_else(|| {
                        ArrowError::SchemaError(format!(
                            "{view} reads {}, which crates/metrics/src/lib.rs CACHED_TABLES does not read",
                            field.name()
                        ))
                    })?;
                    cast(column, field.data_type())
                })
                .collect::<Result<Vec<_>, ArrowError>>()?;
            RecordBatch::try_new(schema.clone(), columns)
        })
        .collect::<Result<Vec<_>, ArrowError>>()?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let provider = MemTable::try_new(schema, vec![batches]).map_err(query_error(&context))?;
    ctx.deregister_table(view).map_err(query_error(&context))?;
    ctx.register_table(view, Arc::new(provider)).map_err(query_error(&context))?;
    debug!(view, rows, "replaced by the new files' rows");
    Ok(())
}

/// Replaces [`FIRSTS`] (just created over the replaced histories) by the rows of its merge with the kept
/// summary that the periods from `first_day` on need (see [`needed`]). Only those rows of the base and the
/// rows of the delta are merged, unless the delta has grown so that the whole merge is the next base.
pub(crate) async fn merge_with_base(
    ctx: &SessionContext,
    warehouse: &Warehouse,
    first_day: &str,
) -> Result<Merged, MetricsError> {
    let started = std::time::Instant::now();
    let context = format!("merging {FIRSTS} with its summary");
    let frame = ctx.table(FIRSTS).await.map_err(query_error(&context))?;
    let grouped = collect_conformed(frame, &context).await?;
    let schema = grouped.schema();
    let delta = match warehouse.mart_summary_deltas(FIRSTS)?.last() {
        Some(path) => merge_minimums(&read_whole(warehouse, path, &schema)?, &grouped)?,
        None => grouped,
    };
    let base_path = warehouse.mart_summary(FIRSTS)?.ok_or_else(|| MetricsError::Query {
        context: context.clone(),
        source: datafusion::error::DataFusionError::Execution(format!(
            "marts/_summaries/{FIRSTS}.parquet is missing; run `permitflow materialize --full`"
        )),
    })?;
    let base = read_whole(warehouse, &base_path, &schema)?;
    let decisions = ctx.table("decisions").await.and_then(|f| f.select_columns(&["application_id"]));
    let decided = decisions.map_err(query_error(&context))?.collect().await.map_err(query_error(&context))?;
    let decided = decided
        .iter()
        .map(|batch| Ok(cast(batch.column(0), &DataType::Utf8)?.as_string::<i32>().clone()))
        .collect::<Result<Vec<StringArray>, ArrowError>>()?;
    let decided: HashSet<&str, FixedState> = decided.iter().flat_map(|ids| ids.iter().flatten()).collect();
    let delta_keys = cast(delta.column(0), &DataType::Utf8)?;
    let delta_keys: HashSet<&str, FixedState> = delta_keys.as_string::<i32>().iter().flatten().collect();
    // A base row the periods need by its own values, or whose values the delta may lower.
    let candidates = filter_record_batch(&base, &needed(&base, first_day, &[&decided, &delta_keys])?)?;
    let merged_candidates = merge_minimums(&candidates, &delta)?;
    let rows = filter_record_batch(&merged_candidates, &needed(&merged_candidates, first_day, &[&decided])?)?;
    let merged = (delta.num_rows() * REWRITE_BASE_SHARE >= base.num_rows())
        .then(|| merge_minimums(&base, &delta))
        .transpose()?;
    let table = MemTable::try_new(schema, vec![vec![rows.clone()]]).map_err(query_error(&context))?;
    ctx.deregister_table(FIRSTS).map_err(query_error(&context))?;
    ctx.register_table(FIRSTS, Arc::new(table)).map_err(query_error(&context))?;
    debug!(
        view = FIRSTS,
        base_rows = base.num_rows(),
        delta_rows = delta.num_rows(),
        needed_rows = rows.num_rows(),
        seconds = started.elapsed().as_secs_f64(),
        "merged"
    );
    Ok(Merged { delta, merged })
}

/// Keeps [`FIRSTS`] as the summary the next incremental run starts from: the session's whole view as the
/// base after a full run (`merged` `None`); after an incremental one, the delta beside its base, or the
/// merged summary as the new base once the delta has grown.
pub(crate) async fn store_summaries(
    ctx: &SessionContext,
    warehouse: &Warehouse,
    merged: Option<Merged>,
    through: u64,
) -> Result<(), MetricsError> {
    match merged {
        None => {
            let context = format!("storing the summary {FIRSTS}");
            let frame = ctx.table(FIRSTS).await.map_err(query_error(&context))?;
            warehouse.set_mart_summaries(&[(FIRSTS, collect_conformed(frame, &context).await?)])?;
            Ok(warehouse.retain_mart_summaries(&[FIRSTS])?)
        }
        Some(Merged { merged: Some(merged), .. }) => Ok(warehouse.set_mart_summaries(&[(FIRSTS, merged)])?),
        Some(Merged { delta, merged: None }) => Ok(warehouse.add_mart_summary_deltas(through, &[(FIRSTS, delta)])?),
    }
}

/// Which rows of [`FIRSTS`] (all or part of the summary) the periods from `first_day` (the first event day
/// of the recomputed `decisions`) on can need: submitted applications not both submitted and first decided
/// before that day, and every application whose `application_id` is in one of `looked_up` (in the end: those with
/// a decision among the recomputed `decisions`; before the merge also the delta's, as a decision-only row of
/// the base may gain its submission). The others left the backlog before those periods, adding one to it and
/// taking one from it before they start; the first of them of each permit type is kept too, so that the
/// type's backlog has a row (of the same figures) in every period, as in a full run.
fn needed(
    rows: &RecordBatch,
    first_day: &str,
    looked_up: &[&HashSet<&str, FixedState>],
) -> Result<BooleanArray, ArrowError> {
    let strings = |name: &str| -> Result<StringArray, ArrowError> {
        let column = rows.column_by_name(name).ok_or_else(|| {
            ArrowError::SchemaError(format!("{FIRSTS} has no column {name}; see pipelines/models/_views.sql"))
        })?;
        Ok(cast(column, &DataType::Utf8)?.as_string::<i32>().clone())
    };
    let (ids, types) = (strings("application_id")?, strings("permit_type")?);
    let (submitted, first_decided) = (strings("submitted_date")?, strings("decided_date")?);
    let mut left_before: Vec<&str> = Vec::new();
    let mut keep = Vec::with_capacity(rows.num_rows());
    for row in 0..rows.num_rows() {
        let is_submitted = submitted.is_valid(row);
        let needed = is_submitted
            && (submitted.value(row) >= first_day
                || first_decided.is_null(row)
                || first_decided.value(row) >= first_day);
        let is_looked_up = !needed && ids.is_valid(row) && looked_up.iter().any(|keys| keys.contains(ids.value(row)));
        let permit_type = if types.is_valid(row) { types.value(row) } else { "" };
        let first_left_before = is_submitted && !needed && !is_looked_up && !left_before.contains(&permit_type);
        if first_left_before {
            left_before.push(permit_type);
        }
        keep.push(is_looked_up || needed || first_left_before);
    }
    Ok(BooleanArray::from(keep))
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

    use std::collections::HashSet;

    use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
    use arrow::compute::filter_record_batch;
    use arrow::datatypes::{DataType, Field, Schema};
    use foldhash::fast::FixedState;

    use super::{merge_minimums, needed};

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

    #[test]
    fn needed_are_the_submitted_applications_open_or_moving_from_the_first_day_and_one_closed_per_type() {
        type Row<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>);
        let rows: [Row; 9] = [
            ("a", "X", Some("2020-01-01"), Some("2020-02-01")),
            ("b", "X", Some("2020-01-01"), None),
            ("c", "X", Some("2025-12-26"), Some("2025-12-27")),
            ("d", "X", Some("2019-05-01"), Some("2020-01-01")),
            ("e", "X", None, Some("2026-01-02")),
            ("f", "Y", Some("2018-01-01"), Some("2018-02-01")),
            ("g", "Y", Some("2018-03-01"), Some("2019-01-01")),
            ("h", "X", Some("2020-01-01"), Some("2026-01-05")),
            ("i", "X", None, Some("2017-01-01")),
        ];
        let strings = |values: Vec<Option<&str>>| Arc::new(StringArray::from(values)) as arrow::array::ArrayRef;
        let merged = RecordBatch::try_from_iter([
            ("application_id", strings(rows.iter().map(|r| Some(r.0)).collect())),
            ("permit_type", strings(rows.iter().map(|r| Some(r.1)).collect())),
            ("submitted_date", strings(rows.iter().map(|r| r.2).collect())),
            ("decided_date", strings(rows.iter().map(|r| r.3).collect())),
        ])
        .expect("merged");
        // "d" was decided again in the recomputed days; "i" is looked up too (a submission may follow).
        let decided: HashSet<&str, FixedState> = ["d", "i", "zz"].into_iter().collect();
        let needed =
            filter_record_batch(&merged, &needed(&merged, "2025-12-25", &[&decided]).expect("mask")).expect("filter");
        let ids: Vec<&str> = needed.column(0).as_string::<i32>().iter().flatten().collect();
        assert_eq!(ids, ["a", "b", "c", "d", "f", "h", "i"]);
    }
}
