//! The Parquet warehouse: Hive-partitioned event tables, the `_rejections`
//! table, the marts directory, and the commit log that makes writes atomic
//! and idempotent.
//!
//! This crate owns the on-disk layout and its consistency; it does not decide
//! *when* to flush (the pipeline does) and does not compute indicators (the
//! metrics crate does). Writing is two steps, as in delta-rs: data files are
//! staged as `*.parquet.inprogress` (no reader matches them), then
//! [`Warehouse::commit`] records them in the log together with the source
//! positions they cover and renames them into place. On open, staged files
//! that no commit names are removed and committed ones not yet renamed are
//! finished, so a crash at any point leaves either all of a commit or none.
//! [`Warehouse::compact`] rewrites partitions of many small files as one file each, recorded in the
//! log and swapped in atomically (the `compact` module).
//!
//! ```
//! use permitflow_schema::{Contract, Decoder, Position, Pseudonymiser};
//! use permitflow_warehouse::{Counts, PendingCommit, SourceRange, Warehouse};
//!
//! let dir = tempfile::tempdir()?;
//! let mut warehouse = Warehouse::open(dir.path())?;
//! let mut decoder = Decoder::new(Contract::embedded()?, Pseudonymiser::development());
//! let line = br#"{"event_id":"7b0d3f7e-1c1a-4c53-9a55-2f4c8f0e8a11","event_type":"decision.made",
//!   "schema_version":1,"occurred_at":"2024-03-01T01:15:00+02:00","decision_id":"D1",
//!   "application_id":"A1","permit_type":"study","outcome":"positive","unit":"LUPA-HKI","automated":false}"#;
//! decoder.decode(line, Position { source: "file:x.ndjson", offset: 1 })?;
//!
//! let mut pending = PendingCommit::new("example");
//! for batch in decoder.finish()? {
//!     warehouse.stage_events(&mut pending, &[&batch])?;
//! }
//! pending.add_source(SourceRange::File {
//!     path: "x.ndjson".into(), sha256: "00".into(), size: 300,
//!     from_byte: 0, to_byte: 300, from_line: 1, to_line: 2,
//! }, Counts { read: 1, accepted: 1, rejected: 0 });
//! let commit = warehouse.commit(pending)?;
//!
//! // 01:15 at +02:00 is the previous day in UTC.
//! assert_eq!(commit.files[0].path,
//!     "events/decisions/event_month=2024-02/part-example-0000.parquet");
//! assert!(dir.path().join(&commit.files[0].path).exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod compact;
mod log;
mod marts;
mod rejections;
mod tables;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringBuilder, TimestampMicrosecondArray};
use arrow::compute::interleave_record_batch;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimestampMicrosecondType};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use permitflow_schema::{Contract, DecodedBatch, EventSchema};
use rayon::prelude::*;
use tracing::{debug, info_span, warn};

pub use compact::{COMPACTION_DIR, CompactOptions, CompactionReport, LayoutLock};
pub use log::{
    CHECKPOINT_INTERVAL, COMMITS_DIR, Commit, CommitLog, CommittedFile, Counts, FileProgress, LOG_RETENTION,
    OffsetConflict, SourceRange, TopicPartition,
};
pub use marts::{MART_PARTITION, MART_SCHEMAS_DIR, MartLock};
pub use rejections::{REJECTIONS_DIR, REJECTIONS_TABLE, RejectionBuffer, rejections_schema};
pub use tables::{MARTS_DIR, mart_dir, register_tables};

