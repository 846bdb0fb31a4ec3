//! The Kafka run loop: consumer group → decoder → warehouse commits, exactly once.
//!
//! Each assigned partition has its own buffer (a decoder, the rejections and the dead letters of one
//! contiguous offset range). The buffers are flushed when one of them reaches [`FlushConfig::max_rows`],
//! [`FlushConfig::max_bytes`] or [`FlushConfig::max_age_ms`], when all together reach
//! [`FlushConfig::max_buffered_bytes`], when all have reached their ends in `--stop-at-end` mode, and on
//! shutdown.
//! A flush seals every non-empty buffer and hands them, as one commit, to the flush thread, which writes
//! the rows of all partitions in one file per table and month (the files are as few and as large as the
//! buffers allow: file count, not bytes, dominated the cost of a flush), sends the dead letters and waits
//! for their acknowledgement, and commits the files with the offset ranges they cover; the warehouse
//! refuses a range that another instance committed first. Meanwhile the consumer fills the next buffers,
//! which continue at the sealed ranges' ends; it waits when they are due before the flush thread is done
//! (at most one commit in flight). Only after a commit are group offsets committed to Kafka, for lag
//! monitoring. A refused commit drops its partitions' newer buffers and seeks them back to the log's
//! position. On a revocation the commits in flight finish first, then the revoked buffers are dropped and
//! the next owner re-reads them from the log's position.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMicrosecondType;
use permitflow_schema::{DecodedBatch, Decoder, MAX_EVENT_BYTES, Position, Pseudonymiser, Rejection};
use permitflow_source::kafka::{
    DeadLetter, DeadLetterProducer, KafkaConfig, KafkaSource, PartitionEvent, TopicPartition, TopicsConfig,
};
use permitflow_warehouse::{
    Counts, PendingCommit, RejectionBuffer, SourceRange, Warehouse, WarehouseError, kafka_row_source,
};
use serde::{Deserialize, Serialize};
use tracing::{debug, error, info, info_span, warn};

use crate::PipelineError;
use crate::telemetry::{FlushTally, Telemetry};

/// `[flush]`: when buffered Kafka data is written and committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlushConfig {
    /// Messages in one partition's buffer before the buffers are flushed (default 200,000).
    pub max_rows: usize,
    /// Message bytes in one partition's buffer before the buffers are flushed (default 64 MiB).
    pub max_bytes: usize,
    /// Age of the oldest buffered message before the buffers are flushed, also when the partitions are idle
    /// (default 10,000 ms: the warehouse is at most about ten seconds behind).
    pub max_age_ms: u64,
    /// Message bytes buffered over all partitions before everything is flushed (default 192 MiB). The
    /// buffers of one more flush may be in the flush thread meanwhile; consumption waits for it when the next
    /// ones are due. With the defaults the whole process peaked at 349 MiB in the Kafka bench.
    pub max_buffered_bytes: usize,
    /// Longest wait between two attempts when the warehouse or the dead-letter topics cannot be written
    /// (default 30,000 ms; the wait doubles from 500 ms).
    pub max_retry_backoff_ms: u64,
    /// How long dead letters may take to be acknowledged (default 30,000 ms).
    pub dlq_timeout_ms: u64,
}

impl Default for FlushConfig {
    fn default() -> Self {
        FlushConfig {
            max_rows: 200_000,
            max_bytes: 64 << 20,
            max_age_ms: 10_000,
            max_buffered_bytes: 192 << 20,
            max_retry_backoff_ms: 30_000,
            dlq_timeout_ms: 30_000,
        }
    }
}

/// What `run` does besides consuming.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Consume up to the high watermarks seen at start, commit, and return (backfills and tests).
    pub stop_at_end: bool,
}

/// What one run consumed, per partition; `read = accepted + rejected` on every row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    /// Counts committed by this run, per topic-partition.
    pub partitions: BTreeMap<TopicPartition, Counts>,
    /// Commits made by this run.
    pub commits: u64,
    /// Buffers dropped because another instance had committed their range first.
    pub conflicts: u64,
}

