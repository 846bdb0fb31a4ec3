//! Kafka: a consumer group over the contract's topics whose every assignment starts where the warehouse says,
//! and a producer of dead letters.
//!
//! The consumer never decides where to start by itself: on every assignment it asks a [`ResumeFn`] (the
//! pipeline answers from the warehouse commit log) and assigns the partitions at those offsets. Group offsets
//! committed to Kafka are only for lag monitoring. The eager rebalance protocol is used, so a revocation
//! always revokes the whole assignment and every assignment is a fresh start from the log.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tracing::{debug, error, info, warn};

use crate::SourceError;

/// A topic and a partition number.
pub type TopicPartition = (String, i32);

/// Answers, once per assignment, where each assigned partition's consumption resumes (in the order given):
/// the next offset to read, or `None` when nothing of it has been stored yet (then it is read from the
/// beginning). An `Err` is a message for the log; the partitions then start from the beginning too and the
/// warehouse's own offset check refuses anything committed twice.
pub type ResumeFn = Box<dyn Fn(&[TopicPartition]) -> Result<Vec<Option<i64>>, String> + Send + Sync>;

/// `[kafka]`: the cluster and the consumer group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers` (default `127.0.0.1:9092`).
    pub bootstrap_servers: String,
    /// Consumer group id (default `permitflow`). Instances with the same id split the partitions.
    pub group_id: String,
    /// Suffix of the dead-letter topic of each topic (default `.dlq`: `applications.dlq`, …). The dead-letter
    /// topics must exist, unless `create_dlq_topics` is set.
    pub dlq_suffix: String,
    /// Create missing dead-letter topics at start-up, as Kafka Connect does (default false: `run` then refuses
    /// to start and names them).
    pub create_dlq_topics: bool,
    /// Partitions of a dead-letter topic permitflow creates (default 1).
    pub dlq_partitions: i32,
    /// Replication factor of a dead-letter topic permitflow creates (default -1: the broker's
    /// `default.replication.factor`).
    pub dlq_replication_factor: i32,
    /// Any further librdkafka property, for the consumer and the dead-letter producer alike
    /// (`security.protocol`, `sasl.mechanism`, `ssl.ca.location`, …). Ones permitflow sets itself
    /// (`enable.auto.commit`, `partition.assignment.strategy`, …) cannot be overridden.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            group_id: "permitflow".into(),
            dlq_suffix: ".dlq".into(),
            create_dlq_topics: false,
            dlq_partitions: 1,
            dlq_replication_factor: -1,
            properties: BTreeMap::new(),
        }
    }
}

/// `[topics]`: the topic of each event stream of the contract (defaults: the contract's names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// `application.submitted` events.
    pub applications: String,
    /// `decision.made` events.
    pub decisions: String,
    /// `appeal.resolved` events.
    pub appeals: String,
    /// `staff.month_reported` events.
    pub staff: String,
    /// `cost.booked` events.
    pub costs: String,
    /// `appointment.booked` events.
    pub appointments: String,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            applications: "applications".into(),
            decisions: "decisions".into(),
            appeals: "appeals".into(),
            staff: "staff".into(),
            costs: "costs".into(),
            appointments: "appointments".into(),
        }
    }
}

impl TopicsConfig {
    /// The six topic names.
    pub fn all(&self) -> [&str; 6] {
        [&self.applications, &self.decisions, &self.appeals, &self.staff, &self.costs, &self.appointments]
    }
}

/// Properties permitflow sets itself; the exactly-once design depends on them.
const FIXED_CONSUMER_PROPERTIES: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    // Eager protocol: every assignment is complete and starts from the warehouse log.
    ("partition.assignment.strategy", "range"),
    // Bounds what librdkafka prefetches per partition, so the backlog never fills memory.
    ("queued.max.messages.kbytes", "16384"),
];

