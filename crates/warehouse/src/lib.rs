//! The warehouse: the event tables and `_rejections` as Delta Lake tables, and the marts directory, on local
//! disk or an object store (`s3://`, `gs://`, `az://`; the `store` module, through which every object is
//! read and written).
//!
//! This crate owns the layout and its consistency; it does not decide *when* to flush (the pipeline does)
//! and does not compute indicators (the metrics crate does). It has one write path and one read path:
//!
//! - **Writing** is two steps, as in delta-rs and kafka-delta-ingest. [`Warehouse::stage_events`] and
//!   [`Warehouse::stage_rejections`] write Parquet files (permitflow's own encoding: rows sorted by
//!   `occurred_at`, zstd, page statistics, on every core) that no snapshot names yet; [`Warehouse::commit`]
//!   then commits them to each table's Delta log as add actions with their statistics, together with an
//!   application transaction (`txn`) per source position (see the `positions` module).
//! - **Reading** goes through Delta snapshots: [`Warehouse::files`] (the materialiser's file list),
//!   [`Warehouse::commits_since`] (its incremental scope) and [`register_tables`] (`permitflow query` and
//!   the SQL of the models). Nothing lists directories.
//!
//! # A flush over several tables
//! A commit covers source ranges (Kafka partitions, NDJSON lines) whose rows land in several tables, and
//! Delta commits one table at a time. `_rejections` is the coordinator: its transactions are the positions
//! the sources resume from, and it is committed last.
//!
//! 1. The coordinator's positions are read: a Kafka range that does not start at its partition's position
//!    is refused ([`WarehouseError::OffsetConflict`]) before anything is committed.
//! 2. Each event table with rows is committed with its files and, for every source of the flush, a `txn`
//!    to the end of the range. The commit is made on the snapshot the table's positions were read from when
//!    its files were staged, so a writer that committed the same source in between makes it fail with
//!    Delta's conflict detection ([`WarehouseError::SourceConflict`]), never both succeed.
//! 3. The coordinator is committed with the rejections and the positions.
//!
//! A crash (or conflict) between the tables' commits leaves some tables ahead of the coordinator. The
//! sources are then read again from the coordinator's position, and staging a table's rows drops those
//! below that table's own position: every table holds each source's rows exactly once, as a prefix up to
//! its `txn`. Files written for a commit that never happened are in no snapshot; `vacuum` removes them.
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
//! pending.add_source(SourceRange::File {
//!     source: "file:x.ndjson".into(), sha256: "00".into(),
//!     from_byte: 0, to_byte: 300, from_line: 1, to_line: 2,
//! }, Counts { read: 1, accepted: 1, rejected: 0 });
//! for batch in decoder.finish()? {
//!     warehouse.stage_events(&mut pending, &[&batch])?;
//! }
//! let commit = warehouse.commit(pending)?;
//!
//! // 01:15 at +02:00 is the previous day in UTC.
//! assert!(commit.files[0].path.starts_with("events/decisions/event_month=2024-02/part-example-"));
//! assert!(dir.path().join("events/decisions/_delta_log/00000000000000000001.json").exists());
//! assert_eq!(warehouse.file_progress("00")?.map(|p| p.to_line), Some(2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod compact;
mod delta;
mod marts;
mod positions;
mod rejections;
mod store;
mod tables;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringBuilder, TimestampMicrosecondArray};
use arrow::compute::interleave_record_batch;
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type, Schema, SchemaRef, TimestampMicrosecondType};
use bytes::Bytes;
use deltalake::DeltaTable;
use deltalake::kernel::{Action, Add};
use deltalake::table::state::DeltaTableState;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use permitflow_schema::{Contract, DecodedBatch, EventSchema, FieldKind, SOURCE_COLUMN, SOURCE_OFFSET_COLUMN};
use rayon::prelude::*;
use tracing::{info_span, warn};

pub use compact::{CompactOptions, CompactionReport};
pub use delta::{TABLE_PROPERTIES, VACUUM_RETENTION_HOURS};
pub use marts::{MART_PARTITION, MART_SCHEMAS_DIR, MartLock};
pub use positions::{
    Commit, CommittedFile, Counts, FileProgress, OffsetConflict, SourceRange, TopicPartition, Versions,
    kafka_row_source,
};
pub use rejections::{REJECTIONS_DIR, REJECTIONS_TABLE, RejectionBuffer, rejections_schema};
pub use store::{Location, OBJECT_STORE_SCHEMES};
pub use tables::{MARTS_DIR, register_tables};

