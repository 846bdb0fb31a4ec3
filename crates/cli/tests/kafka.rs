//! `permitflow run` against a real Apache Kafka broker (started by the test kit): exactly once into the
//! warehouse with duplicates and bad messages, through SIGKILLs at random moments, and through a broker
//! outage; on local disk and on S3 (moto's server, started by the test kit). Its start-up checks, and its
//! `/metrics`, `/healthz` and `/readyz` through an outage and an unwritable warehouse.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use permitflow_gen::{GenConfig, generate};
use permitflow_testkit::{KafkaBroker, S3Server, set_immutable};
use rdkafka::Message;
use rdkafka::message::Headers;

const KEY: &str = "kafka-test-key-0123456789";
const PARTITIONS: i32 = 3;
const TABLES: [&str; 6] = ["applications", "decisions", "appeals", "staff", "costs", "appointments"];
const EVENT_TYPES: [&str; 6] = [
    "application.submitted",
    "decision.made",
    "appeal.resolved",
    "staff.month_reported",
    "cost.booked",
    "appointment.booked",
];

/// One broker at a time: the machine has two cores.
static SERIAL: Mutex<()> = Mutex::new(());

/// A broker with the six topics (and their dead-letter topics) of one test, and a config file for them.
struct Setup {
    broker: KafkaBroker,
    dir: tempfile::TempDir,
    topics: Vec<String>,
    /// The S3 server of warehouses at `s3://` URLs, if the test has one.
    s3: Option<S3Server>,
}

impl Setup {
    fn new() -> Setup {
        Setup::with_broker(KafkaBroker::start().unwrap_or_else(|e| panic!("{e}")))
    }

    /// Topics are created and filled through the broker's plain listener; `permitflow run` connects to its
    /// SASL_SSL listener.
    fn secure() -> Setup {
        Setup::with_broker(KafkaBroker::start_with_sasl_ssl().unwrap_or_else(|e| panic!("{e}")))
    }

    fn with_broker(broker: KafkaBroker) -> Setup {
        let topics: Vec<String> = TABLES.iter().map(|t| KafkaBroker::unique_name(t)).collect();
        for topic in &topics {
            broker.create_topic(topic, PARTITIONS).unwrap_or_else(|e| panic!("{e}"));
            broker.create_topic(&format!("{topic}.dlq"), 1).unwrap_or_else(|e| panic!("{e}"));
        }
        Setup { broker, dir: tempfile::tempdir().expect("dir"), topics, s3: None }
    }

    /// With an S3 server and its bucket `warehouse` for warehouses at `s3://warehouse/…`.
    fn with_s3(mut self) -> Setup {
        let s3 = S3Server::start().unwrap_or_else(|e| panic!("{e}"));
        s3.create_bucket("warehouse").unwrap_or_else(|e| panic!("{e}"));
        self.s3 = Some(s3);
        self
    }

