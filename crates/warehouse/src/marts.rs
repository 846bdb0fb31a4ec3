//! Mart storage: `<warehouse>/marts/<name>/year=<YYYY>/data.parquet`, one file per year, each replaced
//! atomically (write, then rename over), so a reader sees a year's old or new figures, never a mix.
//! `marts/_schemas/<name>.parquet` is a zero-row Parquet file with the mart's schema (an empty mart is still
//! a table; kept outside the mart's directory, which holds only its partitions, as engines expect);
//! `marts/_state.json` is the materialiser's record of what the marts cover; `marts/_summaries/<name>.parquet`
//! are whole-history summaries it keeps between runs, each with at most a few `<name>.delta-<seq>.parquet`
//! files of rows added since (every file replaced atomically, written before the state record);
//! `marts/_lock` is held while one process materialises.

use std::fs;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::tables::mart_dir;
use crate::{MARTS_DIR, Warehouse, WarehouseError, write_parquet};

/// Suffix of a file being written in place of another (`<name>.<uuid>.inprogress`); renamed over it once
/// complete.
const IN_PROGRESS_SUFFIX: &str = ".inprogress";
/// How old an abandoned `.inprogress` file (of a writer that died) must be before it is removed: no write of
/// a mart, summary or state file takes this long.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Hive partition column of every mart: the year a row's period belongs to (the ISO year for weeks).
pub const MART_PARTITION: &str = "year";
/// Directory (inside `marts/`) of the zero-row files that hold each mart's schema.
pub const MART_SCHEMAS_DIR: &str = "_schemas";
/// Directory (inside `marts/`) of the materialiser's whole-history summaries.
const MART_SUMMARIES_DIR: &str = "_summaries";
const STATE_FILE: &str = "_state.json";
const LOCK_FILE: &str = "_lock";

/// The exclusive right to write marts, held while it lives.
#[derive(Debug)]
pub struct MartLock {
    _file: fs::File,
}

impl Warehouse {
    /// Waits for and takes the marts lock (one materialiser at a time per warehouse).
    pub fn lock_marts(&self) -> Result<MartLock, WarehouseError> {
        let path = self.root.join(MARTS_DIR).join(LOCK_FILE);
        let file = fs::File::create(&path).map_err(|e| WarehouseError::io(&path, e))?;
        file.lock().map_err(|e| WarehouseError::io(&path, e))?;
        Ok(MartLock { _file: file })
    }