/// Wait between polls: bounds how late a timer-driven flush or a shutdown request is noticed.
const POLL: Duration = Duration::from_millis(100);
/// Messages between two readings of the clock for the age and end checks.
const CHECK_EVERY_MESSAGES: u32 = 256;
/// First wait after a failed flush.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Time allowed to read topic metadata and watermarks.
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

struct PartitionBuffer {
    tp: TopicPartition,
    source: String,
    /// First offset of the range: the partition's committed position when the buffer started.
    from_offset: i64,
    /// One past the last offset consumed into this buffer.
    next_offset: i64,
    decoder: Decoder,
    rejections: RejectionBuffer,
    dead_letters: Vec<DeadLetter>,
    counts: Counts,
    rejected_by_rule: BTreeMap<String, u64>,
    bytes: usize,
    started: Option<Instant>,
    /// In `--stop-at-end` mode, the high watermark seen at start of a partition that had messages then.
    /// When every buffer has reached its end, the buffers are due.
    end: Option<i64>,
}

impl PartitionBuffer {
    fn new(tp: &TopicPartition, start: i64, end: Option<i64>, decoder: Decoder) -> Self {
        PartitionBuffer {
            tp: tp.clone(),
            source: kafka_row_source(&tp.0, tp.1),
            from_offset: start,
            next_offset: start,
            decoder,
            rejections: RejectionBuffer::default(),
            dead_letters: Vec::new(),
            counts: Counts::default(),
            rejected_by_rule: BTreeMap::new(),
            bytes: 0,
            started: None,
            end,
        }
    }

    fn is_empty(&self) -> bool {
        self.counts.read == 0
    }

    /// Consumed up to its end (always, for a partition without one).
    fn at_end(&self) -> bool {
        self.end.is_none_or(|end| self.next_offset >= end)
    }
}

/// A partition's buffer turned into what one commit needs.
struct Sealed {
    tp: TopicPartition,
    batches: Vec<DecodedBatch>,
    rejections: arrow::array::RecordBatch,
    dead_letters: Vec<DeadLetter>,
    from_offset: i64,
    to_offset: i64,
    counts: Counts,
    rejected_by_rule: BTreeMap<String, u64>,
}

impl Sealed {
    fn range(&self) -> SourceRange {
        SourceRange::Kafka {
            topic: self.tp.0.clone(),
            partition: self.tp.1,
            from_offset: self.from_offset,
            to_offset: self.to_offset,
        }
    }
}

/// What the flusher thread reports about one commit.
enum Outcome {
    /// The commit is in the warehouse: the counts and the new position of each partition.
    Committed(Vec<(TopicPartition, Counts, i64)>),
    /// Another instance committed one of the ranges first: nothing was committed; these partitions must
    /// start again at the log's position.
    Conflict(Vec<TopicPartition>),
    /// Shutdown was requested while the commit kept failing; it is re-read on the next start.
    Failed(PipelineError),
}

/// Writes and commits sealed buffers on its own thread, one commit at a time and in order, so that the
/// consumer decodes the next buffers while Parquet is encoded.
struct Flusher<'a> {
    warehouse: Arc<Mutex<Warehouse>>,
    dead_letters: DeadLetterProducer,
    flush: &'a FlushConfig,
    telemetry: &'a Telemetry,
}

