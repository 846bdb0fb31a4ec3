//! `pipelines/sql/datafusion-cli.sql` registers every mart (plain Parquet), and they read what the pipeline
//! wrote.

use std::collections::BTreeSet;

use datafusion::prelude::SessionContext;
use permitflow_e2e::{generate_and_ingest, repo_path, scalar};
use permitflow_gen::GenConfig;
use permitflow_metrics::forecast::FORECAST_MARTS;
use permitflow_metrics::{MODELS, MetricsConfig, Rebuild, materialize, session};

/// The script's statements with its relative `'warehouse/` locations pointed at `warehouse`.
fn script_for(warehouse: &std::path::Path) -> Vec<String> {
    let script = std::fs::read_to_string(repo_path("pipelines/sql/datafusion-cli.sql")).expect("read script");
    let code: String = script.lines().filter(|l| !l.trim_start().starts_with("--")).map(|l| format!("{l}\n")).collect();
    let location = format!("'{}/", warehouse.display());
    code.split(';').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.replace("'warehouse/", &location)).collect()
}

#[tokio::test]
async fn the_datafusion_cli_script_registers_every_mart_with_the_pipelines_data() {
    // Three years: enough history for the forecast marts.
    let config = GenConfig {
        years: 3,
        scale: 0.01,
        duplicate_share: 0.01,
        late_share: 0.01,
        malformed_share: 0.01,
        ..GenConfig::default()
    };
    let ingested = generate_and_ingest(&config);
    materialize(&ingested.warehouse, &MetricsConfig::default(), Rebuild::Incremental).await.expect("materialize");

    let cli = SessionContext::new();
    let mut registered = BTreeSet::new();
    for statement in script_for(&ingested.warehouse_dir()) {
        cli.sql(&statement).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
        let name = statement.split_whitespace().nth(3).expect("CREATE EXTERNAL TABLE <name>");
        registered.insert(name.to_string());
    }

    let expected: BTreeSet<String> = MODELS.iter().map(|m| m.name).chain(FORECAST_MARTS).map(str::to_string).collect();
    assert_eq!(registered, expected, "the script must register exactly the marts");

    let pipeline = session(&ingested.warehouse, &MetricsConfig::default()).await.expect("session");
    for table in &registered {
        let sql = format!("SELECT count(*) FROM {table}");
        let rows = scalar(&cli, &sql).await;
        assert!(rows > 0 || table == "data_quality", "{table} is empty");
        assert_eq!(rows, scalar(&pipeline, &sql).await, "{table}: datafusion-cli and permitflow disagree");
    }
    let sql = "SELECT count(*) FROM decisions_per_person_year WHERE year IS NULL OR length(year) <> 4";
    assert_eq!(scalar(&cli, sql).await, 0, "the year partition column is read from the paths");
}
