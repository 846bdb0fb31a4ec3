//! The commit log: `<warehouse>/_commits/<seq>.json`, one file per commit.
//!
//! A commit names the data files it adds together with the source positions
//! they cover. It becomes durable by an exclusive create (`hard_link` of a
//! fully written, synced temporary file), so two writers can never both win
//! the same sequence number and a reader never sees half a record.
//!
//! When a process holds [`CHECKPOINT_INTERVAL`] commit records it read or made
//! since its log's last checkpoint, its next commit also writes
//! `<seq>.checkpoint.json`: what the log says through that commit (the live
//! files, how far each input file and Kafka partition is committed, the
//! counts), and the process forgets the records it covers. A log is read
//! from its newest checkpoint plus the commits after it, so opening a
//! warehouse and the memory a writer's log takes do not grow with the number
//! of commits ever made (a `permitflow run` flushing every 10 s makes millions
//! a year).
//!
//! The records stay on disk until a compaction prunes the log
//! ([`CommitLog::prune`]): it removes the records and checkpoints more than
//! the retention ([`LOG_RETENTION`] by default) before the newest checkpoint,
//! oldest first, holding the layout lock exclusively. A writer reads the log
//! and appends its record holding the lock shared, and a log that finds its
//! own last record gone reads itself again from the newest checkpoint, so a
//! writer that was idle while others committed never takes a number that was
//! pruned.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::WarehouseError;

/// Version of the commit record format.
pub const COMMIT_FORMAT_VERSION: u32 = 1;
/// Version of a compaction record (one with [`Commit::removes`]); data commits keep version 1, so a
/// warehouse that was never compacted stays readable by earlier permitflow versions.
pub const COMPACTION_FORMAT_VERSION: u32 = 2;
/// Directory of the log inside the warehouse.
pub const COMMITS_DIR: &str = "_commits";
/// A commit writes a checkpoint once its process holds this many commit records since the last one (by
/// default; see [`CommitLog::set_checkpoint_interval`]).
pub const CHECKPOINT_INTERVAL: u64 = 1000;
/// Commit records kept before the newest checkpoint when the log is pruned (by default; see
/// [`CommitLog::set_retention`]): about 11 days of a `permitflow run` committing every 10 s.
pub const LOG_RETENTION: u64 = 100_000;
/// Version of the checkpoint format.
const CHECKPOINT_FORMAT_VERSION: u32 = 1;
const CHECKPOINT_SUFFIX: &str = ".checkpoint.json";

/// A file of the log's directory: a commit record or a checkpoint.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct LogEntry {
    seq: u64,
    checkpoint: bool,
    path: PathBuf,
}

/// The newest checkpoint among `entries`.
fn newest_checkpoint(entries: &[LogEntry]) -> Option<&LogEntry> {
    entries.iter().filter(|e| e.checkpoint).max()
}

/// One atomic addition to the warehouse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commit {
    /// Record format version ([`COMMIT_FORMAT_VERSION`]).
    pub version: u32,
    /// Position in the log, from 1.
    pub seq: u64,
    /// Data files added, paths relative to the warehouse root.
    pub files: Vec<CommittedFile>,
    /// Source positions covered by this commit.
    pub sources: Vec<SourceRange>,
    /// Inputs read, accepted and rejected in this commit.
    pub counts: Counts,
    /// Data files that a compaction replaced by [`Commit::files`] (the same rows), paths relative to the
    /// warehouse root; empty for a commit of new data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removes: Vec<String>,
}

impl Commit {
    /// True for a compaction: it rewrites committed rows into fewer files and adds no data.
    pub fn is_compaction(&self) -> bool {
        !self.removes.is_empty()
    }
}

/// A data file added by a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// (`event_date`): what the materialiser's calendar and incremental scope read without opening files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_dates: Option<[String; 2]>,
}

/// A range of a source that a commit covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceRange {
    /// Lines of an NDJSON file, identified by its content hash.
    File {
        /// Path as given when it was ingested (for people; identity is the hash).
        path: String,
        /// SHA-256 of the whole file content, hex.
        sha256: String,
        /// File size in bytes.
        size: u64,
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

/// A Kafka topic-partition.
pub type TopicPartition = (String, i32);

/// Input counts of a commit; `read = accepted + rejected`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProgress {
    /// Bytes committed from the start of the file.
    pub to_byte: u64,
    /// Next line number to read.
    pub to_line: u64,
    /// File size.
    pub size: u64,
    /// Sequence number of the last commit that covered it.
    pub last_seq: u64,
}