    /// Replaces the rows of one year of a mart (`batches` empty: removes the year).
    pub fn write_mart_partition(
        &self,
        name: &str,
        year: &str,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<(), WarehouseError> {
        let dir = mart_dir(&self.root, name).join(format!("{MART_PARTITION}={year}"));
        let batch = arrow::compute::concat_batches(schema, batches)?;
        if batch.num_rows() == 0 {
            return remove_dir(&dir);
        }
        fs::create_dir_all(&dir).map_err(|e| WarehouseError::io(&dir, e))?;
        self.replace_file(&dir, "data.parquet", &batch)
    }

    /// Records the mart's schema and removes every year not in `keep` (and files of an older layout).
    pub fn set_mart_schema(&self, name: &str, schema: &SchemaRef, keep: &[String]) -> Result<(), WarehouseError> {
        let dir = mart_dir(&self.root, name);
        fs::create_dir_all(&dir).map_err(|e| WarehouseError::io(&dir, e))?;
        let schemas = self.root.join(MARTS_DIR).join(MART_SCHEMAS_DIR);
        fs::create_dir_all(&schemas).map_err(|e| WarehouseError::io(&schemas, e))?;
        self.replace_file(&schemas, &format!("{name}.parquet"), &RecordBatch::new_empty(schema.clone()))?;
        let old_layout = dir.join("data.parquet");
        if old_layout.exists() {
            fs::remove_file(&old_layout).map_err(|e| WarehouseError::io(&old_layout, e))?;
        }
        for year in self.mart_years(name)? {
            if !keep.contains(&year) {
                remove_dir(&dir.join(format!("{MART_PARTITION}={year}")))?;
            }
        }
        Ok(())
    }

    /// The years a mart holds.
    pub fn mart_years(&self, name: &str) -> Result<Vec<String>, WarehouseError> {
        let dir = mart_dir(&self.root, name);
        let prefix = format!("{MART_PARTITION}=");
        let mut years: Vec<String> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix(&prefix)).map(str::to_string))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(WarehouseError::io(&dir, e)),
        };
        years.sort();
        Ok(years)
    }

    /// The materialiser's state record, if one was written.
    pub fn mart_state(&self) -> Result<Option<String>, WarehouseError> {
        let path = self.root.join(MARTS_DIR).join(STATE_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(WarehouseError::io(&path, e)),
        }
    }

    /// Replaces the materialiser's state record atomically.
    pub fn set_mart_state(&self, text: &str) -> Result<(), WarehouseError> {
        let dir = self.root.join(MARTS_DIR);
        let staged = dir.join(staged_name(STATE_FILE));
        fs::write(&staged, text)
            .and_then(|()| fs::File::open(&staged)?.sync_all())
            .map_err(|e| WarehouseError::io(&staged, e))?;
        rename(&staged, &dir.join(STATE_FILE))
    }

    /// The file of a whole-history summary, if one was written.
    pub fn mart_summary(&self, name: &str) -> Option<PathBuf> {
        let path = self.root.join(MARTS_DIR).join(MART_SUMMARIES_DIR).join(format!("{name}.parquet"));
        path.is_file().then_some(path)
    }

    /// The delta files of a whole-history summary (see [`Warehouse::add_mart_summary_deltas`]), oldest first.
    pub fn mart_summary_deltas(&self, name: &str) -> Result<Vec<PathBuf>, WarehouseError> {
        Ok(self.summary_deltas(name)?.into_iter().map(|(_, path)| path).collect())
    }

    /// Replaces whole-history summaries (name, rows), each atomically, and removes their deltas; written in
    /// parallel.
    pub fn set_mart_summaries(&self, summaries: &[(&str, RecordBatch)]) -> Result<(), WarehouseError> {
        use rayon::prelude::*;
        let dir = self.summaries_dir()?;
        summaries.par_iter().try_for_each(|(name, batch)| {
            self.replace_file(&dir, &format!("{name}.parquet"), batch)?;
            self.remove_summary_deltas(name, None)
        })
    }

    /// Adds to whole-history summaries (name, rows) a delta file for commit `seq`, each atomically, and then
    /// removes their older deltas: a delta holds every row added since the summary's base was written, so
    /// the base and its newest delta are the whole summary. Until the older ones are removed, the union of
    /// all files holds the same rows more than once; readers of a summary must not mind (minimums do not).
    pub fn add_mart_summary_deltas(&self, seq: u64, deltas: &[(&str, RecordBatch)]) -> Result<(), WarehouseError> {
        use rayon::prelude::*;
        let dir = self.summaries_dir()?;
        deltas.par_iter().try_for_each(|(name, batch)| {
            self.replace_file(&dir, &format!("{name}.delta-{seq:020}.parquet"), batch)?;
            self.remove_summary_deltas(name, Some(seq))
        })
    }

    /// Removes the summaries (and their deltas) not named in `keep`: those of an older materialiser.
    pub fn retain_mart_summaries(&self, keep: &[&str]) -> Result<(), WarehouseError> {
        let dir = self.summaries_dir()?;
        for entry in fs::read_dir(&dir).map_err(|e| WarehouseError::io(&dir, e))?.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = file_name.strip_suffix(".parquet") else { continue };
            let name = stem.split_once(".delta-").map_or(stem, |(name, _)| name);
            if !keep.contains(&name) {
                fs::remove_file(entry.path()).map_err(|e| WarehouseError::io(entry.path(), e))?;
            }
        }
        Ok(())
    }

    fn summaries_dir(&self) -> Result<PathBuf, WarehouseError> {
        let dir = self.root.join(MARTS_DIR).join(MART_SUMMARIES_DIR);
        fs::create_dir_all(&dir).map_err(|e| WarehouseError::io(&dir, e))?;
        Ok(dir)
    }

    /// The deltas of summary `name` with their commit numbers, oldest first.
    fn summary_deltas(&self, name: &str) -> Result<Vec<(u64, PathBuf)>, WarehouseError> {
        let dir = self.root.join(MARTS_DIR).join(MART_SUMMARIES_DIR);
        let prefix = format!("{name}.delta-");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(WarehouseError::io(&dir, e)),
        };
        let mut deltas: Vec<(u64, PathBuf)> = entries
            .flatten()
            .filter_map(|entry| {
                let file_name = entry.file_name();
                let seq = file_name.to_str()?.strip_prefix(&prefix)?.strip_suffix(".parquet")?.parse().ok()?;
                Some((seq, entry.path()))
            })
            .collect();
        deltas.sort();
        Ok(deltas)
    }

    /// Removes the deltas of summary `name` other than the one of commit `keep`.
    fn remove_summary_deltas(&self, name: &str, keep: Option<u64>) -> Result<(), WarehouseError> {
        for (seq, path) in self.summary_deltas(name)? {
            if Some(seq) != keep {
                fs::remove_file(&path).map_err(|e| WarehouseError::io(&path, e))?;
            }
        }
        Ok(())
    }

    fn replace_file(&self, dir: &Path, name: &str, batch: &RecordBatch) -> Result<(), WarehouseError> {
        self.remove_abandoned(dir, name)?;
        let staged = dir.join(staged_name(name));
        write_parquet(&staged, batch, self.properties.clone())?;
        rename(&staged, &dir.join(name))
    }
}

