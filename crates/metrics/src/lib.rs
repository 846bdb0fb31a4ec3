//! The indicators: a DataFusion session over the committed warehouse and the
//! SQL models of `pipelines/models/*.sql`, materialised as marts.
//!
//! This crate owns the SQL, the targets it reads (`pipelines/targets.toml`) and
//! the session that runs it; it reads the event tables only through the
//! warehouse crate's registration (committed files only) and writes marts only
//! through the warehouse's mart functions. It never writes event tables or the
//! commit log.
//!
//! The models are embedded at build time. `_views.sql` runs first in every
//! session (deduplication by `event_id`, the latest staff report, person-years);
//! every other file is one mart: a single `SELECT` whose result is stored under
//! `<warehouse>/marts/<name>/year=<YYYY>/`.
//!
//! Materialisation is incremental: `marts/_state.json` records the last commit
//! the marts cover. New commits name their files, whose partitions say which
//! days they touch; every year from the earliest touched one on is recomputed
//! (figures only ever depend on the same or earlier periods: backlogs
//! accumulate, a decision follows its application) and replaces its year
//! partition atomically. A change of the models or targets rebuilds everything. The view that needs the
//! whole history (every application's first submission and first decision) starts from the summary the
//! last materialisation kept, plus the files committed since (the `history` module).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use permitflow_metrics::{MetricsConfig, Rebuild, materialize};
//! use permitflow_warehouse::Warehouse;
//!
//! let warehouse = Warehouse::open("warehouse")?;
//! let report = materialize(&warehouse, &MetricsConfig::default(), Rebuild::Incremental).await?;
//! for mart in &report.marts {
//!     println!("{}: {} rows", mart.name, mart.rows);
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod calendar;
mod files;
mod history;
mod percentile;
mod targets;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{cast, concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimestampMicrosecondType};
use arrow::error::ArrowError;
use chrono::{DateTime, Datelike};
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use permitflow_warehouse::{Commit, CommittedFile, REJECTIONS_TABLE, Warehouse, register_tables};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{debug, info, info_span};

pub use calendar::Calendar;
pub use targets::{AppealTargets, DEFAULT_TARGETS, Targets};

/// A model: the mart it produces and its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    /// Mart name (also the table name in SQL sessions).
    pub name: &'static str,
    /// The model's `SELECT`.
    pub sql: &'static str,
}

/// The shared views, run before any model.
pub const VIEWS_SQL: &str = include_str!("../../../pipelines/models/_views.sql");

macro_rules! models {
    ($($name:literal),* $(,)?) => {
        /// Every model, in materialisation order.
        pub const MODELS: &[Model] = &[
            $(Model { name: $name, sql: include_str!(concat!("../../../pipelines/models/", $name, ".sql")) },)*
        ];
    };
}

models!(
    "decisions_per_person_year",
    "cost_recovery",
    "backlog",
    "processing_times",
    "appointment_wait",
    "channel_automation",
    "appeal_returns",
    "inflow",
    "data_quality",
);

/// `[metrics]`: where the targets come from and when `permitflow run` materialises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A targets file like `pipelines/targets.toml` (default: that file as built in).
    pub targets_file: Option<PathBuf>,
    /// `permitflow run` updates the marts this many seconds after the previous update when new commits
    /// arrived, and once when it stops (default 60; 0: never, run `permitflow materialize` yourself).
    pub materialize_interval_s: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { targets_file: None, materialize_interval_s: 60 }
    }
}

/// Errors of the metrics stage.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A model or a query failed.
    #[error("{context}: {source}")]
    Query {
        /// Which model or query.
        context: String,
        /// The DataFusion error.
        source: datafusion::error::DataFusionError,
    },
    /// Reading or writing the warehouse failed.
    #[error(transparent)]
    Warehouse(#[from] permitflow_warehouse::WarehouseError),
    /// Building or splitting a table failed.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    /// The targets file is unreadable or holds a wrong value.
    #[error("targets file {path}: {message}")]
    Targets {
        /// The file.
        path: PathBuf,
        /// What is wrong and where.
        message: String,
    },
    /// A committed `_rejections` file cannot be read.
    #[error("reading {path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The Parquet error.
        source: parquet::errors::ParquetError,
    },
}