impl Flusher<'_> {
    fn run(&self, jobs: &Receiver<Vec<Sealed>>, outcomes: &Sender<Outcome>, shutdown: &AtomicBool) {
        for sealed in jobs {
            if outcomes.send(self.commit_with_retry(&sealed, shutdown)).is_err() {
                return;
            }
        }
    }

    /// Commits `sealed`, retrying with back-off while the warehouse or the dead-letter topics cannot be
    /// written (the consumer stops once its next buffers are due).
    fn commit_with_retry(&self, sealed: &[Sealed], shutdown: &AtomicBool) -> Outcome {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let started = Instant::now();
            match self.commit(sealed) {
                Ok(tally) => {
                    self.telemetry.committed(&tally, started.elapsed());
                    return Outcome::Committed(sealed.iter().map(|s| (s.tp.clone(), s.counts, s.to_offset)).collect());
                }
                Err(PipelineError::Warehouse(
                    conflict @ (WarehouseError::OffsetConflict(_) | WarehouseError::SourceConflict { .. }),
                )) => {
                    warn!(%conflict, "another instance committed these ranges first; re-reading from the committed positions");
                    self.telemetry.commit_conflict();
                    return Outcome::Conflict(sealed.iter().map(|s| s.tp.clone()).collect());
                }
                Err(e) if shutdown.load(Ordering::SeqCst) => {
                    error!(error = %e, "shutting down with an uncommitted batch; it is re-read on the next start");
                    self.telemetry.commit_failed(&e.to_string());
                    return Outcome::Failed(e);
                }
                Err(e) => {
                    self.telemetry.commit_failed(&e.to_string());
                    error!(error = %e, retry_in_ms = backoff.as_millis() as u64,
                        "cannot commit; not consuming until it succeeds");
                    sleep_unless(backoff, shutdown);
                    backoff = (backoff * 2).min(Duration::from_millis(self.flush.max_retry_backoff_ms));
                }
            }
        }
    }

    /// Writes, dead-letters and commits one flush; what it committed, for the telemetry.
    fn commit(&self, sealed: &[Sealed]) -> Result<FlushTally, PipelineError> {
        let first = &sealed[0];
        let from_offset = first.from_offset;
        let span =
            info_span!("flush", partitions = sealed.len(), topic = first.tp.0, partition = first.tp.1, from_offset);
        let _guard = span.enter();
        let letters: Vec<DeadLetter> = sealed.iter().flat_map(|s| s.dead_letters.iter().cloned()).collect();
        self.dead_letters.send_all(&letters)?;
        let mut warehouse = lock(&self.warehouse);
        let mut pending = PendingCommit::new(format!("{}-{}-{from_offset}", first.tp.0, first.tp.1));
        let mut by_table: BTreeMap<usize, Vec<&DecodedBatch>> = BTreeMap::new();
        for part in sealed {
            pending.add_source(part.range(), part.counts);
        }
        for part in sealed {
            for batch in &part.batches {
                by_table.entry(batch.event).or_default().push(batch);
            }
            warehouse.stage_rejections(&mut pending, &part.rejections)?;
        }
        for parts in by_table.into_values() {
            warehouse.stage_events(&mut pending, &parts)?;
        }
        let commit = warehouse.commit(pending)?;
        let tally = tally(&warehouse, sealed, &commit, |topic| self.dead_letters.topic_for(topic));
        drop(warehouse);
        for part in sealed {
            debug!(
                topic = part.tp.0,
                partition = part.tp.1,
                from_offset = part.from_offset,
                to_offset = part.to_offset,
                read = part.counts.read,
                accepted = part.counts.accepted,
                rejected = part.counts.rejected,
                "committed"
            );
        }
        info!(
            version = commit.version,
            partitions = sealed.len(),
            files = commit.files.len(),
            read = commit.counts.read,
            rejected = commit.counts.rejected,
            "committed"
        );
        Ok(tally)
    }
}

/// What a committed flush counts for: messages per topic, rows per table, rejections per rule, dead letters
/// per dead-letter topic, files, and the newest event time.
fn tally(
    warehouse: &Warehouse,
    sealed: &[Sealed],
    commit: &permitflow_warehouse::FlushCommit,
    dead_letter_topic: impl Fn(&str) -> String,
) -> FlushTally {
    let mut consumed: BTreeMap<&str, u64> = BTreeMap::new();
    let mut stored: BTreeMap<&str, u64> = BTreeMap::new();
    let mut rejected: BTreeMap<&str, u64> = BTreeMap::new();
    let mut letters: BTreeMap<String, u64> = BTreeMap::new();
    let mut newest_event_us = None;
    let events = warehouse.contract().events();
    for part in sealed {
        *consumed.entry(part.tp.0.as_str()).or_default() += part.counts.read;
        for (rule, n) in &part.rejected_by_rule {
            *rejected.entry(rule.as_str()).or_default() += n;
        }
        if !part.dead_letters.is_empty() {
            *letters.entry(dead_letter_topic(&part.tp.0)).or_default() += part.dead_letters.len() as u64;
        }
        for batch in &part.batches {
            *stored.entry(events[batch.event].table.as_str()).or_default() += batch.batch.num_rows() as u64;
            let occurred = batch
                .batch
                .column_by_name("occurred_at")
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
            if let Some(newest) = occurred.filter(|c| c.null_count() < c.len()).and_then(arrow::compute::max) {
                newest_event_us = newest_event_us.max(Some(newest));
            }
        }
    }
    let owned = |m: BTreeMap<&str, u64>| m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    FlushTally {
        consumed: owned(consumed),
        stored: owned(stored),
        rejected: owned(rejected),
        dead_letters: letters.into_iter().collect(),
        files: commit.files.len() as u64,
        bytes: commit.files.iter().map(|f| f.bytes).sum(),
        newest_event_us,
    }
}

