//! The event contract of permitflow: `schemas/*.schema.json` compiled into
//! validation, normalisation, pseudonymisation and the Arrow schema of every
//! event table.
//!
//! This crate owns everything that depends on what an event looks like: the
//! JSON Schema files are embedded at build time and are the single source of
//! field names, types, rules, table names and partitioning. It does no I/O and
//! knows nothing of files, Kafka or Parquet: it turns bytes into Arrow rows or
//! into a [`Rejection`] that names the rule, the field and what was wrong.
//!
//! Timestamps become UTC microseconds, money `Decimal128(18, 2)`, enumerations
//! dictionary-encoded strings, and personal references (`applicant_ref`,
//! `employee_ref`) the keyed HMAC-SHA256 of the reference.
//!
//! ```
//! use permitflow_schema::{Contract, Decoder, Position, Pseudonymiser};
//!
//! let contract = Contract::embedded()?;
//! let mut decoder = Decoder::new(contract, Pseudonymiser::development());
//! let good = br#"{"event_id":"7b0d3f7e-1c1a-4c53-9a55-2f4c8f0e8a11","event_type":"decision.made",
//!   "schema_version":1,"occurred_at":"2024-03-01T11:15:00+02:00","decision_id":"D1",
//!   "application_id":"A1","permit_type":"study","outcome":"positive","unit":"LUPA-HKI","automated":false}"#;
//! decoder.decode(good, Position { source: "file:example.ndjson", offset: 1 }).expect("valid");
//!
//! let bad = br#"{"event_type":"decision.made","schema_version":2}"#;
//! let rejection = decoder.decode(bad, Position { source: "file:example.ndjson", offset: 2 }).unwrap_err();
//! assert_eq!(rejection.rule, "missing_field");
//! assert_eq!(rejection.field.as_deref(), Some("event_id"));
//!
//! let batches = decoder.finish()?;
//! assert_eq!(batches.len(), 1);
//! assert_eq!(batches[0].batch.num_rows(), 1);
//! # Ok::<(), permitflow_schema::SchemaError>(())
//! ```
#![warn(missing_docs)]

mod columns;
mod contract;
mod decode;
mod privacy;
mod rejection;

pub use columns::{DECIMAL_PRECISION, SOURCE_COLUMN, SOURCE_OFFSET_COLUMN, Staged, UTC, data_type};
pub use contract::{
    Contract, CrossCheck, CrossRule, EventSchema, Field, FieldKind, PartitionSpec, SCHEMA_FILES, month_key,
};
pub use decode::{DecodedBatch, Decoder, Position};
pub use privacy::{DEVELOPMENT_KEY, MIN_KEY_BYTES, Pseudonymiser};
pub use rejection::{Rejection, rule};

/// Largest accepted event, in bytes (1 MiB), as the contract's transport section says.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Errors of this crate: a broken schema file, a weak key, or an Arrow failure.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A schema file does not follow the subset of JSON Schema this crate reads.
    #[error("schema file {file}, at `{pointer}`: {message}")]
    Invalid {
        /// The schema file.
        file: String,
        /// JSON pointer inside it.
        pointer: String,
        /// What is wrong.
        message: String,
    },
    /// The embedded schema files failed to compile (a build of a broken contract).
    #[error("the embedded event contract does not compile: {message}")]
    Embedded {
        /// The underlying error.
        message: String,
    },
    /// The pseudonymisation key is too short to be secret.
    #[error(
        "the pseudonymisation key has {len} bytes; use at least {min} random bytes \
         (set PERMITFLOW__PRIVACY__KEY or privacy.key in the config file)"
    )]
    WeakKey {
        /// Length given.
        len: usize,
        /// Minimum length.
        min: usize,
    },
    /// Building Arrow arrays failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}