pub(crate) fn query_error(
    context: impl Into<String>,
) -> impl FnOnce(datafusion::error::DataFusionError) -> MetricsError {
    let context = context.into();
    move |source| MetricsError::Query { context, source }
}

/// Loads the targets of `config`, checked against the permit types of the warehouse's contract.
pub fn load_targets(warehouse: &Warehouse, config: &MetricsConfig) -> Result<Targets, MetricsError> {
    let permit_types = warehouse
        .contract()
        .event("application.submitted")
        .and_then(|e| e.fields.iter().find(|f| f.name == "permit_type"))
        .and_then(|f| match &f.kind {
            permitflow_schema::FieldKind::Enum(values) => Some(values.clone()),
            _ => None,
        })
        .unwrap_or_default();
    Targets::load(config.targets_file.as_deref(), &permit_types)
}

/// Parquet footers and page indexes kept per session. A warehouse holds one file per table and month or more
/// (several thousand files for ten years between compactions), each footer read again by every scan once it fell out of DataFusion's
/// default 50 MiB cache; ten years' footers take about 120 MiB.
const METADATA_CACHE_BYTES: usize = 512 << 20;
/// Directory listings kept per session (DataFusion's default, 1 MiB, holds about 5,000 files).
const LIST_FILES_CACHE_BYTES: usize = 64 << 20;
/// Per-file statistics kept per session (DataFusion's default is 20 MiB).
const FILE_STATISTICS_CACHE_BYTES: usize = 256 << 20;

/// A session with every event table, `_rejections`, every existing mart, the target tables, the periods
/// and the shared views: what `permitflow query` and analysts' tools see.
pub async fn session(warehouse: &Warehouse, config: &MetricsConfig) -> Result<SessionContext, MetricsError> {
    let targets = load_targets(warehouse, config)?;
    let calendar = Calendar::of(warehouse.log().live_files().into_iter().map(|(_, f)| f));
    Ok(build_session(warehouse, &targets, calendar.as_ref(), None).await?.0)
}

/// What a materialisation session reads and keeps.
#[derive(Clone, Copy)]
struct Materialising<'a> {
    /// The first year recomputed (`None`: every year).
    from_year: Option<i32>,
    /// In an incremental run, the files committed since the last materialisation: the whole-history views
    /// are its summaries plus these (see the `history` module).
    new_files: Option<&'a [&'a CommittedFile]>,
    /// The live files of the commit log (read into memory as the cached tables).
    live_files: &'a [(u64, &'a CommittedFile)],
}

