//! Compaction, as Delta `OPTIMIZE`: the files of a partition rewritten as one file, committed as one
//! commit that removes the old files and adds the new one, with `dataChange` false; then a checkpoint of
//! each compacted table (with the clean-up of commit files older than the log retention) and, if asked,
//! `vacuum`.
//!
//! A Kafka flush or an ingest batch writes one file per table and month it touches, so a stream at the
//! agency's real pace (an event a minute or so, a flush every ten seconds) leaves nearly one file per
//! event; every reader (DataFusion, DuckDB, Spark) then pays per file. [`Warehouse::compact`] rewrites
//! each partition that has several files as one file, sorted by `occurred_at` like every file permitflow
//! writes (delta-rs' own `optimize` would not keep that order), and commits it as an `OPTIMIZE`: readers of
//! any snapshot see either the old files or the new one; writers keep appending meanwhile (appends and a
//! compaction do not conflict in Delta), and a compaction that lost a race to another is abandoned. The
//! files it replaced stay for readers of older snapshots until `vacuum` removes them after
//! [`VACUUM_RETENTION_HOURS`](crate::VACUUM_RETENTION_HOURS).
//!
//! Target size: one file per partition (a table's month). The ten-year `--scale 1` history has event
//! files of 0.1–0.6 MB per month, far below the 128 MB–1 GB readers start to split files at, so a
//! month is never split.

use std::collections::{BTreeMap, HashSet};

use arrow::array::RecordBatch;
use deltalake::kernel::{Action, Remove};
use deltalake::protocol::DeltaOperation;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;
use tracing::{info, info_span, warn};

use crate::positions::CommittedFile;
use crate::{OCCURRED_AT, Versions, Warehouse, WarehouseError, delta};

/// Which partitions a compaction rewrites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactOptions {
    /// A partition is rewritten when it has at least this many files (at least 2).
    pub min_files: usize,
    /// Files added after these table versions are left as they are (`None`: all are rewritten).
    /// `permitflow` passes the versions the marts were last materialised through, so that the next
    /// incremental materialisation still finds the files committed since as they were.
    pub through: Option<Versions>,
    /// Also remove, with `vacuum`, the files no snapshot of the retention needs.
    pub vacuum: bool,
}

/// Partitions rewritten per commit: a compaction that loses a race loses at most this much work.
const PARTITIONS_PER_COMMIT: usize = 16;

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Commits it made.
    pub commits: usize,
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
    /// Files `vacuum` deleted.
    pub vacuumed: usize,
    /// Commit files older than the log retention removed after the checkpoint of a compacted table.
    pub log_files_removed: usize,
}

/// One partition to rewrite: its files, with the remove actions that retire them.
struct Partition {
    value: String,
    files: Vec<(CommittedFile, Remove)>,
}

impl Warehouse {
    /// Rewrites every partition with at least [`CompactOptions::min_files`] files as one file (see the
    /// module documentation), [`PARTITIONS_PER_COMMIT`] partitions per commit; then vacuums if asked.
    pub fn compact(&mut self, options: &CompactOptions) -> Result<CompactionReport, WarehouseError> {
        self.refresh()?;
        let keep: HashSet<String> = match &options.through {
            Some(through) => self
                .commits_since(through)?
                .unwrap_or_default()
                .into_iter()
                .flat_map(|c| c.files.into_iter().map(|f| f.path))
                .collect(),
            None => HashSet::new(),
        };
        let mut report = CompactionReport::default();
        let names: Vec<String> = self.tables.keys().cloned().collect();
        for name in &names {
            let before = report.commits;
            let mut partitions = self.partitions_to_compact(name, options.min_files.max(2), &keep)?;
            while !partitions.is_empty() {
                let rest = partitions.split_off(partitions.len().min(PARTITIONS_PER_COMMIT));
                if !self.compact_some(name, &partitions, &mut report)? {
                    break;
                }
                partitions = rest;
            }
            if report.commits > before {
                // Readers of the new layout start from a checkpoint of it rather than replaying the log.
                report.log_files_removed += delta::checkpoint(name, &self.table(name)?.delta)?;
            }
        }
        if options.vacuum {
            for (name, table) in &self.tables {
                report.vacuumed += delta::vacuum(name, &table.delta)?;
            }
            self.refresh()?;
        }
        Ok(report)
    }

