//! Compaction: the committed files of a partition rewritten as one file, swapped in atomically.
//!
//! A Kafka flush or an ingest batch writes one file per table and month it touches, so a stream at the
//! agency's real pace (an event a minute or so, a flush every ten seconds) leaves nearly one file per
//! event; every reader (DataFusion, DuckDB, Spark) then pays per file. [`Warehouse::compact`] rewrites
//! each partition that has several committed files as one file, as kafka-delta-ingest's users do with
//! Delta's `OPTIMIZE`:
//!
//! 1. It takes the layout lock exclusively (writers hold it shared from their first staged file until
//!    their commit is renamed into place, so no write is half done), re-reads the log and lists the live
//!    files of each partition.
//! 2. It writes each partition's rows, in commit order, as one file into a copy of the partition
//!    directory under `_compaction/<writer>/` (outside the tables, so no reader globs it).
//! 3. It records one commit naming the new files and the files they replace ([`Commit::removes`]).
//! 4. It exchanges each partition directory with its copy in one `renameat2(RENAME_EXCHANGE)`: a reader
//!    that lists the directory sees either the old files or the new one, never both and never neither.
//!    Then it deletes the old files.
//!
//! A crash before step 3 leaves only the copies, which [`Warehouse::open`] deletes; a crash after it
//! leaves copies whose file the log names, which `open` exchanges (if not done yet) and deletes.
//!
//! [`Commit::removes`]: crate::Commit::removes

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;
use tracing::{debug, info, info_span, warn};

use crate::log::{COMPACTION_FORMAT_VERSION, Commit, CommittedFile, Counts};
use crate::{OCCURRED_AT, Warehouse, WarehouseError, WriterLock, sync_durably, write_parquet};

/// Directory of the partition copies a compaction prepares, per writer.
pub const COMPACTION_DIR: &str = "_compaction";
/// Lock file of the table layout: shared by writers while they stage and commit, exclusive for a compaction.
const LAYOUT_LOCK: &str = "_layout.lock";
/// Name prefix of a compacted file (`part-compact-<writer>-<seq>.parquet`).
const COMPACTED_PREFIX: &str = "part-compact-";

/// Which partitions a compaction rewrites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactOptions {
    /// A partition is rewritten when it has at least this many committed files (at least 2).
    pub min_files: usize,
    /// Only files of commits up to this sequence number are rewritten (`None`: all). `permitflow` passes
    /// the commit the marts were last materialised through, so that the next incremental materialisation
    /// still finds the files committed since as they were.
    pub through_seq: Option<u64>,
}

/// Partitions rewritten under one hold of the layout lock: writers wait at most for this many (16 months of
/// a table: about the rows 256 day partitions held before tables were partitioned by month).
const PARTITIONS_PER_COMMIT: usize = 16;

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// The (last) commit that recorded it (`None`: nothing to compact).
    pub seq: Option<u64>,
    /// Partitions rewritten.
    pub partitions: usize,
    /// Files replaced.
    pub files_before: usize,
    /// Files written (one per partition).
    pub files_after: usize,
    /// Rows rewritten.
    pub rows: u64,
    /// Bytes of the replaced files.
    pub bytes_before: u64,
    /// Bytes of the written files.
    pub bytes_after: u64,
    /// Commit records and checkpoints the log was pruned of (see [`Warehouse::set_log_retention`]).
    pub log_files_pruned: usize,
}

impl std::ops::AddAssign for CompactionReport {
    fn add_assign(&mut self, later: CompactionReport) {
        self.seq = later.seq.or(self.seq);
        self.partitions += later.partitions;
        self.files_before += later.files_before;
        self.files_after += later.files_after;
        self.rows += later.rows;
        self.bytes_before += later.bytes_before;
        self.bytes_after += later.bytes_after;
        self.log_files_pruned += later.log_files_pruned;
    }
}

/// The layout lock, shared or exclusive, held while it lives.
#[derive(Debug)]
pub struct LayoutLock {
    _file: fs::File,
}