/// Directory of the event tables inside the warehouse.
pub const EVENTS_DIR: &str = "events";
/// Rows per Parquet row group: large enough for scans, small enough to prune.
pub const ROW_GROUP_ROWS: usize = 1 << 20;
/// zstd level of data files (3: the library default, a good size/speed balance).
pub const ZSTD_LEVEL: i32 = 3;
/// The event time every event has: rows are sorted by it within each file, so that the statistics of row
/// groups and pages prune days inside a month partition.
pub const OCCURRED_AT: &str = "occurred_at";
/// The commit log of the warehouses of earlier permitflow versions (before Delta tables).
const OLD_COMMITS_DIR: &str = "_commits";
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Errors of the warehouse; each names the path or table involved.
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
    /// The warehouse location is not one this version can use.
    #[error("warehouse location {location}: {message}")]
    Location {
        /// The location as given.
        location: String,
        /// What is wrong with it.
        message: String,
    },
    /// Reading or writing an object of the warehouse failed.
    #[error(
        "warehouse {location}: reading or writing {object} failed. Check the address, that the bucket exists, and \
         the credentials and endpoint in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, \
         AWS_ENDPOINT_URL, AWS_ALLOW_HTTP for s3://; GOOGLE_* for gs://; AZURE_* for az://), or for a local \
         directory that it is writable and the disk not full. The store said: {source}"
    )]
    Store {
        /// The warehouse.
        location: String,
        /// The object, relative to the warehouse.
        object: String,
        /// The object store's error.
        source: object_store::Error,
    },
    /// Reading or committing a table's Delta log failed.
    #[error("Delta table {table}: {message}")]
    Delta {
        /// The table (or its location).
        table: String,
        /// What failed.
        message: String,
    },
    /// Kafka data another writer has committed already (a rebalance race); nothing was written.
    #[error(
        "refused to commit Kafka offsets another writer has already committed: {}; \
         the partitions are re-read from their committed positions",
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    OffsetConflict(Vec<OffsetConflict>),
    /// Another writer committed rows of the same sources to a table after its positions were read.
    #[error(
        "another writer committed rows of {sources} to table {table} first; the sources are re-read from their \
         committed positions"
    )]
    SourceConflict {
        /// The table.
        table: String,
        /// The application ids of the flush's sources.
        sources: String,
    },
    /// The warehouse was written by a permitflow before Delta tables.
    #[error(
        "{root} holds a warehouse of an earlier permitflow (its own commit log, {OLD_COMMITS_DIR}/), which this \
         version does not read: its tables are Delta tables now. Ingest the source files (or replay the topics) \
         into a new warehouse directory, then remove this one"
    )]
    OldLayout {
        /// The warehouse directory.
        root: PathBuf,
    },
    /// A file a snapshot names is gone.
    #[error(
        "warehouse {location}: {path} is named by the table's Delta log but is gone: a compaction replaced it \
         and `vacuum` removed it after this process read the log (run the command again), or it was removed \
         by hand (restore it)"
    )]
    Missing {
        /// The warehouse.
        location: String,
        /// The file, relative to the warehouse.
        path: String,
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

    pub(crate) fn store(location: &Location, object: &str, source: object_store::Error) -> Self {
        WarehouseError::Store { location: location.to_string(), object: object.to_string(), source }
    }

    pub(crate) fn delta(table: &str, error: deltalake::DeltaTableError) -> Self {
        WarehouseError::Delta { table: table.to_string(), message: error.to_string() }
    }
}

/// One table of the warehouse.
#[derive(Debug)]
pub(crate) struct Table {
    /// Its directory, relative to the warehouse root.
    pub(crate) dir: String,
    /// Its Hive partition column, if any.
    pub(crate) partition: Option<String>,
    /// Its date column (first and last values kept per file), if any.
    pub(crate) date_column: Option<String>,
    /// The Delta table, at the version last read.
    pub(crate) delta: DeltaTable,
}

impl Table {
    /// The table's state as last read.
    pub(crate) fn state(&self, name: &str) -> Result<&DeltaTableState, WarehouseError> {
        self.delta.snapshot().map_err(|e| WarehouseError::delta(name, e))
    }
}

/// A table's part of a pending commit: the snapshot its positions were read from, and its staged files.
#[derive(Debug)]
struct Staged {
    state: DeltaTableState,
    /// The table's position of each source of the commit (application id → next offset or line).
    positions: HashMap<String, i64>,
    files: Vec<(CommittedFile, Add)>,
    committed: bool,
}

/// Files and source positions waiting to be committed together.
///
/// Add the sources ([`PendingCommit::add_source`]) before staging rows: staging drops the rows a table
/// holds already. Dropping it without committing removes the files it staged.
#[derive(Debug)]
pub struct PendingCommit {
    stem: String,
    sources: Vec<SourceRange>,
    counts: Counts,
    tables: BTreeMap<String, Staged>,
    files_named: usize,
    /// Where its files are (set when the first table is staged).
    store: Option<store::Store>,
}

impl PendingCommit {
    /// A new pending commit; `stem` starts its file names (derive it from the source position, e.g. file
    /// hash and first line, so that a file says where its rows came from).
    pub fn new(stem: impl Into<String>) -> Self {
        PendingCommit {
            stem: stem.into(),
            sources: Vec::new(),
            counts: Counts::default(),
            tables: BTreeMap::new(),
            files_named: 0,
            store: None,
        }
    }

    /// Records a source range covered by this commit and the inputs counted in it.
    pub fn add_source(&mut self, range: SourceRange, counts: Counts) {
        self.sources.push(range);
        self.counts += counts;
    }

    /// Files staged so far.
    pub fn files(&self) -> impl Iterator<Item = &CommittedFile> {
        self.tables.values().flat_map(|t| t.files.iter().map(|(f, _)| f))
    }

    /// The name of a new file of this commit: unique, so that two writers of the same range never write
    /// the same file.
    fn next_name(&mut self) -> String {
        self.files_named += 1;
        format!("part-{}-{:04}-{}.zstd.parquet", self.stem, self.files_named, uuid::Uuid::new_v4().simple())
    }

    /// The applications ids of the sources, for messages.
    fn source_ids(&self) -> String {
        self.sources.iter().map(SourceRange::app_id).collect::<Vec<_>>().join(", ")
    }
}

