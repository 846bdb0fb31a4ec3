//! The files of `deploy/` agree with the code: the dashboard and the alert rules name only metrics
//! permitflow exports, and the Kubernetes ConfigMap is `pipelines/kafka.toml`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use permitflow_pipeline::Telemetry;
use permitflow_pipeline::telemetry::FlushTally;

fn repo(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every series name `/metrics` can show: counters with `_total`, histograms with `_bucket`, `_sum` and
/// `_count`, info metrics with `_info`, gauges as they are. (A labelled family appears once it has a
/// series, so each is given one.)
fn exported() -> BTreeSet<String> {
    let telemetry = Telemetry::new();
    let one = |name: &str| vec![(name.to_string(), 1)];
    let tally = FlushTally {
        consumed: one("applications"),
        stored: one("applications"),
        rejected: one("invalid_json"),
        dead_letters: one("applications.dlq"),
        ..FlushTally::default()
    };
    telemetry.committed(&tally, Duration::from_millis(10));
    let partition = ("applications".to_string(), 0);
    telemetry.cluster(std::slice::from_ref(&partition), true, &[(&partition, 0)]);
    telemetry.compaction(true);
    telemetry.materialization(true, Duration::from_millis(10));
    let mut names = BTreeSet::new();
    for line in telemetry.encode().lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
        match kind {
            "counter" => names.insert(format!("{name}_total")),
            "histogram" => ["_bucket", "_sum", "_count"].iter().all(|s| names.insert(format!("{name}{s}"))),
            "info" => names.insert(format!("{name}_info")),
            _ => names.insert(name.to_string()),
        };
    }
    names
}

fn named_in(text: &str) -> BTreeSet<String> {
    let pattern = regex::Regex::new(r"permitflow_[a-z_]+").expect("regex");
    pattern.find_iter(text).map(|m| m.as_str().to_string()).collect()
}

#[test]
fn the_dashboard_and_the_alerts_name_only_exported_metrics() {
    let exported = exported();
    for contract in [
        "permitflow_messages_consumed_total",
        "permitflow_events_stored_total",
        "permitflow_rejections_total",
        "permitflow_dead_letters_total",
        "permitflow_consumer_lag_messages",
        "permitflow_event_time_lag_seconds",
        "permitflow_commits_total",
        "permitflow_commit_failures_total",
        "permitflow_commit_duration_seconds_bucket",
        "permitflow_last_commit_timestamp_seconds",
        "permitflow_buffered_bytes",
        "permitflow_backpressure_pauses_total",
        "permitflow_files_written_total",
        "permitflow_bytes_written_total",
        "permitflow_compactions_total",
        "permitflow_materializations_total",
        "permitflow_materialize_duration_seconds_bucket",
        "permitflow_marts_last_success_timestamp_seconds",
    ] {
        assert!(exported.contains(contract), "{contract} is not exported: {exported:?}");
    }
    for file in [
        "deploy/grafana/permitflow.json",
        "deploy/prometheus/permitflow-rules.yaml",
        "deploy/k8s/base/prometheusrule.yaml",
    ] {
        let named = named_in(&repo(file));
        assert!(named.len() >= 5, "{file} names only {named:?}");
        let unknown: Vec<_> = named.difference(&exported).collect();
        assert!(unknown.is_empty(), "{file} names metrics permitflow does not export: {unknown:?}");
    }
}

#[test]
fn the_prometheus_rules_and_the_prometheus_operator_rules_are_the_same() {
    let rules = |file: &str, indent: &str| -> Vec<String> {
        let text = repo(file);
        let start = text.find("groups:").expect("groups:");
        text[start..].lines().map(|l| l.strip_prefix(indent).unwrap_or(l).to_string()).collect()
    };
    assert_eq!(
        rules("deploy/prometheus/permitflow-rules.yaml", ""),
        rules("deploy/k8s/base/prometheusrule.yaml", "  ")
    );
}

#[test]
fn the_kubernetes_config_map_is_the_pipelines_kafka_config() {
    assert_eq!(
        repo("deploy/k8s/base/kafka.toml"),
        repo("pipelines/kafka.toml"),
        "copy pipelines/kafka.toml to deploy/k8s/base/kafka.toml (kustomize reads files below its directory only)"
    );
}
