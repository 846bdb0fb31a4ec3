//! The indicators: a DataFusion session over the committed warehouse and the
//! SQL models of `pipelines/models/*.sql`, materialised as marts.
//!
//! This crate owns the SQL and the session that runs it; it reads the event
//! tables only through the warehouse crate's registration (committed files
//! only) and writes marts only through [`Warehouse::write_mart`]. It never
//! writes event tables or the commit log.
//!
//! The models are embedded at build time. `_views.sql` runs first in every
//! session (deduplication by `event_id`, the latest staff report, person-years,
//! the month calendar); every other file is one mart: a single `SELECT` whose
//! result replaces `<warehouse>/marts/<name>/`.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use permitflow_metrics::{MetricsConfig, materialize};
//! use permitflow_warehouse::Warehouse;
//!
//! let warehouse = Warehouse::open("warehouse")?;
//! for mart in materialize(&warehouse, &MetricsConfig::default()).await? {
//!     println!("{}: {} rows", mart.name, mart.rows);
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use permitflow_warehouse::{Warehouse, register_tables};
use serde::{Deserialize, Serialize};
use tracing::info_span;

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

/// Every model, in materialisation order.
pub const MODELS: &[Model] = &[
    Model {
        name: "decisions_per_person_year",
        sql: include_str!("../../../pipelines/models/decisions_per_person_year.sql"),
    },
    Model { name: "cost_recovery", sql: include_str!("../../../pipelines/models/cost_recovery.sql") },
];

/// `[metrics]`: settings of the models that are data, not SQL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Permit types whose work is fee-based: the scope of `cost_recovery`
    /// (default: every permit type except `asylum` and `temporary_protection`).
    pub fee_based_permit_types: Vec<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            fee_based_permit_types: [
                "work_specialist",
                "work_startup",
                "work_employee",
                "work_other",
                "study",
                "family",
                "extended_permit",
                "permanent_permit",
                "eu_registration",
                "citizenship",
                "travel_document",
            ]
            .into_iter()
            .map(str::to_string)
            .collect(),
        }
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
    /// Building a config table failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

fn query_error(context: impl Into<String>) -> impl FnOnce(datafusion::error::DataFusionError) -> MetricsError {
    let context = context.into();
    move |source| MetricsError::Query { context, source }
}

/// A session with every event table, `_rejections`, every existing mart, the config tables and the shared views.
pub async fn session(warehouse: &Warehouse, config: &MetricsConfig) -> Result<SessionContext, MetricsError> {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
    register_tables(&ctx, warehouse)?;
    let schema = Arc::new(Schema::new(vec![Field::new("permit_type", DataType::Utf8, false)]));
    let fee_based = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(StringArray::from_iter_values(&config.fee_based_permit_types))],
    )?;
    let table = MemTable::try_new(schema, vec![vec![fee_based]]).map_err(query_error("fee_based_permit_types"))?;
    ctx.register_table("fee_based_permit_types", Arc::new(table)).map_err(query_error("fee_based_permit_types"))?;
    for (number, statement) in view_statements().enumerate() {
        let context = format!("pipelines/models/_views.sql, statement {}", number + 1);
        ctx.sql(&statement).await.map_err(query_error(context))?;
    }
    Ok(ctx)
}

/// The statements of `_views.sql`: `--` comment lines removed, split on `;`.
fn view_statements() -> impl Iterator<Item = String> {
    let code: String =
        VIEWS_SQL.lines().filter(|line| !line.trim_start().starts_with("--")).map(|line| format!("{line}\n")).collect();
    code.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>().into_iter()
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

/// A materialised mart.
#[derive(Debug, Clone, PartialEq)]
pub struct MartReport {
    /// Mart name.
    pub name: &'static str,
    /// Rows written.
    pub rows: usize,
}

/// Shared views that the models read many times: computed once per materialisation and kept in memory
/// (DataFusion inlines views, so `periods` would otherwise rescan every event table in each CTE that joins it).
const CACHED_VIEWS: &[&str] =
    &["periods", "person_years_by_process", "unique_applications", "unique_decisions", "unique_costs"];

/// Runs every model and replaces its mart.
pub async fn materialize(warehouse: &Warehouse, config: &MetricsConfig) -> Result<Vec<MartReport>, MetricsError> {
    let ctx = session(warehouse, config).await?;
    for view in CACHED_VIEWS {
        let context = format!("computing the shared view {view}");
        let cached =
            ctx.table(*view).await.map_err(query_error(&context))?.cache().await.map_err(query_error(&context))?;
        ctx.deregister_table(*view).map_err(query_error(&context))?;
        ctx.register_table(*view, cached.into_view()).map_err(query_error(&context))?;
    }
    let mut reports = Vec::with_capacity(MODELS.len());
    for model in MODELS {
        let span = info_span!("materialize", mart = model.name);
        let _guard = span.enter();
        let context = format!("model pipelines/models/{}.sql", model.name);
        let frame = ctx.sql(model.sql).await.map_err(query_error(&context))?;
        let schema = mart_schema(frame.schema().as_arrow());
        let batches = frame
            .collect()
            .await
            .map_err(query_error(&context))?
            .iter()
            .map(|batch| conform(batch, &schema))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = batches.iter().map(RecordBatch::num_rows).sum();
        warehouse.write_mart(model.name, schema, &batches)?;
        reports.push(MartReport { name: model.name, rows });
    }
    Ok(reports)
}
