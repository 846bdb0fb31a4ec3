//! Real services for permitflow's tests: a single-node Apache Kafka broker (KRaft) on a free loopback
//! port, started with `deploy/local/kafka.sh` (the same launcher people use) and stopped on drop, plus
//! small producer and reader helpers; an S3-compatible server (moto's) and an Azure Blob Storage emulator
//! (Azurite) on free loopback ports; DuckDB,
//! the second engine that reads the warehouse; headless Chromium (Debian's, driven by Playwright) for the
//! HTML report; and the benchmarks' logging set-up.
//!
//! This crate is for tests and benchmarks only; nothing in the pipeline depends on it. A broker that
//! cannot start is an error that says why (Java 17 and Maven are needed once to fetch the jars): tests
//! never skip silently.
//!
//! ```no_run
//! use permitflow_testkit::KafkaBroker;
//!
//! let broker = KafkaBroker::start()?;
//! let topic = KafkaBroker::unique_name("decisions");
//! broker.create_topic(&topic, 3)?;
//! broker.produce(&topic, [(Some(b"A1".to_vec()), b"{}".to_vec())])?;
//! assert_eq!(broker.read_all(&topic)?.len(), 1);
//! # Ok::<(), permitflow_testkit::TestkitError>(())
//! ```
#![warn(missing_docs)]

mod azurite;
mod browser;
mod python;
mod s3;

pub use azurite::Azurite;
pub use browser::{check_report_in_browser, chromium};
pub use python::{duckdb_indicators, duckdb_python, python_venv};
pub use s3::S3Server;

/// Logs to stderr, filtered by `RUST_LOG`, when that is set: a benchmark's stdout carries its figures (and
/// the Kafka bench parses its child process's stdout), so log lines must not go there.
pub fn log_to_stderr_when_asked() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
}

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

/// Errors of the test kit, with what to do about them.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// The broker did not start.
    #[error(
        "the Kafka test broker could not start ({command}): {message}\n\
         It needs Java 17+ and, on first use, Maven with access to Maven Central (see deploy/local/README.md)."
    )]
    BrokerStart {
        /// The command that failed.
        command: String,
        /// Its output.
        message: String,
    },
    /// A Kafka client call failed.
    #[error("Kafka test client, {context}: {message}")]
    Client {
        /// What was being done.
        context: String,
        /// The error.
        message: String,
    },
    /// Installing or running the Python tools (DuckDB, moto's S3 server) failed.
    #[error(
        "the tests' Python tools (tests/python/requirements.txt), {step}: {message}\n\
         They need python3 with venv and, on first use, access to PyPI."
    )]
    Python {
        /// What was being done.
        step: String,
        /// Its output.
        message: String,
    },
    /// Installing or running the Azure Blob Storage emulator failed.
    #[error(
        "the tests' Azure emulator (Azurite, tests/azure/package.json), {step}: {message}\n\
         It needs Node.js with npm and, on first use, access to the npm registry."
    )]
    Node {
        /// What was being done.
        step: String,
        /// Its output.
        message: String,
    },
    /// Debian's Chromium could not be installed.
    #[error("the tests' browser (Debian's chromium): {message}")]
    Browser {
        /// What failed and its output.
        message: String,
    },
    /// A file system operation failed.
    #[error("test kit I/O: {0}")]
    Io(#[from] std::io::Error),
}

fn client_error(context: &str) -> impl FnOnce(rdkafka::error::KafkaError) -> TestkitError + '_ {
    move |e| TestkitError::Client { context: context.to_string(), message: e.to_string() }
}

/// Largest message the test broker and producer accept (4 MiB; the contract allows 1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// A running single-node Kafka broker on `127.0.0.1:<free port>` with its data in a temporary directory.
/// Dropping it stops the broker.
pub struct KafkaBroker {
    dir: tempfile::TempDir,
    port: u16,
    controller_port: u16,
    secure: Option<SecureListener>,
}