/// Directory of the event tables inside the warehouse.
pub const EVENTS_DIR: &str = "events";
/// Suffix of a staged, not yet committed data file (`<name>.<writer>.inprogress`).
pub const IN_PROGRESS_SUFFIX: &str = ".inprogress";
/// Directory of the writer lock files: a writer's staged files are only cleaned up once its lock is free.
pub const WRITERS_DIR: &str = "_writers";
/// Rows per Parquet row group: large enough for scans, small enough to prune.
pub const ROW_GROUP_ROWS: usize = 1 << 20;
/// zstd level of data files (3: the library default, a good size/speed balance).
pub const ZSTD_LEVEL: i32 = 3;
/// The event time every event has: rows are sorted by it within each file, so that the statistics of row
/// groups and pages prune days inside a month partition.
pub const OCCURRED_AT: &str = "occurred_at";
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Errors of the warehouse; each names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// A file system operation failed.
    #[error("{path}: {source} (check that the warehouse directory exists, is writable and the disk is not full)")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The commit log cannot be read.
    #[error("commit log {path} is damaged: {message}; restore it from backup or start a new warehouse")]
    CorruptLog {
        /// The damaged record.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Another writer appended a commit with the same sequence number first (retried internally).
    #[error("commit {seq} was taken by another writer; reload the log and retry")]
    CommitConflict {
        /// The contested sequence number.
        seq: u64,
    },
    /// Kafka data another writer has committed already (a rebalance race); nothing was written.
    #[error(
        "refused to commit Kafka offsets another writer has already committed: {}; \
         the partitions are re-read from their committed positions",
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    OffsetConflict(Vec<OffsetConflict>),
    /// The warehouse was written with the day partitions of an earlier permitflow.
    #[error(
        "{root} holds event tables partitioned by day ({example}), the layout of an earlier permitflow; this \
         version partitions them by month (event_month=YYYY-MM). Ingest the source files (or replay the topics) \
         into a new warehouse directory, then remove this one"
    )]
    DayLayout {
        /// The warehouse directory.
        root: PathBuf,
        /// One day-partitioned file.
        example: String,
    },
    /// Writing Parquet failed.
    #[error("writing {path}: {source}")]
    Parquet {
        /// The file being written.
        path: PathBuf,
        /// The Parquet error.
        source: parquet::errors::ParquetError,
    },
    /// An Arrow operation failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// The event contract failed to load.
    #[error(transparent)]
    Schema(#[from] permitflow_schema::SchemaError),
    /// Registering tables with DataFusion failed.
    #[error("registering warehouse tables: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

impl WarehouseError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        WarehouseError::Io { path: path.into(), source }
    }
}

/// Files and source positions waiting to be committed together.
///
/// Dropping it without committing removes the files it staged.
#[derive(Debug)]
pub struct PendingCommit {
    stem: String,
    /// The layout lock, shared, from the first staged file until the commit is renamed into place (so a
    /// compaction never swaps a partition under a write).
    layout: Option<compact::LayoutLock>,
    staged: Vec<(CommittedFile, PathBuf)>,
    sources: Vec<SourceRange>,
    counts: Counts,
}

impl PendingCommit {
    /// A new pending commit; `stem` makes its file names unique and deterministic
    /// (derive it from the source position, e.g. file hash and first line).
    pub fn new(stem: impl Into<String>) -> Self {
        PendingCommit {
            stem: stem.into(),
            layout: None,
            staged: Vec::new(),
            sources: Vec::new(),
            counts: Counts::default(),
        }
    }

    /// Records a source range covered by this commit and the inputs counted in it.
    pub fn add_source(&mut self, range: SourceRange, counts: Counts) {
        self.sources.push(range);
        self.counts += counts;
    }

    /// Files staged so far.
    pub fn files(&self) -> impl Iterator<Item = &CommittedFile> {
        self.staged.iter().map(|(f, _)| f)
    }

    /// The name of the `index`-th file of this commit.
    fn name_at(&self, index: usize) -> String {
        format!("part-{}-{index:04}.parquet", self.stem)
    }
}

impl Drop for PendingCommit {
    fn drop(&mut self) {
        for (_, staged) in self.staged.drain(..) {
            if let Err(e) = fs::remove_file(&staged) {
                warn!(file = %staged.display(), error = %e, "could not remove a staged file of an abandoned commit");
            }
        }
    }
}

/// A warehouse directory, opened and recovered.
#[derive(Debug)]
pub struct Warehouse {
    root: PathBuf,
    log: CommitLog,
    contract: Arc<Contract>,
    properties: WriterProperties,
    /// Taken on the first write, so that reading needs no write access.
    writer: std::sync::OnceLock<WriterLock>,
}

/// This process's writer identity, held as an exclusive lock on `_writers/<id>.lock` while it lives.
#[derive(Debug)]
struct WriterLock {
    id: String,
    path: PathBuf,
    _file: fs::File,
}