impl Drop for PendingCommit {
    fn drop(&mut self) {
        let Some(store) = &self.store else { return };
        for staged in self.tables.values().filter(|t| !t.committed) {
            for (file, _) in &staged.files {
                if let Err(e) = store.delete(&file.path) {
                    warn!(file = %file.path, error = %e, "could not remove a file of an abandoned commit");
                }
            }
        }
    }
}

/// What a commit did.
#[derive(Debug, Clone)]
pub struct FlushCommit {
    /// The coordinator's (`_rejections`) new version.
    pub version: i64,
    /// The files it added, to every table.
    pub files: Vec<CommittedFile>,
    /// The inputs it covered.
    pub counts: Counts,
}

/// A warehouse, opened.
#[derive(Debug)]
pub struct Warehouse {
    store: store::Store,
    contract: Arc<Contract>,
    properties: WriterProperties,
    tables: BTreeMap<String, Table>,
}

impl Warehouse {
    /// Opens the warehouse at `location` (a local directory, created if missing, or an object-store URL),
    /// creating any missing table.
    pub fn open(location: impl Into<Location>) -> Result<Warehouse, WarehouseError> {
        let location = location.into();
        if let Some(root) = location.local_path().filter(|root| root.join(OLD_COMMITS_DIR).is_dir()) {
            return Err(WarehouseError::OldLayout { root: root.to_path_buf() });
        }
        let store = store::Store::open(&location)?;
        let contract = Contract::embedded()?;
        let mut tables = BTreeMap::new();
        for event in contract.events() {
            let dir = format!("{EVENTS_DIR}/{}", event.table);
            let partition = &event.partition.column;
            let mut fields: Vec<FieldRef> = stored_schema(event).fields().iter().cloned().collect();
            fields.push(Arc::new(Field::new(partition, DataType::Utf8, false)));
            let url = store.directory_url(&dir)?;
            let delta = delta::open_or_create(&event.table, url, &Schema::new(fields), Some(partition))?;
            let table = Table {
                dir,
                partition: Some(partition.clone()),
                date_column: event.partition.date_column.clone(),
                delta,
            };
            tables.insert(event.table.clone(), table);
        }
        let url = store.directory_url(REJECTIONS_DIR)?;
        let delta = delta::open_or_create(REJECTIONS_TABLE, url, &rejections_schema(), None)?;
        tables.insert(
            REJECTIONS_TABLE.to_string(),
            Table { dir: REJECTIONS_DIR.to_string(), partition: None, date_column: None, delta },
        );
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(ZSTD_LEVEL)
                    .map_err(|e| WarehouseError::Parquet { path: location.to_string().into(), source: e })?,
            ))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
        for column in unique_columns(&contract) {
            properties = properties.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
        let properties = properties.build();
        Ok(Warehouse { store, contract, properties, tables })
    }

    /// Checks that the warehouse can be written now: writes a small probe object under `_probe/` and
    /// deletes it (a service's start-up and readiness check). The error names the object and what to check.
    pub fn check_writable(&self) -> Result<(), WarehouseError> {
        let probe = format!("_probe/{}", uuid::Uuid::new_v4());
        self.store.put(&probe, bytes::Bytes::from_static(b"permitflow write probe"))?;
        self.store.delete(&probe)
    }

    /// Where the warehouse is.
    pub fn location(&self) -> &Location {
        self.store.location()
    }

    /// The bytes of a committed file (a path of [`Warehouse::files`], relative to the warehouse).
    pub fn read_file(&self, path: &str) -> Result<Bytes, WarehouseError> {
        self.store
            .get(path)?
            .ok_or_else(|| WarehouseError::Missing { location: self.location().to_string(), path: path.to_string() })
    }

    /// The event contract the tables follow.
    pub fn contract(&self) -> &Arc<Contract> {
        &self.contract
    }

    pub(crate) fn table(&self, name: &str) -> Result<&Table, WarehouseError> {
        self.tables
            .get(name)
            .ok_or_else(|| WarehouseError::Delta { table: name.to_string(), message: "no such table".into() })
    }

    /// Reads the commits other writers made to every table since they were last read.
    pub fn refresh(&mut self) -> Result<(), WarehouseError> {
        for (name, table) in &mut self.tables {
            delta::refresh(name, &mut table.delta)?;
        }
        Ok(())
    }

    /// Reads the commits other writers made to `_rejections`, whose transactions are the positions
    /// [`Warehouse::kafka_position`] and [`Warehouse::file_progress`] report (the event tables are read
    /// again by [`Warehouse::refresh`]).
    pub fn refresh_positions(&mut self) -> Result<(), WarehouseError> {
        let table = self.tables.get_mut(REJECTIONS_TABLE).expect("opened with the warehouse");
        delta::refresh(REJECTIONS_TABLE, &mut table.delta)
    }

    /// The version of every table as last read.
    pub fn versions(&self) -> Versions {
        Versions(self.tables.iter().map(|(name, t)| (name.clone(), delta::version(&t.delta))).collect())
    }

    /// The committed position of a Kafka topic-partition: the next offset to read, if any commit covered it
    /// (as last read; see [`Warehouse::refresh`]).
    pub fn kafka_position(&self, topic: &str, partition: i32) -> Result<Option<i64>, WarehouseError> {
        self.coordinator_position(&positions::kafka_app_id(topic, partition))
    }

    /// How far a file (by content hash) is committed, if any commit covered it.
    pub fn file_progress(&self, sha256: &str) -> Result<Option<FileProgress>, WarehouseError> {
        let Some(to_line) = self.coordinator_position(&positions::file_app_id(sha256))? else { return Ok(None) };
        let to_byte = self.coordinator_position(&positions::file_bytes_app_id(sha256))?.unwrap_or(0);
        let version = delta::version(&self.table(REJECTIONS_TABLE)?.delta);
        Ok(Some(FileProgress { to_byte: to_byte as u64, to_line: to_line as u64, version }))
    }

    fn coordinator_position(&self, app_id: &str) -> Result<Option<i64>, WarehouseError> {
        let table = self.table(REJECTIONS_TABLE)?;
        delta::transaction_version(REJECTIONS_TABLE, &table.delta, table.state(REJECTIONS_TABLE)?, app_id)
    }

    /// The data files of every table in the snapshots last read, with their rows and event dates.
    pub fn files(&self) -> Result<Vec<CommittedFile>, WarehouseError> {
        let mut files = Vec::new();
        for (name, table) in &self.tables {
            for file in table.state(name)?.log_data().iter() {
                let stats = file.stats();
                files.push(CommittedFile {
                    table: name.clone(),
                    path: format!("{}/{}", table.dir, file.path()),
                    rows: file.num_records().map_or(0, |n| n as u64),
                    bytes: file.size() as u64,
                    event_dates: table
                        .date_column
                        .as_deref()
                        .and_then(|column| delta::string_bounds(stats.as_deref()?, column)),
                });
            }
        }
        Ok(files)
    }

    /// Inputs the tables hold: rows of the event tables (accepted) and of `_rejections` (rejected).
    pub fn counts(&self) -> Result<Counts, WarehouseError> {
        let mut counts = Counts::default();
        for file in self.files()? {
            match file.table == REJECTIONS_TABLE {
                true => counts.rejected += file.rows,
                false => counts.accepted += file.rows,
            }
        }
        counts.read = counts.accepted + counts.rejected;
        Ok(counts)
    }

    /// Every commit to any table after the versions `since` through the versions last read, each table's
    /// oldest first; `None` when some of their log entries were cleaned up (see [`TABLE_PROPERTIES`]).
    pub fn commits_since(&self, since: &Versions) -> Result<Option<Vec<Commit>>, WarehouseError> {
        let mut commits = Vec::new();
        for (name, table) in &self.tables {
            let from = since.0.get(name).copied().unwrap_or(-1);
            let until = delta::version(&table.delta);
            let Some(entries) = delta::actions_since(name, &table.delta, from, until)? else { return Ok(None) };
            for (version, actions) in entries {
                let mut commit = Commit {
                    table: name.clone(),
                    version,
                    files: Vec::new(),
                    rewritten: Vec::new(),
                    removes: Vec::new(),
                };
                for action in actions {
                    match action {
                        Action::Add(add) if add.data_change => commit.files.push(CommittedFile {
                            table: name.clone(),
                            path: format!("{}/{}", table.dir, add.path),
                            rows: delta::num_records(add.stats.as_deref()).unwrap_or(0),
                            bytes: add.size as u64,
                            event_dates: table
                                .date_column
                                .as_deref()
                                .and_then(|column| delta::string_bounds(add.stats.as_deref()?, column)),
                        }),
                        Action::Add(add) => commit.rewritten.push(format!("{}/{}", table.dir, add.path)),
                        Action::Remove(remove) => commit.removes.push(format!("{}/{}", table.dir, remove.path)),
                        _ => {}
                    }
                }
                commits.push(commit);
            }
        }
        Ok(Some(commits))
    }

    /// The part of `pending` of table `name`: created on first use, from the table's snapshot as last read
    /// (see [`Warehouse::refresh`]; this writer's own commits keep it current) and its position of each
    /// source. A snapshot that misses another writer's commit of the same source makes the commit fail with
    /// a conflict rather than store rows twice, so it is not read again for every flush.
    fn staged<'p>(&mut self, pending: &'p mut PendingCommit, name: &str) -> Result<&'p mut Staged, WarehouseError> {
        if !pending.tables.contains_key(name) {
            let table = self
                .tables
                .get_mut(name)
                .ok_or_else(|| WarehouseError::Delta { table: name.to_string(), message: "no such table".into() })?;
            let state = table.state(name)?.clone();
            let mut positions = HashMap::new();
            for source in &pending.sources {
                let app = source.app_id();
                if let Some(at) = delta::transaction_version(name, &table.delta, &state, &app)? {
                    positions.insert(app, at);
                }
            }
            pending.tables.insert(name.to_string(), Staged { state, positions, files: Vec::new(), committed: false });
            pending.store.get_or_insert_with(|| self.store.clone());
        }
        Ok(pending.tables.get_mut(name).expect("inserted above"))
    }

    /// Writes one event table's rows, decoded in one or more batches (of several Kafka partitions, say), as
    /// one Parquet file per Hive partition, leaving out the rows the table holds already (see the crate
    /// documentation).
    ///
    /// Each file's rows are gathered straight from `parts` (no copy of the whole table first), and the files
    /// are encoded in parallel (one task per partition on rayon's pool): a flush or a file batch spans
    /// many months, and Parquet encoding with zstd is most of the time a commit takes.
    ///
    /// # Panics
    /// If `parts` mixes event tables.
    pub fn stage_events(&mut self, pending: &mut PendingCommit, parts: &[&DecodedBatch]) -> Result<(), WarehouseError> {
        let Some(first) = parts.first() else {
            return Ok(());
        };
        assert!(parts.iter().all(|p| p.event == first.event), "stage_events over one event table only");
        let contract = self.contract.clone();
        let event = &contract.events()[first.event];
        let spec = &event.partition;
        let ranges: Vec<(String, String, i64)> =
            pending.sources.iter().map(|s| (s.row_source(), s.app_id(), s.from())).collect();
        let held = self.staged(pending, &event.table)?.positions.clone();
        // Per part, the table's position of its source when it is past the range's start: the rows below it
        // are in the table already (a flush that committed this table and crashed before the coordinator).
        let skip_below: Vec<Option<i64>> = parts
            .iter()
            .map(|part| {
                let source = first_row_source(&part.batch)?;
                let (_, app, from) = ranges.iter().find(|(row_source, _, _)| *row_source == source)?;
                held.get(app).copied().filter(|at| at > from)
            })
            .collect();
        let mut rows_by_key: BTreeMap<i32, Vec<(usize, usize)>> = BTreeMap::new();
        for (index, part) in parts.iter().enumerate() {
            let offsets =
                part.batch.column_by_name(SOURCE_OFFSET_COLUMN).map(|c| c.as_primitive::<Int64Type>().values().clone());
            for (row, key) in part.partition_keys.iter().enumerate() {
                let held = match (skip_below[index], &offsets) {
                    (Some(below), Some(offsets)) => offsets[row] < below,
                    _ => false,
                };
                if !held {
                    rows_by_key.entry(*key).or_default().push((index, row));
                }
            }
        }
        let table_dir = self.table(&event.table)?.dir.clone();
        // (partition value, file name, the rows of `parts` it holds as (part, row)).
        type FileRows = (String, String, Vec<(usize, usize)>);
        let files: Vec<FileRows> =
            rows_by_key.into_iter().map(|(key, rows)| (spec.value(key), pending.next_name(), rows)).collect();
        let sources: Vec<&RecordBatch> = parts.iter().map(|p| &p.batch).collect();
        let times: Option<Vec<&TimestampMicrosecondArray>> = event.field_index(OCCURRED_AT).map(|column| {
            sources.iter().map(|batch| batch.column(column).as_primitive::<TimestampMicrosecondType>()).collect()
        });
        let written: Vec<Result<(CommittedFile, Add), WarehouseError>> = files
            .into_par_iter()
            .map(|(value, name, mut rows)| {
                if let Some(times) = &times {
                    rows.sort_by_key(|(part, row)| times[*part].value(*row));
                }
                let whole = sources.len() == 1
                    && rows.len() == sources[0].num_rows()
                    && rows.iter().enumerate().all(|(i, (_, row))| i == *row);
                let part = if whole { sources[0].clone() } else { interleave_record_batch(&sources, &rows)? };
                let (stored, event_dates) = stored_batch(event, &part)?;
                let relative = format!("{}={value}/{name}", spec.column);
                self.write_file(&event.table, &table_dir, relative, Some((&spec.column, &value)), &stored, event_dates)
            })
            .collect();
        let staged = self.staged(pending, &event.table)?;
        let mut first_error = None;
        for result in written {
            match result {
                Ok(file) => staged.files.push(file),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Stages rejected inputs (a batch of [`RejectionBuffer::finish`]) into `_rejections`.
    pub fn stage_rejections(&mut self, pending: &mut PendingCommit, batch: &RecordBatch) -> Result<(), WarehouseError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let name = pending.next_name();
        let file = self.write_file(REJECTIONS_TABLE, REJECTIONS_DIR, name, None, batch, None)?;
        self.staged(pending, REJECTIONS_TABLE)?.files.push(file);
        Ok(())
    }

    /// Writes `batch` as the file `relative` of the table in directory `dir`; returns it as it will be
    /// committed, with its add action.
    fn write_file(
        &self,
        table: &str,
        dir: &str,
        relative: String,
        partition: Option<(&str, &str)>,
        batch: &RecordBatch,
        event_dates: Option<[String; 2]>,
    ) -> Result<(CommittedFile, Add), WarehouseError> {
        let path = format!("{dir}/{relative}");
        let encoded = encode_parquet(&path, batch, self.properties.clone())?;
        let bytes = encoded.len() as u64;
        self.store.put(&path, encoded)?;
        let file = CommittedFile { table: table.to_string(), path, rows: batch.num_rows() as u64, bytes, event_dates };
        Ok((file, delta::add_action(relative, partition, bytes, batch)))
    }

    /// Commits the staged files with their source positions: each event table, then `_rejections` (see the
    /// crate documentation).
    ///
    /// A Kafka range that does not start at its partition's committed position is refused with
    /// [`WarehouseError::OffsetConflict`] and nothing is committed; a table another writer committed the
    /// same sources to meanwhile is refused with [`WarehouseError::SourceConflict`]. Either way the
    /// sources are to be read again from their committed positions.
    pub fn commit(&mut self, mut pending: PendingCommit) -> Result<FlushCommit, WarehouseError> {
        let span = info_span!(
            "commit",
            files = pending.files().count(),
            accepted = pending.counts.accepted,
            rejected = pending.counts.rejected
        );
        let _guard = span.enter();
        if pending.files().next().is_some() {
            self.store.sync()?;
        }
        let sources = pending.sources.clone();
        let conflicts: Vec<OffsetConflict> = {
            let coordinator = self.staged(&mut pending, REJECTIONS_TABLE)?;
            sources
                .iter()
                .filter_map(|source| match source {
                    SourceRange::Kafka { topic, partition, from_offset, .. } => {
                        match coordinator.positions.get(&source.app_id()) {
                            Some(committed) if committed != from_offset => Some(OffsetConflict {
                                topic: topic.clone(),
                                partition: *partition,
                                from_offset: *from_offset,
                                committed: *committed,
                            }),
                            _ => None,
                        }
                    }
                    SourceRange::File { .. } => None,
                })
                .collect()
        };
        if !conflicts.is_empty() {
            return Err(WarehouseError::OffsetConflict(conflicts));
        }
        let mut names: Vec<String> = pending.tables.keys().filter(|n| *n != REJECTIONS_TABLE).cloned().collect();
        names.push(REJECTIONS_TABLE.to_string());
        let mut version = -1;
        for name in names {
            if let Some(v) = self.commit_table(&mut pending, &name)? {
                version = v;
            }
        }
        let files = pending.files().cloned().collect();
        Ok(FlushCommit { version, files, counts: pending.counts })
    }

    /// Commits the part of `pending` of table `name` (an event table without files: nothing) on the
    /// snapshot its positions were read from, with a `txn` per source to the end of its range (or the
    /// table's position, when that is further); returns the new version.
    fn commit_table(&mut self, pending: &mut PendingCommit, name: &str) -> Result<Option<i64>, WarehouseError> {
        let source_ids = pending.source_ids();
        let sources = pending.sources.clone();
        let staged = self.staged(pending, name)?;
        if staged.files.is_empty() && name != REJECTIONS_TABLE {
            return Ok(None);
        }
        let mut txns: Vec<(String, i64)> = sources
            .iter()
            .map(|s| {
                let app = s.app_id();
                let at = staged.positions.get(&app).map_or(s.to(), |held| s.to().max(*held));
                (app, at)
            })
            .collect();
        if name == REJECTIONS_TABLE {
            txns.extend(sources.iter().filter_map(|s| match s {
                SourceRange::File { sha256, to_byte, .. } => {
                    Some((positions::file_bytes_app_id(sha256), *to_byte as i64))
                }
                SourceRange::Kafka { .. } => None,
            }));
        }
        let actions = staged.files.iter().map(|(_, add)| Action::Add(add.clone())).collect();
        let table = self.table(name)?;
        let version = match delta::commit(name, &table.delta, &staged.state, actions, &txns, delta::append())? {
            delta::Committed::Version(v, state) => {
                self.tables.get_mut(name).expect("committed to it").delta.state = Some(*state);
                v
            }
            delta::Committed::Conflict => {
                return Err(WarehouseError::SourceConflict { table: name.to_string(), sources: source_ids });
            }
        };
        pending.tables.get_mut(name).expect("staged above").committed = true;
        Ok(Some(version))
    }
}

/// The `source` column of a batch's first row (every row of a decoded batch has the same source).
fn first_row_source(batch: &RecordBatch) -> Option<String> {
    let column = batch.column_by_name(SOURCE_COLUMN)?;
    if column.is_empty() {
        return None;
    }
    let first = arrow::compute::cast(&column.slice(0, 1), &DataType::Utf8).ok()?;
    Some(first.as_string::<i32>().value(0).to_string())
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

/// The columns whose every value differs from the others', which are written without a dictionary: the
/// event ids (UUIDs), the pseudonyms (keyed hashes, random by design) and the position in the source. A
/// dictionary of such a column is as large as the values themselves and only costs time to build (it was
/// 4 % of the Kafka bench's CPU) and to read.
fn unique_columns(contract: &Contract) -> Vec<String> {
    let fields = contract.events().iter().flat_map(|event| &event.fields);
    let mut columns: Vec<String> = fields
        .filter(|field| field.kind == FieldKind::Uuid || field.pseudonymise)
        .map(|field| field.name.clone())
        .chain([SOURCE_OFFSET_COLUMN.to_string()])
        .collect();
    columns.sort_unstable();
    columns.dedup();
    columns
}

/// `batch` as the bytes of a Parquet file (to be written as `path`, named in errors).
fn encode_parquet(path: &str, batch: &RecordBatch, properties: WriterProperties) -> Result<Bytes, WarehouseError> {
    let parquet_err = |source| WarehouseError::Parquet { path: path.into(), source };
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties)).map_err(parquet_err)?;
    writer.write(batch).map_err(parquet_err)?;
    Ok(Bytes::from(writer.into_inner().map_err(parquet_err)?))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use parquet::file::reader::FileReader;
    use permitflow_schema::{Decoder, Position, Pseudonymiser};

    use super::*;

    /// A decision line at `occurred_at`.
    fn decision_at(id: u32, occurred_at: &str) -> String {
        format!(
            r#"{{"event_id":"7b0d3f7e-1c1a-4c53-9a55-{id:012x}","event_type":"decision.made","schema_version":1,"occurred_at":"{occurred_at}","decision_id":"D{id}","application_id":"A{id}","permit_type":"study","outcome":"positive","unit":"U1","automated":false}}"#
        )
    }

    /// An application line.
    fn application(id: u32) -> String {
        format!(
            r#"{{"event_id":"8b0d3f7e-1c1a-4c53-9a55-{id:012x}","event_type":"application.submitted","schema_version":1,"occurred_at":"2024-03-01T09:15:00Z","application_id":"A{id}","applicant_ref":"P{id}","applicant_role":"main","permit_type":"study","channel":"e_service","unit":"U1","fee_eur":100}}"#
        )
    }

    /// A pending commit of Kafka offsets `from..to` of `decisions`/0, one decision and one application per
    /// offset (as a topic of mixed events would carry).
    fn kafka_commit(warehouse: &mut Warehouse, from: i64, to: i64) -> PendingCommit {
        let mut decoder = Decoder::new(warehouse.contract().clone(), Pseudonymiser::development());
        let source = kafka_row_source("decisions", 0);
        for offset in from..to {
            let line = if offset % 2 == 0 {
                decision_at(offset as u32, "2024-03-01T09:15:00Z")
            } else {
                application(offset as u32)
            };
            decoder.decode(line.as_bytes(), Position { source: &source, offset }).expect("valid");
        }
        let mut pending = PendingCommit::new(format!("decisions-0-{from}"));
        let range = SourceRange::Kafka { topic: "decisions".into(), partition: 0, from_offset: from, to_offset: to };
        let n = (to - from) as u64;
        pending.add_source(range, Counts { read: n, accepted: n, rejected: 0 });
        for batch in decoder.finish().expect("finish") {
            warehouse.stage_events(&mut pending, &[&batch]).expect("stage");
        }
        pending
    }

    /// The source offsets table `table` holds, sorted.
    fn offsets(warehouse: &mut Warehouse, table: &str) -> Vec<i64> {
        warehouse.refresh().expect("refresh");
        let mut out = Vec::new();
        for file in warehouse.files().expect("files").iter().filter(|f| f.table == table) {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                warehouse.read_file(&file.path).expect("a committed file"),
            )
            .expect("parquet")
            .build()
            .expect("reader");
            for batch in reader {
                let batch = batch.expect("batch");
                let column = batch.column_by_name(SOURCE_OFFSET_COLUMN).expect("offsets");
                out.extend(column.as_primitive::<Int64Type>().values().iter().copied());
            }
        }
        out.sort_unstable();
        out
    }

    /// Every `.parquet` file under the table directories, committed or not.
    fn files_on_disk(root: &Path) -> usize {
        fn walk(dir: &Path) -> usize {
            fs::read_dir(dir).map_or(0, |entries| {
                entries
                    .flatten()
                    .map(|e| match e.path().is_dir() {
                        true => walk(&e.path()),
                        false => usize::from(e.path().extension().is_some_and(|x| x == "parquet")),
                    })
                    .sum()
            })
        }
        walk(&root.join(EVENTS_DIR)) + walk(&root.join(REJECTIONS_DIR))
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
        warehouse.commit(pending).expect("commit");
        let mut files: Vec<CommittedFile> =
            warehouse.files().expect("files").into_iter().filter(|f| f.table == "decisions").collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(files.len(), 2, "one file per month: {files:?}");
        assert!(files[0].path.starts_with("events/decisions/event_month=2024-03/"), "{}", files[0].path);
        assert!(files[1].path.starts_with("events/decisions/event_month=2024-04/"), "{}", files[1].path);
        let march = fs::File::open(dir.path().join(&files[0].path)).expect("open file");
        let batch = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(march)
            .expect("parquet")
            .build()
            .expect("reader")
            .next()
            .expect("a batch")
            .expect("rows");
        let offsets: Vec<i64> =
            batch.column_by_name(SOURCE_OFFSET_COLUMN).expect("offsets").as_primitive::<Int64Type>().values().to_vec();
        assert_eq!(offsets, [4, 5, 1, 2], "sorted by occurred_at");
        let dates: Vec<&str> =
            batch.column_by_name("event_date").expect("event_date").as_string::<i32>().iter().flatten().collect();
        assert_eq!(dates, ["2024-03-05", "2024-03-20", "2024-03-20", "2024-03-31"]);
        assert_eq!(files[0].event_dates, Some(["2024-03-05".to_string(), "2024-03-31".to_string()]), "from stats");
        assert_eq!(files[1].event_dates, Some(["2024-04-02".to_string(), "2024-04-02".to_string()]));
        assert_eq!((files[0].rows, files[1].rows), (4, 1));
    }

    #[test]
    fn ids_pseudonyms_and_offsets_are_written_without_a_dictionary() {
        let dir = tempfile::tempdir().expect("dir");
        let mut warehouse = Warehouse::open(dir.path()).expect("open");
        let mut decoder = Decoder::new(warehouse.contract().clone(), Pseudonymiser::development());
        for i in 0..100 {
            decoder
                .decode(application(i).as_bytes(), Position { source: "file:x", offset: i64::from(i) })
                .expect("valid");
        }
        let mut pending = PendingCommit::new("dictionaries");
        for batch in decoder.finish().expect("finish") {
            warehouse.stage_events(&mut pending, &[&batch]).expect("stage");
        }
        warehouse.commit(pending).expect("commit");
        let file = warehouse.files().expect("files").into_iter().find(|f| f.table == "applications").expect("a file");
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(
            fs::File::open(dir.path().join(&file.path)).expect("open file"),
        )
        .expect("parquet");
        let row_group = reader.metadata().row_group(0);
        let dictionary = |name: &str| {
            let column = row_group.columns().iter().find(|c| c.column_path().string() == name).expect(name);
            column.dictionary_page_offset().is_some()
        };
        for unique in ["event_id", "applicant_ref", SOURCE_OFFSET_COLUMN] {
            assert!(!dictionary(unique), "{unique} has a dictionary page");
        }
        for repeated in ["permit_type", "unit", "application_id"] {
            assert!(dictionary(repeated), "{repeated} has no dictionary page");
        }
    }

    #[test]
    fn a_warehouse_of_an_earlier_permitflow_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().expect("dir");
        fs::create_dir_all(dir.path().join(OLD_COMMITS_DIR)).expect("an old commit log");
        let error = Warehouse::open(dir.path()).expect_err("an old layout is refused").to_string();
        assert!(error.contains("_commits") && error.contains("Delta") && error.contains("new warehouse"), "{error}");
    }

    #[test]
    fn a_kafka_range_another_writer_committed_first_is_refused_and_its_files_removed() {
        let dir = tempfile::tempdir().expect("dir");
        let mut first = Warehouse::open(dir.path()).expect("open");
        let mut second = Warehouse::open(dir.path()).expect("open again");
        let late = kafka_commit(&mut second, 0, 2);
        let late_files = late.files().count();
        let winner = kafka_commit(&mut first, 0, 2);
        first.commit(winner).expect("first writer wins");
        let committed_files = files_on_disk(dir.path()) - late_files;
        assert_eq!(late_files, 2);
        second.refresh().expect("refresh");
        match second.commit(late) {
            Err(WarehouseError::OffsetConflict(conflicts)) => assert_eq!(conflicts[0].committed, 2),
            other => panic!("expected an offset conflict, got {other:?}"),
        }
        assert_eq!(files_on_disk(dir.path()), committed_files, "the refused commit's files are removed");
        let next = kafka_commit(&mut second, 2, 4);
        second.commit(next).expect("the next range continues");
        assert_eq!(second.kafka_position("decisions", 0).expect("position"), Some(4));
        assert_eq!(offsets(&mut second, "decisions"), [0, 2]);
        assert_eq!(offsets(&mut second, "applications"), [1, 3]);
    }

    #[test]
    fn a_table_committed_by_another_writer_after_its_positions_were_read_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let mut first = Warehouse::open(dir.path()).expect("open");
        let mut second = Warehouse::open(dir.path()).expect("open again");
        // Both stage the same range before either commits (a rebalance race): the coordinator check passes
        // for both, the tables' conflict detection refuses the second.
        let winner = kafka_commit(&mut first, 0, 2);
        let late = kafka_commit(&mut second, 0, 2);
        let mut late = late;
        second.staged(&mut late, REJECTIONS_TABLE).expect("coordinator read before the winner commits");
        first.commit(winner).expect("first writer wins");
        match second.commit(late) {
            Err(WarehouseError::SourceConflict { table, .. }) => assert_eq!(table, "applications"),
            other => panic!("expected a source conflict, got {other:?}"),
        }
        assert_eq!(offsets(&mut second, "decisions"), [0]);
        assert_eq!(offsets(&mut second, "applications"), [1]);
    }

    #[test]
    fn a_flush_interrupted_between_tables_is_read_again_without_storing_a_row_twice() {
        let dir = tempfile::tempdir().expect("dir");
        let mut warehouse = Warehouse::open(dir.path()).expect("open");
        let first = kafka_commit(&mut warehouse, 0, 2);
        warehouse.commit(first).expect("commit");
        // A flush of offsets 2..6 that committed `applications` and died before the other tables.
        let mut interrupted = kafka_commit(&mut warehouse, 2, 6);
        warehouse.commit_table(&mut interrupted, "applications").expect("one table");
        drop(interrupted);
        assert_eq!(warehouse.kafka_position("decisions", 0).expect("position"), Some(2), "the coordinator's");
        assert_eq!(offsets(&mut warehouse, "applications"), [1, 3, 5]);
        assert_eq!(offsets(&mut warehouse, "decisions"), [0]);

        // Read again from the coordinator's position, in other batches: each table keeps its rows once.
        let again = kafka_commit(&mut warehouse, 2, 3);
        warehouse.commit(again).expect("commit");
        let again = kafka_commit(&mut warehouse, 3, 8);
        warehouse.commit(again).expect("commit");
        assert_eq!(offsets(&mut warehouse, "applications"), [1, 3, 5, 7]);
        assert_eq!(offsets(&mut warehouse, "decisions"), [0, 2, 4, 6]);
        assert_eq!(warehouse.kafka_position("decisions", 0).expect("position"), Some(8));
        assert_eq!(warehouse.counts().expect("counts"), Counts { read: 8, accepted: 8, rejected: 0 });
    }

    #[test]
    fn committed_tables_are_delta_tables_with_statistics_and_positions() {
        let dir = tempfile::tempdir().expect("dir");
        let mut warehouse = Warehouse::open(dir.path()).expect("open");
        let pending = kafka_commit(&mut warehouse, 0, 2);
        warehouse.commit(pending).expect("commit");
        let log = fs::read_to_string(dir.path().join("events/decisions/_delta_log/00000000000000000001.json"))
            .expect("the decisions table's first commit");
        let add = log.lines().find(|l| l.contains("\"add\"")).expect("an add action");
        assert!(add.contains("\\\"numRecords\\\":1") && add.contains("\\\"event_date\\\":\\\"2024-03-01\\\""), "{add}");
        assert!(log.contains("\"txn\"") && log.contains("kafka-decisions-0"), "{log}");
        let coordinator = fs::read_to_string(dir.path().join("_rejections/_delta_log/00000000000000000001.json"))
            .expect("the coordinator's commit");
        assert!(coordinator.contains("\"appId\":\"kafka-decisions-0\",\"version\":2"), "{coordinator}");
    }
}