/// A second listener of a [`KafkaBroker`] that takes only TLS connections authenticated with SASL/PLAIN,
/// as production clusters do; topics are still created and filled through the plain listener.
#[derive(Debug, Clone)]
pub struct SecureListener {
    /// `bootstrap.servers` of the secure listener.
    pub bootstrap_servers: String,
    /// PEM file of the broker's self-signed certificate (the client's `ssl.ca.location`).
    pub ca_location: PathBuf,
    /// The SASL/PLAIN user the broker knows.
    pub username: String,
    /// Its password.
    pub password: String,
}

impl SecureListener {
    /// The librdkafka properties a client needs to connect: `security.protocol`, `sasl.*`, `ssl.ca.location`.
    pub fn client_properties(&self) -> Vec<(&'static str, String)> {
        vec![
            ("security.protocol", "SASL_SSL".to_string()),
            ("sasl.mechanisms", "PLAIN".to_string()),
            ("sasl.username", self.username.clone()),
            ("sasl.password", self.password.clone()),
            ("ssl.ca.location", self.ca_location.display().to_string()),
        ]
    }
}

/// The launcher script shared with people: `deploy/local/kafka.sh`.
fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/kafka.sh")
}

fn path_str(path: &std::path::Path) -> Result<&str, TestkitError> {
    path.to_str().ok_or_else(|| TestkitError::Io(std::io::Error::other(format!("not UTF-8: {}", path.display()))))
}

