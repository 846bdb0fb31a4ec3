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
//! session (the `session` module) (deduplication by `event_id`, the latest staff report, person-years);
//! every other file is one mart: a single `SELECT` whose result is stored under
//! `<warehouse>/marts/<name>/year=<YYYY>/`.
//!
//! Materialisation is incremental (the `materialize` module): `marts/_state.json` records the last commit
//! the marts cover. New commits name their files, which record the first and last event day they hold; every year from the earliest touched one on is recomputed
//! (figures only ever depend on the same or earlier periods: backlogs
//! accumulate, a decision follows its application) and replaces its year
//! partition atomically. A change of the models or targets rebuilds everything.
//! After the models, the forecast marts (`inflow_forecast`, `resource_forecast`, `forecast_accuracy`) are
//! recomputed from the marts just written (the `forecast` module). The view that needs the
//! whole history (every application's first submission and first decision) starts from the summary the
//! last materialisation kept, plus the files committed since (the `history` module).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use permitflow_metrics::{MetricsConfig, Rebuild, materialize};
//! use permitflow_warehouse::{Location, Warehouse};
//!
//! // A local directory, or an object store: credentials and endpoint come from the environment.
//! let warehouse = Warehouse::open("s3://statistics/permitflow".parse::<Location>()?)?;
//! let report = materialize(&warehouse, &MetricsConfig::default(), Rebuild::Incremental).await?;
//! for mart in &report.marts {
//!     println!("{}: {} rows", mart.name, mart.rows);
//! }
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod calendar;
mod files;
pub mod forecast;
mod history;
mod materialize;
mod percentile;
mod session;
mod targets;

use std::path::PathBuf;

use arrow::error::ArrowError;
use serde::{Deserialize, Serialize};

pub use calendar::Calendar;
pub use materialize::{MartReport, MaterializeReport, Rebuild, Scope, materialize, materialized_through};
pub use session::{load_targets, session};
pub use targets::{AppealTargets, DEFAULT_TARGETS, Targets};

/// A model: the mart it produces and its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    /// Mart name (also the table name in SQL sessions).
    pub name: &'static str,
    /// The model's `SELECT`.
    pub sql: &'static str,
}

/// The event whose `permit_type` values the targets are checked against and whose days the forecasts end on.
pub(crate) const APPLICATION_EVENT: &str = "application.submitted";

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
