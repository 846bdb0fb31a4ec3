//! Shared set-up of the end-to-end tests in `tests/tests/`: a generated workload ingested into a
//! warehouse in a temporary directory, and small query helpers.
//!
//! The tests use the stage crates as a user's process would; they never reach into a crate's internals.

use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use permitflow_gen::{GenConfig, GenSummary, generate};
use permitflow_pipeline::{Config, FileReport, ingest_files};
use permitflow_schema::Pseudonymiser;
use permitflow_warehouse::Warehouse;

/// A generated workload and the warehouse it was ingested into.
pub struct Ingested {
    /// Holds the input and the warehouse; removed on drop.
    pub dir: tempfile::TempDir,
    /// What the generator wrote.
    pub generated: GenSummary,
    /// What ingest reported.
    pub reports: Vec<FileReport>,
    /// The warehouse.
    pub warehouse: Warehouse,
}

impl Ingested {
    /// The warehouse directory.
    pub fn warehouse_dir(&self) -> PathBuf {
        self.dir.path().join("warehouse")
    }
}

/// Generates `config` into a temporary directory and ingests it with the development key.
pub fn generate_and_ingest(config: &GenConfig) -> Ingested {
    let dir = tempfile::tempdir().expect("temp dir");
    let generated = generate(config, &dir.path().join("input"), &mut |_, _| {}).expect("generate");
    let mut warehouse = Warehouse::open(dir.path().join("warehouse")).expect("open warehouse");
    let reports = ingest(&mut warehouse, &generated.files);
    Ingested { dir, generated, reports, warehouse }
}

/// Ingests files with the default batching and the development key.
pub fn ingest(warehouse: &mut Warehouse, files: &[PathBuf]) -> Vec<FileReport> {
    ingest_files(warehouse, files, &Pseudonymiser::development(), &Config::default().ingest, &mut |_| {})
        .expect("ingest")
}

/// The single BIGINT of a one-row, one-column query.
pub async fn scalar(ctx: &SessionContext, sql: &str) -> i64 {
    let batches = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).collect().await.expect("collect");
    let batch = batches.iter().find(|b| b.num_rows() > 0).unwrap_or_else(|| panic!("{sql}: no rows"));
    let column = batch.column(0);
    assert!(!column.is_null(0), "{sql}: NULL");
    column.as_primitive::<Int64Type>().value(0)
}

/// A path inside the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

/// Every row of `sql` as text fields (NULL as an empty field), sorted.
pub async fn rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let batches = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).collect().await.expect("collect");
    let options = FormatOptions::default().with_null("");
    let mut rows = Vec::new();
    for batch in &batches {
        let formatters: Vec<ArrayFormatter> =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("format")).collect();
        rows.extend((0..batch.num_rows()).map(|row| formatters.iter().map(|f| f.value(row).to_string()).collect()));
    }
    rows.sort();
    rows
}

/// True when two text fields are equal, or are numbers within a relative `tolerance`.
pub fn same_value(a: &str, b: &str, tolerance: f64) -> bool {
    a == b
        || match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => (x - y).abs() <= tolerance * y.abs().max(1.0),
            _ => false,
        }
}
