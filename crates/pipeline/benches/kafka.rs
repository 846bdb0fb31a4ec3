//! Kafka → warehouse throughput beside the raw consume rate of the same broker and topic, with peak memory.
//!
//! `cargo bench -p permitflow-pipeline --bench kafka` starts a broker (the test kit's), fills a 6-partition
//! topic with `PERMITFLOW_BENCH_EVENTS` generated events (default 3,000,000), then measures in one run:
//! a bare rdkafka consumer reading the topic, and `run_kafka --stop-at-end` from the same topic into a
//! committed warehouse. Targets: permitflow ≥ 60 % of the raw rate; peak memory ≤ 512 MiB.
//! `RUST_LOG=permitflow_pipeline=debug` logs every flush. permitflow runs with the configuration a user
//! gets: the defaults and any `PERMITFLOW__…` environment
//! override (`PERMITFLOW__FLUSH__MAX_BUFFERED_BYTES`, `PERMITFLOW__KAFKA__PROPERTIES__FETCH_MAX_BYTES`, …).
//! Without `--bench` (as `cargo test` runs it) it checks itself on 20,000 events.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use permitflow_gen::{GenConfig, generate_year};
use permitflow_pipeline::{Config, KafkaConfig, RunOptions, TopicsConfig, run_kafka};
use permitflow_schema::Pseudonymiser;
use permitflow_testkit::KafkaBroker;
use permitflow_warehouse::Warehouse;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

const PARTITIONS: i32 = 6;

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Generated event lines, years repeated (with other seeds) until `wanted` lines exist.
fn workload(wanted: usize) -> Vec<Vec<u8>> {
    let mut lines = Vec::with_capacity(wanted);
    let mut year = 0;
    while lines.len() < wanted {
        let config = GenConfig { seed: 42 + year, start_year: 2010 + year as i32, ..GenConfig::default() };
        let mut out = Vec::new();
        generate_year(&config, config.start_year, &mut out).expect("generate");
        lines.extend(
            out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).take(wanted - lines.len()),
        );
        year += 1;
    }
    lines
}

fn raw_consume(broker: &KafkaBroker, topic: &str, expected: usize) -> (f64, u64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", "raw-bench")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        tpl.add_partition_offset(topic, partition, Offset::Beginning).expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let started = Instant::now();
    let (mut count, mut bytes) = (0usize, 0u64);
    while count < expected {
        if let Some(message) = consumer.poll(Duration::from_millis(500)) {
            let message = message.expect("message");
            bytes += message.payload().map_or(0, |p| p.len() as u64);
            count += 1;
        }
        assert!(started.elapsed() < Duration::from_secs(1800), "raw consumer stalled at {count}");
    }
    (started.elapsed().as_secs_f64(), bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let measuring = std::env::args().any(|a| a == "--bench");
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    let events: usize = if measuring {
        std::env::var("PERMITFLOW_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000_000)
    } else {
        20_000
    };
    let broker = KafkaBroker::start()?;
    let topic = KafkaBroker::unique_name("bench");
    broker.create_topic(&topic, PARTITIONS)?;
    let mut topics = TopicsConfig { applications: topic.clone(), ..TopicsConfig::default() };
    for name in
        [&mut topics.decisions, &mut topics.appeals, &mut topics.staff, &mut topics.costs, &mut topics.appointments]
    {
        *name = KafkaBroker::unique_name("bench-empty");
        broker.create_topic(name, 1)?;
    }
    let lines = workload(events);
    let started = Instant::now();
    let keyed = lines.into_iter().enumerate().map(|(i, line)| (Some(i.to_le_bytes().to_vec()), line));
    broker.produce(&topic, keyed)?;
    eprintln!("produced {events} events in {:.1} s", started.elapsed().as_secs_f64());

    let (raw_s, bytes) = raw_consume(&broker, &topic, events);
    let mb = bytes as f64 / 1e6;

    let dir = tempfile::tempdir()?;
    let warehouse = Warehouse::open(dir.path().join("warehouse"))?;
    // The configuration a user gets: defaults and `PERMITFLOW__…` environment overrides (of `[flush]` and
    // `[kafka.properties]`, say), with this broker and a fresh group.
    let config = Config::load(None)?;
    let kafka = KafkaConfig {
        bootstrap_servers: broker.bootstrap_servers(),
        group_id: KafkaBroker::unique_name("permitflow-bench"),
        ..config.kafka
    };
    reset_peak_rss();
    let started = Instant::now();
    let report = run_kafka(
        warehouse,
        &kafka,
        &topics,
        &config.flush,
        Pseudonymiser::development(),
        RunOptions { stop_at_end: true },
        &AtomicBool::new(false),
    )?;
    let run_s = started.elapsed().as_secs_f64();
    let stored: u64 = report.partitions.values().map(|c| c.read).sum();
    assert_eq!(stored as usize, events, "every event consumed and committed");

    println!("{events} events, {mb:.1} MB, topic of {PARTITIONS} partitions on a local broker");
    println!(
        "raw rdkafka consumer:     {raw_s:>7.2} s  {:>10.0} events/s  {:>6.1} MB/s",
        events as f64 / raw_s,
        mb / raw_s
    );
    println!(
        "permitflow → warehouse:   {run_s:>7.2} s  {:>10.0} events/s  {:>6.1} MB/s  ({} commits)  peak RSS {}",
        events as f64 / run_s,
        mb / run_s,
        report.commits,
        peak_rss_mib().map_or("n/a".into(), |m| format!("{m:.0} MiB"))
    );
    println!("permitflow / raw: {:.0} % (target ≥ 60 %)", 100.0 * raw_s / run_s);
    Ok(())
}
