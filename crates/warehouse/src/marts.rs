//! Mart storage: `<warehouse>/marts/<name>/year=<YYYY>/data.parquet`, one file per year, each replaced by
//! one atomic write (a single `PUT` on an object store; on local disk, object_store's write to a temporary
//! file renamed over the old one), so a reader sees a year's old or new figures, never a mix.
//! `marts/_schemas/<name>.parquet` is a zero-row Parquet file with the mart's schema (an empty mart is still
//! a table; kept outside the mart's directory, which holds only its partitions, as engines expect);
//! `marts/_state.json` is the materialiser's record of what the marts cover; `marts/_summaries/<name>.parquet`
//! are whole-history summaries it keeps between runs, each with at most a few `<name>.delta-<seq>.parquet`
//! files of rows added since (every file replaced atomically, written before the state record);
//! `marts/_lock` is held while one process materialises.

use std::fs;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use tracing::warn;

use crate::store::Store;
use crate::{MARTS_DIR, Warehouse, WarehouseError, encode_parquet};

/// Hive partition column of every mart: the year a row's period belongs to (the ISO year for weeks).
pub const MART_PARTITION: &str = "year";
/// Directory (inside `marts/`) of the zero-row files that hold each mart's schema.
pub const MART_SCHEMAS_DIR: &str = "_schemas";
/// Directory (inside `marts/`) of the materialiser's whole-history summaries.
const MART_SUMMARIES_DIR: &str = "_summaries";
const STATE_FILE: &str = "_state.json";
const LOCK_FILE: &str = "_lock";
/// On an object store, how old the lock of a materialiser must be before another takes it over: the
/// holder died (no materialisation takes this long).
const LOCK_EXPIRES_AFTER: chrono::Duration = chrono::Duration::hours(1);
/// On an object store, how often a waiting materialiser tries the lock again.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// The exclusive right to write marts, held while it lives: an exclusive `flock` of `marts/_lock` on local
/// disk; on an object store, the object `marts/_lock` created with a conditional `PUT` (`If-None-Match: *`)
/// and deleted on drop, taken over once older than an hour (by a conditional `PUT` on the old lock's
/// `ETag`, so that of several waiters only one takes it over).
#[derive(Debug)]
pub struct MartLock(Held);

#[derive(Debug)]
enum Held {
    /// The locked file (unlocked when closed).
    Local { _file: fs::File },
    /// The lock object's store.
    Object(Box<Store>),
}

impl Drop for MartLock {
    fn drop(&mut self) {
        if let Held::Object(store) = &self.0
            && let Err(e) = store.delete(&format!("{MARTS_DIR}/{LOCK_FILE}"))
        {
            warn!(error = %e, "could not remove the marts lock; the next materialiser takes it over in an hour");
        }
    }
}

impl Warehouse {
    /// Waits for and takes the marts lock (one materialiser at a time per warehouse).
    pub fn lock_marts(&self) -> Result<MartLock, WarehouseError> {
        if let Some(root) = self.location().local_path() {
            let dir = root.join(MARTS_DIR);
            fs::create_dir_all(&dir).map_err(|e| WarehouseError::io(&dir, e))?;
            let path = dir.join(LOCK_FILE);
            let file = fs::File::create(&path).map_err(|e| WarehouseError::io(&path, e))?;
            file.lock().map_err(|e| WarehouseError::io(&path, e))?;
            return Ok(MartLock(Held::Local { _file: file }));
        }
        let path = format!("{MARTS_DIR}/{LOCK_FILE}");
        let held = || Ok(MartLock(Held::Object(Box::new(self.store.clone()))));
        loop {
            let taken_at = chrono::Utc::now();
            if self.store.put_new(&path, Bytes::from(taken_at.to_rfc3339()))? {
                return held();
            }
            let Some((text, version)) = self.store.get_versioned(&path)? else { continue };
            let held_since = chrono::DateTime::parse_from_rfc3339(&String::from_utf8_lossy(&text)).ok();
            if held_since.is_none_or(|since| taken_at.signed_duration_since(since) > LOCK_EXPIRES_AFTER) {
                // Replaced only as it was read (`If-Match`): of two materialisers taking over, one wins.
                if self.store.replace_if_unchanged(&path, Bytes::from(taken_at.to_rfc3339()), version)? {
                    warn!(lock = %path, since = ?held_since, "took over the marts lock of a materialiser that stopped without removing it");
                    return held();
                }
                continue;
            }
            std::thread::sleep(LOCK_POLL);
        }
    }