/// The session of a materialisation (`materialising`) or of queries (`None`). With a `from_year`, the event
/// tables hold (at least) the events of the periods from that year on and `periods`/`weeks` only those
/// periods; `all_<table>` always holds everything. In a materialisation the [`CACHED_TABLES`] and the shared
/// views the models read many times are computed once, as the session is built, and kept in memory (see
/// [`CACHED_VIEWS`]). An incremental materialisation merges the whole-history summary as it goes (see the
/// `history` module) and gets it back to store.
async fn build_session(
    warehouse: &Warehouse,
    targets: &Targets,
    calendar: Option<&Calendar>,
    materialising: Option<Materialising<'_>>,
) -> Result<(SessionContext, Option<history::Merged>), MetricsError> {
    let mut merged = None;
    let from_year = materialising.and_then(|m| m.from_year);
    let new_files = materialising.and_then(|m| m.new_files);
    let runtime = RuntimeEnvBuilder::new()
        .with_metadata_cache_limit(METADATA_CACHE_BYTES)
        .with_object_list_cache_limit(LIST_FILES_CACHE_BYTES)
        .with_file_statistics_cache_limit(FILE_STATISTICS_CACHE_BYTES)
        .build_arc()
        .map_err(query_error("creating the DataFusion runtime"))?;
    let ctx = SessionContext::new_with_config_rt(SessionConfig::new().with_information_schema(true), runtime);
    ctx.register_udaf(percentile::exact_percentile());
    register_tables(&ctx, warehouse)?;
    for event in warehouse.contract().events() {
        let table = event.table.as_str();
        let context = format!("registering all_{table}");
        let provider = ctx.table_provider(table).await.map_err(query_error(&context))?;
        ctx.register_table(format!("all_{table}").as_str(), provider).map_err(query_error(&context))?;
        if let Some(year) = from_year {
            let bound = partition_bound(event, year);
            ctx.deregister_table(table).map_err(query_error(&context))?;
            let sql = format!(
                "CREATE VIEW {table} AS SELECT * FROM all_{table} WHERE {} >= '{bound}'",
                event.partition.column
            );
            ctx.sql(&sql).await.map_err(query_error(&context))?;
        }
    }
    targets.register(&ctx)?;
    calendar::register_periods(calendar, &ctx, from_year.unwrap_or(i32::MIN))?;
    let scope = ctx.read_batch(RecordBatch::try_from_iter([(
        "from_year",
        Arc::new(arrow::array::Int32Array::from(vec![from_year.unwrap_or(0)])) as arrow::array::ArrayRef,
    )])?);
    ctx.register_table("materialize_scope", scope.map_err(query_error("materialize_scope"))?.into_view())
        .map_err(query_error("materialize_scope"))?;
    let mut new_rows = match materialising {
        Some(materialising) => cache_tables(&ctx, warehouse, materialising.live_files, from_year, new_files).await?,
        None => HashMap::new(),
    };
    for (number, statement) in view_statements().iter().enumerate() {
        let context = format!("pipelines/models/_views.sql, statement {}", number + 1);
        ctx.sql(statement).await.map_err(query_error(context))?;
        // A view's plan is fixed when it is created, so a view is cached before the views that read it are.
        let Some(view) = statement.strip_prefix("CREATE VIEW ").and_then(|rest| rest.split_whitespace().next()) else {
            continue;
        };
        if let (Some(_), Some(year)) = (new_files, from_year) {
            if let Some(table) = history::history_table(view) {
                history::replace_with_new_rows(&ctx, view, new_rows.remove(table).unwrap_or_default()).await?;
            }
            if view == history::FIRSTS {
                merged = Some(history::merge_with_base(&ctx, warehouse, &first_recomputed_day(year)).await?);
                continue;
            }
        }
        if materialising.is_some()
            && let Some(columns) = cached_view_columns(view)
        {
            cache_view(&ctx, view, columns).await?;
        }
    }
    Ok((ctx, merged))
}

/// The statements of `_views.sql`: `--` comment lines removed, split on `;`; a statement that names
/// `{table}` once for each of [`CACHED_TABLES`].
fn view_statements() -> Vec<String> {
    let code: String =
        VIEWS_SQL.lines().filter(|line| !line.trim_start().starts_with("--")).map(|line| format!("{line}\n")).collect();
    code.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .flat_map(|statement| match statement.contains("{table}") {
            true => CACHED_TABLES.iter().map(|(table, _)| statement.replace("{table}", table)).collect(),
            false => vec![statement.to_string()],
        })
        .collect()
}

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
async fn collect_conformed(
    frame: datafusion::dataframe::DataFrame,
    context: &str,
) -> Result<RecordBatch, MetricsError> {
    let schema = mart_schema(frame.schema().as_arrow());
    let batches = frame.collect().await.map_err(query_error(context))?;
    let batches = batches.iter().map(|batch| conform(batch, &schema)).collect::<Result<Vec<_>, _>>()?;
    Ok(concat_batches(&schema, &batches)?)
}