impl Warehouse {
    /// Removes `<name>.<uuid>.inprogress` files older than [`ABANDONED_AFTER`]: of writers that died while
    /// replacing `name`.
    fn remove_abandoned(&self, dir: &Path, name: &str) -> Result<(), WarehouseError> {
        let prefix = format!("{name}.");
        let entries = fs::read_dir(dir).map_err(|e| WarehouseError::io(dir, e))?;
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let staged = file_name.strip_prefix(&prefix).is_some_and(|rest| rest.ends_with(IN_PROGRESS_SUFFIX));
            let age = entry.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
            if staged && age.is_some_and(|age| age > ABANDONED_AFTER) {
                fs::remove_file(entry.path()).map_err(|e| WarehouseError::io(entry.path(), e))?;
            }
        }
        Ok(())
    }
}

/// The name `name` is written under before it is renamed over `name`: unique per write.
fn staged_name(name: &str) -> String {
    format!("{name}.{}{IN_PROGRESS_SUFFIX}", uuid::Uuid::new_v4().simple())
}

fn rename(from: &Path, to: &PathBuf) -> Result<(), WarehouseError> {
    fs::rename(from, to).map_err(|e| WarehouseError::io(from, e))?;
    let dir = to.parent().unwrap_or(Path::new("."));
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| WarehouseError::io(dir, e))
}

fn remove_dir(dir: &Path) -> Result<(), WarehouseError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(WarehouseError::io(dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, RecordBatch};

    use crate::Warehouse;

    #[test]
    fn retaining_summaries_removes_the_others_with_their_deltas() {
        let dir = tempfile::tempdir().expect("temp dir");
        let warehouse = Warehouse::open(dir.path()).expect("open");
        let rows = RecordBatch::try_from_iter([("k", Arc::new(Int64Array::from(vec![1])) as ArrayRef)]).expect("rows");
        let both = [("old", rows.clone()), ("kept", rows)];
        warehouse.set_mart_summaries(&both).expect("bases");
        warehouse.add_mart_summary_deltas(3, &both).expect("deltas");
        warehouse.retain_mart_summaries(&["kept"]).expect("retain");
        assert!(warehouse.mart_summary("old").is_none());
        assert!(warehouse.mart_summary_deltas("old").expect("old deltas").is_empty());
        assert!(warehouse.mart_summary("kept").is_some());
        assert_eq!(warehouse.mart_summary_deltas("kept").expect("kept deltas").len(), 1);
    }
}