/// Consumer properties permitflow sets unless `[kafka.properties]` sets them.
const DEFAULT_CONSUMER_PROPERTIES: &[(&str, &str)] = &[
    // The consumer queue is small (above), so it fills whenever a flush pauses consumption; librdkafka's
    // default then postpones the next fetch by a whole second, and the queue runs dry after the flush.
    ("fetch.queue.backoff.ms", "10"),
    // Statistics (watermarks, broker states) feed the consumer lag and readiness: every 5 s.
    ("statistics.interval.ms", "5000"),
];

/// What the consumer's client last said about the cluster ([`KafkaSource::cluster`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterView {
    /// False after librdkafka reported every broker down, until a broker is up again.
    pub brokers_up: bool,
    /// Per assigned partition, its high watermark minus the group's committed offset (minus the low
    /// watermark while nothing is committed), from the latest statistics.
    pub lag: BTreeMap<TopicPartition, i64>,
}

/// The brokers' bootstrap list and what to check when they cannot be reached.
fn unreachable(config: &KafkaConfig, what: &str, source: KafkaError) -> SourceError {
    SourceError::Kafka {
        context: format!(
            "{what} from {} (check kafka.bootstrap_servers / PERMITFLOW__KAFKA__BOOTSTRAP_SERVERS, the network, and \
             the TLS/SASL properties in [kafka.properties])",
            config.bootstrap_servers
        ),
        source,
    }
}

/// Start-up check: every topic of `topics` exists, and so does its dead-letter topic. Missing dead-letter
/// topics are created when [`KafkaConfig::create_dlq_topics`] is set; otherwise, as for a missing topic, the
/// error names them and says what to do. Returns the dead-letter topics created.
pub fn check_topics(config: &KafkaConfig, topics: &[&str], timeout: Duration) -> Result<Vec<String>, SourceError> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<DeliveryContext> = client_config(config)?
        .create_with_context(DeliveryContext { failed: AtomicU64::new(0) })
        .map_err(|e| SourceError::kafka("creating the admin client", e))?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, timeout)
        .map_err(|e| unreachable(config, "cannot read the cluster's topics", e))?;
    let exists = |name: &str| metadata.topics().iter().any(|t| t.name() == name && t.error().is_none());
    let missing: Vec<&str> = topics.iter().copied().filter(|t| !exists(t)).collect();
    if !missing.is_empty() {
        return Err(SourceError::Config(format!(
            "topic(s) {} do not exist on {}: create them, or set the [topics] entries \
             (PERMITFLOW__TOPICS__APPLICATIONS=…, …) to the topics the producers write",
            missing.join(", "),
            config.bootstrap_servers
        )));
    }
    let dead_letter: Vec<String> =
        topics.iter().map(|t| format!("{t}{}", config.dlq_suffix)).filter(|t| !exists(t)).collect();
    if dead_letter.is_empty() {
        return Ok(dead_letter);
    }
    if !config.create_dlq_topics {
        return Err(SourceError::Config(format!(
            "dead-letter topic(s) {} do not exist on {}: create them (one partition is enough), or set \
             kafka.create_dlq_topics = true (PERMITFLOW__KAFKA__CREATE_DLQ_TOPICS=true) to let permitflow create \
             them at start-up",
            dead_letter.join(", "),
            config.bootstrap_servers
        )));
    }
    let new: Vec<NewTopic<'_>> = dead_letter
        .iter()
        .map(|t| NewTopic::new(t, config.dlq_partitions, TopicReplication::Fixed(config.dlq_replication_factor)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let results = futures::executor::block_on(admin.create_topics(&new, &options))
        .map_err(|e| unreachable(config, "cannot create the dead-letter topics", e))?;
    for result in results {
        match result {
            Ok(topic) => info!(topic, "created the dead-letter topic"),
            // Another instance created it in the meantime.
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(SourceError::Config(format!(
                    "cannot create the dead-letter topic {topic} on {}: {code}; create it yourself, or check the \
                     client's ACLs (CreateTopics) and kafka.dlq_partitions / kafka.dlq_replication_factor",
                    config.bootstrap_servers
                )));
            }
        }
    }
    Ok(dead_letter)
}

