//! The run loop of permitflow: source → schema → warehouse, with batching,
//! configuration and progress reporting, and `permitflow run` as a service
//! (start-up checks, telemetry, HTTP endpoints, scheduled compaction and
//! mart updates).
//!
//! This crate decides *when* data moves (batch sizes, commit points, resume
//! positions); it owns no format: events are the schema crate's, files and
//! the commit log the warehouse's, indicators the metrics crate's.
//!
//! ```
//! use std::io::Write;
//! use permitflow_pipeline::{Config, ingest_files};
//! use permitflow_schema::Pseudonymiser;
//! use permitflow_warehouse::Warehouse;
//!
//! let dir = tempfile::tempdir()?;
//! let input = dir.path().join("events.ndjson");
//! std::fs::write(&input, b"not json\n")?;
//! let mut warehouse = Warehouse::open(dir.path().join("wh"))?;
//! let config = Config::default();
//! let reports = ingest_files(&mut warehouse, &[input.clone()], &Pseudonymiser::development(),
//!     &config.ingest, &mut |_| {})?;
//! assert_eq!((reports[0].counts.read, reports[0].counts.rejected), (1, 1));
//!
//! // The same content again: nothing new is read or stored.
//! let again = ingest_files(&mut warehouse, &[input], &Pseudonymiser::development(),
//!     &config.ingest, &mut |_| {})?;
//! assert_eq!(again[0].already_committed, Some(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod config;
mod ingest;
mod run;
mod service;
pub mod telemetry;

pub use config::{
    CompactionConfig, Config, ENV_PREFIX, IngestConfig, LogConfig, LogFormat, PrivacyConfig, WarehouseConfig,
};
pub use ingest::{FileReport, Progress, ingest_files};
pub use permitflow_metrics::MetricsConfig;
pub use permitflow_source::kafka::{KafkaConfig, TopicsConfig};
pub use run::{FlushConfig, RunOptions, RunReport, run_kafka};
pub use service::{compact, serve};
pub use telemetry::{Telemetry, TelemetryConfig};

/// Errors of the run loop; they wrap the stage that failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// No pseudonymisation key is configured.
    #[error(
        "no pseudonymisation key: set PERMITFLOW__PRIVACY__KEY (or privacy.key in the config file) \
         to a secret of at least 16 bytes; `permitflow demo` uses a public development key instead"
    )]
    MissingKey,
    /// Reading input failed.
    #[error(transparent)]
    Source(#[from] permitflow_source::SourceError),
    /// The contract or the key is unusable.
    #[error(transparent)]
    Schema(#[from] permitflow_schema::SchemaError),
    /// Writing the warehouse failed.
    #[error(transparent)]
    Warehouse(#[from] permitflow_warehouse::WarehouseError),
    /// Reading the marts' state or updating the marts failed.
    #[error(transparent)]
    Metrics(#[from] permitflow_metrics::MetricsError),
    /// The thread that writes and commits the Kafka buffers cannot work.
    #[error("the flush thread {0}; nothing after the last commit was stored, and it is re-read on the next start")]
    FlushThread(&'static str),
}
