//! The forecasts' backtest: accuracy of the model against seasonal naive per permit type, and the time the
//! forecast marts take.
//!
//! `cargo bench -p permitflow-metrics --bench forecast` builds a 10-year `--scale 1` history (2017-2026, with
//! the 2022 temporary-protection surge; generating and ingesting it takes a few minutes), materialises every
//! mart, and prints from `forecast_accuracy` the rolling-origin backtest over the last 24 months: per permit
//! type, MASE and MAPE of the model and of seasonal naive over horizons 1-12 (each scored forecast once),
//! then the `'all'` series per horizon. The target is MASE < 1 on `'all'`, below seasonal naive's.
//!
//! `PERMITFLOW_BENCH_YEARS` and `PERMITFLOW_BENCH_SCALE` change the history. Without `--bench` (as `cargo test`
//! runs it) it checks itself on a small history instead.

use std::time::Instant;

use arrow::util::pretty::pretty_format_batches;
use permitflow_gen::{GenConfig, generate};
use permitflow_metrics::forecast::FORECAST_MARTS;
use permitflow_metrics::{MetricsConfig, Rebuild, materialize, session};
use permitflow_pipeline::{Config, ingest_files};
use permitflow_schema::Pseudonymiser;
use permitflow_warehouse::Warehouse;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const BY_PERMIT_TYPE: &str = "
SELECT permit_type,
       round(sum(mase * origins) / sum(origins), 3) AS mase,
       round(sum(naive_mase * origins) / sum(origins), 3) AS naive_mase,
       round(100 * sum(mape * origins) / sum(origins), 1) AS mape_pct,
       round(100 * sum(naive_mape * origins) / sum(origins), 1) AS naive_mape_pct,
       sum(origins) AS forecasts_scored
FROM forecast_accuracy GROUP BY permit_type ORDER BY permit_type <> 'all', permit_type";

const BY_HORIZON: &str = "
SELECT horizon, origins, round(mase, 3) AS mase, round(naive_mase, 3) AS naive_mase,
       round(100 * mape, 1) AS mape_pct, round(100 * naive_mape, 1) AS naive_mape_pct
FROM forecast_accuracy WHERE permit_type = 'all' ORDER BY horizon";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let measuring = std::env::args().any(|a| a == "--bench");
    permitflow_testkit::log_to_stderr_when_asked();
    let years: u32 = if measuring { env_or("PERMITFLOW_BENCH_YEARS", 10) } else { 3 };
    let scale: f64 = if measuring { env_or("PERMITFLOW_BENCH_SCALE", 1.0) } else { 0.01 };
    let dir = tempfile::tempdir()?;
    let history = GenConfig { years, scale, ..GenConfig::default() };

    let started = Instant::now();
    let generated = generate(&history, &dir.path().join("history"), &mut |_, _| {})?;
    let mut warehouse = Warehouse::open(dir.path().join("warehouse"))?;
    ingest_files(
        &mut warehouse,
        &generated.files,
        &Pseudonymiser::development(),
        &Config::default().ingest,
        &mut |_| {},
    )?;
    println!(
        "history: {years} years from {} at scale {scale}: {} events, generated and ingested in {:.0} s",
        history.start_year,
        generated.lines,
        started.elapsed().as_secs_f64()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let config = MetricsConfig::default();
    let started = Instant::now();
    let report = runtime.block_on(materialize(&warehouse, &config, Rebuild::Full))?;
    let forecast_s: f64 = report.marts.iter().filter(|m| FORECAST_MARTS.contains(&m.name)).map(|m| m.seconds).sum();
    println!(
        "materialised in {:.1} s, of which the forecast marts (fits and backtests of every series) {forecast_s:.1} s",
        started.elapsed().as_secs_f64()
    );

    let (by_type, by_horizon) = runtime.block_on(async {
        let ctx = session(&warehouse, &config).await?;
        let by_type = ctx.sql(BY_PERMIT_TYPE).await?.collect().await?;
        let by_horizon = ctx.sql(BY_HORIZON).await?.collect().await?;
        Ok::<_, Box<dyn std::error::Error>>((by_type, by_horizon))
    })?;
    println!("\nbacktest over the last 24 months, horizons 1-12 (MASE < 1: better than seasonal naive in sample)");
    println!("{}", pretty_format_batches(&by_type)?);
    println!("\n'all' by horizon");
    println!("{}", pretty_format_batches(&by_horizon)?);
    let scored: usize = by_type.iter().map(|b| b.num_rows()).sum();
    if scored == 0 {
        return Err("the backtest scored nothing".into());
    }
    Ok(())
}
