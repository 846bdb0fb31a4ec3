//! `permitflow run` as a service: the start-up checks, the HTTP endpoints (`/metrics`, `/healthz`,
//! `/readyz`), the scheduled compaction and mart updates, and the Kafka loop ([`run_kafka`]) until SIGTERM
//! or SIGINT.
//!
//! The start-up checks fail fast, before anything is consumed, with a message naming the setting, path or
//! topic: the pseudonymisation key, the warehouse (reachable and writable), the source topics and their
//! dead-letter topics (created when `kafka.create_dlq_topics` is set), the HTTP address.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use permitflow_metrics::{MetricsConfig, Rebuild, materialize, materialized_through};
use permitflow_source::kafka::check_topics;
use permitflow_warehouse::{CompactOptions, CompactionReport, Location, Warehouse};
use tokio::runtime::Handle;
use tracing::{error, info, warn};

use crate::telemetry::Telemetry;
use crate::{Config, PipelineError, RunOptions, RunReport, run_kafka};

/// Time allowed for the start-up reading of the cluster's topics.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Compacts what the marts have seen (so their next update stays incremental; everything with `all`), then
/// vacuums: what `permitflow compact` and `run`'s schedule do.
pub fn compact(warehouse: &mut Warehouse, min_files: usize, all: bool) -> Result<CompactionReport, PipelineError> {
    let through = if all { None } else { materialized_through(warehouse)? };
    let options = CompactOptions { min_files, through, vacuum: true };
    Ok(warehouse.compact(&options)?)
}

/// Runs `permitflow run` on `runtime` until a signal (or, with [`RunOptions::stop_at_end`], until the high
/// watermarks seen at start are committed and the marts updated).
pub fn serve(
    config: &Config,
    location: &Location,
    options: RunOptions,
    runtime: &Handle,
) -> Result<RunReport, PipelineError> {
    let pseudonymiser = config.privacy.pseudonymiser()?;
    let warehouse = Warehouse::open(location.clone())?;
    warehouse.check_writable()?;
    let created = check_topics(&config.kafka, &config.topics.all(), STARTUP_TIMEOUT)?;
    if !created.is_empty() {
        info!(topics = ?created, "created the missing dead-letter topics (kafka.create_dlq_topics)");
    }
    let telemetry = Telemetry::new();
    if !config.telemetry.listen.is_empty() {
        serve_http(&config.telemetry.listen, &telemetry, runtime)?;
    }
    let shutdown = Arc::new(AtomicBool::new(false));
    let (flag, on_stop) = (Arc::clone(&shutdown), telemetry.clone());
    runtime.spawn(async move {
        match wait_for_stop_signal().await {
            Ok(signal) => info!(signal, "stopping: flushing and committing"),
            Err(e) => error!(error = %e, "cannot listen for signals; stopping"),
        }
        on_stop.stopping();
        flag.store(true, Ordering::SeqCst);
    });
    // Held by a scheduled compaction while it runs; `--stop-at-end` waits for it before returning.
    let compacting = Arc::new(tokio::sync::Mutex::new(()));
    if config.compaction.interval_s > 0 {
        let (location, compaction, telemetry) = (location.clone(), config.compaction.clone(), telemetry.clone());
        let compacting = Arc::clone(&compacting);
        runtime.spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(compaction.interval_s));
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let _running = compacting.lock().await;
                let (location, min_files, telemetry) = (location.clone(), compaction.min_files, telemetry.clone());
                let _ =
                    tokio::task::spawn_blocking(move || compact_on_schedule(&location, min_files, &telemetry)).await;
            }
        });
    }
    let interval = config.metrics.materialize_interval_s;
    if interval > 0 {
        let (location, metrics, telemetry) = (location.clone(), config.metrics.clone(), telemetry.clone());
        runtime.spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(interval));
            ticker.tick().await;
            loop {
                ticker.tick().await;
                materialize_on_schedule(&location, &metrics, &telemetry).await;
            }
        });
    }
    let report = run_kafka(
        warehouse,
        &config.kafka,
        &config.topics,
        &config.flush,
        pseudonymiser,
        options,
        &shutdown,
        &telemetry,
    );
    telemetry.stopping();
    let report = report?;
    // A compaction in progress is left for the next open to finish on a signal (a bounded stop); a backfill
    // waits for it and then starts no other.
    if options.stop_at_end {
        let _no_compaction = runtime.block_on(compacting.lock());
        if interval > 0 {
            runtime.block_on(materialize_on_schedule(location, &config.metrics, &telemetry));
        }
    }
    Ok(report)
}

/// Binds `listen` now (a taken or invalid address fails the start) and serves the endpoints on `runtime`.
fn serve_http(listen: &str, telemetry: &Telemetry, runtime: &Handle) -> Result<(), PipelineError> {
    let refuse = |e: std::io::Error| {
        PipelineError::Config(format!(
            "telemetry.listen = {listen:?}: cannot serve HTTP there ({e}); give a free host:port such as \
             0.0.0.0:9464, or an empty value for no endpoints (PERMITFLOW__TELEMETRY__LISTEN)"
        ))
    };
    let listener = std::net::TcpListener::bind(listen).map_err(refuse)?;
    listener.set_nonblocking(true).map_err(refuse)?;
    let address = listener.local_addr().map_err(refuse)?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener).map_err(refuse)?
    };
    let (metrics, health, ready) = (telemetry.clone(), telemetry.clone(), telemetry.clone());
    let app = Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = metrics.encode();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        )
        .route("/healthz", get(move || verdict(health.health())))
        .route("/readyz", get(move || verdict(ready.readiness())));
    info!(%address, "serving /metrics, /healthz and /readyz");
    runtime.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "the HTTP endpoints stopped");
        }
    });
    Ok(())
}

async fn verdict(result: Result<String, String>) -> (StatusCode, String) {
    match result {
        Ok(text) => (StatusCode::OK, text + "\n"),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why + "\n"),
    }
}

async fn wait_for_stop_signal() -> std::io::Result<&'static str> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.map(|()| "SIGINT"),
        _ = terminate.recv() => Ok("SIGTERM"),
    }
}

/// One scheduled update of the marts; a failure is logged and retried at the next interval.
async fn materialize_on_schedule(location: &Location, metrics: &MetricsConfig, telemetry: &Telemetry) {
    let started = Instant::now();
    let result = match Warehouse::open(location.clone()) {
        Ok(warehouse) => materialize(&warehouse, metrics, Rebuild::Incremental).await.map_err(PipelineError::from),
        Err(e) => Err(e.into()),
    };
    telemetry.materialization(result.is_ok(), started.elapsed());
    match result {
        Ok(report) => info!(
            scope = ?report.scope,
            through = %report.through,
            seconds = started.elapsed().as_secs_f64(),
            "marts updated"
        ),
        Err(e) => warn!(error = %e, "updating the marts failed; retrying at the next interval"),
    }
}

/// One scheduled compaction; a failure is logged and retried at the next interval.
fn compact_on_schedule(location: &Location, min_files: usize, telemetry: &Telemetry) {
    let started = Instant::now();
    let result = Warehouse::open(location.clone())
        .map_err(PipelineError::from)
        .and_then(|mut warehouse| compact(&mut warehouse, min_files, false));
    telemetry.compaction(result.is_ok());
    match result {
        Ok(report) => info!(
            partitions = report.partitions,
            files_before = report.files_before,
            vacuumed = report.vacuumed,
            seconds = started.elapsed().as_secs_f64(),
            "compacted"
        ),
        Err(e) => warn!(error = %e, "compaction failed; retrying at the next interval"),
    }
}
