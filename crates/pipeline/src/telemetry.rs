//! What `permitflow run` tells its operators: every Prometheus metric it exports, and the state behind
//! `/healthz` and `/readyz`.
//!
//! The metric names and labels are a contract: the Grafana dashboard and the alert rules in `deploy/` are
//! built on them. Each label set is a fixed type. Counters of data (`messages_consumed`, `events_stored`,
//! `rejections`, `dead_letters`) count what was committed, so that
//! `consumed = stored + rejected` holds between them at every scrape.
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

/// `[telemetry]`: `permitflow run`'s HTTP endpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Address `run` serves `/metrics`, `/healthz` and `/readyz` on, e.g. `0.0.0.0:9464` (default empty: no
    /// HTTP server).
    pub listen: String,
}

/// The loop is considered stuck when neither the consumer nor the flush thread has reported for this long.
const STALL: Duration = Duration::from_secs(120);

/// Labels of a per-topic metric.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    /// The topic.
    pub topic: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: i32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// One committed flush, as the telemetry counts it.
#[derive(Debug, Default)]
pub struct FlushTally {
    /// Messages committed, per source topic.
    pub consumed: Vec<(String, u64)>,
    /// Rows stored, per table.
    pub stored: Vec<(String, u64)>,
    /// Rejections, per rule.
    pub rejected: Vec<(String, u64)>,
    /// Dead letters, per dead-letter topic.
    pub dead_letters: Vec<(String, u64)>,
    /// Files written and their bytes.
    pub files: u64,
    /// Bytes of the files written.
    pub bytes: u64,
    /// The newest `occurred_at` committed (µs since the epoch), if any event was.
    pub newest_event_us: Option<i64>,
}

struct Metrics {
    messages_consumed: Family<TopicLabels, Counter>,
    events_stored: Family<TableLabels, Counter>,
    rejections: Family<RuleLabels, Counter>,
    dead_letters: Family<TopicLabels, Counter>,
    consumer_lag: Family<PartitionLabels, Gauge>,
    event_time_lag: Gauge<f64, AtomicU64>,
    commits: Counter,
    commit_failures: Counter,
    commit_conflicts: Counter,
    commit_duration: Histogram,
    last_commit: Gauge<f64, AtomicU64>,
    buffered_bytes: Gauge,
    backpressure_pauses: Counter,
    files_written: Counter,
    bytes_written: Counter,
    assigned_partitions: Gauge,
    compactions: Family<ResultLabels, Counter>,
    materializations: Family<ResultLabels, Counter>,
    materialize_duration: Histogram,
    marts_last_success: Gauge<f64, AtomicU64>,
    ready: Gauge,
}

/// The readiness conditions, as last reported by the loop and the flush thread.
struct Health {
    started: Instant,
    /// Milliseconds since `started` of the last report of the consumer loop or the flush thread.
    heartbeat_ms: AtomicU64,
    brokers_up: AtomicBool,
    assigned: AtomicI64,
    /// Why the last commit failed, until one succeeds.
    warehouse_error: Mutex<Option<String>>,
    stopping: AtomicBool,
    /// The newest committed `occurred_at` (µs), `i64::MIN` before the first.
    newest_event_us: AtomicI64,
}

