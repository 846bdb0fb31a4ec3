//! Golden tests of the indicator models on `pipelines/models/fixtures/decisions_per_person_year/input.ndjson`.
//!
//! The fixture (21 lines) holds, for January 2024 (a leap year: 366 days):
//! - staff: E1 (unit U1) reported twice for 2024-01 — the later report (study 1.0) arrives first and
//!   must win over the earlier one (study 0.5, overhead 0.5); E2 (U2) 20 paid days at 0.5 (family 0.5,
//!   overhead 0.5); E3 (U3) 31 days, asylum 1.0.
//! - decisions: d1 study U1 (Jan), d2 study U1 at 2024-01-31T23:30-05:00 (= February in UTC), d3 family
//!   U2 at 2024-01-01T01:00+03:00 (= December 2023 in UTC), d4 family U2 (Jan, sent twice), d5 study U1
//!   (Jan, no application event).
//! - applications: a1 study 350 (Jan), a2 study 350 at 23:30-05:00 on Jan 31 (= February), a3 family
//!   470.50 (Jan, sent twice), a4 asylum 0.
//! - costs for 2024-01: study 1000 + 200 − 150 (a correction), family 400, overhead 720, asylum 5000.
//!
//! Person-years in January, with D = 1/366: study 31D, family 20 × 0.5 × 0.5 D = 5D, overhead 5D,
//! asylum 31D; total 72D; direct (non-overhead) 67D. Overhead is split by the direct person-years.

use std::path::PathBuf;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use permitflow_metrics::{MetricsConfig, Rebuild, materialize, session};
use permitflow_pipeline::{Config, ingest_files};
use permitflow_schema::Pseudonymiser;
use permitflow_warehouse::Warehouse;

const D: f64 = 1.0 / 366.0;
const TOLERANCE: f64 = 1e-9;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../pipelines/models/fixtures/decisions_per_person_year/input.ndjson")
}

async fn materialized() -> (tempfile::TempDir, Vec<RecordBatch>, Vec<RecordBatch>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut warehouse = Warehouse::open(dir.path()).expect("open warehouse");
    let reports = ingest_files(
        &mut warehouse,
        &[fixture()],
        &Pseudonymiser::development(),
        &Config::default().ingest,
        &mut |_| {},
    )
    .expect("ingest");
    assert_eq!((reports[0].counts.read, reports[0].counts.rejected), (21, 0), "{reports:?}");
    materialize(&warehouse, &MetricsConfig::default(), Rebuild::Incremental).await.expect("materialize");
    let ctx = session(&warehouse, &MetricsConfig::default()).await.expect("session");
    let dppy = ctx
        .sql("SELECT * EXCLUDE (year) FROM decisions_per_person_year")
        .await
        .expect("sql")
        .collect()
        .await
        .expect("rows");
    let cost = ctx.sql("SELECT * EXCLUDE (year) FROM cost_recovery").await.expect("sql").collect().await.expect("rows");
    (dir, dppy, cost)
}

/// A row as (key columns joined by '|', column → value).
type KeyedRow = (String, Vec<(String, Option<f64>)>);