/// Runs the JDK's `keytool` (beside `java`, as the broker needs Java anyway).
fn keytool(args: &[&str]) -> Result<(), TestkitError> {
    let program = std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin/keytool"))
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("keytool"));
    let output = Command::new(&program).args(args).output().map_err(|e| TestkitError::BrokerStart {
        command: format!("{} {}", program.display(), args.join(" ")),
        message: format!("{e} (keytool comes with the JDK that runs the broker)"),
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(TestkitError::BrokerStart {
        command: format!("keytool {}", args.first().copied().unwrap_or_default()),
        message: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// A tool installed once per content of its pinned manifest: `~/.cache/permitflow/<name>-<hash of
/// manifest>`, made by `install` unless `ready` already holds, one installer at a time (tests run in
/// parallel).
fn install_once(
    name: &str,
    manifest: &str,
    ready: impl Fn(&Path) -> bool,
    install: impl FnOnce(&Path) -> Result<(), TestkitError>,
) -> Result<PathBuf, TestkitError> {
    use sha2::{Digest, Sha256};
    let hash = hex::encode(Sha256::digest(manifest.as_bytes()));
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = home.join(".cache/permitflow").join(format!("{name}-{}", &hash[..12]));
    if ready(&dir) {
        return Ok(dir);
    }
    std::fs::create_dir_all(dir.parent().unwrap_or(&dir))?;
    let lock = std::fs::File::create(dir.with_extension("lock"))?;
    lock.lock()?;
    if !ready(&dir) {
        install(&dir)?;
    }
    Ok(dir)
}

/// Waits up to a minute for a server process to answer `serving`; the reason it did not, if it exited or
/// never answered.
fn wait_until_serving(child: &mut Child, port: u16, mut serving: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !serving() {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("it exited with {status}"));
        }
        if Instant::now() > deadline {
            return Err(format!("no answer on 127.0.0.1:{port} within 60 s"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// `N` distinct free loopback ports: all listeners are held until every port is known (a port freed and
/// asked for again at once can come back, and a broker's two listeners on one port do not start).
fn free_ports<const N: usize>() -> Result<[u16; N], TestkitError> {
    let listeners = (0..N).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<Result<Vec<_>, _>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

impl KafkaBroker {
    /// Starts a broker on free loopback ports and waits until it answers.
    pub fn start() -> Result<KafkaBroker, TestkitError> {
        let dir = tempfile::Builder::new().prefix("permitflow-kafka-").tempdir()?;
        let [port, controller_port] = free_ports()?;
        let broker = KafkaBroker { dir, port, controller_port, secure: None };
        broker.launcher("start")?;
        Ok(broker)
    }

    /// Starts a broker with a second, SASL_SSL listener (see [`SecureListener`]): a self-signed
    /// certificate for 127.0.0.1 made with the JDK's `keytool`, and one SASL/PLAIN user.
    pub fn start_with_sasl_ssl() -> Result<KafkaBroker, TestkitError> {
        let dir = tempfile::Builder::new().prefix("permitflow-kafka-").tempdir()?;
        let [port, controller_port, secure_port] = free_ports()?;
        let keystore = dir.path().join("broker.p12");
        let ca_location = dir.path().join("ca.pem");
        let store_password = "permitflow-test-store";
        keytool(&[
            "-genkeypair",
            "-alias",
            "broker",
            "-keyalg",
            "RSA",
            "-keysize",
            "2048",
            "-validity",
            "7",
            "-dname",
            "CN=localhost",
            "-ext",
            "SAN=ip:127.0.0.1,dns:localhost",
            "-storetype",
            "PKCS12",
            "-keystore",
            path_str(&keystore)?,
            "-storepass",
            store_password,
            "-keypass",
            store_password,
        ])?;
        keytool(&[
            "-exportcert",
            "-rfc",
            "-alias",
            "broker",
            "-keystore",
            path_str(&keystore)?,
            "-storepass",
            store_password,
            "-file",
            path_str(&ca_location)?,
        ])?;
        let secure = SecureListener {
            bootstrap_servers: format!("127.0.0.1:{secure_port}"),
            ca_location,
            username: "permitflow".to_string(),
            password: "permitflow-test-password".to_string(),
        };
        let broker = KafkaBroker { dir, port, controller_port, secure: Some(secure) };
        broker.launcher("start")?;
        Ok(broker)
    }

    /// The SASL_SSL listener, when started with [`KafkaBroker::start_with_sasl_ssl`].
    pub fn secure_listener(&self) -> Option<&SecureListener> {
        self.secure.as_ref()
    }

    /// Broker settings beyond the launcher's defaults.
    fn extra_config(&self) -> String {
        // Larger than the contract's 1 MiB, so that tests can send oversized events.
        let mut config = format!("message.max.bytes={MAX_MESSAGE_BYTES}\n");
        if let Some(secure) = &self.secure {
            let (port, controller) = (self.port, self.controller_port);
            let keystore = self.dir.path().join("broker.p12");
            config.push_str(&format!(
                "listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller},SASL_SSL://{secure}\n\
                 advertised.listeners=PLAINTEXT://127.0.0.1:{port},SASL_SSL://{secure}\n\
                 listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL\n\
                 sasl.enabled.mechanisms=PLAIN\n\
                 listener.name.sasl_ssl.plain.sasl.jaas.config=\
                 org.apache.kafka.common.security.plain.PlainLoginModule required user_{user}=\"{password}\";\n\
                 ssl.keystore.type=PKCS12\n\
                 ssl.keystore.location={keystore}\n\
                 ssl.keystore.password=permitflow-test-store\n\
                 ssl.key.password=permitflow-test-store\n",
                secure = secure.bootstrap_servers,
                user = secure.username,
                password = secure.password,
                keystore = keystore.display(),
            ));
        }
        config
    }

    fn launcher(&self, action: &str) -> Result<(), TestkitError> {
        let output = Command::new("bash")
            .arg(script())
            .arg(action)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", self.controller_port.to_string())
            .env("KAFKA_DIR", self.dir.path())
            .env("KAFKA_HEAP_OPTS", "-Xms128m -Xmx384m")
            .env("KAFKA_EXTRA_CONFIG", self.extra_config())
            .output()?;
        if output.status.success() {
            return Ok(());
        }
        Err(TestkitError::BrokerStart {
            command: format!("deploy/local/kafka.sh {action}"),
            message: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// `bootstrap.servers` of this broker.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker, keeping its data (for outage tests); [`KafkaBroker::restart`] brings it back.
    pub fn stop(&self) -> Result<(), TestkitError> {
        self.launcher("stop")
    }

    /// Starts a stopped broker again on the same port with the same data.
    pub fn restart(&self) -> Result<(), TestkitError> {
        self.launcher("start")
    }

    /// A topic name no other test uses: `<prefix>-<pid>-<counter>`.
    pub fn unique_name(prefix: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst))
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap_servers());
        config
    }

    /// Creates a topic with `partitions` partitions and waits until its metadata is visible.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), TestkitError> {
        let admin: AdminClient<DefaultClientContext> =
            self.config().create().map_err(client_error("creating the admin client"))?;
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let results = runtime
            .block_on(admin.create_topics([&topic], &AdminOptions::new()))
            .map_err(client_error("creating a topic"))?;
        for result in results {
            result.map_err(|(topic, code)| TestkitError::Client {
                context: format!("creating topic {topic}"),
                message: code.to_string(),
            })?;
        }
        let consumer: BaseConsumer = self.config().create().map_err(client_error("creating a consumer"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let metadata = consumer.fetch_metadata(Some(name), Duration::from_secs(5));
            if let Ok(metadata) = metadata
                && metadata.topics().iter().any(|t| t.error().is_none() && t.partitions().len() == partitions as usize)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TestkitError::Client {
                    context: format!("creating topic {name}"),
                    message: "its metadata did not appear within 30 s".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Produces `(key, value)` records and waits until all are acknowledged; the partition follows the key.
    pub fn produce(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = (Option<Vec<u8>>, Vec<u8>)>,
    ) -> Result<u64, TestkitError> {
        let mut config = self.config();
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.max.bytes", MAX_MESSAGE_BYTES.to_string());
        let producer: ThreadedProducer<DefaultProducerContext> =
            config.create().map_err(client_error("creating a producer"))?;
        let mut sent = 0;
        for (key, value) in records {
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(value.as_slice());
            if let Some(key) = &key {
                record = record.key(key.as_slice());
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        back,
                    )) => {
                        record = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => return Err(client_error("producing")(e)),
                }
            }
            sent += 1;
        }
        producer.flush(Duration::from_secs(60)).map_err(client_error("waiting for acknowledgements"))?;
        Ok(sent)
    }

    /// Every message of a topic, partition by partition, read up to the high watermarks.
    pub fn read_all(&self, topic: &str) -> Result<Vec<OwnedMessage>, TestkitError> {
        let mut config = self.config();
        config.set("group.id", KafkaBroker::unique_name("reader")).set("enable.auto.commit", "false");
        let consumer: BaseConsumer = config.create().map_err(client_error("creating a reader"))?;
        let metadata =
            consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).map_err(client_error("reading metadata"))?;
        let mut tpl = TopicPartitionList::new();
        let mut remaining = 0;
        for t in metadata.topics() {
            for p in t.partitions() {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                    .map_err(client_error("reading watermarks"))?;
                remaining += high - low;
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning).map_err(client_error("assigning"))?;
            }
        }
        consumer.assign(&tpl).map_err(client_error("assigning"))?;
        let mut messages = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while remaining > 0 {
            if Instant::now() > deadline {
                return Err(TestkitError::Client {
                    context: format!("reading {topic}"),
                    message: format!("{remaining} messages below the high watermarks did not arrive within 60 s"),
                });
            }
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                messages.push(message.map_err(client_error("reading"))?.detach());
                remaining -= 1;
            }
        }
        Ok(messages)
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        if let Err(e) = self.launcher("stop") {
            eprintln!("stopping the Kafka test broker: {e}");
        }
    }
}

/// Sets or clears the immutable attribute of `path` and everything below it (`chattr -R ±i`): even root
/// cannot write it then. Panics when `chattr` is missing or refused (it needs root, CAP_LINUX_IMMUTABLE, on
/// ext4).
pub fn set_immutable(path: &Path, on: bool) {
    let status = Command::new("chattr")
        .args(["-R", if on { "+i" } else { "-i" }])
        .arg(path)
        .status()
        .expect("chattr (e2fsprogs) must be installed");
    assert!(status.success(), "chattr failed: the test needs root (CAP_LINUX_IMMUTABLE) on ext4");
}
