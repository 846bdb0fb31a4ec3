//! Source positions and what a commit records: the ranges of Kafka partitions and NDJSON files a commit
//! covers, the application transactions (`txn`) they become in the Delta log, the files it adds, and the
//! counts.
//!
//! Every source has one Delta application id: `kafka-<topic>-<partition>` (the version is the next offset),
//! `file-<sha256>` (the next line) and `file-<sha256>-bytes` (the next byte; only in `_rejections`). Each
//! table records, in the commit that adds its rows, how far it holds each source of that commit; see the
//! crate documentation for how a flush over several tables is committed and recovered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A Kafka topic-partition.
pub type TopicPartition = (String, i32);

/// A range of a source that a commit covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRange {
    /// Lines of an NDJSON file, identified by its content hash.
    File {
        /// The `source` column of the file's rows (`file:<path>`).
        source: String,
        /// SHA-256 of the whole file content, hex.
        sha256: String,
        /// First byte covered.
        from_byte: u64,
        /// One past the last byte covered.
        to_byte: u64,
        /// Lines (1-based) covered: `from_line..to_line`.
        from_line: u64,
        /// One past the last line covered.
        to_line: u64,
    },
    /// Offsets of one Kafka topic-partition.
    Kafka {
        /// Topic name.
        topic: String,
        /// Partition number.
        partition: i32,
        /// First offset covered: the partition's committed position before this commit.
        from_offset: i64,
        /// One past the last offset covered: the partition's committed position after this commit.
        to_offset: i64,
    },
}

impl SourceRange {
    /// The Delta application id of the source.
    pub fn app_id(&self) -> String {
        match self {
            SourceRange::File { sha256, .. } => file_app_id(sha256),
            SourceRange::Kafka { topic, partition, .. } => kafka_app_id(topic, *partition),
        }
    }

    /// The `source` column of the source's rows.
    pub fn row_source(&self) -> String {
        match self {
            SourceRange::File { source, .. } => source.clone(),
            SourceRange::Kafka { topic, partition, .. } => kafka_row_source(topic, *partition),
        }
    }

    /// The first position covered (offset or line).
    pub fn from(&self) -> i64 {
        match self {
            SourceRange::File { from_line, .. } => *from_line as i64,
            SourceRange::Kafka { from_offset, .. } => *from_offset,
        }
    }

    /// One past the last position covered (offset or line): the version of the source's transaction.
    pub fn to(&self) -> i64 {
        match self {
            SourceRange::File { to_line, .. } => *to_line as i64,
            SourceRange::Kafka { to_offset, .. } => *to_offset,
        }
    }
}

/// The `source` column of a Kafka partition's rows.
pub fn kafka_row_source(topic: &str, partition: i32) -> String {
    format!("kafka:{topic}/{partition}")
}

pub(crate) fn kafka_app_id(topic: &str, partition: i32) -> String {
    format!("kafka-{topic}-{partition}")
}

pub(crate) fn file_app_id(sha256: &str) -> String {
    format!("file-{sha256}")
}

pub(crate) fn file_bytes_app_id(sha256: &str) -> String {
    format!("file-{sha256}-bytes")
}

/// Input counts; `read = accepted + rejected`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Inputs read.
    pub read: u64,
    /// Inputs stored in event tables.
    pub accepted: u64,
    /// Inputs stored in `_rejections`.
    pub rejected: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.read += other.read;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
    }
}

/// How far a file (by content hash) has been committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileProgress {
    /// Bytes committed from the start of the file.
    pub to_byte: u64,
    /// Next line number to read.
    pub to_line: u64,
    /// The `_rejections` version that recorded it.
    pub version: i64,
}

/// A data file of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedFile {
    /// Table name (`applications`, …, or `_rejections`).
    pub table: String,
    /// Path relative to the warehouse root, with `/` separators.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// The first and last UTC event date (`YYYY-MM-DD`) of the rows, for tables with a date column
    /// (`event_date`), from the file's statistics: what the materialiser's calendar and incremental scope
    /// read without opening files.
    pub event_dates: Option<[String; 2]>,
}

/// One commit of one table, as its log entry records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The table.
    pub table: String,
    /// The table version it made.
    pub version: i64,
    /// Data files it added with new rows.
    pub files: Vec<CommittedFile>,
    /// Data files it added with rows other files held before (a compaction's), paths relative to the root.
    pub rewritten: Vec<String>,
    /// Data files it removed, paths relative to the warehouse root.
    pub removes: Vec<String>,
}

/// The version of every table: what a reader read, or what the marts were materialised through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versions(pub BTreeMap<String, i64>);

impl Versions {
    /// A number that grows with every commit to any table (the sum of the versions, counted from 1).
    pub fn total(&self) -> u64 {
        self.0.values().map(|v| (*v + 1).max(0) as u64).sum()
    }
}

impl std::fmt::Display for Versions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let versions: Vec<String> = self.0.iter().map(|(table, v)| format!("{table}@{v}")).collect();
        write!(f, "{}", versions.join(" "))
    }
}

/// A Kafka range that does not continue from the partition's committed position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetConflict {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Where the refused range starts.
    pub from_offset: i64,
    /// The partition's committed position.
    pub committed: i64,
}

impl std::fmt::Display for OffsetConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} from offset {} (committed position {})",
            self.topic, self.partition, self.from_offset, self.committed
        )
    }
}