/// The run's telemetry: cheap to clone, shared by the loop, the flush thread, the timers and the HTTP server.
#[derive(Clone)]
pub struct Telemetry {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// The partitions with a lag gauge.
    lag_partitions: Arc<Mutex<BTreeSet<PartitionLabels>>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

fn seconds_since_epoch() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl Telemetry {
    /// Registers every metric under the `permitflow_` prefix.
    pub fn new() -> Telemetry {
        let metrics = Metrics {
            messages_consumed: Family::default(),
            events_stored: Family::default(),
            rejections: Family::default(),
            dead_letters: Family::default(),
            consumer_lag: Family::default(),
            event_time_lag: Gauge::default(),
            commits: Counter::default(),
            commit_failures: Counter::default(),
            commit_conflicts: Counter::default(),
            // 10 ms … 164 s
            commit_duration: Histogram::new(exponential_buckets(0.01, 2.0, 15)),
            last_commit: Gauge::default(),
            buffered_bytes: Gauge::default(),
            backpressure_pauses: Counter::default(),
            files_written: Counter::default(),
            bytes_written: Counter::default(),
            assigned_partitions: Gauge::default(),
            compactions: Family::default(),
            materializations: Family::default(),
            // 100 ms … 27 min
            materialize_duration: Histogram::new(exponential_buckets(0.1, 2.0, 15)),
            marts_last_success: Gauge::default(),
            ready: Gauge::default(),
        };
        let mut r = Registry::with_prefix("permitflow");
        let m = &metrics;
        r.register(
            "messages_consumed",
            "Kafka messages committed to the warehouse (stored or rejected)",
            m.messages_consumed.clone(),
        );
        r.register("events_stored", "Events stored, per table", m.events_stored.clone());
        r.register("rejections", "Messages rejected, per rule of the event contract", m.rejections.clone());
        r.register("dead_letters", "Dead letters acknowledged, per dead-letter topic", m.dead_letters.clone());
        r.register(
            "consumer_lag_messages",
            "High watermark minus the committed position, per assigned partition",
            m.consumer_lag.clone(),
        );
        r.register("event_time_lag_seconds", "Now minus the newest committed occurred_at", m.event_time_lag.clone());
        r.register("commits", "Warehouse commits (one per flush)", m.commits.clone());
        r.register(
            "commit_failures",
            "Flush attempts that failed (warehouse or dead-letter topics unwritable); retried",
            m.commit_failures.clone(),
        );
        r.register(
            "commit_conflicts",
            "Flushes refused because another instance had committed their offsets first",
            m.commit_conflicts.clone(),
        );
        r.register(
            "commit_duration_seconds",
            "Time to write, dead-letter and commit one flush",
            m.commit_duration.clone(),
        );
        r.register("last_commit_timestamp_seconds", "Unix time of the last commit", m.last_commit.clone());
        r.register("buffered_bytes", "Message bytes buffered and not yet handed to a flush", m.buffered_bytes.clone());
        r.register(
            "backpressure_pauses",
            "Times consumption waited for the flush before",
            m.backpressure_pauses.clone(),
        );
        r.register("files_written", "Data files committed", m.files_written.clone());
        r.register("bytes_written", "Bytes of the data files committed", m.bytes_written.clone());
        r.register("assigned_partitions", "Partitions assigned to this instance", m.assigned_partitions.clone());
        r.register("compactions", "Scheduled compactions, by result (ok, failed)", m.compactions.clone());
        r.register("materializations", "Scheduled mart updates, by result (ok, failed)", m.materializations.clone());
        r.register("materialize_duration_seconds", "Time of one mart update", m.materialize_duration.clone());
        r.register(
            "marts_last_success_timestamp_seconds",
            "Unix time the marts were last brought up to date",
            m.marts_last_success.clone(),
        );
        r.register("ready", "1 while /readyz answers 200", m.ready.clone());
        r.register("build", "The running version", Info::new(VersionLabels { version: env!("CARGO_PKG_VERSION") }));
        let health = Health {
            started: Instant::now(),
            heartbeat_ms: AtomicU64::new(0),
            brokers_up: AtomicBool::new(true),
            assigned: AtomicI64::new(0),
            warehouse_error: Mutex::new(None),
            stopping: AtomicBool::new(false),
            newest_event_us: AtomicI64::new(i64::MIN),
        };
        Telemetry {
            registry: Arc::new(r),
            metrics: Arc::new(metrics),
            health: Arc::new(health),
            lag_partitions: Arc::new(Mutex::new(BTreeSet::new())),
        }
    }

    /// The consumer loop or the flush thread is alive.
    pub fn heartbeat(&self) {
        let ms = self.health.started.elapsed().as_millis() as u64;
        self.health.heartbeat_ms.store(ms, Ordering::Relaxed);
    }

    /// A flush was committed in `duration`.
    pub fn committed(&self, tally: &FlushTally, duration: Duration) {
        let m = &self.metrics;
        for (topic, n) in &tally.consumed {
            m.messages_consumed.get_or_create(&TopicLabels { topic: topic.clone() }).inc_by(*n);
        }
        for (table, n) in &tally.stored {
            m.events_stored.get_or_create(&TableLabels { table: table.clone() }).inc_by(*n);
        }
        for (rule, n) in &tally.rejected {
            m.rejections.get_or_create(&RuleLabels { rule: rule.clone() }).inc_by(*n);
        }
        for (topic, n) in &tally.dead_letters {
            m.dead_letters.get_or_create(&TopicLabels { topic: topic.clone() }).inc_by(*n);
        }
        m.files_written.inc_by(tally.files);
        m.bytes_written.inc_by(tally.bytes);
        m.commits.inc();
        m.commit_duration.observe(duration.as_secs_f64());
        m.last_commit.set(seconds_since_epoch());
        if let Some(newest) = tally.newest_event_us {
            self.health.newest_event_us.fetch_max(newest, Ordering::Relaxed);
        }
        *self.health.warehouse_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        self.heartbeat();
    }

    /// A flush attempt failed; it is retried. Not ready until a commit succeeds.
    pub fn commit_failed(&self, error: &str) {
        self.metrics.commit_failures.inc();
        *self.health.warehouse_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(error.to_string());
        self.heartbeat();
    }

    /// Another instance had committed a flush's offsets first.
    pub fn commit_conflict(&self) {
        self.metrics.commit_conflicts.inc();
    }

    /// Consumption waited for the flush thread.
    pub fn backpressure_pause(&self) {
        self.metrics.backpressure_pauses.inc();
    }

    /// Bytes buffered now.
    pub fn buffered(&self, bytes: usize) {
        self.metrics.buffered_bytes.set(bytes as i64);
    }

    /// The partitions assigned now, the brokers' state and each partition's lag (a partition no longer
    /// assigned leaves the lag gauges; the others are updated in place, so a scrape never sees them missing).
    pub fn cluster(&self, assigned: &[(String, i32)], brokers_up: bool, lag: &[(&(String, i32), i64)]) {
        self.metrics.assigned_partitions.set(assigned.len() as i64);
        self.health.assigned.store(assigned.len() as i64, Ordering::Relaxed);
        self.health.brokers_up.store(brokers_up, Ordering::Relaxed);
        let mut exported = self.lag_partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        exported.retain(|labels| {
            let keep = assigned.iter().any(|(t, p)| *t == labels.topic && *p == labels.partition);
            if !keep {
                self.metrics.consumer_lag.remove(labels);
            }
            keep
        });
        for ((topic, partition), lag) in lag {
            if assigned.iter().any(|(t, p)| t == topic && p == partition) {
                let labels = PartitionLabels { topic: topic.clone(), partition: *partition };
                self.metrics.consumer_lag.get_or_create(&labels).set(*lag);
                exported.insert(labels);
            }
        }
    }

    /// A scheduled compaction ended.
    pub fn compaction(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.metrics.compactions.get_or_create(&ResultLabels { result }).inc();
    }

    /// A scheduled mart update ended after `duration`.
    pub fn materialization(&self, ok: bool, duration: Duration) {
        let result = if ok { "ok" } else { "failed" };
        self.metrics.materializations.get_or_create(&ResultLabels { result }).inc();
        self.metrics.materialize_duration.observe(duration.as_secs_f64());
        if ok {
            self.metrics.marts_last_success.set(seconds_since_epoch());
        }
    }

    /// The run is stopping: no longer ready.
    pub fn stopping(&self) {
        self.health.stopping.store(true, Ordering::Relaxed);
    }

    /// `/healthz`: `Ok` while the loop or the flush thread reported in the last two minutes.
    pub fn health(&self) -> Result<String, String> {
        let now = self.health.started.elapsed().as_millis() as u64;
        let silent = Duration::from_millis(now.saturating_sub(self.health.heartbeat_ms.load(Ordering::Relaxed)));
        if silent > STALL {
            return Err(format!("the run loop has not reported for {} s", silent.as_secs()));
        }
        Ok("alive".into())
    }

    /// `/readyz`: `Ok` while partitions are assigned, a broker is reachable and the warehouse is writable;
    /// otherwise the reason.
    pub fn readiness(&self) -> Result<String, String> {
        let h = &self.health;
        let verdict = if h.stopping.load(Ordering::Relaxed) {
            Err("stopping".to_string())
        } else if let Some(error) = h.warehouse_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref()
        {
            Err(format!("the warehouse cannot be written (commits are retried): {error}"))
        } else if !h.brokers_up.load(Ordering::Relaxed) {
            Err("no Kafka broker is reachable".to_string())
        } else {
            match h.assigned.load(Ordering::Relaxed) {
                0 => Err("no partition is assigned to this instance (yet)".to_string()),
                n => Ok(format!("ready: {n} partition(s) assigned")),
            }
        };
        self.metrics.ready.set(i64::from(verdict.is_ok()));
        verdict
    }

    /// `/metrics`: the OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let newest = self.health.newest_event_us.load(Ordering::Relaxed);
        if newest != i64::MIN {
            self.metrics.event_time_lag.set(seconds_since_epoch() - newest as f64 / 1e6);
        }
        let _ = self.readiness();
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn committed_flushes_are_counted_under_the_contract_names() {
        let telemetry = Telemetry::new();
        let tally = FlushTally {
            consumed: vec![("applications".into(), 10)],
            stored: vec![("applications".into(), 8)],
            rejected: vec![("invalid_json".into(), 2)],
            dead_letters: vec![("applications.dlq".into(), 2)],
            files: 3,
            bytes: 4096,
            newest_event_us: Some(0),
        };
        telemetry.committed(&tally, Duration::from_millis(40));
        telemetry.committed(&tally, Duration::from_millis(40));
        let text = telemetry.encode();
        assert_eq!(value(&text, "permitflow_messages_consumed_total{topic=\"applications\"}"), Some(20.0));
        assert_eq!(value(&text, "permitflow_events_stored_total{table=\"applications\"}"), Some(16.0));
        assert_eq!(value(&text, "permitflow_rejections_total{rule=\"invalid_json\"}"), Some(4.0));
        assert_eq!(value(&text, "permitflow_dead_letters_total{topic=\"applications.dlq\"}"), Some(4.0));
        assert_eq!(value(&text, "permitflow_commits_total"), Some(2.0));
        assert_eq!(value(&text, "permitflow_files_written_total"), Some(6.0));
        assert_eq!(value(&text, "permitflow_commit_duration_seconds_count"), Some(2.0));
        // The newest event is from 1970: the lag is the time since.
        assert!(value(&text, "permitflow_event_time_lag_seconds").is_some_and(|lag| lag > 1.7e9));
    }

    #[test]
    fn readiness_says_why_it_is_not_ready() {
        let telemetry = Telemetry::new();
        assert!(telemetry.readiness().is_err_and(|why| why.contains("no partition")));
        telemetry.cluster(&[("decisions".into(), 0)], true, &[(&("decisions".into(), 0), 5)]);
        assert!(telemetry.readiness().is_ok());
        assert_eq!(
            value(&telemetry.encode(), "permitflow_consumer_lag_messages{topic=\"decisions\",partition=\"0\"}"),
            Some(5.0)
        );
        telemetry.cluster(&[("decisions".into(), 0)], false, &[]);
        assert!(telemetry.readiness().is_err_and(|why| why.contains("broker")));
        let lag = "permitflow_consumer_lag_messages{topic=\"decisions\",partition=\"0\"}";
        assert_eq!(value(&telemetry.encode(), lag), Some(5.0), "kept until new statistics or a revocation");
        telemetry.cluster(&[("decisions".into(), 1)], false, &[]);
        assert_eq!(value(&telemetry.encode(), lag), None, "a revoked partition has no lag gauge");
        telemetry.cluster(&[("decisions".into(), 0)], true, &[]);
        telemetry.commit_failed("permission denied");
        assert!(telemetry.readiness().is_err_and(|why| why.contains("warehouse") && why.contains("permission denied")));
        assert_eq!(value(&telemetry.encode(), "permitflow_ready"), Some(0.0));
        telemetry.committed(&FlushTally::default(), Duration::ZERO);
        assert!(telemetry.readiness().is_ok());
        telemetry.stopping();
        assert!(telemetry.readiness().is_err_and(|why| why == "stopping"));
    }
}