fn client_config(config: &KafkaConfig) -> Result<ClientConfig, SourceError> {
    let mut client = ClientConfig::new();
    for (key, value) in &config.properties {
        if FIXED_CONSUMER_PROPERTIES.iter().any(|(fixed, _)| fixed == key) || key == "group.id" {
            return Err(SourceError::Config(format!(
                "kafka.properties.{key}: set by permitflow itself and cannot be overridden"
            )));
        }
        client.set(key, value);
    }
    client.set("bootstrap.servers", &config.bootstrap_servers);
    Ok(client)
}

/// A change of this consumer's assignment, reported by [`KafkaSource::take_events`].
#[derive(Debug, Clone, PartialEq)]
pub enum PartitionEvent {
    /// Partitions assigned, with the offset each starts at (`None`: from the beginning).
    Assigned(Vec<(TopicPartition, Option<i64>)>),
    /// Partitions taken away: anything buffered for them must be dropped, never written.
    Revoked(Vec<TopicPartition>),
}

struct PositionContext {
    resume: ResumeFn,
    events: Mutex<Vec<PartitionEvent>>,
    cluster: Mutex<ClusterView>,
}

impl PositionContext {
    fn push(&self, event: PartitionEvent) {
        self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(event);
    }

    fn cluster(&self) -> std::sync::MutexGuard<'_, ClusterView> {
        self.cluster.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn forward_log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            error!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Warning => warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => info!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Debug => debug!(target: "librdkafka", facility, "{message}"),
    }
}

fn report_error(error: &KafkaError, reason: &str) {
    warn!(target: "librdkafka", %error, "Kafka: {reason} (librdkafka retries by itself; check that the brokers are reachable)");
}

impl ClientContext for PositionContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown) {
            self.cluster().brokers_up = false;
        }
        report_error(&error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        let brokers_up = statistics.brokers.values().any(|b| b.nodeid >= 0 && b.state == "UP");
        let mut lag = BTreeMap::new();
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || !p.desired || p.hi_offset < 0 {
                    continue;
                }
                let from = if p.committed_offset >= 0 { p.committed_offset } else { p.lo_offset.max(0) };
                lag.insert((topic.clone(), *partition), (p.hi_offset - from).max(0));
            }
        }
        *self.cluster() = ClusterView { brokers_up, lag };
    }
}

impl ConsumerContext for PositionContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let partitions: Vec<TopicPartition> =
                    tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
                let starts = (self.resume)(&partitions).unwrap_or_else(|message| {
                    error!(partitions = ?partitions, "cannot read the committed positions: {message}");
                    vec![None; partitions.len()]
                });
                let assigned: Vec<(TopicPartition, Option<i64>)> = partitions.into_iter().zip(starts).collect();
                for ((topic, partition), start) in &assigned {
                    let offset = start.map_or(Offset::Beginning, Offset::Offset);
                    if let Err(e) = tpl.set_partition_offset(topic, *partition, offset) {
                        error!(topic, partition, error = %e, "cannot set the start offset");
                    }
                }
                info!(partitions = ?assigned, "partitions assigned; resuming at the warehouse's committed positions");
                if let Err(e) = consumer.assign(tpl) {
                    error!(error = %e, "assigning partitions failed");
                }
                self.push(PartitionEvent::Assigned(assigned));
            }
            _ => {
                let revoked: Vec<TopicPartition> =
                    tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
                if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    info!(partitions = ?revoked, "partitions revoked; dropping what is buffered for them");
                } else {
                    warn!(error = ?err, "rebalance error; releasing the assignment");
                }
                self.push(PartitionEvent::Revoked(revoked));
                if let Err(e) = consumer.unassign() {
                    error!(error = %e, "releasing partitions failed");
                }
            }
        }
    }
}

/// A consumer-group member over the contract's topics.
pub struct KafkaSource {
    consumer: BaseConsumer<PositionContext>,
}