struct Loop<'a> {
    warehouse: Arc<Mutex<Warehouse>>,
    source: &'a KafkaSource,
    pseudonymiser: Pseudonymiser,
    /// Sealed buffers to the flusher; a send waits while it is busy with the commit before (backpressure).
    jobs: Option<SyncSender<Vec<Sealed>>>,
    outcomes: Receiver<Outcome>,
    /// Commits handed to the flusher whose outcome has not been handled yet.
    in_flight: usize,
    buffers: BTreeMap<TopicPartition, PartitionBuffer>,
    /// In `--stop-at-end` mode, the high watermark seen at start of each partition that had messages then.
    ends: BTreeMap<TopicPartition, i64>,
    /// Message bytes in all buffers.
    buffered_bytes: usize,
    report: RunReport,
    telemetry: &'a Telemetry,
}

fn lock(warehouse: &Mutex<Warehouse>) -> MutexGuard<'_, Warehouse> {
    warehouse.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Consumes the configured topics into the warehouse until `shutdown` is set (or, with
/// [`RunOptions::stop_at_end`], until the high watermarks seen at start are committed).
///
/// Shutdown flushes and commits everything buffered before returning. What it does is counted in
/// `telemetry`.
#[allow(clippy::too_many_arguments)]
pub fn run_kafka(
    warehouse: Warehouse,
    kafka: &KafkaConfig,
    topics: &TopicsConfig,
    flush: &FlushConfig,
    pseudonymiser: Pseudonymiser,
    options: RunOptions,
    shutdown: &AtomicBool,
    telemetry: &Telemetry,
) -> Result<RunReport, PipelineError> {
    let warehouse = Arc::new(Mutex::new(warehouse));
    let resume_from = Arc::clone(&warehouse);
    // The tables are read again once per assignment (seven logs to list on an object store), after the
    // instances that gave the partitions up committed.
    let resume = Box::new(move |partitions: &[TopicPartition]| {
        let mut warehouse = lock(&resume_from);
        warehouse.refresh().map_err(|e| e.to_string())?;
        partitions
            .iter()
            .map(|(topic, partition)| warehouse.kafka_position(topic, *partition))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    });
    let names = topics.all();
    let source = KafkaSource::subscribe(kafka, &names, resume)?;
    let flusher = Flusher {
        warehouse: Arc::clone(&warehouse),
        dead_letters: DeadLetterProducer::new(kafka, Duration::from_millis(flush.dlq_timeout_ms))?,
        flush,
        telemetry,
    };
    let targets = if options.stop_at_end {
        let marks = source.watermarks(&names, METADATA_TIMEOUT)?;
        info!(partitions = marks.len(), "consuming up to the high watermarks seen now, then stopping");
        Some(marks)
    } else {
        None
    };
    let (jobs, job_queue) = std::sync::mpsc::sync_channel(0);
    let (outcome_sender, outcomes) = std::sync::mpsc::channel();
    let mut run = Loop {
        warehouse,
        source: &source,
        pseudonymiser,
        jobs: Some(jobs),
        outcomes,
        in_flight: 0,
        buffers: BTreeMap::new(),
        ends: targets
            .iter()
            .flatten()
            .filter(|(_, low, high)| high > low)
            .map(|(tp, _, high)| (tp.clone(), *high))
            .collect(),
        buffered_bytes: 0,
        report: RunReport::default(),
        telemetry,
    };
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("permitflow-flush".into())
            .spawn_scoped(scope, move || flusher.run(&job_queue, &outcome_sender, shutdown))
            .map_err(|_| PipelineError::FlushThread("cannot be started"))?;
        let result = run.consume_until_done(flush, targets.as_deref(), shutdown);
        // Ends the flusher after its last commit (its end closes the outcomes, so no wait outlives it).
        run.jobs = None;
        let finished = run.finish_in_flight();
        result.and(finished)
    })?;
    Ok(run.report)
}