impl LayoutLock {
    fn acquire(root: &Path, exclusive: bool) -> Result<LayoutLock, WarehouseError> {
        let path = root.join(LAYOUT_LOCK);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| WarehouseError::io(&path, e))?;
        let locked = if exclusive { file.lock() } else { file.lock_shared() };
        locked.map_err(|e| WarehouseError::io(&path, e))?;
        Ok(LayoutLock { _file: file })
    }
}

/// One partition to rewrite: its directory (relative to the root) and its live files in commit order.
struct Partition<'a> {
    dir: &'a str,
    table: &'a str,
    files: Vec<&'a CommittedFile>,
}

impl Warehouse {
    /// Takes the layout lock shared: waits for a compaction in progress, then keeps compactions from
    /// starting (and from removing the files they replace) while the lock lives. Held by a pending commit
    /// from its first staged file to its renames, and by a reader of the files the commit log lists.
    pub fn hold_layout(&self) -> Result<LayoutLock, WarehouseError> {
        LayoutLock::acquire(&self.root, false)
    }

    /// Rewrites every partition with at least [`CompactOptions::min_files`] committed files as one file,
    /// atomically for readers that list the directories (see the module documentation). Waits for
    /// writers' commits in progress; writers wait while it runs.
    ///
    /// The partitions are rewritten [`PARTITIONS_PER_COMMIT`] at a time, one commit each, releasing the
    /// lock in between so that a long compaction holds up a Kafka flush only briefly. Then it prunes the
    /// commit log ([`Warehouse::prune_log`]).
    pub fn compact(&mut self, options: &CompactOptions) -> Result<CompactionReport, WarehouseError> {
        let mut total = CompactionReport::default();
        loop {
            let report = self.compact_some(options)?;
            if report.seq.is_none() {
                break;
            }
            total += report;
        }
        total.log_files_pruned = self.prune_log()?;
        Ok(total)
    }

    /// Prunes the commit log to its retention before the newest checkpoint (see
    /// [`Warehouse::set_log_retention`]); returns how many files it removed. Waits for writers' commits in
    /// progress.
    pub fn prune_log(&mut self) -> Result<usize, WarehouseError> {
        let _layout = LayoutLock::acquire(&self.root, true)?;
        self.log.prune()
    }

    /// One commit of [`Warehouse::compact`].
    fn compact_some(&mut self, options: &CompactOptions) -> Result<CompactionReport, WarehouseError> {
        let layout = LayoutLock::acquire(&self.root, true)?;
        self.log.refresh()?;
        self.recover_holding_layout(true)?;
        let writer = self.writer_id()?.to_string();
        let seq = self.log.next_seq();
        let partitions = self.partitions_to_compact(options);
        let mut report = CompactionReport::default();
        if partitions.is_empty() {
            return Ok(report);
        }
        let span = info_span!("compact", partitions = partitions.len(), seq);
        let _guard = span.enter();
        let work = self.root.join(COMPACTION_DIR).join(&writer);
        let name = format!("{COMPACTED_PREFIX}{writer}-{seq}.parquet");
        let written: Vec<CommittedFile> =
            partitions.par_iter().map(|partition| self.rewrite(partition, &work, &name)).collect::<Result<_, _>>()?;
        let copies: Vec<PathBuf> = written.iter().map(|f| work.join(&f.path)).collect();
        let copy_dirs: Vec<PathBuf> = copies.iter().filter_map(|p| p.parent().map(Path::to_path_buf)).collect();
        sync_durably(&self.root, &copies.iter().map(PathBuf::as_path).collect::<Vec<_>>(), &copy_dirs)?;
        for partition in &partitions {
            report.files_before += partition.files.len();
            report.bytes_before += partition.files.iter().map(|f| f.bytes).sum::<u64>();
        }
        report.partitions = partitions.len();
        report.files_after = written.len();
        report.rows = written.iter().map(|f| f.rows).sum();
        report.bytes_after = written.iter().map(|f| f.bytes).sum();
        let removes: Vec<String> = partitions.iter().flat_map(|p| p.files.iter().map(|f| f.path.clone())).collect();
        let dirs: Vec<String> = partitions.iter().map(|p| p.dir.to_string()).collect();
        drop(partitions);
        let commit = loop {
            let commit = Commit {
                version: COMPACTION_FORMAT_VERSION,
                seq: self.log.next_seq(),
                files: written.clone(),
                sources: Vec::new(),
                counts: Counts::default(),
                removes: removes.clone(),
            };
            match self.log.append(commit.clone(), &writer) {
                Ok(()) => break commit,
                Err(WarehouseError::CommitConflict { seq }) => {
                    debug!(seq, "sequence number taken by another writer; retrying");
                    self.log.refresh()?;
                }
                Err(e) => return Err(e),
            }
        };
        for dir in &dirs {
            swap_in(&self.root, &work, dir)?;
        }
        remove_tree(&work)?;
        let swapped: Vec<PathBuf> = dirs.iter().map(|dir| self.root.join(dir)).collect();
        sync_durably(&self.root, &[], &swapped)?;
        drop(layout);
        self.log.checkpoint_if_due(&writer);
        report.seq = Some(commit.seq);
        info!(
            seq = commit.seq,
            partitions = report.partitions,
            files_before = report.files_before,
            rows = report.rows,
            "compacted"
        );
        Ok(report)
    }