    /// `permitflow` with the environment of the S3 server, if any.
    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_permitflow"));
        command.env("RUST_LOG", "warn").envs(self.s3.iter().flat_map(S3Server::env));
        command
    }

    /// A config file for `group`, with small flushes so that commits happen often.
    fn config(&self, group: &str, max_rows: usize) -> PathBuf {
        let path = self.dir.path().join(format!("{group}.toml"));
        let topics: String =
            TABLES.iter().zip(&self.topics).map(|(table, topic)| format!("{table} = \"{topic}\"\n")).collect();
        let (bootstrap_servers, security) = match self.broker.secure_listener() {
            Some(secure) => (
                secure.bootstrap_servers.clone(),
                secure.client_properties().iter().map(|(key, value)| format!("\"{key}\" = \"{value}\"\n")).collect(),
            ),
            None => (self.broker.bootstrap_servers(), String::new()),
        };
        let text = format!(
            "[kafka]\nbootstrap_servers = \"{bootstrap_servers}\"\ngroup_id = \"{group}\"\n\
             [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n\
             {security}\
             [topics]\n{topics}\
             [flush]\nmax_rows = {max_rows}\nmax_age_ms = 300\nmax_retry_backoff_ms = 2000\n"
        );
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// Generates a workload and produces each line to the topic of its event type (bad lines round-robin).
    fn produce_workload(&self, config: &GenConfig) -> permitflow_gen::GenSummary {
        let summary = generate(config, &self.dir.path().join("input"), &mut |_, _| {}).expect("generate");
        // Per topic, its records as (key, payload).
        type Records = Vec<(Option<Vec<u8>>, Vec<u8>)>;
        let mut by_topic: Vec<Records> = vec![Vec::new(); TABLES.len()];
        let mut bad = 0;
        for file in &summary.files {
            let content = std::fs::read(file).expect("read input");
            for line in content.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let text = String::from_utf8_lossy(line);
                let index = EVENT_TYPES
                    .iter()
                    .position(|t| text.contains(&format!("\"event_type\":\"{t}\"")))
                    .unwrap_or_else(|| {
                        bad += 1;
                        bad % TABLES.len()
                    });
                by_topic[index].push((None, line.to_vec()));
            }
        }
        for (topic, records) in self.topics.iter().zip(by_topic) {
            self.broker.produce(topic, records).unwrap_or_else(|e| panic!("{e}"));
        }
        summary
    }

    fn permitflow(&self, config: &Path, warehouse: impl AsRef<OsStr>, args: &[&str]) -> Command {
        let mut command = self.command();
        command
            .arg("--config")
            .arg(config)
            .args(args)
            .arg("--warehouse")
            .arg(warehouse)
            .env("PERMITFLOW__PRIVACY__KEY", KEY);
        command
    }

    fn run_to_end(&self, config: &Path, warehouse: impl AsRef<OsStr>) -> String {
        let output = self.permitflow(config, warehouse, &["run", "--stop-at-end"]).output().expect("run");
        assert!(output.status.success(), "run failed:\n{}\n{}", text(&output.stdout), text(&output.stderr));
        text(&output.stdout)
    }

    fn query(&self, warehouse: impl AsRef<OsStr>, sql: &str) -> String {
        let output = self.command().args(["query", "--warehouse"]).arg(warehouse).arg(sql).output().expect("query");
        assert!(output.status.success(), "{sql}: {}", text(&output.stderr));
        text(&output.stdout)
    }

    fn count(&self, warehouse: impl AsRef<OsStr>, sql: &str) -> u64 {
        let out = self.query(warehouse, sql);
        out.lines()
            .filter_map(|l| l.trim().trim_matches('|').trim().parse::<u64>().ok())
            .next()
            .unwrap_or_else(|| panic!("{sql}: no number in\n{out}"))
    }

    /// The indicators: event counts per table and the marts, materialised afresh.
    fn indicators(&self, warehouse: impl AsRef<OsStr>) -> String {
        let warehouse = warehouse.as_ref();
        let status = self.command().args(["materialize", "--warehouse"]).arg(warehouse).status().expect("materialize");
        assert!(status.success());
        let mut out = String::new();
        for table in TABLES {
            out.push_str(&self.query(warehouse, &format!("SELECT count(*), count(DISTINCT event_id) FROM {table}")));
        }
        for sql in [
            "SELECT period_type, period, scope, scope_value, decisions, round(person_years, 6) FROM decisions_per_person_year ORDER BY 1, 2, 3, 4",
            "SELECT period_type, period, scope, scope_value, round(fee_revenue_eur, 2), round(total_cost_eur, 2) FROM cost_recovery ORDER BY 1, 2, 3, 4",
        ] {
            out.push_str(&self.query(warehouse, sql));
        }
        out
    }

    /// What a finished warehouse holds, independent of how its files were cut: the indicators, every
    /// stored source position once, and the rejections by position.
    fn fingerprint(&self, warehouse: impl AsRef<OsStr>) -> String {
        let warehouse = warehouse.as_ref();
        let mut out = self.indicators(warehouse);
        for table in TABLES {
            out.push_str(
                &self.query(warehouse, &format!("SELECT count(DISTINCT source || '@' || source_offset) FROM {table}")),
            );
        }
        out.push_str(
            &self.query(warehouse, "SELECT source, source_offset, rule, field FROM _rejections ORDER BY 1, 2"),
        );
        out
    }

    /// Rows stored over all event tables.
    fn stored(&self, warehouse: impl AsRef<OsStr>) -> u64 {
        let union: Vec<String> = TABLES.iter().map(|t| format!("SELECT count(*) AS n FROM {t}")).collect();
        self.count(warehouse, &format!("SELECT CAST(sum(n) AS BIGINT) FROM ({})", union.join(" UNION ALL ")))
    }
}