    fn partitions_to_compact(
        &self,
        name: &str,
        min_files: usize,
        keep: &HashSet<String>,
    ) -> Result<Vec<Partition>, WarehouseError> {
        let table = self.table(name)?;
        let mut by_value: BTreeMap<String, Partition> = BTreeMap::new();
        for file in table.state(name)?.log_data().iter() {
            let path = format!("{}/{}", table.dir, file.path());
            if keep.contains(&path) {
                continue;
            }
            let value = match &table.partition {
                Some(column) => file.partition_values_map().get(column).cloned().flatten().unwrap_or_default(),
                None => String::new(),
            };
            let committed = CommittedFile {
                table: name.to_string(),
                path,
                rows: file.num_records().map_or(0, |n| n as u64),
                bytes: file.size() as u64,
                event_dates: None,
            };
            by_value
                .entry(value.clone())
                .or_insert_with(|| Partition { value, files: Vec::new() })
                .files
                .push((committed, file.remove_action(false)));
        }
        Ok(by_value.into_values().filter(|p| p.files.len() >= min_files).collect())
    }

    /// Rewrites `partitions` of table `name` and commits them; false when another writer removed some of
    /// their files first (the written files are removed again).
    fn compact_some(
        &mut self,
        name: &str,
        partitions: &[Partition],
        report: &mut CompactionReport,
    ) -> Result<bool, WarehouseError> {
        let span = info_span!("compact", table = name, partitions = partitions.len());
        let _guard = span.enter();
        let table = self.table(name)?;
        let state = table.state(name)?.clone();
        let written: Vec<(CommittedFile, deltalake::kernel::Add)> =
            partitions.par_iter().map(|partition| self.rewrite(name, partition)).collect::<Result<_, _>>()?;
        self.store.sync()?;
        let mut actions: Vec<Action> = Vec::new();
        for (_, add) in &written {
            actions.push(Action::Add(deltalake::kernel::Add { data_change: false, ..add.clone() }));
        }
        let deleted_at = chrono::Utc::now().timestamp_millis();
        for partition in partitions {
            for (_, remove) in &partition.files {
                actions.push(Action::Remove(Remove { deletion_timestamp: Some(deleted_at), ..remove.clone() }));
            }
        }
        let operation = DeltaOperation::Optimize { predicate: None, target_size: 0 };
        match delta::commit(name, &table.delta, &state, actions, &[], operation) {
            Ok(delta::Committed::Version(version, state)) => {
                report.commits += 1;
                report.partitions += partitions.len();
                report.files_before += partitions.iter().map(|p| p.files.len()).sum::<usize>();
                report.bytes_before += partitions.iter().flat_map(|p| &p.files).map(|(f, _)| f.bytes).sum::<u64>();
                report.files_after += written.len();
                report.rows += written.iter().map(|(f, _)| f.rows).sum::<u64>();
                report.bytes_after += written.iter().map(|(f, _)| f.bytes).sum::<u64>();
                info!(version, partitions = partitions.len(), "compacted");
                self.tables.get_mut(name).expect("compacted it").delta.state = Some(*state);
                Ok(true)
            }
            result => {
                if let Err(e) = &result {
                    warn!(error = %e, "compaction not committed; leaving the partitions as they are");
                }
                for (file, _) in &written {
                    if let Err(e) = self.store.delete(&file.path) {
                        warn!(file = %file.path, error = %e, "could not remove a file of an abandoned compaction");
                    }
                }
                result.map(|_| false)
            }
        }
    }

    /// Writes the partition's rows, sorted by `occurred_at`, as one new file of the table.
    fn rewrite(
        &self,
        name: &str,
        partition: &Partition,
    ) -> Result<(CommittedFile, deltalake::kernel::Add), WarehouseError> {
        let table = self.table(name)?;
        let mut batches: Vec<RecordBatch> = Vec::new();
        for (file, _) in &partition.files {
            let parquet_error = |source| WarehouseError::Parquet { path: file.path.clone().into(), source };
            let reader = ParquetRecordBatchReaderBuilder::try_new(self.read_file(&file.path)?)
                .map_err(parquet_error)?
                .build()
                .map_err(parquet_error)?;
            for batch in reader {
                batches.push(batch?);
            }
        }
        let schema = batches.first().map(RecordBatch::schema).ok_or_else(|| WarehouseError::Delta {
            table: name.to_string(),
            message: format!("the files of partition {} hold no rows", partition.value),
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
        let file_name = format!("part-compact-{}.zstd.parquet", uuid::Uuid::new_v4().simple());
        let (relative, partition_value) = match &table.partition {
            Some(column) => {
                (format!("{column}={}/{file_name}", partition.value), Some((column.as_str(), partition.value.as_str())))
            }
            None => (file_name, None),
        };
        self.write_file(name, &table.dir, relative, partition_value, &batch, None)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use permitflow_schema::{Decoder, Position, Pseudonymiser};

    use super::*;
    use crate::{Counts, PendingCommit, SourceRange};

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
                let position = Position { source: "file:test", offset: i64::from(month) + 1 };
                decoder.decode(line.as_bytes(), position).expect("valid");
            }
            let mut pending = PendingCommit::new(format!("test-{c}"));
            let range = SourceRange::File {
                source: "file:test".into(),
                sha256: format!("{c:064}"),
                from_byte: 0,
                to_byte: 4,
                from_line: 1,
                to_line: 5,
            };
            pending.add_source(range, Counts { read: 4, accepted: 4, rejected: 0 });
            for batch in decoder.finish().expect("finish") {
                warehouse.stage_events(&mut pending, &[&batch]).expect("stage");
            }
            warehouse.commit(pending).expect("commit");
        }
    }