impl WriterLock {
    fn acquire(root: &Path) -> Result<WriterLock, WarehouseError> {
        let dir = root.join(WRITERS_DIR);
        fs::create_dir_all(&dir).map_err(|e| WarehouseError::io(&dir, e))?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let id = format!("{:x}{:x}", std::process::id(), nanos);
        let path = dir.join(format!("{id}.lock"));
        let file = fs::File::create(&path).map_err(|e| WarehouseError::io(&path, e))?;
        file.lock().map_err(|e| WarehouseError::io(&path, e))?;
        Ok(WriterLock { id, path, _file: file })
    }

    /// True when the writer `id` is alive (its lock is held), in this process or another.
    fn is_live(root: &Path, id: &str) -> bool {
        let path = root.join(WRITERS_DIR).join(format!("{id}.lock"));
        match fs::File::open(&path) {
            Ok(file) => matches!(file.try_lock(), Err(fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Warehouse {
    /// Opens (creating if needed) the warehouse at `root` and recovers from any interrupted commit.
    pub fn open(root: impl AsRef<Path>) -> Result<Warehouse, WarehouseError> {
        let root = root.as_ref().to_path_buf();
        for dir in [root.join(EVENTS_DIR), root.join(REJECTIONS_DIR), root.join(MARTS_DIR)] {
            fs::create_dir_all(&dir).map_err(|e| WarehouseError::io(&dir, e))?;
        }
        let log = CommitLog::load(&root)?;
        if let Some((_, file)) = log.live_files().into_iter().find(|(_, f)| f.path.contains("/event_date=")) {
            return Err(WarehouseError::DayLayout { root, example: file.path.clone() });
        }
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(ZSTD_LEVEL)
                    .map_err(|e| WarehouseError::Parquet { path: root.clone(), source: e })?,
            ))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = std::sync::OnceLock::new();
        let warehouse = Warehouse { root, log, contract: Contract::embedded()?, properties, writer };
        warehouse.recover()?;
        Ok(warehouse)
    }

    /// This process's writer id, taking the writer lock on first use.
    fn writer_id(&self) -> Result<&str, WarehouseError> {
        if let Some(writer) = self.writer.get() {
            return Ok(&writer.id);
        }
        let writer = WriterLock::acquire(&self.root)?;
        Ok(&self.writer.get_or_init(|| writer).id)
    }

    /// The warehouse directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The commit log as last read.
    pub fn log(&self) -> &CommitLog {
        &self.log
    }

    /// A commit writes a log checkpoint once the log holds `interval` commit records since its last one (0:
    /// never; the default is [`log::CHECKPOINT_INTERVAL`]).
    pub fn set_checkpoint_interval(&mut self, interval: u64) {
        self.log.set_checkpoint_interval(interval);
    }

    /// A compaction prunes the commit log to `records` commit records before its newest checkpoint (0: keeps
    /// every record; the default is [`log::LOG_RETENTION`]). Incremental materialisation needs the records
    /// since the marts' last run; when they are gone, it rebuilds in full.
    pub fn set_log_retention(&mut self, records: u64) {
        self.log.set_retention(records);
    }

    /// Writes the log's checkpoint now, after reading the commits other writers made (see
    /// [`Warehouse::set_checkpoint_interval`] and the `log` module).
    pub fn checkpoint(&mut self) -> Result<(), WarehouseError> {
        self.log.refresh()?;
        let writer = self.writer_id()?.to_string();
        self.log.checkpoint(&writer)
    }

    /// Reads the commits other writers made since the log was last read.
    pub fn refresh_log(&mut self) -> Result<&CommitLog, WarehouseError> {
        self.log.refresh()?;
        Ok(&self.log)
    }

    /// The event contract the tables follow.
    pub fn contract(&self) -> &Arc<Contract> {
        &self.contract
    }

    /// Directory of an event table.
    pub fn table_dir(&self, table: &str) -> PathBuf {
        self.root.join(EVENTS_DIR).join(table)
    }

    /// Finishes committed renames and removes staged files no commit names, of writers that are gone.
    ///
    /// Files staged by a live writer (another process sharing the warehouse) are left alone.
    fn recover(&self) -> Result<(), WarehouseError> {
        self.recover_holding_layout(false)
    }

    /// [`Warehouse::recover`]; `holding_layout`: the caller holds the layout lock exclusively (a compaction).
    fn recover_holding_layout(&self, holding_layout: bool) -> Result<(), WarehouseError> {
        self.recover_compactions(holding_layout)?;
        let committed: std::collections::HashSet<&str> =
            self.log.live_files().into_iter().map(|(_, f)| f.path.as_str()).collect();
        let is_live = |writer: &str| WriterLock::is_live(&self.root, writer);
        self.log.remove_stale_temporaries(is_live)?;
        let mut staged = Vec::new();
        for dir in [self.root.join(EVENTS_DIR), self.root.join(REJECTIONS_DIR), self.root.join(MARTS_DIR)] {
            collect_in_progress(&dir, &mut staged)?;
        }
        for path in staged {
            let name = path.to_string_lossy();
            let Some((final_name, writer)) = name.trim_end_matches(IN_PROGRESS_SUFFIX).rsplit_once('.') else {
                continue;
            };
            if is_live(writer) {
                continue;
            }
            let final_path = PathBuf::from(final_name);
            let relative = relative_path(&self.root, &final_path);
            if committed.contains(relative.as_str()) {
                debug!(file = %relative, "finishing committed file");
                match fs::rename(&path, &final_path) {
                    // Another process recovering the same warehouse finished it first.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    result => result.map_err(|e| WarehouseError::io(&path, e))?,
                }
            } else {
                warn!(file = %path.display(), "removing a file staged by an interrupted, uncommitted write");
                fs::remove_file(&path).map_err(|e| WarehouseError::io(&path, e))?;
            }
        }
        let writers = self.root.join(WRITERS_DIR);
        for entry in fs::read_dir(&writers).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".lock")
                && !is_live(id)
            {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// Writes one event table's rows, decoded in one or more batches (of several Kafka partitions, say), as
    /// one staged Parquet file per Hive partition.
    ///
    /// Each file's rows are gathered straight from `parts` (no copy of the whole table first), and the files
    /// are encoded in parallel (one task per partition on rayon's pool): a flush or a file batch spans
    /// hundreds of days, and Parquet encoding with zstd is most of the time a commit takes.
    ///
    /// # Panics
    /// If `parts` mixes event tables.
    pub fn stage_events(&self, pending: &mut PendingCommit, parts: &[&DecodedBatch]) -> Result<(), WarehouseError> {
        let Some(first) = parts.first() else {
            return Ok(());
        };
        assert!(parts.iter().all(|p| p.event == first.event), "stage_events over one event table only");
        let event = &self.contract.events()[first.event];
        let spec = &event.partition;
        let mut rows_by_key: BTreeMap<i32, Vec<(usize, usize)>> = BTreeMap::new();
        for (index, part) in parts.iter().enumerate() {
            for (row, key) in part.partition_keys.iter().enumerate() {
                rows_by_key.entry(*key).or_default().push((index, row));
            }
        }
        let table_dir = self.table_dir(&event.table);
        let writer = self.writer_id()?;
        self.hold_layout_for(pending)?;
        // (directory, file name, the rows of `parts` it holds as (part, row)).
        type FileRows = (PathBuf, String, Vec<(usize, usize)>);
        let files: Vec<FileRows> = rows_by_key
            .into_iter()
            .enumerate()
            .map(|(i, (key, rows))| {
                (table_dir.join(spec.dir_name(key)), pending.name_at(pending.staged.len() + i), rows)
            })
            .collect();
        let sources: Vec<&RecordBatch> = parts.iter().map(|p| &p.batch).collect();
        let times: Option<Vec<&TimestampMicrosecondArray>> = event.field_index(OCCURRED_AT).map(|column| {
            sources.iter().map(|batch| batch.column(column).as_primitive::<TimestampMicrosecondType>()).collect()
        });
        let written: Vec<Result<(CommittedFile, PathBuf), WarehouseError>> = files
            .into_par_iter()
            .map(|(dir, name, mut rows)| {
                if let Some(times) = &times {
                    rows.sort_by_key(|(part, row)| times[*part].value(*row));
                }
                let whole = sources.len() == 1
                    && rows.len() == sources[0].num_rows()
                    && rows.iter().enumerate().all(|(i, (_, row))| i == *row);
                let part = if whole { sources[0].clone() } else { interleave_record_batch(&sources, &rows)? };
                let (stored, event_dates) = stored_batch(event, &part)?;
                self.write_staged(&event.table, &dir, &name, writer, &stored, event_dates)
            })
            .collect();
        let mut first_error = None;
        for result in written {
            match result {
                Ok(file) => pending.staged.push(file),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Stages rejected inputs (a batch of [`RejectionBuffer::finish`]) into `_rejections`.
    pub fn stage_rejections(&self, pending: &mut PendingCommit, batch: &RecordBatch) -> Result<(), WarehouseError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.hold_layout_for(pending)?;
        let name = pending.name_at(pending.staged.len());
        let file = self.write_staged(
            REJECTIONS_TABLE,
            &self.root.join(REJECTIONS_DIR),
            &name,
            self.writer_id()?,
            batch,
            None,
        )?;
        pending.staged.push(file);
        Ok(())
    }

    /// Takes the layout lock shared for `pending` unless it holds it already.
    fn hold_layout_for(&self, pending: &mut PendingCommit) -> Result<(), WarehouseError> {
        if pending.layout.is_none() {
            pending.layout = Some(self.hold_layout()?);
        }
        Ok(())
    }

    /// Writes `batch` as the staged file of `dir/name`; returns the file as it will be committed and where
    /// it is staged.
    fn write_staged(
        &self,
        table: &str,
        dir: &Path,
        name: &str,
        writer: &str,
        batch: &RecordBatch,
        event_dates: Option<[String; 2]>,
    ) -> Result<(CommittedFile, PathBuf), WarehouseError> {
        fs::create_dir_all(dir).map_err(|e| WarehouseError::io(dir, e))?;
        let final_path = dir.join(name);
        let staged_path = dir.join(format!("{name}.{writer}{IN_PROGRESS_SUFFIX}"));
        let bytes = write_parquet(&staged_path, batch, self.properties.clone())?;
        let file = CommittedFile {
            table: table.to_string(),
            path: relative_path(&self.root, &final_path),
            rows: batch.num_rows() as u64,
            bytes,
            event_dates,
        };
        Ok((file, staged_path))
    }

    /// Records the staged files with their source positions, then makes them visible.
    ///
    /// The log is re-read first, so commits of other writers are seen. A Kafka range that does not start at
    /// its partition's committed position is refused with [`WarehouseError::OffsetConflict`] and nothing is
    /// committed (the staged files are removed): each Kafka offset is committed once, whoever wins a race.
    pub fn commit(&mut self, mut pending: PendingCommit) -> Result<Commit, WarehouseError> {
        let span = info_span!(
            "commit",
            files = pending.staged.len(),
            accepted = pending.counts.accepted,
            rejected = pending.counts.rejected
        );
        let _guard = span.enter();
        let mut dirs: Vec<PathBuf> =
            pending.staged.iter().filter_map(|(_, p)| p.parent().map(Path::to_path_buf)).collect();
        dirs.sort();
        dirs.dedup();
        let staged: Vec<&Path> = pending.staged.iter().map(|(_, p)| p.as_path()).collect();
        sync_durably(&self.root, &staged, &dirs)?;
        // Held from reading the log to appending to it, so that no prune removes records in between.
        self.hold_layout_for(&mut pending)?;
        let writer = self.writer_id()?.to_string();
        let commit = loop {
            self.log.refresh()?;
            let conflicts = self.log.kafka_conflicts(&pending.sources);
            if !conflicts.is_empty() {
                return Err(WarehouseError::OffsetConflict(conflicts));
            }
            let commit = Commit {
                version: log::COMMIT_FORMAT_VERSION,
                seq: self.log.next_seq(),
                files: pending.staged.iter().map(|(f, _)| f.clone()).collect(),
                sources: pending.sources.clone(),
                counts: pending.counts,
                removes: Vec::new(),
            };
            match self.log.append(commit.clone(), &writer) {
                Ok(()) => break commit,
                Err(WarehouseError::CommitConflict { seq }) => {
                    debug!(seq, "sequence number taken by another writer; retrying")
                }
                Err(e) => return Err(e),
            }
        };
        for (file, staged) in std::mem::take(&mut pending.staged) {
            let final_path = self.root.join(&file.path);
            fs::rename(&staged, &final_path).map_err(|e| WarehouseError::io(&staged, e))?;
        }
        sync_durably(&self.root, &[], &dirs)?;
        drop(pending.layout.take());
        self.log.checkpoint_if_due(&writer);
        Ok(commit)
    }
}

/// The schema of an event table's files: the decoded columns without a partition column that is itself a
/// field (`month`, which lives in the path), and with the table's date column (`event_date`) last.
pub fn stored_schema(event: &EventSchema) -> SchemaRef {
    let mut fields: Vec<FieldRef> = stored_columns(event, event.arrow_schema().fields());
    if let Some(column) = &event.partition.date_column {
        fields.push(Arc::new(Field::new(column, DataType::Utf8, false)));
    }
    Arc::new(Schema::new(fields))
}

/// The decoded columns (or their fields) that files hold: all but the partition column when it is also a
/// field.
fn stored_columns<T: Clone>(event: &EventSchema, decoded: &[T]) -> Vec<T> {
    let from = event.partition.from;
    let dropped = (event.fields[from].name == event.partition.column).then_some(from);
    decoded.iter().enumerate().filter(|(i, _)| Some(*i) != dropped).map(|(_, c)| c.clone()).collect()
}

/// Decoded rows, sorted by `occurred_at`, as stored (see [`stored_schema`]), with their first and last event
/// date (see [`CommittedFile::event_dates`]). The date column is the UTC date of the partition's timestamp,
/// formatted once per run of equal days.
fn stored_batch(
    event: &EventSchema,
    batch: &RecordBatch,
) -> Result<(RecordBatch, Option<[String; 2]>), WarehouseError> {
    let mut columns: Vec<ArrayRef> = stored_columns(event, batch.columns());
    let mut event_dates = None;
    if event.partition.date_column.is_some() {
        let times = batch.column(event.partition.from).as_primitive::<TimestampMicrosecondType>();
        let mut dates = StringBuilder::with_capacity(times.len(), times.len() * 10);
        let (mut day, mut text) = (None, String::new());
        for micros in times.iter().flatten() {
            if day != Some(micros.div_euclid(MICROS_PER_DAY)) {
                day = Some(micros.div_euclid(MICROS_PER_DAY));
                text = utc_date(micros);
                event_dates.get_or_insert_with(|| [text.clone(), String::new()]);
            }
            dates.append_value(&text);
        }
        if let Some([_, last]) = &mut event_dates {
            *last = text;
        }
        columns.push(Arc::new(dates.finish()));
    }
    Ok((RecordBatch::try_new(stored_schema(event), columns)?, event_dates))
}

/// The UTC date of a timestamp as `YYYY-MM-DD`.
fn utc_date(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros).map_or_else(String::new, |t| t.format("%Y-%m-%d").to_string())
}

fn write_parquet(path: &Path, batch: &RecordBatch, properties: WriterProperties) -> Result<u64, WarehouseError> {
    let file = fs::File::create(path).map_err(|e| WarehouseError::io(path, e))?;
    let parquet_err = |source| WarehouseError::Parquet { path: path.to_path_buf(), source };
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties)).map_err(parquet_err)?;
    writer.write(batch).map_err(parquet_err)?;
    let file = writer.into_inner().map_err(parquet_err)?;
    let bytes = file.metadata().map_err(|e| WarehouseError::io(path, e))?.len();
    Ok(bytes)
}

/// Makes written files and directory entries under `root` durable. On Linux one `syncfs(2)` covers the
/// whole file system: a commit stages many small files (one per table and month, more from Kafka),
/// and an `fsync` for each file and directory took longer than writing them.
#[cfg(target_os = "linux")]
fn sync_durably(root: &Path, _files: &[&Path], _dirs: &[PathBuf]) -> Result<(), WarehouseError> {
    let dir = fs::File::open(root).map_err(|e| WarehouseError::io(root, e))?;
    rustix::fs::syncfs(&dir).map_err(|e| WarehouseError::io(root, e.into()))
}

/// Makes written files and directory entries durable, one `fsync` each (systems without `syncfs`).
#[cfg(not(target_os = "linux"))]
fn sync_durably(_root: &Path, files: &[&Path], dirs: &[PathBuf]) -> Result<(), WarehouseError> {
    for file in files {
        fs::File::open(file).and_then(|f| f.sync_all()).map_err(|e| WarehouseError::io(file, e))?;
    }
    for dir in dirs {
        log::sync_dir(dir)?;
    }
    Ok(())
}

fn collect_in_progress(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), WarehouseError> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let entry = entry.map_err(|e| WarehouseError::io(dir, e))?;
        let path = entry.path();
        if entry.file_type().map_err(|e| WarehouseError::io(&path, e))?.is_dir() {
            collect_in_progress(&path, out)?;
        } else if path.to_string_lossy().ends_with(IN_PROGRESS_SUFFIX) {
            out.push(path);
        }
    }
    Ok(())
}

pub(crate) fn relative_path(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use permitflow_schema::{Decoder, Position, Pseudonymiser};

    use super::*;

    const DECISION: &[u8] = br#"{"event_id":"7b0d3f7e-1c1a-4c53-9a55-2f4c8f0e8a11","event_type":"decision.made","schema_version":1,"occurred_at":"2024-03-01T09:15:00Z","decision_id":"D1","application_id":"A1","permit_type":"study","outcome":"positive","unit":"U1","automated":false}"#;

    fn kafka_commit(warehouse: &Warehouse, from_offset: i64) -> PendingCommit {
        let mut decoder = Decoder::new(warehouse.contract().clone(), Pseudonymiser::development());
        decoder.decode(DECISION, Position { source: "kafka:decisions/0", offset: from_offset }).expect("valid");
        let mut pending = PendingCommit::new(format!("decisions-0-{from_offset}"));
        for batch in decoder.finish().expect("finish") {
            warehouse.stage_events(&mut pending, &[&batch]).expect("stage");
        }
        let range =
            SourceRange::Kafka { topic: "decisions".into(), partition: 0, from_offset, to_offset: from_offset + 1 };
        pending.add_source(range, Counts { read: 1, accepted: 1, rejected: 0 });
        pending
    }

    fn staged_files(root: &Path) -> Vec<PathBuf> {
        let mut staged = Vec::new();
        collect_in_progress(&root.join(EVENTS_DIR), &mut staged).expect("list");
        staged
    }

    /// A decision line at `occurred_at`.
    fn decision_at(id: u32, occurred_at: &str) -> String {
        format!(
            r#"{{"event_id":"7b0d3f7e-1c1a-4c53-9a55-{id:012x}","event_type":"decision.made","schema_version":1,"occurred_at":"{occurred_at}","decision_id":"D{id}","application_id":"A{id}","permit_type":"study","outcome":"positive","unit":"U1","automated":false}}"#
        )
    }

    #[test]
    fn events_are_stored_by_utc_month_sorted_by_occurred_at_with_their_utc_date() {
        let dir = tempfile::tempdir().expect("dir");
        let mut warehouse = Warehouse::open(dir.path()).expect("open");
        // Out of order, across two UTC months; 00:30 at +02:00 on 1 April is still March in UTC.
        let times = [
            "2024-03-20T08:00:00Z",
            "2024-04-01T00:30:00+02:00",
            "2024-04-02T10:00:00Z",
            "2024-03-05T12:00:00Z",
            "2024-03-20T07:00:00Z",
        ];
        let mut decoder = Decoder::new(warehouse.contract().clone(), Pseudonymiser::development());
        for (i, time) in times.iter().enumerate() {
            let line = decision_at(i as u32, time);
            decoder.decode(line.as_bytes(), Position { source: "file:x", offset: i as i64 + 1 }).expect("valid");
        }
        let mut pending = PendingCommit::new("sorted");
        for batch in decoder.finish().expect("finish") {
            warehouse.stage_events(&mut pending, &[&batch]).expect("stage");
        }
        let commit = warehouse.commit(pending).expect("commit");
        let mut files: Vec<&CommittedFile> = commit.files.iter().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(files.len(), 2, "one file per month: {files:?}");
        assert!(files[0].path.starts_with("events/decisions/event_month=2024-03/"), "{}", files[0].path);
        assert!(files[1].path.starts_with("events/decisions/event_month=2024-04/"), "{}", files[1].path);
        let march = std::fs::File::open(dir.path().join(&files[0].path)).expect("open file");
        let batch = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(march)
            .expect("parquet")
            .build()
            .expect("reader")
            .next()
            .expect("a batch")
            .expect("rows");
        let offsets: Vec<i64> = batch
            .column_by_name("source_offset")
            .expect("offsets")
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec();
        assert_eq!(offsets, [4, 5, 1, 2], "sorted by occurred_at");
        let dates: Vec<&str> =
            batch.column_by_name("event_date").expect("event_date").as_string::<i32>().iter().flatten().collect();
        assert_eq!(dates, ["2024-03-05", "2024-03-20", "2024-03-20", "2024-03-31"]);
        assert_eq!(files[0].event_dates, Some(["2024-03-05".to_string(), "2024-03-31".to_string()]));
        assert_eq!(files[1].event_dates, Some(["2024-04-02".to_string(), "2024-04-02".to_string()]));
    }

    #[test]
    fn a_warehouse_with_day_partitions_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().expect("dir");
        let mut warehouse = Warehouse::open(dir.path()).expect("open");
        let mut commit = warehouse.commit(kafka_commit(&warehouse, 0)).expect("commit");
        drop(warehouse);
        // The record an earlier permitflow wrote: the same commit with a day partition.
        let record = dir.path().join(COMMITS_DIR).join(format!("{:020}.json", commit.seq));
        commit.files[0].path = commit.files[0].path.replace("event_month=2024-03", "event_date=2024-03-01");
        commit.files[0].event_dates = None;
        std::fs::write(&record, serde_json::to_string(&commit).expect("json")).expect("rewrite the record");
        let error = Warehouse::open(dir.path()).expect_err("a day layout is refused").to_string();
        assert!(
            error.contains("event_date=2024-03-01") && error.contains("by month") && error.contains("new warehouse"),
            "{error}"
        );
    }