    fn partitions_to_compact(&self, options: &CompactOptions) -> Vec<Partition<'_>> {
        let through = options.through_seq.unwrap_or(u64::MAX);
        let mut by_dir: BTreeMap<&str, Partition<'_>> = BTreeMap::new();
        for (seq, file) in self.log.live_files() {
            if seq > through {
                continue;
            }
            let dir = file.path.rsplit_once('/').map_or("", |(dir, _)| dir);
            by_dir
                .entry(dir)
                .or_insert_with(|| Partition { dir, table: &file.table, files: Vec::new() })
                .files
                .push(file);
        }
        let min_files = options.min_files.max(2);
        by_dir.into_values().filter(|p| p.files.len() >= min_files).take(PARTITIONS_PER_COMMIT).collect()
    }

    /// Writes the partition's rows as `name` into its copy under `work`, with every other file of the
    /// partition linked beside it; returns the file as it will be committed.
    fn rewrite(&self, partition: &Partition<'_>, work: &Path, name: &str) -> Result<CommittedFile, WarehouseError> {
        let copy = work.join(partition.dir);
        if copy.exists() {
            remove_tree(&copy)?;
        }
        fs::create_dir_all(&copy).map_err(|e| WarehouseError::io(&copy, e))?;
        let mut batches: Vec<RecordBatch> = Vec::new();
        for file in &partition.files {
            let path = self.root.join(&file.path);
            let parquet_error = |source| WarehouseError::Parquet { path: path.clone(), source };
            let reader = fs::File::open(&path).map_err(|e| WarehouseError::io(&path, e))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(reader)
                .map_err(parquet_error)?
                .build()
                .map_err(parquet_error)?;
            for batch in reader {
                batches.push(batch?);
            }
        }
        let schema = batches.first().map(RecordBatch::schema).ok_or_else(|| {
            WarehouseError::io(self.root.join(partition.dir), std::io::Error::other("no rows in the partition's files"))
        })?;
        let batch = arrow::compute::concat_batches(&schema, &batches)?;
        drop(batches);
        let batch = match batch.schema().index_of(OCCURRED_AT) {
            Ok(column) => {
                let order = arrow::compute::sort_to_indices(batch.column(column), None, None)?;
                arrow::compute::take_record_batch(&batch, &order)?
            }
            Err(_) => batch,
        };
        let bytes = write_parquet(&copy.join(name), &batch, self.properties.clone())?;
        let replaced: std::collections::HashSet<&str> =
            partition.files.iter().filter_map(|f| f.path.rsplit_once('/').map(|(_, n)| n)).collect();
        let source = self.root.join(partition.dir);
        for entry in fs::read_dir(&source).map_err(|e| WarehouseError::io(&source, e))? {
            let entry = entry.map_err(|e| WarehouseError::io(&source, e))?;
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if !replaced.contains(file_name.as_str()) {
                fs::hard_link(entry.path(), copy.join(&file_name)).map_err(|e| WarehouseError::io(entry.path(), e))?;
            }
        }
        Ok(CommittedFile {
            table: partition.table.to_string(),
            path: format!("{}/{name}", partition.dir),
            rows: batch.num_rows() as u64,
            bytes,
            event_dates: merged_dates(&partition.files),
        })
    }

    /// Finishes or discards the compactions of writers that are gone (see the module documentation).
    ///
    /// `holding_layout`: the caller holds the layout lock exclusively already.
    pub(crate) fn recover_compactions(&self, holding_layout: bool) -> Result<(), WarehouseError> {
        let dir = self.root.join(COMPACTION_DIR);
        let Ok(entries) = fs::read_dir(&dir) else { return Ok(()) };
        let abandoned: Vec<(String, PathBuf)> = entries
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .filter(|(writer, _)| !WriterLock::is_live(&self.root, writer))
            .collect();
        if abandoned.is_empty() {
            return Ok(());
        }
        let _layout = if holding_layout { None } else { Some(LayoutLock::acquire(&self.root, true)?) };
        let live: std::collections::HashSet<&str> =
            self.log.live_files().into_iter().map(|(_, f)| f.path.as_str()).collect();
        for (writer, work) in abandoned {
            let prefix = format!("{COMPACTED_PREFIX}{writer}-");
            let mut compacted = Vec::new();
            collect_files(&work, &work, &prefix, &mut compacted)?;
            for relative in compacted {
                let Some((partition, _)) = relative.rsplit_once('/') else { continue };
                if live.contains(relative.as_str()) && !self.root.join(&relative).exists() {
                    warn!(partition, "finishing a compaction interrupted after its commit");
                    swap_in(&self.root, &work, partition)?;
                }
            }
            debug!(writer, "removing the leftovers of an interrupted compaction");
            remove_tree(&work)?;
        }
        Ok(())
    }
}

