//! A second engine reads the warehouse as a BI tool would: DuckDB (from PyPI, installed by the test kit)
//! reads the event tables and the marts with Hive partitioning, and a handful of indicator queries written
//! independently in DuckDB SQL (`tests/duckdb/indicators.py`) give the marts' figures.

use std::collections::BTreeMap;

use permitflow_e2e::{generate_and_ingest, rows, same_value};
use permitflow_gen::GenConfig;
use permitflow_metrics::{MetricsConfig, Rebuild, materialize, session};
use permitflow_testkit::duckdb_indicators;

/// The marts' side of each DuckDB indicator: key columns then the value(s).
const FROM_MARTS: &[(&str, &str)] = &[
    (
        "inflow_month",
        "SELECT period, permit_type, applications FROM inflow WHERE period_type = 'month' AND permit_type <> 'all' AND applications > 0",
    ),
    (
        "e_service_share_year",
        "SELECT period, e_service_share FROM channel_automation WHERE period_type = 'year' AND permit_type = 'all' AND applications > 0",
    ),
    (
        "processing_days_year",
        "SELECT period, permit_type, median_days, p90_days FROM processing_times WHERE period_type = 'year' AND permit_type <> 'all' AND median_days IS NOT NULL",
    ),
    (
        "decisions_per_person_year_year",
        "SELECT period, decisions_per_person_year FROM decisions_per_person_year WHERE period_type = 'year' AND scope = 'agency' AND decisions > 0 AND person_years > 0",
    ),
    (
        "backlog_year_end",
        "SELECT period, permit_type, pending_at_end FROM backlog WHERE period_type = 'year' AND permit_type <> 'all' AND pending_at_end > 0",
    ),
    (
        "appointment_median_month",
        "SELECT period, service_point, median_days FROM appointment_wait WHERE period_type = 'month' AND service_point <> 'all' AND bookings > 0",
    ),
    (
        "appeal_legal_error_share_year",
        "SELECT period, returned_legal_error_share FROM appeal_returns WHERE permit_type = 'all' AND appeals > 0",
    ),
];

fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn duckdb_reads_events_and_marts_and_agrees_with_the_indicators() {
    let config = GenConfig {
        scale: 0.02,
        duplicate_share: 0.01,
        late_share: 0.01,
        malformed_share: 0.01,
        ..GenConfig::default()
    };
    let ingested = generate_and_ingest(&config);
    materialize(&ingested.warehouse, &MetricsConfig::default(), Rebuild::Full).await.expect("materialize");
    let output =
        duckdb_indicators(&ingested.warehouse_dir().display().to_string(), &[]).unwrap_or_else(|e| panic!("{e}"));
    let duck: serde_json::Value = serde_json::from_str(&output).unwrap_or_else(|e| panic!("{e}: {output}"));

    let ctx = session(&ingested.warehouse, &MetricsConfig::default()).await.expect("session");
    for (mart, count) in duck["marts"].as_object().expect("marts") {
        let ours = rows(&ctx, &format!("SELECT count(*) FROM {mart}")).await;
        assert_eq!(ours[0][0], text(count), "{mart}: DuckDB reads as many rows as DataFusion");
    }
    for (name, sql) in FROM_MARTS {
        let marts = rows(&ctx, sql).await;
        let duck_rows = duck["indicators"][name].as_array().unwrap_or_else(|| panic!("no {name} in {output}"));
        let keys = marts.first().map_or(1, |r| r.len() - if *name == "processing_days_year" { 2 } else { 1 });
        let split = |row: Vec<String>| (row[..keys].join("|"), row[keys..].to_vec());
        let ours: BTreeMap<String, Vec<String>> = marts.into_iter().map(split).collect();
        let theirs: BTreeMap<String, Vec<String>> =
            duck_rows.iter().map(|r| split(r.as_array().expect("row").iter().map(text).collect())).collect();
        assert!(!ours.is_empty(), "{name}: the marts have rows");
        assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "{name}: the same groups");
        for (key, values) in &ours {
            let same = values.iter().zip(&theirs[key]).all(|(a, b)| same_value(a, b, 1e-9));
            assert!(same, "{name} {key}: marts {values:?}, DuckDB {:?}", theirs[key]);
        }
    }
}
