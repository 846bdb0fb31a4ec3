//! Whole-year file ingest and materialisation: events/s, MB/s and peak memory.
//!
//! `cargo bench -p permitflow-pipeline --bench ingest` measures a `--scale 1` year (about 400,000
//! events). Without `--bench` (as `cargo test` runs it) it checks itself on a small year instead.
//! Target: ingest + materialize of the year under 10 s on 2 cores.

use std::time::Instant;

use permitflow_gen::{GenConfig, generate};
use permitflow_metrics::forecast::FORECAST_MARTS;
use permitflow_metrics::{MetricsConfig, Rebuild, materialize};
use permitflow_pipeline::{Config, ingest_files};
use permitflow_schema::Pseudonymiser;
use permitflow_warehouse::Warehouse;

/// Peak resident set size of this process in bytes (`VmHWM`), if the platform reports it.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resets the peak RSS so the figure covers only what follows (Linux `clear_refs`, value 5).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let measuring = std::env::args().any(|a| a == "--bench");
    let scale = if measuring { 1.0 } else { 0.01 };
    let dir = tempfile::tempdir()?;
    let config = GenConfig { scale, ..GenConfig::default() };
    let generated = generate(&config, &dir.path().join("input"), &mut |_, _| {})?;
    let mb = generated.bytes as f64 / 1e6;

    reset_peak_rss();
    let mut warehouse = Warehouse::open(dir.path().join("warehouse"))?;
    let started = Instant::now();
    let reports = ingest_files(
        &mut warehouse,
        &generated.files,
        &Pseudonymiser::development(),
        &Config::default().ingest,
        &mut |_| {},
    )?;
    let ingest_s = started.elapsed().as_secs_f64();
    let ingest_peak = peak_rss();
    let read: u64 = reports.iter().map(|r| r.counts.read).sum();
    assert_eq!(read, generated.lines, "every line read");

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let started = Instant::now();
    let marts = runtime.block_on(materialize(&warehouse, &MetricsConfig::default(), Rebuild::Full))?.marts;
    let materialize_s = started.elapsed().as_secs_f64();
    // One year is too short to forecast: the forecast marts stay empty.
    let mut figures = marts.iter().filter(|m| m.name != "data_quality" && !FORECAST_MARTS.contains(&m.name));
    assert!(figures.all(|m| m.rows > 0), "{marts:?}");

    println!("year {} at scale {scale}: {} events, {mb:.1} MB of NDJSON", config.start_year, generated.lines);
    println!(
        "ingest:      {ingest_s:>6.2} s  {:>10.0} events/s  {:>6.1} MB/s  peak RSS {}",
        read as f64 / ingest_s,
        mb / ingest_s,
        ingest_peak.map_or("n/a".into(), |b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64))
    );
    println!(
        "materialize: {materialize_s:>6.2} s  ({} marts)  peak RSS {}",
        marts.len(),
        peak_rss().map_or("n/a".into(), |b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64))
    );
    println!("ingest + materialize: {:.2} s (target < 10 s)", ingest_s + materialize_s);
    Ok(())
}