/// The event dates of files merged into one: the earliest first and the latest last date.
fn merged_dates(files: &[&CommittedFile]) -> Option<[String; 2]> {
    let first = files.iter().filter_map(|f| f.event_dates.as_ref().map(|[first, _]| first)).min()?;
    let last = files.iter().filter_map(|f| f.event_dates.as_ref().map(|[_, last]| last)).max()?;
    Some([first.clone(), last.clone()])
}

/// Relative paths (with `/`) of the files under `dir` whose name starts with `prefix`.
fn collect_files(base: &Path, dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), WarehouseError> {
    for entry in fs::read_dir(dir).map_err(|e| WarehouseError::io(dir, e))? {
        let entry = entry.map_err(|e| WarehouseError::io(dir, e))?;
        let path = entry.path();
        if path.is_dir() {
            collect_files(base, &path, prefix, out)?;
        } else if entry.file_name().to_string_lossy().starts_with(prefix) {
            out.push(crate::relative_path(base, &path));
        }
    }
    Ok(())
}

/// Puts the copy of partition `dir` (under `work`) in place of the partition and deletes the old files.
fn swap_in(root: &Path, work: &Path, dir: &str) -> Result<(), WarehouseError> {
    let live = root.join(dir);
    let copy = work.join(dir);
    exchange(&live, &copy)?;
    remove_tree(&copy)
}

/// Exchanges two directories in one step, so that a reader listing either sees one whole version.
#[cfg(target_os = "linux")]
fn exchange(live: &Path, copy: &Path) -> Result<(), WarehouseError> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, live, CWD, copy, RenameFlags::EXCHANGE).map_err(|e| WarehouseError::io(live, e.into()))
}

/// Exchanges two directories by three renames (systems without `renameat2`): for a moment the partition
/// directory does not exist, and a reader listing it then sees no rows of that partition.
#[cfg(not(target_os = "linux"))]
fn exchange(live: &Path, copy: &Path) -> Result<(), WarehouseError> {
    let aside = copy.with_extension("old");
    fs::rename(live, &aside).map_err(|e| WarehouseError::io(live, e))?;
    fs::rename(copy, live).map_err(|e| WarehouseError::io(copy, e))?;
    fs::rename(&aside, copy).map_err(|e| WarehouseError::io(&aside, e))
}