/// The rows of each year partition, by the year in the first four characters of `period`.
fn split_by_year(batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>, ArrowError> {
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
    /// The last commit the marts now cover.
    pub through_seq: u64,
    /// Rows written per mart (empty when up to date).
    pub marts: Vec<MartReport>,
}

const STATE_FORMAT: u32 = 3;

/// `marts/_state.json`.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    format: u32,
    /// Last commit the marts cover.
    through_seq: u64,
    /// Hash of the models and targets the marts were built with.
    fingerprint: String,
    /// The first and last event day the marts were built for.
    calendar: Option<[String; 2]>,
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

/// The event tables the shared views and the models read, each with the columns they read: read from
/// Parquet once per materialisation and kept in memory. A warehouse holds one file per table and month or more, and
/// each scan of a table pays for every file again; the views and models read most tables four or five times.
/// In a full materialisation `<table>` and `all_<table>` are the same cached table; in an incremental one only
/// `<table>` (the years being recomputed) is cached, and `all_<table>` is read where a view needs the whole
/// history. Each keeps the [`IDENTITY_COLUMNS`] too; its `unique_<table>` view keeps the listed columns. A view or model that needs another column must add it
/// here; the golden tests fail with "No field named ..." until then.
const CACHED_TABLES: &[(&str, &[&str])] = &[
    ("applications", &["event_date", "occurred_at", "application_id", "permit_type", "channel", "fee_eur"]),
    ("decisions", &["event_date", "occurred_at", "application_id", "permit_type", "unit", "automated"]),
    ("costs", &["month", "occurred_at", "process", "amount_eur"]),
    ("appeals", &["event_date", "permit_type", "result"]),
    ("appointments", &["event_date", "occurred_at", "service", "service_point", "first_free_slot_at"]),
];

/// The columns every cached table keeps besides its own: what the `unique_*` views deduplicate by.
const IDENTITY_COLUMNS: &[&str] = &["event_id", "source", "source_offset"];

/// Shared views that the models read many times: computed once per materialisation and kept in memory
/// (DataFusion inlines views, so they would otherwise be recomputed in every CTE that reads them), each
/// with only the columns the models read (an empty list: all). A model that needs another column of these
/// views must add it here; its golden test fails with "No field named ..." until then.
const CACHED_VIEWS: &[(&str, &[&str])] = &[
    ("person_years_by_process", &[]),
    ("application_firsts", &[]),
    ("application_submissions", &[]),
    ("application_closures", &[]),
    ("staff_reports", &[]),
];

/// The columns to keep of a shared view that is cached (empty: all), or `None` when it is not cached.
/// Every [`CACHED_TABLES`] entry has a `<table>_copied` and a `unique_<table>` view (the `{table}` statements
/// of `_views.sql`); `unique_<table>` keeps the table's own columns.
fn cached_view_columns(view: &str) -> Option<&'static [&'static str]> {
    if let Some((_, columns)) = CACHED_VIEWS.iter().find(|(name, _)| *name == view) {
        return Some(columns);
    }
    CACHED_TABLES.iter().find_map(|(table, own)| {
        if view.strip_prefix("unique_") == Some(table) {
            Some(*own)
        } else if view.strip_suffix("_copied") == Some(table) {
            Some(&[][..])
        } else {
            None
        }
    })
}

/// The last commit the marts were materialised through, if they were (a compaction passes it on as
/// [`permitflow_warehouse::CompactOptions::through_seq`], so the next incremental run stays incremental).
pub fn materialized_through(warehouse: &Warehouse) -> Result<Option<u64>, MetricsError> {
    let state: Option<State> = warehouse.mart_state()?.and_then(|text| serde_json::from_str(&text).ok());
    Ok(state.map(|s| s.through_seq))
}