impl KafkaSource {
    /// Joins the group and subscribes to `topics`; partitions arrive with the first polls.
    pub fn subscribe(config: &KafkaConfig, topics: &[&str], resume: ResumeFn) -> Result<KafkaSource, SourceError> {
        let mut client = client_config(config)?;
        for (key, value) in FIXED_CONSUMER_PROPERTIES {
            client.set(*key, *value);
        }
        for (key, value) in DEFAULT_CONSUMER_PROPERTIES {
            if !config.properties.contains_key(*key) {
                client.set(*key, *value);
            }
        }
        client.set("group.id", &config.group_id);
        let cluster = Mutex::new(ClusterView { brokers_up: true, lag: BTreeMap::new() });
        let context = PositionContext { resume, events: Mutex::new(Vec::new()), cluster };
        let consumer: BaseConsumer<PositionContext> =
            client.create_with_context(context).map_err(|e| SourceError::kafka("creating the consumer", e))?;
        consumer.subscribe(topics).map_err(|e| SourceError::kafka("subscribing", e))?;
        Ok(KafkaSource { consumer })
    }

    /// The next message, waiting at most `timeout`. Rebalances are served inside this call: read
    /// [`KafkaSource::take_events`] before using the message.
    pub fn poll(&self, timeout: Duration) -> Option<Result<BorrowedMessage<'_>, KafkaError>> {
        self.consumer.poll(timeout)
    }

    /// What the client last said about the brokers and the partitions' lag (statistics every 5 s).
    pub fn cluster(&self) -> ClusterView {
        self.consumer.context().cluster().clone()
    }

    /// Assignment changes since the last call, in order.
    pub fn take_events(&self) -> Vec<PartitionEvent> {
        std::mem::take(&mut *self.consumer.context().events.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Moves an assigned partition back to `offset` (after a refused commit).
    pub fn seek(&self, topic: &str, partition: i32, offset: Option<i64>) -> Result<(), SourceError> {
        let offset = offset.map_or(Offset::Beginning, Offset::Offset);
        self.consumer
            .seek(topic, partition, offset, Duration::from_secs(10))
            .map_err(|e| SourceError::kafka(format!("seeking {topic}/{partition}"), e))
    }

    /// Commits group offsets (for lag monitoring only), asynchronously.
    pub fn commit_group_offsets(&self, positions: &[(TopicPartition, i64)]) -> Result<(), SourceError> {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in positions {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(|e| SourceError::kafka("preparing group offsets", e))?;
        }
        self.consumer.commit(&tpl, CommitMode::Async).map_err(|e| SourceError::kafka("committing group offsets", e))
    }

    /// Low and high watermarks of every partition of `topics`.
    pub fn watermarks(
        &self,
        topics: &[&str],
        timeout: Duration,
    ) -> Result<Vec<(TopicPartition, i64, i64)>, SourceError> {
        let mut out = Vec::new();
        for topic in topics {
            let metadata = self
                .consumer
                .fetch_metadata(Some(topic), timeout)
                .map_err(|e| SourceError::kafka(format!("reading the metadata of topic {topic}"), e))?;
            for t in metadata.topics() {
                if let Some(err) = t.error() {
                    return Err(SourceError::Config(format!(
                        "topic {topic}: {:?}; create it or fix the [topics] section",
                        rdkafka::error::RDKafkaErrorCode::from(err)
                    )));
                }
                for p in t.partitions() {
                    let (low, high) = self
                        .consumer
                        .fetch_watermarks(topic, p.id(), timeout)
                        .map_err(|e| SourceError::kafka(format!("reading the watermarks of {topic}/{}", p.id()), e))?;
                    out.push(((topic.to_string(), p.id()), low, high));
                }
            }
        }
        Ok(out)
    }
}

/// Where a rejected message came from and why it was rejected; sent as headers with the dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Original topic.
    pub topic: String,
    /// Original partition.
    pub partition: i32,
    /// Original offset.
    pub offset: i64,
    /// Original timestamp (ms since the epoch), when the message had one.
    pub timestamp_ms: Option<i64>,
    /// Original key.
    pub key: Option<Vec<u8>>,
    /// Original value, unchanged.
    pub payload: Option<Vec<u8>>,
    /// Rule that failed.
    pub rule: String,
    /// Field the rule is about.
    pub field: Option<String>,
    /// What was wrong.
    pub message: String,
}