fn remove_tree(dir: &Path) -> Result<(), WarehouseError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(WarehouseError::io(dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use permitflow_schema::{Decoder, Position, Pseudonymiser};

    use super::*;
    use crate::{CommitLog, EVENTS_DIR, PendingCommit, SourceRange};

    const MONTHS: u32 = 4;

    /// Commits `commits` batches of decisions, each with one decision in each of [`MONTHS`] months.
    fn fill(warehouse: &mut Warehouse, first: u32, commits: u32) {
        for c in first..first + commits {
            let mut decoder = Decoder::new(warehouse.contract().clone(), Pseudonymiser::development());
            for month in 0..MONTHS {
                let line = format!(
                    r#"{{"event_id":"7b0d3f7e-1c1a-4c53-9a55-{:012x}","event_type":"decision.made","schema_version":1,"occurred_at":"2024-{:02}-03T09:15:00Z","decision_id":"D{c}-{month}","application_id":"A{c}","permit_type":"study","outcome":"positive","unit":"U1","automated":false}}"#,
                    c * 100 + month,
                    month + 1
                );
                decoder
                    .decode(line.as_bytes(), Position { source: "file:test", offset: i64::from(month) })
                    .expect("valid");
            }
            let mut pending = PendingCommit::new(format!("test-{c}"));
            for batch in decoder.finish().expect("finish") {
                warehouse.stage_events(&mut pending, &[&batch]).expect("stage");
            }
            let range = SourceRange::File {
                path: format!("part-{c}.ndjson"),
                sha256: format!("{c:064}"),
                size: 4,
                from_byte: 0,
                to_byte: 4,
                from_line: 1,
                to_line: 5,
            };
            pending.add_source(range, Counts { read: 4, accepted: 4, rejected: 0 });
            warehouse.commit(pending).expect("commit");
        }
    }

    /// What a reader listing the directories sees: (partition, event_id) of every row, sorted, and the
    /// number of `.parquet` files.
    fn listing(root: &Path) -> (Vec<(String, String)>, usize) {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in fs::read_dir(dir).expect("list").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "parquet") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(&root.join(EVENTS_DIR), &mut files);
        let mut rows = Vec::new();
        for file in &files {
            let partition =
                file.parent().and_then(|p| p.file_name()).expect("partition").to_string_lossy().into_owned();
            let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(file).expect("open"))
                .expect("parquet")
                .build()
                .expect("reader");
            for batch in reader {
                let batch = batch.expect("batch");
                let ids = batch.column_by_name("event_id").expect("event_id").as_string::<i32>().clone();
                rows.extend(ids.iter().flatten().map(|id| (partition.clone(), id.to_string())));
            }
        }
        rows.sort();
        (rows, files.len())
    }

    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).expect("mkdir");
        for entry in fs::read_dir(from).expect("list").flatten() {
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }

    fn all(min_files: usize) -> CompactOptions {
        CompactOptions { min_files, through_seq: None }
    }

    /// Commits nothing but the Kafka range `from..to` of `topic`/0.
    fn commit_kafka(warehouse: &mut Warehouse, topic: &str, from: i64, to: i64) {
        let mut pending = PendingCommit::new(format!("kafka-{from}"));
        let range = SourceRange::Kafka { topic: topic.into(), partition: 0, from_offset: from, to_offset: to };
        pending.add_source(range, Counts { read: (to - from) as u64, accepted: 0, rejected: (to - from) as u64 });
        warehouse.commit(pending).expect("commit");
    }

    #[test]
    fn a_log_read_from_its_checkpoint_says_what_the_whole_log_says() {
        let dir = tempfile::tempdir().expect("dir");
        let mut warehouse = Warehouse::open(dir.path()).expect("open");
        fill(&mut warehouse, 0, 3);
        commit_kafka(&mut warehouse, "decisions", 0, 7);
        warehouse.compact(&all(2)).expect("compact");
        fill(&mut warehouse, 3, 1);
        let whole = CommitLog::load(dir.path()).expect("log");
        assert_eq!(whole.last_seq(), 6);

        warehouse.checkpoint().expect("checkpoint");
        assert!(warehouse.log().commits().is_empty(), "the commits it covers are no longer held");
        fill(&mut warehouse, 4, 1);
        commit_kafka(&mut warehouse, "decisions", 7, 9);
        let read = CommitLog::load(dir.path()).expect("log");

        assert_eq!(read.commits().iter().map(|c| c.seq).collect::<Vec<_>>(), [7, 8], "only the commits after it");
        assert_eq!((read.last_seq(), read.next_seq()), (8, 9));
        let after: Vec<&CommittedFile> = read.commits().iter().flat_map(|c| &c.files).collect();
        let mut expected = whole.live_files();
        expected.extend(after.iter().map(|f| (7, *f)));
        assert_eq!(read.live_files(), expected);
        let mut counts = whole.counts();
        counts += Counts { read: 6, accepted: 4, rejected: 2 };
        assert_eq!(read.counts(), counts);
        for c in 0..5u32 {
            let sha = format!("{c:064}");
            assert_eq!(read.file_progress(&sha).map(|p| p.to_line), Some(5), "input {c}");
        }
        assert_eq!(read.kafka_position("decisions", 0), Some(9));
        let since = read.commits_since(2).expect("records").expect("not pruned");
        assert_eq!(since.iter().map(|c| c.seq).collect::<Vec<_>>(), [3, 4, 5, 6, 7, 8], "read back from records");
        assert_eq!(since[..4], whole.commits()[2..]);

        drop(warehouse);
        let (rows, _) = listing(dir.path());
        let mut reopened = Warehouse::open(dir.path()).expect("reopen from the checkpoint");
        reopened.compact(&all(2)).expect("compact after the checkpoint");
        assert_eq!(listing(dir.path()), (rows, MONTHS as usize), "the same rows, one file per partition");
    }

    #[test]
    fn an_unreadable_checkpoint_is_passed_over_and_the_log_read_from_its_records() {
        let dir = tempfile::tempdir().expect("dir");
        let mut warehouse = Warehouse::open(dir.path()).expect("open");
        fill(&mut warehouse, 0, 3);
        let whole = CommitLog::load(dir.path()).expect("log");
        let path = dir.path().join(crate::COMMITS_DIR).join("00000000000000000003.checkpoint.json");
        fs::write(&path, "{\"version\": 99}").expect("write");
        let read = CommitLog::load(dir.path()).expect("log");
        assert_eq!(read.commits(), whole.commits(), "every record read");
        assert_eq!((read.live_files(), read.counts()), (whole.live_files(), whole.counts()));
    }

    #[test]
    fn a_writer_checkpoints_its_log_once_it_holds_the_interval_of_records() {
        let dir = tempfile::tempdir().expect("dir");
        let mut warehouse = Warehouse::open(dir.path()).expect("open");
        warehouse.set_checkpoint_interval(2);
        fill(&mut warehouse, 0, 5);
        let mut checkpoints: Vec<String> = fs::read_dir(dir.path().join(crate::COMMITS_DIR))
            .expect("log")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".checkpoint.json"))
            .collect();
        checkpoints.sort();
        assert_eq!(checkpoints, ["00000000000000000002.checkpoint.json", "00000000000000000004.checkpoint.json"]);
        assert_eq!(warehouse.log().commits().len(), 1, "holds only the record after the last checkpoint");
        let read = CommitLog::load(dir.path()).expect("log");
        assert_eq!((read.last_seq(), read.commits().len()), (5, 1));
        assert_eq!(read.live_files().len(), 5 * MONTHS as usize);
        assert_eq!(read.counts(), Counts { read: 20, accepted: 20, rejected: 0 });
    }

    fn log_files(root: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(root.join(crate::COMMITS_DIR))
            .expect("log")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.iter().map(|n| n.trim_start_matches('0').to_string()).collect()
    }

    #[test]
    fn a_compaction_prunes_the_log_to_its_retention_and_a_writer_idle_meanwhile_commits_after_the_head() {
        let dir = tempfile::tempdir().expect("dir");
        let mut idle = Warehouse::open(dir.path()).expect("open");
        commit_kafka(&mut idle, "decisions", 0, 1);
        let mut warehouse = Warehouse::open(dir.path()).expect("open");
        warehouse.set_checkpoint_interval(2);
        warehouse.set_log_retention(3);
        fill(&mut warehouse, 0, 6);
        let before = CommitLog::load(dir.path()).expect("log");

        let report = warehouse.compact(&all(2)).expect("compact");
        assert_eq!(report.seq, Some(8));
        // Checkpoints at 2, 4, 6 and 8 (the compaction's); records 1..=5 are more than 3 before 8.
        assert_eq!(report.log_files_pruned, 7);
        assert_eq!(
            log_files(dir.path()),
            ["6.checkpoint.json", "6.json", "7.json", "8.checkpoint.json", "8.json"],
            "the records of the retention and the checkpoints among them"
        );
        let pruned = CommitLog::load(dir.path()).expect("a pruned log reads");
        assert_eq!((pruned.counts(), pruned.kafka_position("decisions", 0)), (before.counts(), Some(1)));
        assert_eq!(pruned.commits_since(2).expect("records"), None, "records after 2 are gone");
        assert_eq!(pruned.commits_since(5).expect("records").map(|c| c.len()), Some(3));

        // Its last record (1) is gone: it reads the log again and commits after the head, not as 2.
        commit_kafka(&mut idle, "decisions", 1, 2);
        let read = CommitLog::load(dir.path()).expect("log");
        assert_eq!(read.last_seq(), 9);
        assert_eq!(read.kafka_position("decisions", 0), Some(2));
        assert_eq!(read.counts().read, before.counts().read + 1);
        assert_eq!(read.live_files(), warehouse.refresh_log().expect("refresh").live_files());
    }

    #[test]
    fn compaction_rewrites_each_partition_as_one_file_with_the_same_rows() {
        let dir = tempfile::tempdir().expect("dir");
        let mut warehouse = Warehouse::open(dir.path()).expect("open");
        fill(&mut warehouse, 0, 3);
        let (rows, files) = listing(dir.path());
        assert_eq!((rows.len(), files), (12, 12));

        let report = warehouse.compact(&all(2)).expect("compact");
        assert_eq!((report.partitions, report.files_before, report.files_after, report.rows), (4, 12, 4, 12));
        assert_eq!(report.seq, Some(4));
        assert_eq!(listing(dir.path()), (rows.clone(), 4), "the same rows, one file per partition");
        assert_eq!(warehouse.log().live_files().len(), 4);
        assert!(warehouse.log().commits()[3].is_compaction());
        assert_eq!(warehouse.log().counts(), Counts { read: 12, accepted: 12, rejected: 0 }, "adds no input");
        assert!(!dir.path().join(COMPACTION_DIR).join(warehouse.writer_id().expect("id")).exists());

        drop(warehouse);
        let mut reopened = Warehouse::open(dir.path()).expect("reopen");
        assert_eq!(reopened.compact(&all(2)).expect("compact again").seq, None, "nothing left to compact");
        assert_eq!(listing(dir.path()), (rows, 4));
    }

    #[test]
    fn partitions_with_fewer_files_than_min_files_and_files_after_through_seq_stay() {
        let dir = tempfile::tempdir().expect("dir");
        let mut warehouse = Warehouse::open(dir.path()).expect("open");
        fill(&mut warehouse, 0, 3);
        assert_eq!(warehouse.compact(&all(4)).expect("compact").seq, None, "3 files per partition < 4");
        let report = warehouse.compact(&CompactOptions { min_files: 2, through_seq: Some(2) }).expect("compact");
        assert_eq!((report.files_before, report.files_after), (8, 4), "the first two commits' files only");
        let (rows, files) = listing(dir.path());
        assert_eq!((rows.len(), files), (12, 8), "the third commit's files are left as they were");
    }

    /// A copy of the warehouse taken before `compacted` compacted it, plus what that compaction had
    /// written when it stopped: its copies under `_compaction/<writer>/` and, if `committed`, its commit.
    fn interrupted(before: &Path, compacted: &Path, seq: u64, committed: bool) -> tempfile::TempDir {
        let copy = tempfile::tempdir().expect("dir");
        copy_dir(before, copy.path());
        fs::remove_dir_all(copy.path().join(crate::WRITERS_DIR)).expect("no live writers in the copy");
        let log = CommitLog::load(compacted).expect("log");
        let commit = &log.commits()[seq as usize - 1];
        for file in &commit.files {
            let name = file.path.rsplit_once('/').expect("in a partition").1;
            let writer = name.strip_prefix(COMPACTED_PREFIX).and_then(|n| n.rsplit_once('-')).expect("writer").0;
            let target = copy.path().join(COMPACTION_DIR).join(writer).join(&file.path);
            fs::create_dir_all(target.parent().expect("dir")).expect("mkdir");
            fs::copy(compacted.join(&file.path), &target).expect("copy the compacted file");
        }
        if committed {
            let name = format!("{seq:020}.json");
            fs::copy(compacted.join(crate::COMMITS_DIR).join(&name), copy.path().join(crate::COMMITS_DIR).join(name))
                .expect("copy the commit");
        }
        copy
    }

    /// A warehouse of three commits compacted in `<dir>/a` (commit 4), and a copy of it from before.
    fn compacted_and_before() -> (tempfile::TempDir, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("dir");
        let mut warehouse = Warehouse::open(dir.path().join("a")).expect("open");
        fill(&mut warehouse, 0, 3);
        let before = tempfile::tempdir().expect("dir");
        copy_dir(&dir.path().join("a"), before.path());
        assert_eq!(warehouse.compact(&all(2)).expect("compact").seq, Some(4));
        (dir, before)
    }

    #[test]
    fn a_compaction_interrupted_before_its_commit_leaves_the_rows_as_they_were() {
        let (dir, before) = compacted_and_before();
        let copy = interrupted(before.path(), &dir.path().join("a"), 4, false);
        let expected = listing(before.path());
        let reopened = Warehouse::open(copy.path()).expect("open after the crash");
        assert_eq!(listing(copy.path()), expected, "nothing changed");
        assert_eq!(reopened.log().commits().len(), 3);
        assert!(fs::read_dir(copy.path().join(COMPACTION_DIR)).expect("dir").next().is_none(), "leftovers removed");
    }

    #[test]
    fn a_compaction_interrupted_after_its_commit_is_finished_when_the_warehouse_is_opened() {
        let (dir, before) = compacted_and_before();
        let expected = listing(&dir.path().join("a"));

        let copy = interrupted(before.path(), &dir.path().join("a"), 4, true);
        // One partition was exchanged already when the process died; the others were not.
        let work =
            fs::read_dir(copy.path().join(COMPACTION_DIR)).expect("dir").flatten().next().expect("writer").path();
        let partition = "events/decisions/event_month=2024-03";
        exchange(&copy.path().join(partition), &work.join(partition)).expect("exchange");

        let mut reopened = Warehouse::open(copy.path()).expect("open after the crash");
        assert_eq!(listing(copy.path()), expected, "every partition holds its compacted file alone");
        assert!(fs::read_dir(copy.path().join(COMPACTION_DIR)).expect("dir").next().is_none(), "leftovers removed");
        assert_eq!(reopened.compact(&all(2)).expect("compact").seq, None);
    }

    #[test]
    fn writers_committing_during_compactions_lose_and_double_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let mut writer = Warehouse::open(dir.path()).expect("open");
        let mut compactor = Warehouse::open(dir.path()).expect("open");
        let done = std::sync::atomic::AtomicBool::new(false);
        let compactions = std::thread::scope(|scope| {
            let writing = scope.spawn(|| {
                /// Ends the compaction loop also when the writer panics.
                struct Done<'a>(&'a std::sync::atomic::AtomicBool);
                impl Drop for Done<'_> {
                    fn drop(&mut self) {
                        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                let _done = Done(&done);
                fill(&mut writer, 0, 40);
            });
            let mut compactions = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if compactor.compact(&all(2)).expect("compact").seq.is_some() {
                    compactions += 1;
                }
            }
            assert!(writing.join().is_ok(), "the writer failed while compactions ran");
            compactions
        });
        assert!(compactions > 0, "compactions ran while the writer committed");
        compactor.compact(&all(2)).expect("compact");
        let (rows, files) = listing(dir.path());
        let mut ids: Vec<&String> = rows.iter().map(|(_, id)| id).collect();
        ids.dedup();
        assert_eq!((rows.len(), ids.len(), files), (160, 160, 4), "every row once, one file per partition");
    }
}
