//! Materialisation: which years the commits since the last run touched, the models run over them, and
//! each mart's years replaced atomically, with `marts/_state.json` recording what the marts cover.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{cast, concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimestampMicrosecondType};
use arrow::error::ArrowError;
use chrono::{DateTime, Datelike};
use datafusion::prelude::SessionContext;
use permitflow_warehouse::{Commit, CommittedFile, REJECTIONS_TABLE, Versions, Warehouse};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, info_span};

use crate::calendar::{self, Calendar};
use crate::session::{Materialising, build_session, load_targets};
use crate::{
    APPLICATION_EVENT, MODELS, MetricsConfig, MetricsError, Model, Targets, VIEWS_SQL, forecast, history, query_error,
};

/// The schema a mart is stored with: string views become plain strings, which every BI engine reads.
fn mart_schema(planned: &Schema) -> SchemaRef {
    let fields: Vec<Field> = planned
        .fields()
        .iter()
        .map(|field| match field.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 => field.as_ref().clone().with_data_type(DataType::Utf8),
            _ => field.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Casts a result batch to the mart schema (the engine may produce string views for planned strings).
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| cast(column, field.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns)
}

/// The result of `frame` as one batch in its mart schema (see [`mart_schema`]).
pub(crate) async fn collect_conformed(
    frame: datafusion::dataframe::DataFrame,
    context: &str,
) -> Result<RecordBatch, MetricsError> {
    let schema = mart_schema(frame.schema().as_arrow());
    let batches = frame.collect().await.map_err(query_error(context))?;
    let batches = batches.iter().map(|batch| conform(batch, &schema)).collect::<Result<Vec<_>, _>>()?;
    Ok(concat_batches(&schema, &batches)?)
}

/// The rows of each year partition, by the year in the first four characters of `period`.
pub(crate) fn split_by_year(batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>, ArrowError> {
    let index = batch.schema().index_of("period")?;
    let period = cast(batch.column(index), &DataType::Utf8)?;
    let period = period.as_string::<i32>();
    let year_of = |row: usize| period.is_valid(row).then(|| period.value(row).get(..4).unwrap_or_default().to_string());
    let years: BTreeSet<String> = (0..batch.num_rows()).filter_map(year_of).collect();
    years
        .into_iter()
        .map(|year| {
            let mask: BooleanArray =
                (0..batch.num_rows()).map(|row| Some(year_of(row).as_ref() == Some(&year))).collect();
            Ok((year, filter_record_batch(batch, &mask)?))
        })
        .collect()
}

/// How much to recompute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuild {
    /// Only the years that commits since the last materialisation touched (everything the first time, and
    /// when the models or targets changed).
    Incremental,
    /// Every mart from scratch (`materialize --full`).
    Full,
}

/// What a materialisation recomputed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The marts already covered every commit.
    UpToDate,
    /// Every period (`reason` says why).
    Full {
        /// Why everything was rebuilt.
        reason: &'static str,
    },
    /// The periods of these years and later.
    FromYear(i32),
}

/// A materialised mart.
#[derive(Debug, Clone, PartialEq)]
pub struct MartReport {
    /// Mart name.
    pub name: &'static str,
    /// Rows written.
    pub rows: usize,
    /// Time spent computing and writing it, seconds.
    pub seconds: f64,
}

/// The result of [`materialize`].
#[derive(Debug, Clone, PartialEq)]
pub struct MaterializeReport {
    /// What was recomputed.
    pub scope: Scope,
    /// The table versions the marts now cover.
    pub through: Versions,
    /// Rows written per mart (empty when up to date).
    pub marts: Vec<MartReport>,
}

const STATE_FORMAT: u32 = 4;

/// `marts/_state.json`.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    format: u32,
    /// The table versions the marts cover.
    through: Versions,
    /// Hash of the models and targets the marts were built with.
    fingerprint: String,
    /// The first and last event day the marts were built for.
    calendar: Option<[String; 2]>,
    /// Hash of the forecasts' inputs (see the `forecast` module).
    #[serde(default)]
    forecast_input: Option<String>,
}

fn fingerprint(targets: &Targets) -> String {
    let mut hash = Sha256::new();
    hash.update(STATE_FORMAT.to_le_bytes());
    hash.update(VIEWS_SQL);
    for model in MODELS {
        hash.update(model.name);
        hash.update(model.sql);
    }
    hash.update(targets.fingerprint());
    hex::encode(hash.finalize())
}