impl Loop<'_> {
    fn consume_until_done(
        &mut self,
        flush: &FlushConfig,
        targets: Option<&[(TopicPartition, i64, i64)]>,
        shutdown: &AtomicBool,
    ) -> Result<(), PipelineError> {
        let max_age = Duration::from_millis(flush.max_age_ms);
        let mut last_check = Instant::now();
        let mut since_check = 0u32;
        loop {
            if shutdown.load(Ordering::SeqCst) {
                info!("shutdown requested: flushing and committing what is buffered");
                self.submit_where(|_| true)?;
                return Ok(());
            }
            let message = self.source.poll(POLL);
            self.apply_events()?;
            let mut due = false;
            match message {
                Some(Ok(message)) => due = self.consume(&message, flush),
                Some(Err(e)) => warn!(error = %e, "Kafka consumer error; retrying"),
                None => since_check = CHECK_EVERY_MESSAGES,
            }
            self.handle_outcomes(false)?;
            // Age and the end of a stop-at-end run are checked a few times a second (the clock is read every
            // few hundred messages, or when none came), not per message.
            since_check += 1;
            let check = since_check >= CHECK_EVERY_MESSAGES && {
                since_check = 0;
                last_check.elapsed() >= POLL
            };
            if due || self.buffered_bytes >= flush.max_buffered_bytes || check {
                let now = Instant::now();
                last_check = now;
                self.report_state();
                let aged = self.buffers.values().any(|b| b.started.is_some_and(|t| now.duration_since(t) >= max_age));
                if due || aged || self.buffered_bytes >= flush.max_buffered_bytes {
                    debug!(total = self.buffered_bytes, "flushing every buffer");
                    self.submit_where(|b| !b.is_empty())?;
                }
                if let Some(targets) = targets
                    && self.in_flight == 0
                    && self.buffers.values().all(PartitionBuffer::is_empty)
                    && self.reached(targets)?
                {
                    info!("every partition is committed up to its high watermark at start; stopping");
                    return Ok(());
                }
            }
        }
    }

    /// Tells the telemetry the loop is alive, what is buffered and assigned, and what the client knows of
    /// the brokers and the lag.
    fn report_state(&self) {
        self.telemetry.heartbeat();
        self.telemetry.buffered(self.buffered_bytes);
        let cluster = self.source.cluster();
        let assigned: Vec<TopicPartition> = self.buffers.keys().cloned().collect();
        let lag: Vec<(&TopicPartition, i64)> = cluster.lag.iter().map(|(tp, lag)| (tp, *lag)).collect();
        self.telemetry.cluster(&assigned, cluster.brokers_up, &lag);
    }

    /// Applies assignment changes: revoked buffers are dropped unwritten, assigned ones start at the log.
    fn apply_events(&mut self) -> Result<(), PipelineError> {
        for event in self.source.take_events() {
            match event {
                PartitionEvent::Revoked(partitions) => {
                    // Commits of the revoked partitions finish first, so the next assignment starts after them.
                    self.finish_in_flight()?;
                    for tp in partitions {
                        if let Some(buffer) = self.buffers.remove(&tp) {
                            self.buffered_bytes -= buffer.bytes;
                            if !buffer.is_empty() {
                                info!(
                                    topic = tp.0,
                                    partition = tp.1,
                                    from_offset = buffer.from_offset,
                                    to_offset = buffer.next_offset,
                                    "revoked: dropping the unflushed buffer; the next owner re-reads it"
                                );
                            }
                        }
                    }
                }
                PartitionEvent::Assigned(partitions) => {
                    for (tp, start) in partitions {
                        let decoder =
                            Decoder::new(lock(&self.warehouse).contract().clone(), self.pseudonymiser.clone());
                        // Nothing stored yet: the range starts at the first message read.
                        let start = start.unwrap_or(-1);
                        let end = self.ends.get(&tp).copied();
                        if let Some(old) =
                            self.buffers.insert(tp.clone(), PartitionBuffer::new(&tp, start, end, decoder))
                        {
                            self.buffered_bytes -= old.bytes;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Buffers one message; true when its partition's buffer is due for a flush.
    fn consume(&mut self, message: &rdkafka::message::BorrowedMessage<'_>, flush: &FlushConfig) -> bool {
        use rdkafka::Message;
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset());
        let Some(buffer) = self.buffers.values_mut().find(|b| b.tp.1 == partition && b.tp.0 == topic) else {
            debug!(topic, partition, offset, "message of a partition not assigned here; ignored");
            return false;
        };
        if buffer.from_offset < 0 {
            buffer.from_offset = offset;
            buffer.next_offset = offset;
        }
        if offset < buffer.next_offset {
            debug!(topic, partition, offset, "already stored; skipped");
            return false;
        }
        let payload = message.payload().unwrap_or_default();
        let position = Position { source: &buffer.source, offset };
        if let Err(rejection) = buffer.decoder.decode(payload, position) {
            record_rejection(buffer, message, &rejection);
            buffer.counts.rejected += 1;
            *buffer.rejected_by_rule.entry(rejection.rule.to_string()).or_default() += 1;
        } else {
            buffer.counts.accepted += 1;
        }
        buffer.counts.read += 1;
        buffer.bytes += payload.len();
        self.buffered_bytes += payload.len();
        buffer.next_offset = offset + 1;
        buffer.started.get_or_insert_with(Instant::now);
        let full = buffer.counts.read as usize >= flush.max_rows || buffer.bytes >= flush.max_bytes;
        // At the end of a stop-at-end run, one flush of every buffer once the last partition gets there, not
        // one as each gets there (which made a commit of small files per partition).
        let reached_end = buffer.end.is_some_and(|end| buffer.next_offset >= end);
        full || (reached_end && self.buffers.values().all(PartitionBuffer::at_end))
    }

    /// Seals the buffers that `due` selects and hands them to the flusher as one commit; waits while the
    /// flusher is busy with the commit before.
    fn submit_where(&mut self, due: impl Fn(&PartitionBuffer) -> bool) -> Result<(), PipelineError> {
        let selected: Vec<TopicPartition> =
            self.buffers.iter().filter(|(_, b)| !b.is_empty() && due(b)).map(|(tp, _)| tp.clone()).collect();
        if selected.is_empty() {
            return Ok(());
        }
        let mut sealed = Vec::with_capacity(selected.len());
        for tp in &selected {
            let buffer = self.buffers.get_mut(tp).expect("selected from the map");
            self.buffered_bytes -= buffer.bytes;
            sealed.push(seal(tp, buffer)?);
        }
        let jobs = self.jobs.as_ref().expect("the flusher runs while consuming");
        let sent = match jobs.try_send(sealed) {
            Ok(()) => Ok(()),
            Err(std::sync::mpsc::TrySendError::Full(sealed)) => {
                self.telemetry.backpressure_pause();
                jobs.send(sealed).map_err(drop)
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Err(()),
        };
        if sent.is_err() {
            // The flusher has ended: its last outcome may say why.
            self.finish_in_flight()?;
            return Err(PipelineError::FlushThread("has stopped"));
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Handles the outcomes of the flusher's commits; with `wait`, until none is in flight.
    fn handle_outcomes(&mut self, wait: bool) -> Result<(), PipelineError> {
        loop {
            let outcome = if wait && self.in_flight > 0 {
                match self.outcomes.recv() {
                    Ok(outcome) => outcome,
                    Err(_) => return Ok(()),
                }
            } else {
                match self.outcomes.try_recv() {
                    Ok(outcome) => outcome,
                    Err(_) => return Ok(()),
                }
            };
            self.in_flight = self.in_flight.saturating_sub(1);
            match outcome {
                Outcome::Committed(partitions) => {
                    let mut positions = Vec::with_capacity(partitions.len());
                    for (tp, counts, position) in partitions {
                        *self.report.partitions.entry(tp.clone()).or_default() += counts;
                        positions.push((tp, position));
                    }
                    self.report.commits += 1;
                    if let Err(e) = self.source.commit_group_offsets(&positions) {
                        warn!(error = %e, "group offsets not committed (they only serve lag monitoring)");
                    }
                }
                Outcome::Conflict(partitions) => {
                    self.report.conflicts += 1;
                    self.rewind(&partitions)?;
                }
                Outcome::Failed(e) => return Err(e),
            }
        }
    }

    /// Waits until every commit handed to the flusher has its outcome handled.
    fn finish_in_flight(&mut self) -> Result<(), PipelineError> {
        self.handle_outcomes(true)
    }

    /// After a refused commit: every partition of it drops what it buffered since and starts again at the
    /// log's position.
    fn rewind(&mut self, partitions: &[TopicPartition]) -> Result<(), PipelineError> {
        let log = {
            let mut warehouse = lock(&self.warehouse);
            warehouse.refresh()?;
            partitions
                .iter()
                .map(|tp| Ok((tp.clone(), warehouse.kafka_position(&tp.0, tp.1)?)))
                .collect::<Result<Vec<_>, WarehouseError>>()?
        };
        for (tp, position) in log {
            if let Some(buffer) = self.buffers.get_mut(&tp) {
                self.buffered_bytes -= buffer.bytes;
                drop(seal(&tp, buffer)?);
                let start = position.unwrap_or(-1);
                buffer.from_offset = start;
                buffer.next_offset = start;
                if let Err(e) = self.source.seek(&tp.0, tp.1, position) {
                    warn!(error = %e, "seek failed; the partition is probably being reassigned");
                }
            }
        }
        Ok(())
    }

    /// True when the log covers every partition up to its target (the high watermark at start).
    fn reached(&self, targets: &[(TopicPartition, i64, i64)]) -> Result<bool, PipelineError> {
        let mut warehouse = lock(&self.warehouse);
        warehouse.refresh_positions()?;
        for ((topic, partition), low, high) in targets {
            if high > low && warehouse.kafka_position(topic, *partition)?.is_none_or(|p| p < *high) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn record_rejection(
    buffer: &mut PartitionBuffer,
    message: &rdkafka::message::BorrowedMessage<'_>,
    rejection: &Rejection,
) {
    use rdkafka::Message;
    let offset = message.offset();
    let received_at_ms = message.timestamp().to_millis().unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    buffer.rejections.push(Position { source: &buffer.source, offset }, received_at_ms * 1000, rejection);
    buffer.dead_letters.push(DeadLetter {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset,
        timestamp_ms: message.timestamp().to_millis(),
        key: message.key().map(<[u8]>::to_vec),
        // An oversized payload is not copied (it would exceed the dead-letter topic's limit too): the
        // original topic, partition and offset headers point at it.
        payload: message.payload().filter(|p| p.len() <= MAX_EVENT_BYTES).map(<[u8]>::to_vec),
        rule: rejection.rule.to_string(),
        field: rejection.field.clone(),
        message: rejection.message.clone(),
    });
}

/// Takes a buffer's content for a commit; the buffer continues at the next offset.
fn seal(tp: &TopicPartition, buffer: &mut PartitionBuffer) -> Result<Sealed, PipelineError> {
    let sealed = Sealed {
        tp: tp.clone(),
        batches: buffer.decoder.finish()?,
        rejections: buffer.rejections.finish().map_err(WarehouseError::from)?,
        dead_letters: std::mem::take(&mut buffer.dead_letters),
        from_offset: buffer.from_offset,
        to_offset: buffer.next_offset,
        counts: buffer.counts,
        rejected_by_rule: std::mem::take(&mut buffer.rejected_by_rule),
    };
    buffer.from_offset = buffer.next_offset;
    buffer.counts = Counts::default();
    buffer.bytes = 0;
    buffer.started = None;
    Ok(sealed)
}

fn sleep_unless(wait: Duration, shutdown: &AtomicBool) {
    let until = Instant::now() + wait;
    while Instant::now() < until && !shutdown.load(Ordering::SeqCst) {
        std::thread::sleep(POLL.min(until - Instant::now()));
    }
}
