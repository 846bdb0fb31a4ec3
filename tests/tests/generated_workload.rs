//! A generated workload with resent duplicates, late events and bad lines goes through every stage:
//! counts reconcile, bad lines are rejected exactly once, and nothing is stored twice on re-ingest.

use permitflow_e2e::{generate_and_ingest, ingest, scalar};
use permitflow_gen::GenConfig;
use permitflow_metrics::{MetricsConfig, Rebuild, materialize, session};
use permitflow_warehouse::Warehouse;

fn config() -> GenConfig {
    GenConfig { scale: 0.02, duplicate_share: 0.02, late_share: 0.02, malformed_share: 0.005, ..GenConfig::default() }
}

#[tokio::test]
async fn bad_lines_are_rejected_once_and_counts_reconcile_also_after_ingesting_again() {
    let mut ingested = generate_and_ingest(&config());
    let generated = &ingested.generated;
    assert!(generated.malformed > 0 && generated.duplicates > 0 && generated.late > 0, "{generated:?}");
    let read: u64 = ingested.reports.iter().map(|r| r.counts.read).sum();
    let rejected: u64 = ingested.reports.iter().map(|r| r.counts.rejected).sum();
    let accepted: u64 = ingested.reports.iter().map(|r| r.counts.accepted).sum();
    assert_eq!(read, generated.lines);
    assert_eq!(rejected, generated.malformed, "every bad line, and only bad lines, is rejected");
    assert_eq!(read, accepted + rejected);

    let files = generated.files.clone();
    let again = ingest(&mut ingested.warehouse, &files);
    assert!(again.iter().all(|r| r.already_committed.is_some() && r.counts.read == 0), "{again:?}");
    let reopened = Warehouse::open(ingested.warehouse_dir()).expect("reopen");
    let counts = reopened.counts().expect("counts");
    assert_eq!(counts.rejected, generated.malformed);
    assert_eq!(counts.accepted, accepted);

    let ctx = session(&reopened, &MetricsConfig::default()).await.expect("session");
    assert_eq!(scalar(&ctx, "SELECT count(*) FROM _rejections").await as u64, generated.malformed);
    let tables = ["applications", "decisions", "appeals", "staff", "costs", "appointments"];
    let stored: i64 = {
        let mut sum = 0;
        for table in tables {
            sum += scalar(&ctx, &format!("SELECT count(*) FROM {table}")).await;
        }
        sum
    };
    assert_eq!(stored as u64, accepted, "rows stored = lines accepted");
    assert_eq!(stored as u64, generated.valid_events + generated.duplicates, "resent events are stored as sent");
    let mut distinct = 0;
    for table in tables {
        distinct += scalar(&ctx, &format!("SELECT count(DISTINCT event_id) FROM {table}")).await;
    }
    assert_eq!(distinct as u64, generated.valid_events, "each event once after deduplication by event_id");
}

#[tokio::test]
async fn the_decision_counts_of_the_marts_equal_distinct_decisions_per_utc_month() {
    let ingested = generate_and_ingest(&config());
    materialize(&ingested.warehouse, &MetricsConfig::default(), Rebuild::Incremental).await.expect("materialize");
    let ctx = session(&ingested.warehouse, &MetricsConfig::default()).await.expect("session");
    let mismatches = scalar(
        &ctx,
        "SELECT count(*) FROM (
           SELECT to_char(occurred_at, '%Y-%m') AS period, count(DISTINCT event_id) AS n FROM decisions GROUP BY 1
         ) d FULL JOIN (
           SELECT period, decisions FROM decisions_per_person_year
           WHERE period_type = 'month' AND scope = 'agency' AND decisions > 0
         ) m ON m.period = d.period
         WHERE m.decisions IS DISTINCT FROM d.n",
    )
    .await;
    assert_eq!(mismatches, 0);
    let per_type_sum = scalar(
        &ctx,
        "SELECT CAST(sum(decisions) AS BIGINT) FROM decisions_per_person_year WHERE period_type = 'year' AND scope = 'permit_type'",
    )
    .await;
    assert_eq!(per_type_sum, scalar(&ctx, "SELECT count(DISTINCT event_id) FROM decisions").await);
}