/// Brings the marts up to date with the committed events.
pub async fn materialize(
    warehouse: &Warehouse,
    config: &MetricsConfig,
    rebuild: Rebuild,
) -> Result<MaterializeReport, MetricsError> {
    let _lock = warehouse.lock_marts()?;
    // The files the log lists are read directly; no compaction may replace them meanwhile.
    let _layout = warehouse.hold_layout()?;
    let targets = load_targets(warehouse, config)?;
    let through_seq = warehouse.log().last_seq();
    let live_files = warehouse.log().live_files();
    let calendar = Calendar::of(live_files.iter().map(|(_, f)| *f));
    let fingerprint = fingerprint(&targets);
    let state: Option<State> = warehouse.mart_state()?.and_then(|text| serde_json::from_str(&text).ok());
    // `None`: a compaction pruned records of commits the marts have not seen. A full rebuild reads none.
    let since: Option<Vec<Commit>> = match (&state, rebuild) {
        (Some(state), Rebuild::Incremental) => warehouse.log().commits_since(state.through_seq)?,
        _ => Some(Vec::new()),
    };
    let pruned = since.is_none();
    let since = since.unwrap_or_default();
    // A compaction adds no data: its files hold rows the marts have seen, or rows of the files it replaced.
    let new_files: Vec<&CommittedFile> = since.iter().filter(|c| !c.is_compaction()).flat_map(|c| &c.files).collect();
    let new_paths: HashSet<&str> = new_files.iter().map(|f| f.path.as_str()).collect();
    let new_files_compacted = since.iter().flat_map(|c| &c.removes).any(|path| new_paths.contains(path.as_str()));
    let scope = match (&state, rebuild) {
        (_, Rebuild::Full) => Scope::Full { reason: "requested" },
        (None, _) => Scope::Full { reason: "no earlier materialisation" },
        (Some(state), _) if state.format != STATE_FORMAT || state.fingerprint != fingerprint => {
            Scope::Full { reason: "the models or targets changed" }
        }
        (Some(state), _) if state.through_seq == through_seq => Scope::UpToDate,
        _ if pruned => Scope::Full { reason: "the commit log was pruned of commits since the last materialisation" },
        _ if new_files_compacted => {
            Scope::Full { reason: "files committed since the last materialisation were compacted before it" }
        }
        _ if !history::summaries_exist(warehouse) => {
            Scope::Full { reason: "the whole-history summaries (marts/_summaries) are missing" }
        }
        (Some(state), _) => {
            let before = state.calendar.as_ref().and_then(Calendar::from_strings);
            match touched_from_year(warehouse, &new_files, before.as_ref(), calendar.as_ref())? {
                Some(year) => Scope::FromYear(year),
                None => Scope::UpToDate,
            }
        }
    };
    let span = info_span!("materialize", ?scope, through_seq);
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
        history::store_summaries(&ctx, warehouse, merged, through_seq).await?;
    }
    let state = State { format: STATE_FORMAT, through_seq, fingerprint, calendar: calendar.map(|c| c.to_strings()) };
    warehouse.set_mart_state(&serde_json::to_string_pretty(&state).expect("state serialises"))?;
    info!(?scope, through_seq, "marts up to date");
    Ok(MaterializeReport { scope, through_seq, marts })
}