/// Rows for lookup.
fn rows(batches: &[RecordBatch], keys: &[&str]) -> Vec<KeyedRow> {
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let mut key = Vec::new();
            let mut values = Vec::new();
            for (i, field) in batch.schema().fields().iter().enumerate() {
                let column = batch.column(i);
                if keys.contains(&field.name().as_str()) {
                    let text = arrow::util::display::array_value_to_string(column, row).expect("display");
                    key.push(text);
                    continue;
                }
                let value = if column.is_null(row) {
                    None
                } else {
                    match field.data_type() {
                        DataType::Float64 => Some(column.as_primitive::<Float64Type>().value(row)),
                        DataType::Int64 => Some(column.as_primitive::<Int64Type>().value(row) as f64),
                        other => panic!("unexpected figure type {other} for {}", field.name()),
                    }
                };
                values.push((field.name().clone(), value));
            }
            out.push((key.join("|"), values));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn value(rows: &[KeyedRow], key: &str, column: &str) -> Option<f64> {
    let (_, values) = rows.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no row {key}"));
    values.iter().find(|(c, _)| c == column).unwrap_or_else(|| panic!("no column {column}")).1
}

fn assert_close(actual: Option<f64>, expected: Option<f64>, what: &str) {
    match (actual, expected) {
        (Some(a), Some(e)) => assert!((a - e).abs() <= TOLERANCE * e.abs().max(1.0), "{what}: got {a}, expected {e}"),
        (a, e) => assert_eq!(a, e, "{what}"),
    }
}

#[tokio::test]
async fn decisions_per_person_year_matches_hand_computed_figures() {
    let (_dir, batches, _) = materialized().await;
    let rows = rows(&batches, &["period_type", "period", "scope", "scope_value"]);
    let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    // Every month from 2023-12 (d3 in UTC) to 2024-02 (d2, a2 in UTC); types and units only where they occur.
    assert_eq!(
        keys,
        [
            "month|2023-12|agency|all",
            "month|2023-12|permit_type|family",
            "month|2023-12|unit|U2",
            "month|2024-01|agency|all",
            "month|2024-01|permit_type|asylum",
            "month|2024-01|permit_type|family",
            "month|2024-01|permit_type|study",
            "month|2024-01|unit|U1",
            "month|2024-01|unit|U2",
            "month|2024-01|unit|U3",
            "month|2024-02|agency|all",
            "month|2024-02|permit_type|study",
            "month|2024-02|unit|U1",
            "year|2023|agency|all",
            "year|2023|permit_type|family",
            "year|2023|unit|U2",
            "year|2024|agency|all",
            "year|2024|permit_type|asylum",
            "year|2024|permit_type|family",
            "year|2024|permit_type|study",
            "year|2024|unit|U1",
            "year|2024|unit|U2",
            "year|2024|unit|U3",
        ]
    );
    let check = |key: &str, decisions: f64, person_years: f64, ratio: Option<f64>| {
        assert_close(value(&rows, key, "decisions"), Some(decisions), &format!("{key} decisions"));
        assert_close(value(&rows, key, "person_years"), Some(person_years), &format!("{key} person_years"));
        assert_close(value(&rows, key, "decisions_per_person_year"), ratio, &format!("{key} ratio"));
    };
    // January: d1, d4 (once), d5 = 3 decisions over 72D person-years = 3 × 366 / 72 = 15.25.
    check("month|2024-01|agency|all", 3.0, 72.0 * D, Some(15.25));
    // study: 2 decisions (d1, d5); person-years 31D + overhead 5D × 31/67.
    let study_py = 31.0 * D + 5.0 * D * 31.0 / 67.0;
    check("month|2024-01|permit_type|study", 2.0, study_py, Some(2.0 / study_py));
    // family: 1 decision (d4 sent twice counts once); 5D + 5D × 5/67.
    let family_py = 5.0 * D + 5.0 * D * 5.0 / 67.0;
    check("month|2024-01|permit_type|family", 1.0, family_py, Some(1.0 / family_py));
    // asylum: staff but no decisions: 0 per person-year.
    check("month|2024-01|permit_type|asylum", 0.0, 31.0 * D + 5.0 * D * 31.0 / 67.0, Some(0.0));
    // Units use all person-years of staff reported there: U1 = E1's latest report only (31D).
    check("month|2024-01|unit|U1", 2.0, 31.0 * D, Some(2.0 / (31.0 * D)));
    check("month|2024-01|unit|U2", 1.0, 10.0 * D, Some(36.6));
    check("month|2024-01|unit|U3", 0.0, 31.0 * D, Some(0.0));
    // February and December 2023 have decisions but no staff: the ratio is NULL, never infinity.
    check("month|2024-02|agency|all", 1.0, 0.0, None);
    check("month|2023-12|agency|all", 1.0, 0.0, None);
    check("year|2023|permit_type|family", 1.0, 0.0, None);
    // The year 2024: 4 decisions (d1, d2, d4, d5) over the same 72D.
    check("year|2024|agency|all", 4.0, 72.0 * D, Some(4.0 / (72.0 * D)));
    check("year|2024|permit_type|study", 3.0, study_py, Some(3.0 / study_py));
}

#[tokio::test]
async fn cost_recovery_matches_hand_computed_figures() {
    let (_dir, _, batches) = materialized().await;
    let rows = rows(&batches, &["period_type", "period", "scope", "scope_value"]);
    let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    // Fee-based types only: asylum (costs, staff, an application) never gets a row.
    assert_eq!(
        keys,
        [
            "month|2023-12|agency|all",
            "month|2024-01|agency|all",
            "month|2024-01|permit_type|family",
            "month|2024-01|permit_type|study",
            "month|2024-02|agency|all",
            "month|2024-02|permit_type|study",
            "year|2023|agency|all",
            "year|2024|agency|all",
            "year|2024|permit_type|family",
            "year|2024|permit_type|study",
        ]
    );
    let check = |key: &str, revenue: f64, direct: f64, overhead: f64| {
        let total = direct + overhead;
        let pct = (total != 0.0).then(|| 100.0 * revenue / total);
        assert_close(value(&rows, key, "fee_revenue_eur"), Some(revenue), &format!("{key} revenue"));
        assert_close(value(&rows, key, "direct_cost_eur"), Some(direct), &format!("{key} direct"));
        assert_close(value(&rows, key, "overhead_cost_eur"), Some(overhead), &format!("{key} overhead"));
        assert_close(value(&rows, key, "total_cost_eur"), Some(total), &format!("{key} total"));
        assert_close(value(&rows, key, "surplus_eur"), Some(revenue - total), &format!("{key} surplus"));
        assert_close(value(&rows, key, "cost_recovery_pct"), pct, &format!("{key} pct"));
    };
    // January study: revenue a1 350 (a2 is February in UTC); direct 1000 + 200 − 150 = 1050;
    // overhead 720 split by direct person-years: study 31 of 67.
    check("month|2024-01|permit_type|study", 350.0, 1050.0, 720.0 * 31.0 / 67.0);
    // January family: a3 470.50 once (it was sent twice); direct 400; overhead 720 × 5/67.
    check("month|2024-01|permit_type|family", 470.5, 400.0, 720.0 * 5.0 / 67.0);
    // Agency = the fee-based types together (asylum's 5000 and its 31/67 of overhead are outside).
    check("month|2024-01|agency|all", 820.5, 1450.0, 720.0 * 36.0 / 67.0);
    // February: only a2's revenue, no cost: total 0, so the percentage is NULL.
    check("month|2024-02|permit_type|study", 350.0, 0.0, 0.0);
    check("month|2024-02|agency|all", 350.0, 0.0, 0.0);
    check("month|2023-12|agency|all", 0.0, 0.0, 0.0);
    // The year: both study applications; costs and person-years as in January.
    check("year|2024|permit_type|study", 700.0, 1050.0, 720.0 * 31.0 / 67.0);
    check("year|2024|agency|all", 1170.5, 1450.0, 720.0 * 36.0 / 67.0);
}