    /// Replaces the rows of one year of a mart (`batches` empty: removes the year).
    pub fn write_mart_partition(
        &self,
        name: &str,
        year: &str,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(), WarehouseError> {
        let dir = format!("{MARTS_DIR}/{name}/{MART_PARTITION}={year}");
        let batch = arrow::compute::concat_batches(schema, batches)?;
        if batch.num_rows() == 0 {
            return self.remove_all(&dir);
        }
        self.replace_file(&format!("{dir}/data.parquet"), &batch)
    }

    /// Records the mart's schema and removes every year not in `keep`.
    pub fn set_mart_schema(&self, name: &str, schema: &SchemaRef, keep: &[String]) -> Result<(), WarehouseError> {
        let path = format!("{MARTS_DIR}/{MART_SCHEMAS_DIR}/{name}.parquet");
        self.replace_file(&path, &RecordBatch::new_empty(schema.clone()))?;
        for year in self.mart_years(name)? {
            if !keep.contains(&year) {
                self.remove_all(&format!("{MARTS_DIR}/{name}/{MART_PARTITION}={year}"))?;
            }
        }
        Ok(())
    }

    /// The years a mart holds.
    pub fn mart_years(&self, name: &str) -> Result<Vec<String>, WarehouseError> {
        let prefix = format!("{MART_PARTITION}=");
        let mut years: Vec<String> = self
            .store
            .list(&format!("{MARTS_DIR}/{name}"))?
            .iter()
            .filter_map(|object| {
                object.location.parts().find_map(|p| p.as_ref().strip_prefix(&prefix).map(str::to_string))
            })
            .collect();
        years.sort();
        years.dedup();
        Ok(years)
    }

    /// The names of the marts that have a schema (see [`Warehouse::set_mart_schema`]).
    pub fn mart_names(&self) -> Result<Vec<String>, WarehouseError> {
        let mut names: Vec<String> = self
            .store
            .list(&format!("{MARTS_DIR}/{MART_SCHEMAS_DIR}"))?
            .iter()
            .filter_map(|object| object.location.filename()?.strip_suffix(".parquet").map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The zero-row file holding a mart's schema.
    pub fn mart_schema_file(&self, name: &str) -> Result<Option<Bytes>, WarehouseError> {
        self.store.get(&format!("{MARTS_DIR}/{MART_SCHEMAS_DIR}/{name}.parquet"))
    }

    /// The materialiser's state record, if one was written.
    pub fn mart_state(&self) -> Result<Option<String>, WarehouseError> {
        let text = self.store.get(&format!("{MARTS_DIR}/{STATE_FILE}"))?;
        Ok(text.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Replaces the materialiser's state record atomically.
    pub fn set_mart_state(&self, text: &str) -> Result<(), WarehouseError> {
        let path = format!("{MARTS_DIR}/{STATE_FILE}");
        self.store.put(&path, Bytes::from(text.to_string()))?;
        self.store.sync()
    }

    /// The path (relative to the warehouse; read it with [`Warehouse::read_file`]) of a whole-history
    /// summary, if one was written.
    pub fn mart_summary(&self, name: &str) -> Result<Option<String>, WarehouseError> {
        let path = format!("{MARTS_DIR}/{MART_SUMMARIES_DIR}/{name}.parquet");
        Ok(self.store.exists(&path)?.then_some(path))
    }

    /// The paths of the delta files of a whole-history summary (see [`Warehouse::add_mart_summary_deltas`]),
    /// oldest first.
    pub fn mart_summary_deltas(&self, name: &str) -> Result<Vec<String>, WarehouseError> {
        Ok(self.summary_deltas(name)?.into_iter().map(|(_, path)| path).collect())
    }

    /// Replaces whole-history summaries (name, rows), each atomically, and removes their deltas; written in
    /// parallel.
    pub fn set_mart_summaries(&self, summaries: &[(&str, RecordBatch)]) -> Result<(), WarehouseError> {
        use rayon::prelude::*;
        summaries.par_iter().try_for_each(|(name, batch)| {
            self.replace_file(&format!("{MARTS_DIR}/{MART_SUMMARIES_DIR}/{name}.parquet"), batch)?;
            self.remove_summary_deltas(name, None)
        })
    }

    /// Adds to whole-history summaries (name, rows) a delta file for commit `seq`, each atomically, and then
    /// removes their older deltas: a delta holds every row added since the summary's base was written, so
    /// the base and its newest delta are the whole summary. Until the older ones are removed, the union of
    /// all files holds the same rows more than once; readers of a summary must not mind (minimums do not).
    pub fn add_mart_summary_deltas(&self, seq: u64, deltas: &[(&str, RecordBatch)]) -> Result<(), WarehouseError> {
        use rayon::prelude::*;
        deltas.par_iter().try_for_each(|(name, batch)| {
            self.replace_file(&format!("{MARTS_DIR}/{MART_SUMMARIES_DIR}/{name}.delta-{seq:020}.parquet"), batch)?;
            self.remove_summary_deltas(name, Some(seq))
        })
    }

    /// Removes the summaries (and their deltas) not named in `keep`: those of an older materialiser.
    pub fn retain_mart_summaries(&self, keep: &[&str]) -> Result<(), WarehouseError> {
        for object in self.store.list(&format!("{MARTS_DIR}/{MART_SUMMARIES_DIR}"))? {
            let Some(stem) = object.location.filename().and_then(|n| n.strip_suffix(".parquet")) else { continue };
            let name = stem.split_once(".delta-").map_or(stem, |(name, _)| name);
            if !keep.contains(&name) {
                self.store.delete(object.location.as_ref())?;
            }
        }
        Ok(())
    }

    /// The deltas of summary `name` with their commit numbers, oldest first.
    fn summary_deltas(&self, name: &str) -> Result<Vec<(u64, String)>, WarehouseError> {
        let prefix = format!("{name}.delta-");
        let mut deltas: Vec<(u64, String)> = self
            .store
            .list(&format!("{MARTS_DIR}/{MART_SUMMARIES_DIR}"))?
            .into_iter()
            .filter_map(|object| {
                let seq = object.location.filename()?.strip_prefix(&prefix)?.strip_suffix(".parquet")?.parse().ok()?;
                Some((seq, object.location.to_string()))
            })
            .collect();
        deltas.sort();
        Ok(deltas)
    }

    /// Removes the deltas of summary `name` other than the one of commit `keep`.
    fn remove_summary_deltas(&self, name: &str, keep: Option<u64>) -> Result<(), WarehouseError> {
        for (seq, path) in self.summary_deltas(name)? {
            if Some(seq) != keep {
                self.store.delete(&path)?;
            }
        }
        Ok(())
    }

    fn replace_file(&self, path: &str, batch: &RecordBatch) -> Result<(), WarehouseError> {
        self.store.put(path, encode_parquet(path, batch, self.properties.clone())?)
    }

    /// Removes every object under the directory `dir`.
    fn remove_all(&self, dir: &str) -> Result<(), WarehouseError> {
        for object in self.store.list(dir)? {
            self.store.delete(object.location.as_ref())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, RecordBatch};

    use crate::Warehouse;

    #[test]
    fn on_local_disk_a_second_materialiser_waits_for_the_marts_lock() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (first, second) = (Warehouse::open(dir.path()).expect("open"), Warehouse::open(dir.path()).expect("open"));
        let held = first.lock_marts().expect("first takes the lock");
        let started = std::time::Instant::now();
        let waiter = std::thread::spawn(move || {
            let _lock = second.lock_marts().expect("second takes the lock");
            started.elapsed()
        });
        let held_for = std::time::Duration::from_millis(500);
        std::thread::sleep(held_for);
        drop(held);
        let waited = waiter.join().expect("second thread");
        assert!(waited >= held_for, "the second materialiser took the lock after {waited:?}, while it was held");
    }

    #[test]
    fn retaining_summaries_removes_the_others_with_their_deltas() {
        let dir = tempfile::tempdir().expect("temp dir");
        let warehouse = Warehouse::open(dir.path()).expect("open");
        let rows = RecordBatch::try_from_iter([("k", Arc::new(Int64Array::from(vec![1])) as ArrayRef)]).expect("rows");
        let both = [("old", rows.clone()), ("kept", rows)];
        warehouse.set_mart_summaries(&both).expect("bases");
        warehouse.add_mart_summary_deltas(3, &both).expect("deltas");
        warehouse.retain_mart_summaries(&["kept"]).expect("retain");
        assert!(warehouse.mart_summary("old").expect("old").is_none());
        assert!(warehouse.mart_summary_deltas("old").expect("old deltas").is_empty());
        assert!(warehouse.mart_summary("kept").expect("kept").is_some());
        assert_eq!(warehouse.mart_summary_deltas("kept").expect("kept deltas").len(), 1);
    }
}