/// Header names of dead letters.
pub mod dlq_header {
    /// Rule that failed.
    pub const RULE: &str = "permitflow.rule";
    /// Field the rule is about (absent when none).
    pub const FIELD: &str = "permitflow.field";
    /// What was wrong.
    pub const MESSAGE: &str = "permitflow.message";
    /// Original topic.
    pub const TOPIC: &str = "permitflow.topic";
    /// Original partition, decimal.
    pub const PARTITION: &str = "permitflow.partition";
    /// Original offset, decimal.
    pub const OFFSET: &str = "permitflow.offset";
    /// Original timestamp in ms since the epoch, decimal (absent when none).
    pub const TIMESTAMP: &str = "permitflow.timestamp";
}

struct DeliveryContext {
    failed: AtomicU64,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        report_error(&error, reason);
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            use rdkafka::Message;
            error!(topic = message.topic(), %error, "a dead letter was not delivered; its batch is not committed");
            self.failed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Produces dead letters to `<topic><suffix>` and confirms their delivery.
pub struct DeadLetterProducer {
    producer: ThreadedProducer<DeliveryContext>,
    suffix: String,
    timeout: Duration,
}

impl DeadLetterProducer {
    /// An idempotent producer with `acks=all`; `timeout` bounds [`DeadLetterProducer::send_all`].
    pub fn new(config: &KafkaConfig, timeout: Duration) -> Result<DeadLetterProducer, SourceError> {
        let mut client = client_config(config)?;
        client.set("enable.idempotence", "true").set("acks", "all");
        client.set("message.timeout.ms", timeout.as_millis().to_string());
        let producer = client
            .create_with_context(DeliveryContext { failed: AtomicU64::new(0) })
            .map_err(|e| SourceError::kafka("creating the dead-letter producer", e))?;
        Ok(DeadLetterProducer { producer, suffix: config.dlq_suffix.clone(), timeout })
    }

    /// The dead-letter topic of `topic`.
    pub fn topic_for(&self, topic: &str) -> String {
        format!("{topic}{}", self.suffix)
    }

    /// Sends every letter and waits until all are acknowledged; an error means at least one was not, and
    /// the caller must not commit the offsets they cover.
    pub fn send_all(&self, letters: &[DeadLetter]) -> Result<(), SourceError> {
        if letters.is_empty() {
            return Ok(());
        }
        let failed_before = self.producer.context().failed.load(Ordering::SeqCst);
        for letter in letters {
            let dlq = self.topic_for(&letter.topic);
            let (partition, offset) = (letter.partition.to_string(), letter.offset.to_string());
            let timestamp = letter.timestamp_ms.map(|t| t.to_string());
            let headers = OwnedHeaders::new()
                .insert(Header { key: dlq_header::RULE, value: Some(letter.rule.as_str()) })
                .insert(Header { key: dlq_header::FIELD, value: letter.field.as_deref() })
                .insert(Header { key: dlq_header::MESSAGE, value: Some(letter.message.as_str()) })
                .insert(Header { key: dlq_header::TOPIC, value: Some(letter.topic.as_str()) })
                .insert(Header { key: dlq_header::PARTITION, value: Some(partition.as_str()) })
                .insert(Header { key: dlq_header::OFFSET, value: Some(offset.as_str()) })
                .insert(Header { key: dlq_header::TIMESTAMP, value: timestamp.as_deref() });
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&dlq).headers(headers);
            if let Some(key) = &letter.key {
                record = record.key(key.as_slice());
            }
            if let Some(payload) = &letter.payload {
                record = record.payload(payload.as_slice());
            }
            let mut record = record;
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err((e, _)) => return Err(SourceError::kafka(format!("sending a dead letter to {dlq}"), e)),
                }
            }
        }
        self.producer
            .flush(self.timeout)
            .map_err(|e| SourceError::kafka("waiting for dead-letter acknowledgements", e))?;
        let failed = self.producer.context().failed.load(Ordering::SeqCst) - failed_before;
        if failed > 0 {
            return Err(SourceError::DeadLettersNotDelivered { failed, suffix: self.suffix.clone() });
        }
        Ok(())
    }
}