    /// What a reader of the decisions table's snapshot sees: (partition path, event_id) of every row,
    /// sorted, and the number of files.
    fn snapshot(warehouse: &mut Warehouse) -> (Vec<(String, String)>, usize) {
        warehouse.refresh().expect("refresh");
        let files: Vec<CommittedFile> =
            warehouse.files().expect("files").into_iter().filter(|f| f.table == "decisions").collect();
        let mut rows = Vec::new();
        for file in &files {
            let partition = file.path.rsplit_once('/').expect("partition").0.to_string();
            let reader = ParquetRecordBatchReaderBuilder::try_new(warehouse.read_file(&file.path).expect("a file"))
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

    fn all(min_files: usize) -> CompactOptions {
        CompactOptions { min_files, through: None, vacuum: false }
    }

    #[test]
    fn compaction_rewrites_each_partition_as_one_file_with_the_same_rows() {
        let dir = tempfile::tempdir().expect("dir");
        let mut warehouse = Warehouse::open(dir.path()).expect("open");
        fill(&mut warehouse, 0, 3);
        let (rows, files) = snapshot(&mut warehouse);
        assert_eq!((rows.len(), files), (12, 12));
        let counts = warehouse.counts().expect("counts");

        let report = warehouse.compact(&all(2)).expect("compact");
        assert_eq!((report.partitions, report.files_before, report.files_after, report.rows), (4, 12, 4, 12));
        assert_eq!(report.commits, 1);
        assert_eq!(snapshot(&mut warehouse), (rows.clone(), 4), "the same rows, one file per partition");
        assert_eq!(warehouse.counts().expect("counts"), counts, "adds no input");
        let versions = warehouse.versions();
        let compaction = warehouse.commits_since(&Versions(
            versions.0.iter().map(|(t, v)| (t.clone(), if t == "decisions" { v - 1 } else { *v })).collect(),
        ));
        let compaction = compaction.expect("log").expect("entries");
        assert!(compaction[0].files.is_empty(), "a compaction adds no new rows");
        assert_eq!((compaction[0].rewritten.len(), compaction[0].removes.len()), (4, 12));

        drop(warehouse);
        let mut reopened = Warehouse::open(dir.path()).expect("reopen");
        assert_eq!(reopened.compact(&all(2)).expect("compact again").commits, 0, "nothing left to compact");
        assert_eq!(snapshot(&mut reopened), (rows, 4));
    }

    #[test]
    fn partitions_with_fewer_files_than_min_files_and_files_after_through_stay() {
        let dir = tempfile::tempdir().expect("dir");
        let mut warehouse = Warehouse::open(dir.path()).expect("open");
        fill(&mut warehouse, 0, 2);
        let through = warehouse.versions();
        fill(&mut warehouse, 2, 1);
        assert_eq!(warehouse.compact(&all(4)).expect("compact").commits, 0, "3 files per partition < 4");
        let options = CompactOptions { min_files: 2, through: Some(through), vacuum: false };
        let report = warehouse.compact(&options).expect("compact");
        assert_eq!((report.files_before, report.files_after), (8, 4), "the first two commits' files only");
        let (rows, files) = snapshot(&mut warehouse);
        assert_eq!((rows.len(), files), (12, 8), "the third commit's files are left as they were");
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
                fill(&mut writer, 0, 30);
            });
            let mut compactions = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                if compactor.compact(&all(2)).expect("compact").commits > 0 {
                    compactions += 1;
                }
            }
            assert!(writing.join().is_ok(), "the writer failed while compactions ran");
            compactions
        });
        assert!(compactions > 0, "compactions ran while the writer committed");
        compactor.compact(&all(2)).expect("compact");
        let (rows, files) = snapshot(&mut compactor);
        let mut ids: Vec<&String> = rows.iter().map(|(_, id)| id).collect();
        ids.dedup();
        assert_eq!((rows.len(), ids.len(), files), (120, 120, 4), "every row once, one file per partition");
    }
}