/// The table versions the marts were materialised through, if they were (a compaction passes them on as
/// [`permitflow_warehouse::CompactOptions::through`], so the next incremental run stays incremental).
pub fn materialized_through(warehouse: &Warehouse) -> Result<Option<Versions>, MetricsError> {
    let state: Option<State> = warehouse.mart_state()?.and_then(|text| serde_json::from_str(&text).ok());
    Ok(state.map(|s| s.through))
}

/// Brings the marts up to date with the committed events.
pub async fn materialize(
    warehouse: &Warehouse,
    config: &MetricsConfig,
    rebuild: Rebuild,
) -> Result<MaterializeReport, MetricsError> {
    let _lock = warehouse.lock_marts()?;
    let targets = load_targets(warehouse, config)?;
    // The snapshots' files are read directly: a compaction that replaces them meanwhile leaves them in place
    // for the vacuum retention.
    let through = warehouse.versions();
    let live_files = warehouse.files()?;
    let calendar = Calendar::of(live_files.iter());
    let fingerprint = fingerprint(&targets);
    let state: Option<State> = warehouse.mart_state()?.and_then(|text| serde_json::from_str(&text).ok());
    // `None`: the log clean-up removed commits the marts have not seen. A full rebuild reads none.
    let summaries_exist = history::summaries_exist(warehouse)?;
    let since: Option<Vec<Commit>> = match (&state, rebuild) {
        (Some(state), Rebuild::Incremental) => warehouse.commits_since(&state.through)?,
        _ => Some(Vec::new()),
    };
    let pruned = since.is_none();
    let since = since.unwrap_or_default();
    // A compaction adds no data: its files hold rows the marts have seen, or rows of the files it replaced.
    let new_files: Vec<&CommittedFile> = since.iter().flat_map(|c| &c.files).collect();
    let new_paths: HashSet<&str> = new_files.iter().map(|f| f.path.as_str()).collect();
    let new_files_compacted = since.iter().flat_map(|c| &c.removes).any(|path| new_paths.contains(path.as_str()));
    let scope = match (&state, rebuild) {
        (_, Rebuild::Full) => Scope::Full { reason: "requested" },
        (None, _) => Scope::Full { reason: "no earlier materialisation" },
        (Some(state), _) if state.format != STATE_FORMAT || state.fingerprint != fingerprint => {
            Scope::Full { reason: "the models or targets changed" }
        }
        (Some(state), _) if state.through == through => Scope::UpToDate,
        _ if pruned => Scope::Full { reason: "the log clean-up removed commits made since the last materialisation" },
        _ if new_files_compacted => {
            Scope::Full { reason: "files committed since the last materialisation were compacted before it" }
        }
        _ if !summaries_exist => Scope::Full { reason: "the whole-history summaries (marts/_summaries) are missing" },
        (Some(state), _) => {
            let before = state.calendar.as_ref().and_then(Calendar::from_strings);
            match touched_from_year(warehouse, &new_files, before.as_ref(), calendar.as_ref())? {
                Some(year) => Scope::FromYear(year),
                None => Scope::UpToDate,
            }
        }
    };
    let span = info_span!("materialize", ?scope, %through);
    let _guard = span.enter();
    let mut marts = Vec::new();
    if scope != Scope::UpToDate {
        let (from_year, new) = match scope {
            Scope::FromYear(year) => (Some(year), Some(new_files.as_slice())),
            _ => (None, None),
        };
        let materialising = Materialising { from_year, new_files: new, live_files: &live_files };
        let started = std::time::Instant::now();
        let (ctx, merged) = build_session(warehouse, &targets, calendar.as_ref(), Some(materialising)).await?;
        info!(seconds = started.elapsed().as_secs_f64(), "event tables read and shared views computed");
        for model in MODELS {
            marts.push(materialize_model(warehouse, &ctx, model, materialising.from_year).await?);
        }
        history::store_summaries(&ctx, warehouse, merged, through.total()).await?;
    }
    let mut forecast_input = state.as_ref().and_then(|s| s.forecast_input.clone());
    if scope != Scope::UpToDate {
        let previous = if rebuild == Rebuild::Full { None } else { forecast_input.as_deref() };
        let last_application_day = last_application_day(warehouse, &live_files);
        let forecasted = forecast::materialize_forecasts(warehouse, &targets, last_application_day, previous).await?;
        forecast_input = forecasted.input;
        marts.extend(forecasted.marts);
    }
    let state = State {
        format: STATE_FORMAT,
        through: through.clone(),
        fingerprint,
        calendar: calendar.map(|c| c.to_strings()),
        forecast_input,
    };
    warehouse.set_mart_state(&serde_json::to_string_pretty(&state).expect("state serialises"))?;
    info!(?scope, %through, "marts up to date");
    Ok(MaterializeReport { scope, through, marts })
}

