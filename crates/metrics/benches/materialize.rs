//! Materialisation of every mart over a long history, the incremental update after late events, and the
//! same indicator queries run by DuckDB on the same files, side by side.
//!
//! `cargo bench -p permitflow-metrics --bench materialize` builds a 10-year `--scale 1` history (about
//! 3.8 million events; generating and ingesting it takes a few minutes), then prints:
//! - full: every mart from scratch (target < 20 s on 2 cores);
//! - incremental: after adding 1 % late events (a tenth of a year of new events dated in the last year),
//!   the update of the touched periods (target < 10 % of full);
//! - DuckDB: `tests/duckdb/indicators.py` over the same warehouse, then over the same rows laid out as before
//!   the Delta warehouse (one file per table and day), side by side (target: >= 3x faster), and over the same
//!   rows loaded into DuckDB's in-memory tables: the floor no file layout can beat.
//!
//! `PERMITFLOW_BENCH_YEARS` and `PERMITFLOW_BENCH_SCALE` change the history;
//! `RUST_LOG=permitflow_metrics=debug` logs the seconds of every cached table and view. Without `--bench` (as
//! `cargo test` runs it) it checks itself on a small history instead.

use std::time::Instant;

use permitflow_gen::{GenConfig, generate};
use permitflow_metrics::{MetricsConfig, Rebuild, Scope, materialize};
use permitflow_pipeline::{Config, ingest_files};
use permitflow_schema::Pseudonymiser;
use permitflow_warehouse::Warehouse;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let measuring = std::env::args().any(|a| a == "--bench");
    permitflow_testkit::log_to_stderr_when_asked();
    let years: u32 = if measuring { env_or("PERMITFLOW_BENCH_YEARS", 10) } else { 2 };
    let scale: f64 = if measuring { env_or("PERMITFLOW_BENCH_SCALE", 1.0) } else { 0.01 };
    let dir = tempfile::tempdir()?;
    let history = GenConfig { years, scale, ..GenConfig::default() };
    let last_year = history.start_year + years as i32 - 1;
    // 1 % of the history: a tenth of a year's events, other seed, all dated in the last year.
    let late = GenConfig {
        seed: history.seed + 1,
        start_year: last_year,
        years: 1,
        scale: scale * f64::from(years) / 100.0,
        ..GenConfig::default()
    };

    let started = Instant::now();
    let generated = generate(&history, &dir.path().join("history"), &mut |_, _| {})?;
    let late_generated = generate(&late, &dir.path().join("late"), &mut |_, _| {})?;
    let mut warehouse = Warehouse::open(dir.path().join("warehouse"))?;
    let ingest = |warehouse: &mut Warehouse, files: &[std::path::PathBuf]| {
        ingest_files(warehouse, files, &Pseudonymiser::development(), &Config::default().ingest, &mut |_| {})
    };
    ingest(&mut warehouse, &generated.files)?;
    println!(
        "history: {years} years at scale {scale}: {} events ({:.0} MB NDJSON), generated and ingested in {:.0} s",
        generated.lines,
        generated.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    print_layout(&warehouse)?;

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let config = MetricsConfig::default();
    let started = Instant::now();
    let report = runtime.block_on(materialize(&warehouse, &config, Rebuild::Full))?;
    let full_s = started.elapsed().as_secs_f64();
    let rows: usize = report.marts.iter().map(|m| m.rows).sum();
    println!("full:        {full_s:>6.2} s  ({} marts, {rows} rows; target < 20 s)", report.marts.len());
    print_split(&report, full_s);

    ingest(&mut warehouse, &late_generated.files)?;
    let started = Instant::now();
    let report = runtime.block_on(materialize(&warehouse, &config, Rebuild::Incremental))?;
    let incremental_s = started.elapsed().as_secs_f64();
    assert_eq!(report.scope, Scope::FromYear(last_year), "late events of {last_year} touch {last_year} on only");
    println!(
        "incremental: {incremental_s:>6.2} s  after {} late events ({:?}; {:.1} % of full, target < 10 %)",
        late_generated.lines,
        report.scope,
        100.0 * incremental_s / full_s
    );
    print_split(&report, incremental_s);

    let started = Instant::now();
    let warehouse_dir = dir.path().join("warehouse").display().to_string();
    let output = permitflow_testkit::duckdb_indicators(&warehouse_dir, &[])?;
    let total_s = started.elapsed().as_secs_f64();
    let queries_s = duckdb_seconds(&output)?;
    println!(
        "DuckDB:      {queries_s:>6.2} s  for the indicator queries of tests/duckdb/indicators.py on the Delta \
         tables ({total_s:.1} s with start-up and mart counts)"
    );
    // The same rows in the layout before the Delta warehouse (a file per table and day), same queries.
    let days = dir.path().join("day-files");
    let days_s = duckdb_seconds_with(&warehouse_dir, &[std::ffi::OsStr::new("--day-files"), days.as_os_str()])?;
    let files = std::fs::read_dir(&days)?
        .map(|table| Ok(std::fs::read_dir(table?.path())?.count()))
        .sum::<std::io::Result<usize>>()?;
    println!(
        "DuckDB:      {days_s:>6.2} s  on the same rows as a file per table and day ({files} partitions): \
         the Delta layout is {:.1}x faster (target >= 3x)",
        days_s / queries_s
    );
    // The floor of any file layout: the same rows already in DuckDB's own in-memory tables.
    let memory_s = duckdb_seconds_with(&warehouse_dir, &[std::ffi::OsStr::new("--in-memory")])?;
    println!(
        "DuckDB:      {memory_s:>6.2} s  on the same rows in DuckDB's in-memory tables (no file read; the floor \
         of any layout): the Delta layout takes {:.2}x the floor, the day files {:.2}x",
        queries_s / memory_s,
        days_s / memory_s
    );
    Ok(())
}

