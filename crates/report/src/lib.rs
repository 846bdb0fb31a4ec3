//! The situation picture: the indicators of a period against the performance agreement's targets, as text
//! (`permitflow report --format table|csv|json`) and as one self-contained HTML page with charts
//! (`--format html`): the same figures, the forecast of inflow with its intervals and backtest accuracy, the
//! resources and backlog the forecast implies, and the charts of every indicator against its target.
//!
//! This crate reads marts only, through the SQL session the metrics crate builds (`permitflow_metrics::session`);
//! it never reads event tables and never writes to the warehouse. The page makes no network request: its
//! charts are inline SVG drawn by plotters, its styles are inline, and it has no script.
//!
//! ```no_run
//! # async fn example(ctx: datafusion::prelude::SessionContext) -> Result<(), permitflow_report::ReportError> {
//! use permitflow_report::{Format, html, indicators, render};
//!
//! let figures = indicators(&ctx, Some("2024")).await?;
//! print!("{}", render(&figures, Format::Table));
//! std::fs::write("report.html", html(&ctx, Some("2024"), "warehouse/").await?).expect("writable");
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod charts;
mod html;
mod indicators;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::SessionContext;

pub use html::html;
pub use indicators::{Format, IndicatorRow, Indicators, Period, indicators, render};

/// Errors of the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A query of the marts failed.
    #[error("querying the marts ({sql}): {source}")]
    Query {
        /// The first line of the query.
        sql: String,
        /// The DataFusion error.
        source: datafusion::error::DataFusionError,
    },
    /// Reading a result failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// `--period` is not a year or a month.
    #[error("{0}")]
    Period(String),
    /// The marts hold nothing for the request.
    #[error("{0}")]
    NoData(String),
    /// A chart could not be drawn.
    #[error("{0}")]
    Chart(String),
    /// The page could not be rendered.
    #[error("rendering the HTML report: {0}")]
    Template(#[from] askama::Error),
}

pub(crate) async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, ReportError> {
    let error = |source| ReportError::Query { sql: sql.trim().lines().next().unwrap_or_default().to_string(), source };
    ctx.sql(sql).await.map_err(error)?.collect().await.map_err(error)
}

/// Column `index` of every batch as text (`None` for nulls).
pub(crate) fn texts(batches: &[RecordBatch], index: usize) -> Result<Vec<Option<String>>, ReportError> {
    let mut out = Vec::new();
    for batch in batches {
        let column = arrow::compute::cast(batch.column(index), &DataType::Utf8)?;
        let column = column.as_string::<i32>();
        out.extend((0..column.len()).map(|i| (!column.is_null(i)).then(|| column.value(i).to_string())));
    }
    Ok(out)
}

/// Column `index` of every batch as numbers (`None` for nulls).
pub(crate) fn numbers(batches: &[RecordBatch], index: usize) -> Result<Vec<Option<f64>>, ReportError> {
    let mut out = Vec::new();
    for batch in batches {
        let column = arrow::compute::cast(batch.column(index), &DataType::Float64)?;
        let column = column.as_primitive::<Float64Type>();
        out.extend((0..column.len()).map(|i| (!column.is_null(i)).then(|| column.value(i))));
    }
    Ok(out)
}