/// Equal texts, or a failure that shows the first lines that differ. Numbers may differ by one in their
/// last (second) decimal: sums of doubles depend on the order rows are added in, which depends on how the
/// files were cut, and a sum that lands on a rounding boundary rounds either way.
#[track_caller]
fn assert_same_lines(left: &str, right: &str, what: &str) {
    let same_cell = |l: &str, r: &str| match (l.trim().parse::<f64>(), r.trim().parse::<f64>()) {
        (Ok(a), Ok(b)) => (a - b).abs() <= 0.010_000_1,
        _ => l == r,
    };
    let same = |l: &str, r: &str| {
        l.split('|').count() == r.split('|').count() && l.split('|').zip(r.split('|')).all(|(a, b)| same_cell(a, b))
    };
    let differing: Vec<(&str, &str)> = left.lines().zip(right.lines()).filter(|(l, r)| !same(l, r)).take(5).collect();
    assert!(
        differing.is_empty() && left.lines().count() == right.lines().count(),
        "{what}: first differing lines {differing:#?} ({} vs {} lines)",
        left.lines().count(),
        right.lines().count()
    );
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `consumed N = stored A + rejected R` of the run's last line.
fn totals(out: &str) -> (u64, u64, u64) {
    let line = out.lines().rfind(|l| l.starts_with("committed")).unwrap_or_else(|| panic!("no summary in\n{out}"));
    let numbers: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(numbers[1], numbers[2] + numbers[3], "consumed = stored + rejected: {line}");
    (numbers[1], numbers[2], numbers[3])
}

fn terminate(child: &mut Child) -> Output {
    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("poll").is_none() {
        assert!(Instant::now() < deadline, "permitflow run did not stop within 60 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut output = Output { status: child.wait().expect("wait"), stdout: Vec::new(), stderr: Vec::new() };
    if let Some(mut stdout) = child.stdout.take() {
        std::io::Read::read_to_end(&mut stdout, &mut output.stdout).expect("stdout");
    }
    output
}

/// A small workload (about 2,000 events) of year 2017 + `n`; `seed` keeps event ids apart between tests.
fn small_chunk(n: u32, seed: u64) -> GenConfig {
    GenConfig { seed: seed + u64::from(n), start_year: 2017 + n as i32, scale: 0.005, ..GenConfig::default() }
}

/// `permitflow run` in the background, its output captured.
fn spawn_run(setup: &Setup, config: &Path, warehouse: impl AsRef<OsStr>) -> Child {
    setup.permitflow(config, warehouse, &["run"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn")
}

/// `permitflow run --stop-at-end`, compacting every second, SIGKILLed after `pause`; false when it finished
/// (successfully) before.
fn run_until_killed(setup: &Setup, config: &Path, warehouse: impl AsRef<OsStr>, pause: Duration) -> bool {
    let mut child = setup
        .permitflow(config, warehouse, &["run", "--stop-at-end"])
        .env("PERMITFLOW__COMPACTION__INTERVAL_S", "1")
        .env("PERMITFLOW__COMPACTION__MIN_FILES", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(pause);
    if let Some(status) = child.try_wait().expect("poll") {
        assert!(status.success(), "run failed");
        return false;
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    true
}

/// A free loopback port for `run`'s HTTP endpoints.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

/// `permitflow run` in the background serving its endpoints on `port`, its output captured.
fn spawn_serving(setup: &Setup, config: &Path, warehouse: impl AsRef<OsStr>, port: u16) -> Child {
    setup
        .permitflow(config, warehouse, &["run"])
        .env("PERMITFLOW__TELEMETRY__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

/// The status and body of `GET path` on `run`'s endpoints; `None` while nothing answers.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut response = agent.get(&format!("http://127.0.0.1:{port}{path}")).call().ok()?;
    let status = response.status().as_u16();
    Some((status, response.body_mut().read_to_string().ok()?))
}

/// The sum of every sample of the series `name` in a Prometheus exposition.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            (series.split('{').next()? == name).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

fn scrape(port: u16) -> String {
    match http_get(port, "/metrics") {
        Some((200, text)) => text,
        other => panic!("/metrics: {other:?}"),
    }
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn duplicates_and_bad_messages_are_stored_once_and_dead_lettered_once() {
    let _serial = lock();
    let setup = Setup::new();
    let warehouse = setup.dir.path().join("wh");
    stored_once_and_dead_lettered_once(&setup, &warehouse);
}

#[test]
fn on_s3_duplicates_and_bad_messages_are_stored_once_and_dead_lettered_once() {
    let _serial = lock();
    stored_once_and_dead_lettered_once(&Setup::new().with_s3(), "s3://warehouse/once");
}

/// A workload with duplicates, late and malformed events, consumed into `warehouse`: every event stored,
/// each bad message dead-lettered once, nothing new on a second run, and the indicators of a file ingest.
fn stored_once_and_dead_lettered_once(setup: &Setup, warehouse: impl AsRef<OsStr>) {
    let warehouse = warehouse.as_ref();
    let config = GenConfig {
        scale: 0.01,
        duplicate_share: 0.02,
        late_share: 0.02,
        malformed_share: 0.01,
        ..GenConfig::default()
    };
    let generated = setup.produce_workload(&config);
    assert!(generated.malformed > 0 && generated.duplicates > 0, "{generated:?}");
    let run_config = setup.config("once", 1000);

    let out = setup.run_to_end(&run_config, warehouse);
    let (consumed, stored, rejected) = totals(&out);
    assert_eq!(consumed, generated.lines, "{out}");
    assert_eq!(rejected, generated.malformed, "{out}");
    assert_eq!(setup.stored(warehouse), stored);
    assert_eq!(setup.count(warehouse, "SELECT count(*) FROM _rejections"), generated.malformed);
    let distinct: u64 =
        TABLES.iter().map(|t| setup.count(warehouse, &format!("SELECT count(DISTINCT event_id) FROM {t}"))).sum();
    assert_eq!(distinct, generated.valid_events);

    let mut letters = BTreeSet::new();
    for topic in &setup.topics {
        for message in setup.broker.read_all(&format!("{topic}.dlq")).unwrap_or_else(|e| panic!("{e}")) {
            let headers = message.headers().expect("dead letters carry headers");
            let header =
                |name: &str| headers.iter().find(|h| h.key == name).and_then(|h| h.value).map(text).unwrap_or_default();
            assert!(!header("permitflow.rule").is_empty() && !header("permitflow.message").is_empty());
            assert_eq!(&header("permitflow.topic"), topic);
            letters.insert((header("permitflow.topic"), header("permitflow.partition"), header("permitflow.offset")));
            assert!(message.payload().is_some() || header("permitflow.rule") == "line_too_large", "payload kept");
        }
    }
    assert_eq!(letters.len() as u64, generated.malformed, "each bad message dead-lettered exactly once");

    let again = setup.run_to_end(&run_config, warehouse);
    assert_eq!(totals(&again).0, 0, "a second run finds nothing new:\n{again}");

    let from_files = setup.dir.path().join("files");
    let ingest = Command::new(env!("CARGO_BIN_EXE_permitflow"))
        .args(["ingest", "--warehouse"])
        .arg(&from_files)
        .args(&generated.files)
        .env("PERMITFLOW__PRIVACY__KEY", KEY)
        .status()
        .expect("ingest");
    assert!(ingest.success());
    assert_same_lines(
        &setup.indicators(warehouse),
        &setup.indicators(&from_files),
        "Kafka and file ingest give the same indicators",
    );
}

#[test]
fn consumes_and_dead_letters_over_tls_with_sasl_authentication() {
    let _serial = lock();
    let setup = Setup::secure();
    let generated = setup.produce_workload(&GenConfig { malformed_share: 0.01, ..small_chunk(0, 11) });
    assert!(generated.malformed > 0, "{generated:?}");
    let warehouse = setup.dir.path().join("wh");
    let config = setup.config("secure", 500);
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains("SASL_SSL") && !text.contains(&setup.broker.bootstrap_servers()), "{text}");

    let out = setup.run_to_end(&config, &warehouse);
    let (consumed, stored, rejected) = totals(&out);
    assert_eq!((consumed, rejected), (generated.lines, generated.malformed), "{out}");
    assert_eq!(setup.stored(&warehouse), stored);
    let letters: usize = setup
        .topics
        .iter()
        .map(|topic| setup.broker.read_all(&format!("{topic}.dlq")).unwrap_or_else(|e| panic!("{e}")).len())
        .sum();
    assert_eq!(letters as u64, generated.malformed, "the dead-letter producer also connects over SASL_SSL");
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_stores_nothing_twice_also_while_compacting_and_checkpointing() {
    let _serial = lock();
    let setup = Setup::new();
    let workload = |chunk: u32| GenConfig {
        seed: u64::from(chunk) + 7,
        start_year: 2017 + chunk as i32,
        scale: 0.02,
        duplicate_share: 0.01,
        malformed_share: 0.005,
        ..GenConfig::default()
    };
    let mut chunks = 0;
    let mut accepted = 0;
    let mut produce = |setup: &Setup| {
        let generated = setup.produce_workload(&workload(chunks));
        chunks += 1;
        accepted += generated.lines - generated.malformed;
    };
    produce(&setup);

    let killed = setup.dir.path().join("killed");
    let config = setup.config("killed", 300);
    // Compactions leave their files in the tables (until a vacuum a week later).
    fn compacted_files(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| match e.path().is_dir() {
                    true => compacted_files(&e.path()),
                    false => usize::from(e.file_name().to_string_lossy().starts_with("part-compact-")),
                })
                .sum()
        })
    }
    let compactions = || compacted_files(&killed.join("events"));
    // Every compaction checkpoints the tables it compacted, killed too.
    let checkpoints = || {
        std::fs::read_dir(killed.join("events"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|table| std::fs::read_dir(table.path().join("_delta_log")).into_iter().flatten().flatten())
            .filter(|e| e.file_name().to_string_lossy().contains(".checkpoint."))
            .count()
    };
    let mut kills = 0;
    let started = Instant::now();
    // How soon a run gets to commit a compaction and its checkpoint depends on the machine: kill until
    // both have happened, too.
    while kills < 20 || compactions() == 0 || checkpoints() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "only {kills} kills, {} compacted files and {} checkpoints in 15 minutes",
            compactions(),
            checkpoints()
        );
        // Pseudo-random moments from 0.6 to 3.5 s: while joining the group, mid-batch and mid-flush.
        match run_until_killed(&setup, &config, &killed, Duration::from_millis(600 + (kills * 7919 % 2900))) {
            true => kills += 1,
            // It caught up before it was killed: give it more to do.
            false => produce(&setup),
        }
    }
    setup.run_to_end(&config, &killed);
    assert_eq!(setup.stored(&killed), accepted, "after {kills} kills");

    let clean = setup.dir.path().join("clean");
    setup.run_to_end(&setup.config("clean", 2000), &clean);
    assert_same_lines(&setup.fingerprint(&killed), &setup.fingerprint(&clean), &format!("after {kills} kills"));
}

#[test]
fn broker_outage_mid_stream_loses_nothing() {
    let _serial = lock();
    let setup = Setup::new();
    let first = setup.produce_workload(&small_chunk(0, 1));
    let warehouse = setup.dir.path().join("wh");
    let config = setup.config("outage", 200);
    let port = free_port();
    let mut child = spawn_serving(&setup, &config, &warehouse, port);
    wait_until("the first events are committed", Duration::from_secs(120), || setup.stored(&warehouse) > 0);
    wait_until("/readyz says ready", Duration::from_secs(60), || {
        http_get(port, "/readyz").is_some_and(|(s, _)| s == 200)
    });
    setup.broker.stop().unwrap_or_else(|e| panic!("{e}"));
    wait_until("/readyz says no broker is reachable", Duration::from_secs(60), || {
        http_get(port, "/readyz").is_some_and(|(status, why)| status == 503 && why.contains("broker"))
    });
    assert_eq!(http_get(port, "/healthz").map(|(s, _)| s), Some(200), "alive while waiting for the broker");
    assert!(child.try_wait().expect("poll").is_none(), "run must wait for the broker, not exit");
    setup.broker.restart().unwrap_or_else(|e| panic!("{e}"));
    let second = setup.produce_workload(&small_chunk(2, 1));
    let expected = first.lines + second.lines;
    wait_until("every event is committed", Duration::from_secs(180), || setup.stored(&warehouse) >= expected);
    wait_until("/readyz is ready again", Duration::from_secs(60), || {
        http_get(port, "/readyz").is_some_and(|(s, _)| s == 200)
    });
    // The counters reconcile with what the warehouse holds, and the lag drains to zero.
    wait_until("the lag gauges drain to 0", Duration::from_secs(60), || {
        let text = scrape(port);
        metric(&text, "permitflow_messages_consumed_total") == expected as f64
            && text.contains("permitflow_consumer_lag_messages{")
            && metric(&text, "permitflow_consumer_lag_messages") == 0.0
    });
    let exposition = scrape(port);
    let stored = metric(&exposition, "permitflow_events_stored_total");
    let rejected = metric(&exposition, "permitflow_rejections_total");
    assert_eq!(stored + rejected, expected as f64, "consumed = stored + rejected:\n{exposition}");
    assert_eq!(stored, setup.stored(&warehouse) as f64, "{exposition}");
    assert_eq!(metric(&exposition, "permitflow_dead_letters_total"), rejected, "{exposition}");
    assert!(metric(&exposition, "permitflow_commits_total") >= 2.0, "{exposition}");
    assert_eq!(
        metric(&exposition, "permitflow_commit_duration_seconds_count"),
        metric(&exposition, "permitflow_commits_total")
    );
    assert!(
        metric(&exposition, "permitflow_files_written_total") > 0.0
            && metric(&exposition, "permitflow_bytes_written_total") > 0.0
    );
    assert_eq!(metric(&exposition, "permitflow_assigned_partitions"), (PARTITIONS * 6) as f64, "{exposition}");
    assert!(metric(&exposition, "permitflow_event_time_lag_seconds") > 0.0, "{exposition}");
    let output = terminate(&mut child);
    assert!(output.status.success(), "SIGTERM exits 0: {}", text(&output.stdout));
    assert_eq!(setup.stored(&warehouse), expected, "nothing lost, nothing doubled");
}

#[test]
fn start_up_names_a_missing_topic_or_dead_letter_topic_and_creates_dead_letter_topics_when_asked() {
    let _serial = lock();
    let setup = Setup::new();
    setup.produce_workload(&GenConfig { malformed_share: 0.01, ..small_chunk(0, 300) });
    let warehouse = setup.dir.path().join("wh");
    let config = setup.config("startup", 1000);
    let fails = |command: &mut Command| {
        let started = Instant::now();
        let output = command.output().expect("run");
        assert!(!output.status.success(), "must refuse to start: {}", text(&output.stdout));
        assert!(started.elapsed() < Duration::from_secs(45), "fails fast, not after {:?}", started.elapsed());
        text(&output.stderr)
    };
    let missing =
        fails(setup.permitflow(&config, &warehouse, &["run"]).env("PERMITFLOW__TOPICS__STAFF", "no-such-topic"));
    assert!(missing.contains("no-such-topic") && missing.contains("[topics]"), "{missing}");
    let dlq = fails(setup.permitflow(&config, &warehouse, &["run"]).env("PERMITFLOW__KAFKA__DLQ_SUFFIX", ".rejected"));
    assert!(dlq.contains(&format!("{}.rejected", setup.topics[0])), "{dlq}");
    assert!(dlq.contains("PERMITFLOW__KAFKA__CREATE_DLQ_TOPICS=true"), "{dlq}");
    let key = fails(setup.permitflow(&config, &warehouse, &["run"]).env_remove("PERMITFLOW__PRIVACY__KEY"));
    assert!(key.contains("PERMITFLOW__PRIVACY__KEY"), "{key}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port();
    let busy = fails(
        setup
            .permitflow(&config, &warehouse, &["run"])
            .env("PERMITFLOW__TELEMETRY__LISTEN", format!("127.0.0.1:{port}")),
    );
    assert!(busy.contains("telemetry.listen") && busy.contains(&port.to_string()), "{busy}");
    assert!(!warehouse.join("_rejections").exists() || setup.stored(&warehouse) == 0, "nothing consumed");

    // Created when asked, then used; the log lines are JSON with the flush span's topic and partition.
    let output = setup
        .permitflow(&config, &warehouse, &["run", "--stop-at-end"])
        .env("PERMITFLOW__KAFKA__DLQ_SUFFIX", ".rejected")
        .env("PERMITFLOW__KAFKA__CREATE_DLQ_TOPICS", "true")
        .env("PERMITFLOW__LOG__FORMAT", "json")
        .env("RUST_LOG", "info")
        .output()
        .expect("run");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let (_, _, rejected) = totals(&stdout);
    assert!(rejected > 0, "{stdout}");
    let letters: usize = setup
        .topics
        .iter()
        .map(|t| setup.broker.read_all(&format!("{t}.rejected")).unwrap_or_else(|e| panic!("{e}")).len())
        .sum();
    assert_eq!(letters as u64, rejected, "the dead letters are in the created topics");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains("created the missing"))));
    let flush = lines
        .iter()
        .find(|l| l["span"]["name"] == "flush" && l["fields"]["message"] == "committed")
        .unwrap_or_else(|| panic!("no committed line in a flush span:\n{stderr}"));
    assert!(flush["span"]["topic"].is_string() && flush["span"]["partition"].is_number(), "{flush}");
}

#[test]
fn scaling_one_two_one_instances_loses_nothing_and_doubles_nothing() {
    let _serial = lock();
    let setup = Setup::new();
    let chunk = |n: u32| small_chunk(n, 100);
    let mut expected = setup.produce_workload(&chunk(0)).lines;
    let warehouse = setup.dir.path().join("wh");
    let config = setup.config("scaling", 300);
    let mut first = spawn_run(&setup, &config, &warehouse);
    wait_until("the first instance commits", Duration::from_secs(120), || setup.stored(&warehouse) > 0);
    let mut second = spawn_run(&setup, &config, &warehouse);
    expected += setup.produce_workload(&chunk(1)).lines;
    std::thread::sleep(Duration::from_secs(8));
    let output = terminate(&mut second);
    assert!(output.status.success(), "the second instance stops cleanly: {}", text(&output.stdout));
    expected += setup.produce_workload(&chunk(2)).lines;
    wait_until("every event is committed", Duration::from_secs(180), || setup.stored(&warehouse) >= expected);
    let output = terminate(&mut first);
    assert!(output.status.success(), "the first instance stops cleanly: {}", text(&output.stdout));
    assert_eq!(setup.stored(&warehouse), expected, "nothing lost, nothing doubled");
    let positions: Vec<String> =
        TABLES.iter().map(|t| format!("SELECT count(DISTINCT source || '@' || source_offset) AS n FROM {t}")).collect();
    let distinct =
        setup.count(&warehouse, &format!("SELECT CAST(sum(n) AS BIGINT) FROM ({})", positions.join(" UNION ALL ")));
    assert_eq!(distinct, expected, "every Kafka position stored once");
}

/// Commits of `_rejections`, which every flush commits last (with the positions).
fn commits(warehouse: &Path) -> usize {
    std::fs::read_dir(warehouse.join("_rejections/_delta_log"))
        .expect("the coordinator's Delta log")
        .filter(|e| {
            e.as_ref().is_ok_and(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.ends_with(".json") && !name.starts_with('_')
            })
        })
        .count()
}

#[test]
fn an_unwritable_warehouse_stops_commits_until_it_is_writable_again_and_loses_nothing() {
    let _serial = lock();
    let setup = Setup::new();
    let chunk = |n: u32| small_chunk(n, 200);
    let mut expected = setup.produce_workload(&chunk(0)).lines;
    let warehouse = setup.dir.path().join("wh");
    let config = setup.config("readonly", 300);
    let port = free_port();
    let mut child = spawn_serving(&setup, &config, &warehouse, port);
    wait_until("the first chunk is committed", Duration::from_secs(120), || setup.stored(&warehouse) >= expected);
    set_immutable(&warehouse, true);
    let before = commits(&warehouse);
    expected += setup.produce_workload(&chunk(1)).lines;
    let mut not_ready = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while not_ready.is_none() && Instant::now() < deadline {
        not_ready = http_get(port, "/readyz").filter(|(status, _)| *status == 503);
        std::thread::sleep(Duration::from_millis(500));
    }
    let failures = metric(&scrape(port), "permitflow_commit_failures_total");
    let during = commits(&warehouse);
    let alive = child.try_wait().expect("poll").is_none();
    set_immutable(&warehouse, false);
    assert_eq!(during, before, "nothing is committed while the warehouse cannot be written");
    assert!(alive, "run waits and retries instead of exiting");
    let (_, why) = not_ready.expect("/readyz answers 503 while the warehouse cannot be written");
    assert!(why.contains("warehouse cannot be written"), "{why}");
    assert!(failures >= 1.0, "the failed attempts are counted");
    wait_until("every event is committed", Duration::from_secs(180), || setup.stored(&warehouse) >= expected);
    wait_until("/readyz is ready again after a commit", Duration::from_secs(30), || {
        http_get(port, "/readyz").is_some_and(|(status, _)| status == 200)
    });
    let output = terminate(&mut child);
    assert!(output.status.success(), "{}", text(&output.stdout));
    assert_eq!(setup.stored(&warehouse), expected, "nothing lost, nothing doubled");
}

#[test]
fn on_s3_sigkills_and_one_two_one_instances_lose_nothing_and_store_nothing_twice() {
    let _serial = lock();
    let setup = Setup::new().with_s3();
    let mut chunks: u32 = 0;
    let mut accepted = 0;
    let mut produce = |setup: &Setup| {
        let generated = setup.produce_workload(&GenConfig {
            seed: u64::from(chunks) + 300,
            start_year: 2017 + chunks as i32,
            scale: 0.01,
            duplicate_share: 0.01,
            malformed_share: 0.005,
            ..GenConfig::default()
        });
        chunks += 1;
        accepted += generated.lines - generated.malformed;
    };
    produce(&setup);
    let warehouse = "s3://warehouse/kafka";
    let config = setup.config("s3", 300);
    let mut kills = 0;
    let started = Instant::now();
    while kills < 10 {
        assert!(started.elapsed() < Duration::from_secs(600), "only {kills} kills in 10 minutes");
        match run_until_killed(&setup, &config, warehouse, Duration::from_millis(800 + (kills * 7919 % 2900))) {
            true => kills += 1,
            false => produce(&setup),
        }
    }
    // Then one instance, a second joining (a rebalance: Delta's conflict detection settles any race), and
    // one again.
    let mut first = spawn_run(&setup, &config, warehouse);
    let mut second = spawn_run(&setup, &config, warehouse);
    produce(&setup);
    std::thread::sleep(Duration::from_secs(8));
    let output = terminate(&mut second);
    assert!(output.status.success(), "the second instance stops cleanly: {}", text(&output.stdout));
    produce(&setup);
    wait_until("every event is committed", Duration::from_secs(240), || setup.stored(warehouse) >= accepted);
    let output = terminate(&mut first);
    assert!(output.status.success(), "the first instance stops cleanly: {}", text(&output.stdout));
    assert_eq!(setup.stored(warehouse), accepted, "after {kills} kills and a rebalance");

    let clean = setup.dir.path().join("clean");
    setup.run_to_end(&setup.config("clean", 2000), &clean);
    assert_same_lines(&setup.fingerprint(warehouse), &setup.fingerprint(&clean), &format!("after {kills} kills"));
}