/// The seconds of `tests/duckdb/indicators.py`'s queries over `warehouse`, run with `args`.
fn duckdb_seconds_with(warehouse: &str, args: &[&std::ffi::OsStr]) -> Result<f64, Box<dyn std::error::Error>> {
    let output = std::process::Command::new(permitflow_testkit::duckdb_python()?)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/duckdb/indicators.py"))
        .arg(warehouse)
        .args(args)
        .output()?;
    if !output.status.success() {
        return Err(format!("indicators.py {args:?}: {}", String::from_utf8_lossy(&output.stderr)).into());
    }
    Ok(duckdb_seconds(&String::from_utf8_lossy(&output.stdout))?)
}

/// The `seconds` of `tests/duckdb/indicators.py`'s output.
fn duckdb_seconds(output: &str) -> Result<f64, String> {
    output
        .split("\"seconds\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no timing in DuckDB output: {output}"))
}

/// The files the readers open: the event files (and rejection files) of the snapshots, with their count and
/// size.
fn print_layout(warehouse: &Warehouse) -> Result<(), Box<dyn std::error::Error>> {
    let files = warehouse.files()?;
    let (events, rejections): (Vec<_>, Vec<_>) = files.iter().partition(|f| f.path.starts_with("events/"));
    let event_bytes = events.iter().map(|f| f.bytes).sum::<u64>();
    println!(
        "layout:      {} event files, {:.0} MB (average {:.0} KB); {} rejection files",
        events.len(),
        event_bytes as f64 / 1e6,
        event_bytes as f64 / 1e3 / events.len().max(1) as f64,
        rejections.len()
    );
    Ok(())
}

/// Where a materialisation's time went: the shared views (the rest) and each mart.
fn print_split(report: &permitflow_metrics::MaterializeReport, total_s: f64) {
    let marts_s: f64 = report.marts.iter().map(|m| m.seconds).sum();
    let each: Vec<String> = report.marts.iter().map(|m| format!("{} {:.2}", m.name, m.seconds)).collect();
    println!("             shared views and set-up {:.2} s; marts: {}", total_s - marts_s, each.join(", "));
}