/// Reads the [`CACHED_TABLES`] into memory from the live files of the commit log (see the `files` module):
/// every file as `all_<table>`, also registered as `<table>`, in a full run (`from_year` `None`); otherwise
/// the files of the partitions `<table>` holds (see [`partition_bound`]) as `<table>` alone. Returns the rows
/// of `new_files` of each table a whole-history view reads (see the `history` module), read once with the
/// table's: the new files' partitions are among the recomputed ones.
async fn cache_tables(
    ctx: &SessionContext,
    warehouse: &Warehouse,
    live: &[(u64, &CommittedFile)],
    from_year: Option<i32>,
    new_files: Option<&[&CommittedFile]>,
) -> Result<HashMap<&'static str, Vec<RecordBatch>>, MetricsError> {
    let mut new_rows = HashMap::new();
    for (table, own) in CACHED_TABLES {
        let started = std::time::Instant::now();
        let context = format!("reading {table} into memory");
        let event =
            warehouse.contract().events().iter().find(|e| e.table == *table).ok_or_else(|| MetricsError::Query {
                context: context.clone(),
                source: datafusion::error::DataFusionError::Plan(format!("the contract has no table {table}")),
            })?;
        let bound = from_year.map(|year| partition_bound(event, year));
        let files: Vec<&str> = live
            .iter()
            .filter(|(_, f)| f.table == *table)
            .filter(|(_, f)| {
                bound.as_ref().is_none_or(|b| {
                    files::partition_value(&f.path, &event.partition.column).is_some_and(|v| v >= b.as_str())
                })
            })
            .map(|(_, f)| f.path.as_str())
            .collect();
        let columns: Vec<&str> = IDENTITY_COLUMNS.iter().chain(own.iter()).copied().collect();
        let frame = ctx.table(*table).await.and_then(|f| f.select_columns(&columns)).map_err(query_error(&context))?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let partitions = ctx.copied_config().target_partitions();
        let history_new = new_files.filter(|_| history::reads_history(table)).map(|new_files| {
            new_files.iter().filter(|f| f.table == *table).map(|f| f.path.as_str()).collect::<HashSet<&str>>()
        });
        let rows = match history_new {
            None => files::read_files(warehouse.root(), &files, &schema, partitions)?,
            Some(new) => {
                let (new_cached, old): (Vec<&str>, Vec<&str>) = files.iter().partition(|path| new.contains(*path));
                // Outside the recomputed partitions: not possible for a file that made them recomputed, but the
                // history must have every new row all the same.
                let selected: HashSet<&str> = files.iter().copied().collect();
                let mut new_elsewhere: Vec<&str> = new.difference(&selected).copied().collect();
                new_elsewhere.sort_unstable();
                let mut rows = files::read_files(warehouse.root(), &old, &schema, partitions)?;
                let cached_new: Vec<RecordBatch> =
                    files::read_files(warehouse.root(), &new_cached, &schema, 1)?.into_iter().flatten().collect();
                let elsewhere = files::read_files(warehouse.root(), &new_elsewhere, &schema, 1)?.into_iter().flatten();
                new_rows.insert(*table, cached_new.iter().cloned().chain(elsewhere).collect());
                if !cached_new.is_empty() {
                    rows.push(cached_new);
                }
                rows
            }
        };
        let cached: Arc<dyn datafusion::catalog::TableProvider> =
            Arc::new(MemTable::try_new(schema, rows).map_err(query_error(&context))?);
        let names =
            if from_year.is_none() { vec![format!("all_{table}"), table.to_string()] } else { vec![table.to_string()] };
        for name in names {
            ctx.deregister_table(name.as_str()).map_err(query_error(&context))?;
            ctx.register_table(name.as_str(), cached.clone()).map_err(query_error(&context))?;
        }
        debug!(table, files = files.len(), seconds = started.elapsed().as_secs_f64(), "read into memory");
    }
    Ok(new_rows)
}

/// The first partition value `<table>` holds when periods from `year` on are recomputed: the month of
/// [`first_recomputed_day`] for tables partitioned by event month, January of `year` for staff and costs
/// (partitioned by the accounting month they report).
fn partition_bound(event: &permitflow_schema::EventSchema, year: i32) -> String {
    if event.partition.date_column.is_some() {
        first_recomputed_day(year)[..7].to_string()
    } else {
        format!("{year}-01")
    }
}

/// The first event day the tables partitioned by event month hold when periods from `year` on are
/// recomputed: a week of `year` may start in the last days of the year before, so its December is read too.
fn first_recomputed_day(year: i32) -> String {
    format!("{}-12-01", year - 1)
}

/// Computes `view` (only `columns` of it, unless empty) and replaces it by the result in memory.
async fn cache_view(ctx: &SessionContext, view: &str, columns: &[&str]) -> Result<(), MetricsError> {
    let started = std::time::Instant::now();
    let context = format!("reading {view} into memory");
    let mut frame = ctx.table(view).await.map_err(query_error(&context))?;
    if !columns.is_empty() {
        frame = frame.select_columns(columns).map_err(query_error(&context))?;
    }
    let cached = frame.cache().await.map_err(query_error(&context))?;
    ctx.deregister_table(view).map_err(query_error(&context))?;
    ctx.register_table(view, cached.into_view()).map_err(query_error(&context))?;
    debug!(view, seconds = started.elapsed().as_secs_f64(), "cached");
    Ok(())
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
        if let Some(day) = earliest_rejection_day(&warehouse.root().join(&file.path))? {
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

fn earliest_rejection_day(path: &std::path::Path) -> Result<Option<chrono::NaiveDate>, MetricsError> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let parquet_error = |source| MetricsError::Parquet { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(|e| {
        MetricsError::Warehouse(permitflow_warehouse::WarehouseError::Io { path: path.to_path_buf(), source: e })
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_error)?;
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
