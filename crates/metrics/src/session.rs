//! The DataFusion session the models run in: every event table, `_rejections`, every mart, the targets, the
//! periods and the shared views of `_views.sql`; in a materialisation the event tables the models read are
//! read into memory once and the views they read many times are computed once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use permitflow_warehouse::{CommittedFile, Warehouse, register_tables};
use tracing::debug;

use crate::calendar::{self, Calendar};
use crate::{MetricsConfig, MetricsError, Targets, VIEWS_SQL, files, history, percentile, query_error};

/// Loads the targets of `config`, checked against the permit types of the warehouse's contract.
pub fn load_targets(warehouse: &Warehouse, config: &MetricsConfig) -> Result<Targets, MetricsError> {
    let permit_types = warehouse
        .contract()
        .event(crate::APPLICATION_EVENT)
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
    let calendar = Calendar::of(warehouse.files()?.iter());
    Ok(build_session(warehouse, &targets, calendar.as_ref(), None).await?.0)
}

/// What a materialisation session reads and keeps.
#[derive(Clone, Copy)]
pub(crate) struct Materialising<'a> {
    /// The first year recomputed (`None`: every year).
    pub(crate) from_year: Option<i32>,
    /// In an incremental run, the files committed since the last materialisation: the whole-history views
    /// are its summaries plus these (see the `history` module).
    pub(crate) new_files: Option<&'a [&'a CommittedFile]>,
    /// The files of the tables' snapshots (read into memory as the cached tables).
    pub(crate) live_files: &'a [CommittedFile],
}

/// The session of a materialisation (`materialising`) or of queries (`None`). With a `from_year`, the event
/// tables hold (at least) the events of the periods from that year on and `periods`/`weeks` only those
/// periods; `all_<table>` always holds everything. In a materialisation the [`CACHED_TABLES`] and the shared
/// views the models read many times are computed once, as the session is built, and kept in memory (see
/// [`CACHED_VIEWS`]). An incremental materialisation merges the whole-history summary as it goes (see the
/// `history` module) and gets it back to store.
pub(crate) async fn build_session(
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
/// Reads the [`CACHED_TABLES`] into memory from the files of the tables' snapshots (see the `files` module):
/// every file as `all_<table>`, also registered as `<table>`, in a full run (`from_year` `None`); otherwise
/// the files of the partitions `<table>` holds (see [`partition_bound`]) as `<table>` alone. Returns the rows
/// of `new_files` of each table a whole-history view reads (see the `history` module), read once with the
/// table's: the new files' partitions are among the recomputed ones.
async fn cache_tables(
    ctx: &SessionContext,
    warehouse: &Warehouse,
    live: &[CommittedFile],
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
            .filter(|f| f.table == *table)
            .filter(|f| {
                bound.as_ref().is_none_or(|b| {
                    files::partition_value(&f.path, &event.partition.column).is_some_and(|v| v >= b.as_str())
                })
            })
            .map(|f| f.path.as_str())
            .collect();
        let columns: Vec<&str> = IDENTITY_COLUMNS.iter().chain(own.iter()).copied().collect();
        let frame = ctx.table(*table).await.and_then(|f| f.select_columns(&columns)).map_err(query_error(&context))?;
        let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
        let partitions = ctx.copied_config().target_partitions();
        let history_new = new_files.filter(|_| history::reads_history(table)).map(|new_files| {
            new_files.iter().filter(|f| f.table == *table).map(|f| f.path.as_str()).collect::<HashSet<&str>>()
        });
        let rows = match history_new {
            None => files::read_files(warehouse, &files, &schema, partitions)?,
            Some(new) => {
                let (new_cached, old): (Vec<&str>, Vec<&str>) = files.iter().partition(|path| new.contains(*path));
                // Outside the recomputed partitions: not possible for a file that made them recomputed, but the
                // history must have every new row all the same.
                let selected: HashSet<&str> = files.iter().copied().collect();
                let mut new_elsewhere: Vec<&str> = new.difference(&selected).copied().collect();
                new_elsewhere.sort_unstable();
                let mut rows = files::read_files(warehouse, &old, &schema, partitions)?;
                let cached_new: Vec<RecordBatch> =
                    files::read_files(warehouse, &new_cached, &schema, 1)?.into_iter().flatten().collect();
                let elsewhere = files::read_files(warehouse, &new_elsewhere, &schema, 1)?.into_iter().flatten();
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