impl FileProgress {
    /// True when every byte of the file is committed.
    pub fn is_complete(&self) -> bool {
        self.to_byte >= self.size
    }
}

/// The log as read from disk.
#[derive(Debug, Default)]
pub struct CommitLog {
    dir: PathBuf,
    /// What the commits before [`CommitLog::commits`] left: the newest checkpoint read or written.
    base: Base,
    commits: Vec<Commit>,
    checkpoint_interval: u64,
    retention: u64,
    files: BTreeMap<String, FileProgress>,
    kafka: BTreeMap<TopicPartition, i64>,
}

/// The state of the log through commit `seq` (nothing when `seq` is 0).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Base {
    seq: u64,
    /// The live files with the sequence number of the commit that added each, in commit order.
    live_files: Vec<(u64, CommittedFile)>,
    counts: Counts,
}

/// `<seq>.checkpoint.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Checkpoint {
    version: u32,
    base: Base,
    /// Per input file content hash, how far it is committed.
    files: BTreeMap<String, FileProgress>,
    /// (topic, partition, committed position).
    kafka: Vec<(String, i32, i64)>,
}

impl CommitLog {
    /// Reads the log in `<root>/_commits`: its newest checkpoint, then every commit after it, in sequence
    /// order.
    pub fn load(root: &Path) -> Result<CommitLog, WarehouseError> {
        let dir = root.join(COMMITS_DIR);
        fs::create_dir_all(&dir).map_err(|e| WarehouseError::io(&dir, e))?;
        CommitLog::read(dir, CHECKPOINT_INTERVAL, LOG_RETENTION)
    }

    fn read(dir: PathBuf, checkpoint_interval: u64, retention: u64) -> Result<CommitLog, WarehouseError> {
        let mut log = CommitLog { dir, checkpoint_interval, retention, ..CommitLog::default() };
        let entries = log.entries()?;
        log.read_newest_checkpoint(&entries)?;
        log.read_new_records()?;
        log.check_no_gap(&entries)?;
        Ok(log)
    }

    /// [`CommitLog::prune`] keeps `records` commit records before the newest checkpoint (0: keeps every
    /// record).
    pub fn set_retention(&mut self, records: u64) {
        self.retention = records;
    }

    /// A commit writes a checkpoint once this log holds `interval` commit records since its last one (0:
    /// never).
    pub fn set_checkpoint_interval(&mut self, interval: u64) {
        self.checkpoint_interval = interval;
    }