/// The latest day of a committed application (from the files' recorded event dates).
fn last_application_day(warehouse: &Warehouse, files: &[CommittedFile]) -> Option<chrono::NaiveDate> {
    let table = &warehouse.contract().event(APPLICATION_EVENT)?.table;
    files.iter().filter(|f| &f.table == table).filter_map(calendar::file_days).map(|[_, last]| last).max()
}

async fn materialize_model(
    warehouse: &Warehouse,
    ctx: &SessionContext,
    model: &Model,
    from_year: Option<i32>,
) -> Result<MartReport, MetricsError> {
    let span = info_span!("model", mart = model.name);
    let _guard = span.enter();
    let started = std::time::Instant::now();
    let context = format!("model pipelines/models/{}.sql", model.name);
    let frame = ctx.sql(model.sql).await.map_err(query_error(&context))?;
    let batch = collect_conformed(frame, &context).await?;
    let schema = batch.schema();
    let in_scope = |year: &str| from_year.is_none_or(|from| year.parse::<i32>().is_ok_and(|y| y >= from));
    let mut keep: Vec<String> = warehouse.mart_years(model.name)?.into_iter().filter(|y| !in_scope(y)).collect();
    for (year, rows) in split_by_year(&batch)? {
        if in_scope(&year) {
            warehouse.write_mart_partition(model.name, &year, &schema, &[rows])?;
            keep.push(year);
        }
    }
    warehouse.set_mart_schema(model.name, &schema, &keep)?;
    Ok(MartReport { name: model.name, rows: batch.num_rows(), seconds: started.elapsed().as_secs_f64() })
}

/// The earliest year whose figures the new files can change, if any: the years of their event days, of
/// the days of new rejections, and of a calendar range that grew.
fn touched_from_year(
    warehouse: &Warehouse,
    new_files: &[&CommittedFile],
    before: Option<&Calendar>,
    after: Option<&Calendar>,
) -> Result<Option<i32>, MetricsError> {
    let mut years: BTreeSet<i32> =
        new_files.iter().filter_map(|f| calendar::file_days(f)).flatten().flat_map(calendar::years_of).collect();
    for file in new_files.iter().filter(|f| f.table == REJECTIONS_TABLE) {
        if let Some(day) = earliest_rejection_day(warehouse, &file.path)? {
            years.insert(day.year());
        }
    }
    match (before, after) {
        (Some(before), Some(after)) => {
            for (old, new) in [(before.first_day, after.first_day), (before.last_day, after.last_day)] {
                if old != new {
                    years.extend(calendar::years_of(old.min(new)));
                }
            }
        }
        (None, Some(after)) => years.extend(calendar::years_of(after.first_day)),
        _ => {}
    }
    Ok(years.first().copied())
}

fn earliest_rejection_day(warehouse: &Warehouse, path: &str) -> Result<Option<chrono::NaiveDate>, MetricsError> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let parquet_error = |source| MetricsError::Parquet { path: path.into(), source };
    let builder = ParquetRecordBatchReaderBuilder::try_new(warehouse.read_file(path)?).map_err(parquet_error)?;
    let index = builder.schema().index_of("received_at")?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
    let mut earliest = None::<i64>;
    for batch in builder.with_projection(mask).build().map_err(parquet_error)? {
        let batch = batch?;
        let column = batch.column(0).as_primitive::<TimestampMicrosecondType>();
        if let Some(min) = arrow::compute::min(column) {
            earliest = Some(earliest.map_or(min, |e| e.min(min)));
        }
    }
    Ok(earliest.and_then(DateTime::from_timestamp_micros).map(|t| t.date_naive()))
}
