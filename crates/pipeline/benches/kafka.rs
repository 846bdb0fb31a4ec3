//! Kafka → warehouse throughput beside the raw consume rate of the same broker and topic, with peak memory.
//!
//! `cargo bench -p permitflow-pipeline --bench kafka` starts a broker (the test kit's), fills a 6-partition
//! topic with `PERMITFLOW_BENCH_EVENTS` generated events (default 3,000,000: about seven years of the agency
//! at `PERMITFLOW_BENCH_SCALE` 1, the default), then measures in one run:
//! a bare rdkafka consumer reading the topic, and `run_kafka --stop-at-end` from the same topic into a
//! committed warehouse. Targets: permitflow ≥ 60 % of the raw rate; peak memory ≤ 512 MiB.
//! `RUST_LOG=permitflow_pipeline=debug` logs every flush. permitflow runs with the configuration a user
//! gets: the defaults and any `PERMITFLOW__…` environment
//! override (`PERMITFLOW__FLUSH__MAX_BUFFERED_BYTES`, `PERMITFLOW__KAFKA__PROPERTIES__FETCH_MAX_BYTES`, …).
//! Without `--bench` (as `cargo test` runs it) it checks itself on 20,000 events.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use permitflow_gen::{GenConfig, generate_year};
use permitflow_pipeline::{Config, RunOptions, Telemetry, TopicsConfig, run_kafka};
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

/// Generated event lines at `scale`, years repeated (with other seeds) until `wanted` lines exist, and
/// how many years of events they are.
fn workload(wanted: usize, scale: f64) -> (Vec<Vec<u8>>, f64) {
    let mut lines = Vec::with_capacity(wanted);
    let mut years = 0.0;
    let mut year = 0;
    while lines.len() < wanted {
        let config = GenConfig { seed: 42 + year, start_year: 2010 + year as i32, scale, ..GenConfig::default() };
        let mut out = Vec::new();
        generate_year(&config, config.start_year, &mut out).expect("generate");
        let generated: Vec<&[u8]> = out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        let taken = generated.len().min(wanted - lines.len());
        years += taken as f64 / generated.len() as f64;
        lines.extend(generated[..taken].iter().map(|l| l.to_vec()));
        year += 1;
    }
    (lines, years)
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

/// The argument that makes this binary the permitflow process of the bench.
const RUN_PERMITFLOW: &str = "--run-permitflow";

/// The permitflow process: `run --stop-at-end` as configured by the environment; prints the events
/// stored, the commits, the seconds taken and its peak resident memory in MiB.
fn run_permitflow() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load(None)?;
    let warehouse = Warehouse::open(&config.warehouse.path)?;
    let started = Instant::now();
    let report = run_kafka(
        warehouse,
        &config.kafka,
        &config.topics,
        &config.flush,
        Pseudonymiser::development(),
        RunOptions { stop_at_end: true },
        &AtomicBool::new(false),
        &Telemetry::new(),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let stored: u64 = report.partitions.values().map(|c| c.read).sum();
    let peak = peak_rss_mib().ok_or("no VmHWM in /proc/self/status")?;
    println!("{stored} {} {seconds} {peak}", report.commits);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    permitflow_testkit::log_to_stderr_when_asked();
    if std::env::args().any(|a| a == RUN_PERMITFLOW) {
        return run_permitflow();
    }
    let measuring = std::env::args().any(|a| a == "--bench");
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
    let scale: f64 = std::env::var("PERMITFLOW_BENCH_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    let (lines, years) = workload(events, scale);
    let started = Instant::now();
    let keyed = lines.into_iter().enumerate().map(|(i, line)| (Some(i.to_le_bytes().to_vec()), line));
    broker.produce(&topic, keyed)?;
    eprintln!("produced {events} events in {:.1} s", started.elapsed().as_secs_f64());

    let (raw_s, bytes) = raw_consume(&broker, &topic, events);
    let mb = bytes as f64 / 1e6;

    // permitflow runs in a process of its own (this binary again), so its peak memory is its own and not
    // the workload's, configured as a user configures `permitflow run`: the defaults and `PERMITFLOW__…`
    // environment variables (any override set for this bench, of `[flush]` or `[kafka.properties]` say,
    // is passed on), here with this broker, a fresh group, the bench topics and a new warehouse.
    let dir = tempfile::tempdir()?;
    let mut child = std::process::Command::new(std::env::current_exe()?);
    child
        .arg(RUN_PERMITFLOW)
        .env("PERMITFLOW__KAFKA__BOOTSTRAP_SERVERS", broker.bootstrap_servers())
        .env("PERMITFLOW__KAFKA__GROUP_ID", KafkaBroker::unique_name("permitflow-bench"))
        .env("PERMITFLOW__WAREHOUSE__PATH", dir.path().join("warehouse"));
    for (key, name) in
        ["APPLICATIONS", "DECISIONS", "APPEALS", "STAFF", "COSTS", "APPOINTMENTS"].iter().zip(topics.all())
    {
        child.env(format!("PERMITFLOW__TOPICS__{key}"), name);
    }
    let output = child.stderr(std::process::Stdio::inherit()).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("the permitflow run failed ({}): {text}", output.status).into());
    }
    let figures: Vec<f64> = text.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    let [stored, commits, run_s, peak_mib] = figures[..] else {
        return Err(format!("unexpected output of the permitflow run: {text}").into());
    };
    assert_eq!(stored as usize, events, "every event consumed and committed");
    let files = Warehouse::open(dir.path().join("warehouse"))?.files()?;
    let written_mb = files.iter().map(|f| f.bytes).sum::<u64>() as f64 / 1e6;

    println!(
        "{events} events ({years:.1} years at scale {scale}), {mb:.1} MB, topic of {PARTITIONS} partitions on a local broker"
    );
    println!(
        "raw rdkafka consumer:     {raw_s:>7.2} s  {:>10.0} events/s  {:>6.1} MB/s",
        events as f64 / raw_s,
        mb / raw_s
    );
    println!(
        "permitflow → warehouse:   {run_s:>7.2} s  {:>10.0} events/s  {:>6.1} MB/s  ({commits} commits, {} files, \
         {written_mb:.1} MB written)  peak RSS {peak_mib:.0} MiB (target ≤ 512 MiB)",
        events as f64 / run_s,
        mb / run_s,
        files.len(),
    );
    println!("permitflow / raw: {:.0} % (target ≥ 60 %)", 100.0 * raw_s / run_s);
    Ok(())
}