    /// The log's files, as listed now.
    fn entries(&self) -> Result<Vec<LogEntry>, WarehouseError> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| WarehouseError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| WarehouseError::io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let (number, checkpoint) = match name.strip_suffix(CHECKPOINT_SUFFIX) {
                Some(number) => (number, true),
                None => match name.strip_suffix(".json") {
                    Some(number) => (number, false),
                    None => continue,
                },
            };
            if let Ok(seq) = number.parse::<u64>() {
                entries.push(LogEntry { seq, checkpoint, path: entry.path() });
            }
        }
        Ok(entries)
    }

    /// Reads the newest checkpoint of `entries` (the log's files as listed).
    fn read_newest_checkpoint(&mut self, entries: &[LogEntry]) -> Result<(), WarehouseError> {
        let newest = |entries: &[LogEntry]| newest_checkpoint(entries).map(|e| (e.seq, e.path.clone()));
        let Some((mut seq, mut path)) = newest(entries) else { return Ok(()) };
        // A prune may remove the checkpoint found between listing and reading it (when a newer one was
        // written meanwhile): list again.
        let mut attempts = 0;
        let text = loop {
            match fs::read_to_string(&path) {
                Ok(text) => break text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 3 => {
                    attempts += 1;
                    let Some(found) = newest(&self.entries()?) else { return Ok(()) };
                    (seq, path) = found;
                }
                Err(e) => return Err(WarehouseError::io(&path, e)),
            }
        };
        // A checkpoint only saves reading the records, which stay on disk: one this version cannot read
        // (another format, or damaged) is passed over, and the next commit writes a new one.
        let checkpoint = match serde_json::from_str::<Checkpoint>(&text) {
            Ok(c) if c.version == CHECKPOINT_FORMAT_VERSION && c.base.seq == seq => c,
            Ok(c) => {
                let message = format!("it says seq {} version {}", c.base.seq, c.version);
                tracing::warn!(path = %path.display(), message, "ignoring a checkpoint; reading the commit records");
                return Ok(());
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring a checkpoint; reading the commit records");
                return Ok(());
            }
        };
        self.files = checkpoint.files;
        self.kafka = checkpoint.kafka.into_iter().map(|(topic, partition, at)| ((topic, partition), at)).collect();
        self.base = checkpoint.base;
        Ok(())
    }

    /// Writes the checkpoint of the log as it is now and forgets the commit records it covers (they stay
    /// on disk; [`CommitLog::commits_since`] reads them back when asked). Written atomically; another
    /// writer may write the same one.
    pub(crate) fn checkpoint(&mut self, writer: &str) -> Result<(), WarehouseError> {
        let base = Base {
            seq: self.last_seq(),
            live_files: self.live_files().into_iter().map(|(seq, f)| (seq, f.clone())).collect(),
            counts: self.counts(),
        };
        let checkpoint = Checkpoint {
            version: CHECKPOINT_FORMAT_VERSION,
            base,
            files: self.files.clone(),
            kafka: self.kafka.iter().map(|((topic, partition), at)| (topic.clone(), *partition, *at)).collect(),
        };
        let final_path = self.dir.join(format!("{:020}{CHECKPOINT_SUFFIX}", checkpoint.base.seq));
        let tmp_path = self.dir.join(format!(".tmp-{writer}-checkpoint-{}", checkpoint.base.seq));
        let text = serde_json::to_vec(&checkpoint).map_err(|e| WarehouseError::CorruptLog {
            path: final_path.clone(),
            message: format!("cannot serialise checkpoint: {e}"),
        })?;
        write_synced(&tmp_path, &text)?;
        fs::rename(&tmp_path, &final_path).map_err(|e| WarehouseError::io(&tmp_path, e))?;
        sync_dir(&self.dir)?;
        self.base = checkpoint.base;
        self.commits.clear();
        Ok(())
    }

    /// Reads the commits other writers appended since this log was read; returns how many.
    ///
    /// Cheap enough to call before every commit: it reads only the files after the last known one. When
    /// the log was pruned past this log's last record (it was read long ago), it is read again from the
    /// newest checkpoint.
    pub fn refresh(&mut self) -> Result<usize, WarehouseError> {
        let last = self.last_seq();
        if last > 0 && !self.dir.join(commit_file_name(last)).exists() {
            tracing::debug!(
                last,
                "the log was pruned past this process's last record; reading it from its newest checkpoint"
            );
            *self = CommitLog::read(self.dir.clone(), self.checkpoint_interval, self.retention)?;
            return Ok(self.last_seq().saturating_sub(last) as usize);
        }
        self.read_new_records()
    }

    fn read_new_records(&mut self) -> Result<usize, WarehouseError> {
        let mut read = 0;
        loop {
            let path = self.dir.join(commit_file_name(self.next_seq()));
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(WarehouseError::io(&path, e)),
            };
            let commit: Commit = serde_json::from_str(&text)
                .map_err(|e| WarehouseError::CorruptLog { path: path.clone(), message: e.to_string() })?;
            let known_version = match commit.version {
                COMMIT_FORMAT_VERSION => !commit.is_compaction(),
                COMPACTION_FORMAT_VERSION => true,
                _ => false,
            };
            if commit.seq != self.next_seq() || !known_version {
                return Err(WarehouseError::CorruptLog {
                    path,
                    message: format!("record says seq {} version {}", commit.seq, commit.version),
                });
            }
            self.index(&commit);
            self.commits.push(commit);
            read += 1;
        }
        Ok(read)
    }

    /// A commit file (of `entries`, the log's files as listed) beyond the first missing number means a
    /// commit was lost.
    fn check_no_gap(&self, entries: &[LogEntry]) -> Result<(), WarehouseError> {
        match entries.iter().find(|e| !e.checkpoint && e.seq > self.next_seq()) {
            Some(entry) => Err(WarehouseError::CorruptLog {
                path: entry.path.clone(),
                message: format!("commit {} is missing before commit {}", self.next_seq(), entry.seq),
            }),
            None => Ok(()),
        }
    }

    /// Removes the commit records more than the retention before the newest checkpoint on disk, and the
    /// checkpoints among them, oldest first; returns how many files it removed. The caller holds the
    /// layout lock exclusively: no writer is then between reading the log and appending to it.
    pub(crate) fn prune(&mut self) -> Result<usize, WarehouseError> {
        let entries = self.entries()?;
        let newest = newest_checkpoint(&entries).map(|e| e.seq);
        let Some(newest) = newest.filter(|_| self.retention > 0) else { return Ok(0) };
        let through = newest.saturating_sub(self.retention);
        let mut doomed: Vec<LogEntry> =
            entries.into_iter().filter(|e| e.seq <= through && !(e.checkpoint && e.seq == newest)).collect();
        doomed.sort();
        for LogEntry { path, .. } in &doomed {
            fs::remove_file(path).map_err(|e| WarehouseError::io(path, e))?;
        }
        if !doomed.is_empty() {
            sync_dir(&self.dir)?;
            tracing::debug!(through, removed = doomed.len(), "pruned the commit log");
        }
        Ok(doomed.len())
    }

    /// Removes temporary records of commits that were never linked into place (they did not happen).
    pub(crate) fn remove_stale_temporaries(&self, is_live: impl Fn(&str) -> bool) -> Result<(), WarehouseError> {
        for entry in fs::read_dir(&self.dir).map_err(|e| WarehouseError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| WarehouseError::io(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(writer) = name.strip_prefix(".tmp-").and_then(|rest| rest.split('-').next())
                && !is_live(writer)
            {
                fs::remove_file(entry.path()).map_err(|e| WarehouseError::io(entry.path(), e))?;
            }
        }
        Ok(())
    }

    fn index(&mut self, commit: &Commit) {
        for source in &commit.sources {
            match source {
                SourceRange::File { sha256, size, to_byte, to_line, .. } => {
                    let progress = self.files.entry(sha256.clone()).or_default();
                    if *to_byte >= progress.to_byte {
                        *progress =
                            FileProgress { to_byte: *to_byte, to_line: *to_line, size: *size, last_seq: commit.seq };
                    }
                }
                SourceRange::Kafka { topic, partition, to_offset, .. } => {
                    let position = self.kafka.entry((topic.clone(), *partition)).or_insert(*to_offset);
                    *position = (*position).max(*to_offset);
                }
            }
        }
    }

    /// The commits after the newest checkpoint (every commit when there is none), oldest first.
    pub fn commits(&self) -> &[Commit] {
        &self.commits
    }

    /// The sequence number of the last commit (0 for an empty log).
    pub fn last_seq(&self) -> u64 {
        self.base.seq + self.commits.len() as u64
    }

    /// Every commit after commit `seq`, oldest first: those before the newest checkpoint read back from
    /// their records; `None` when some of those records were pruned.
    pub fn commits_since(&self, seq: u64) -> Result<Option<Vec<Commit>>, WarehouseError> {
        let mut out = Vec::new();
        for number in seq + 1..=self.base.seq {
            let path = self.dir.join(commit_file_name(number));
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(WarehouseError::io(&path, e)),
            };
            let commit: Commit = serde_json::from_str(&text)
                .map_err(|e| WarehouseError::CorruptLog { path: path.clone(), message: e.to_string() })?;
            out.push(commit);
        }
        out.extend(self.commits.iter().filter(|c| c.seq > seq).cloned());
        Ok(Some(out))
    }

    /// The data files that hold the warehouse's rows now: every committed file no later compaction
    /// replaced, in commit order, each with the sequence number of the commit that added it.
    pub fn live_files(&self) -> Vec<(u64, &CommittedFile)> {
        let mut files: Vec<Option<(u64, &CommittedFile)>> = Vec::new();
        let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (seq, file) in &self.base.live_files {
            index.insert(&file.path, files.len());
            files.push(Some((*seq, file)));
        }
        for commit in &self.commits {
            for path in &commit.removes {
                if let Some(i) = index.remove(path.as_str()) {
                    files[i] = None;
                }
            }
            for file in &commit.files {
                index.insert(&file.path, files.len());
                files.push(Some((commit.seq, file)));
            }
        }
        files.into_iter().flatten().collect()
    }

    /// The sequence number the next commit will get.
    pub fn next_seq(&self) -> u64 {
        self.last_seq() + 1
    }

    /// How far the file with this content hash is committed.
    pub fn file_progress(&self, sha256: &str) -> Option<FileProgress> {
        self.files.get(sha256).copied()
    }

    /// The committed position of a Kafka topic-partition: the next offset to read, if any commit covered it.
    pub fn kafka_position(&self, topic: &str, partition: i32) -> Option<i64> {
        self.kafka.get(&(topic.to_string(), partition)).copied()
    }

    /// Every Kafka topic-partition with its committed position.
    pub fn kafka_positions(&self) -> &BTreeMap<TopicPartition, i64> {
        &self.kafka
    }

    /// Kafka ranges of `sources` that do not start at the partition's committed position: another
    /// writer has committed that data already (a rebalance race), so these must not be committed again.
    pub fn kafka_conflicts(&self, sources: &[SourceRange]) -> Vec<OffsetConflict> {
        sources
            .iter()
            .filter_map(|source| match source {
                SourceRange::Kafka { topic, partition, from_offset, .. } => {
                    match self.kafka_position(topic, *partition) {
                        Some(committed) if committed != *from_offset => Some(OffsetConflict {
                            topic: topic.clone(),
                            partition: *partition,
                            from_offset: *from_offset,
                            committed,
                        }),
                        _ => None,
                    }
                }
                SourceRange::File { .. } => None,
            })
            .collect()
    }

    /// Totals over the whole log.
    pub fn counts(&self) -> Counts {
        let mut total = self.base.counts;
        for commit in &self.commits {
            total += commit.counts;
        }
        total
    }

    /// Writes `commit` as the next record; fails with [`WarehouseError::CommitConflict`] if another writer took the number.
    pub(crate) fn append(&mut self, commit: Commit, writer: &str) -> Result<(), WarehouseError> {
        let final_path = self.dir.join(commit_file_name(commit.seq));
        let tmp_path = self.dir.join(format!(".tmp-{writer}-{}", commit.seq));
        let text = serde_json::to_vec_pretty(&commit).map_err(|e| WarehouseError::CorruptLog {
            path: final_path.clone(),
            message: format!("cannot serialise commit: {e}"),
        })?;
        write_synced(&tmp_path, &text)?;
        let linked = fs::hard_link(&tmp_path, &final_path);
        fs::remove_file(&tmp_path).map_err(|e| WarehouseError::io(&tmp_path, e))?;
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(WarehouseError::CommitConflict { seq: commit.seq });
            }
            Err(e) => return Err(WarehouseError::io(&final_path, e)),
        }
        sync_dir(&self.dir)?;
        self.index(&commit);
        self.commits.push(commit);
        Ok(())
    }

    /// Writes a checkpoint when this log holds the checkpoint interval of records since its last one; a
    /// failure is logged (the log is then read from its records) and retried after the next commit. Called
    /// by a writer after its commit, outside the layout lock, so that a checkpoint never holds up another
    /// writer or a compaction.
    pub(crate) fn checkpoint_if_due(&mut self, writer: &str) {
        if self.checkpoint_interval > 0
            && self.commits.len() as u64 >= self.checkpoint_interval
            && let Err(error) = self.checkpoint(writer)
        {
            tracing::warn!(seq = self.last_seq(), %error, "cannot write the log checkpoint; the log is read from its records");
        }
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
    /// The partition's committed position in the log.
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

fn commit_file_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

/// Writes a new file and makes its content durable.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), WarehouseError> {
    let mut file = fs::File::create(path).map_err(|e| WarehouseError::io(path, e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| WarehouseError::io(path, e))
}

/// Makes a directory's entries (renames, new files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), WarehouseError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| WarehouseError::io(dir, e))
}