    #[test]
    fn a_kafka_range_another_writer_committed_first_is_refused_and_its_files_removed() {
        let dir = tempfile::tempdir().expect("dir");
        let mut first = Warehouse::open(dir.path()).expect("open");
        let mut second = Warehouse::open(dir.path()).expect("open again");
        let late = kafka_commit(&second, 0);
        first.commit(kafka_commit(&first, 0)).expect("first writer wins");
        match second.commit(late) {
            Err(WarehouseError::OffsetConflict(conflicts)) => assert_eq!(conflicts[0].committed, 1),
            other => panic!("expected an offset conflict, got {other:?}"),
        }
        assert!(staged_files(dir.path()).is_empty(), "the refused commit's staged files are removed");
        let next = second.commit(kafka_commit(&second, 1)).expect("the next range continues the log");
        assert_eq!(next.seq, 2);
        assert_eq!(second.log().kafka_position("decisions", 0), Some(2));
    }

    #[test]
    fn opening_the_warehouse_leaves_a_live_writers_staged_files_alone() {
        let dir = tempfile::tempdir().expect("dir");
        let writer = Warehouse::open(dir.path()).expect("open");
        let pending = kafka_commit(&writer, 0);
        let _other = Warehouse::open(dir.path()).expect("a second process opens the warehouse");
        assert_eq!(staged_files(dir.path()).len(), 1, "still staged while its writer lives");
        let files: Vec<PathBuf> = staged_files(dir.path());
        std::mem::forget(pending);
        drop(writer);
        let _after = Warehouse::open(dir.path()).expect("reopen after the writer is gone");
        assert!(!files[0].exists(), "a dead writer's uncommitted file is removed");
    }
}
