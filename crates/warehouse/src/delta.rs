//! The Delta Lake side of the warehouse, through delta-rs: opening and creating the tables, the add actions
//! (with statistics) of the files permitflow writes, commits with their application transactions, reading
//! the positions those record, the commits since a version, and `vacuum`.
//!
//! delta-rs is asynchronous and the warehouse's callers are not (a Kafka flusher thread, a file ingest): its
//! futures run on one runtime of this module's, on a scoped thread when the caller is itself inside a Tokio
//! runtime (as `permitflow query` and the tests are).

use std::future::Future;
use std::sync::OnceLock;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{cast, max, max_boolean, max_string, min, min_boolean, min_string};
use arrow::datatypes::{DataType, Float64Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, CommitConflictError, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Add, StructType, Transaction};
use deltalake::logstore::{get_actions, read_commit_entry};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::state::DeltaTableState;
use deltalake::{DeltaTable, DeltaTableError};
use serde_json::{Map, Value, json};

use crate::WarehouseError;

/// Table properties every permitflow table is created with (the Delta defaults, written down so that the
/// retention is visible in the log and can be changed per table): a checkpoint every 10 commits (a
/// snapshot is read from the checkpoint and at most 9 commit files after it), commit
/// files kept 30 days (incremental materialisation reads the commits since its last run; older ones make
/// it rebuild in full), and files a compaction replaced kept 7 days for readers of older snapshots before
/// `vacuum` may delete them.
pub const TABLE_PROPERTIES: &[(&str, &str)] = &[
    ("delta.checkpointInterval", "10"),
    ("delta.logRetentionDuration", "interval 30 days"),
    ("delta.deletedFileRetentionDuration", "interval 7 days"),
    ("delta.enableExpiredLogCleanup", "true"),
];

/// How long `vacuum` keeps files no snapshot within the retention needs (the tables'
/// `delta.deletedFileRetentionDuration`): files of commits that never happened are removed after it too.
pub const VACUUM_RETENTION_HOURS: i64 = 7 * 24;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("permitflow-delta")
            .enable_all()
            .build()
            .expect("a Tokio runtime for the Delta log can be built")
    })
}

/// Runs a delta-rs future to completion from synchronous code.
pub(crate) fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return runtime().block_on(future);
    }
    std::thread::scope(|scope| match scope.spawn(|| runtime().block_on(future)).join() {
        Ok(output) => output,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Opens the Delta table at `url`, creating it with `schema` (partitioned by `partition`) if there is none.
pub(crate) fn open_or_create(
    name: &str,
    url: url::Url,
    schema: &Schema,
    partition: Option<&str>,
) -> Result<DeltaTable, WarehouseError> {
    let error = |e: DeltaTableError| WarehouseError::delta(name, e);
    block_on(async {
        for _ in 0..3 {
            // Loaded only when it exists: delta-rs logs a failed load of a missing table as an error.
            let mut table =
                deltalake::DeltaTableBuilder::from_url(url.clone()).and_then(|b| b.build()).map_err(error)?;
            if table.verify_deltatable_existence().await.map_err(error)? {
                table.load().await.map_err(error)?;
                return Ok(table);
            }
            let fields: StructType = schema.try_into_kernel().map_err(|e| error(e.into()))?;
            let created = table
                .create()
                .with_table_name(name)
                .with_columns(fields.fields().cloned())
                .with_partition_columns(partition)
                .with_configuration(TABLE_PROPERTIES.iter().map(|(k, v)| (*k, Some(*v))))
                .with_save_mode(SaveMode::Ignore)
                .await;
            match created {
                Ok(table) => return Ok(table),
                // Another process created it first: open theirs.
                Err(DeltaTableError::Transaction { source: TransactionError::VersionAlreadyExists(_) }) => {}
                Err(e) => return Err(error(e)),
            }
        }
        Err(WarehouseError::Delta { table: name.to_string(), message: "could not be created or opened".into() })
    })
}

/// The table's version as last read (-1: none).
pub(crate) fn version(table: &DeltaTable) -> i64 {
    table.version().map_or(-1, |v| v as i64)
}

/// Reads the commits other writers made since the table was last read.
pub(crate) fn refresh(name: &str, table: &mut DeltaTable) -> Result<(), WarehouseError> {
    block_on(table.update_state()).map_err(|e| WarehouseError::delta(name, e))
}

/// The version of `app_id`'s last transaction in `state`: the next offset or line the table holds of that
/// source.
pub(crate) fn transaction_version(
    name: &str,
    table: &DeltaTable,
    state: &DeltaTableState,
    app_id: &str,
) -> Result<Option<i64>, WarehouseError> {
    block_on(state.transaction_version(table.log_store().as_ref(), app_id)).map_err(|e| WarehouseError::delta(name, e))
}

/// How a commit ended.
pub(crate) enum Committed {
    /// The table's new version, and its state after the commit.
    Version(i64, Box<DeltaTableState>),
    /// Another writer committed a transaction of the same application (source) after `state` was read.
    Conflict,
}

/// Commits `actions` and the application transactions `txns` (app id, version) on top of `state`.
pub(crate) fn commit(
    name: &str,
    table: &DeltaTable,
    state: &DeltaTableState,
    mut actions: Vec<Action>,
    txns: &[(String, i64)],
    operation: DeltaOperation,
) -> Result<Committed, WarehouseError> {
    actions.extend(txns.iter().map(|(app, version)| Action::Txn(Transaction::new(app, *version))));
    // A checkpoint when the table's interval is reached; the log clean-up is left to compaction (it lists the
    // whole log).
    let properties = CommitProperties::default().with_cleanup_expired_logs(Some(false));
    let commit = CommitBuilder::from(properties).with_actions(actions).build(Some(state), table.log_store(), operation);
    match block_on(async { commit.await }) {
        Ok(done) => Ok(Committed::Version(done.version() as i64, Box::new(done.snapshot))),
        Err(DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction),
        }) => Ok(Committed::Conflict),
        Err(e) => Err(WarehouseError::delta(name, e)),
    }
}

/// The operation of an append.
pub(crate) fn append() -> DeltaOperation {
    DeltaOperation::Write { mode: SaveMode::Append, partition_by: None, predicate: None }
}

/// The add action of a data file permitflow wrote: `path` relative to the table, with the Delta statistics
/// of its rows.
pub(crate) fn add_action(path: String, partition: Option<(&str, &str)>, bytes: u64, batch: &RecordBatch) -> Add {
    let modification_time =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    Add {
        path,
        partition_values: partition.map(|(k, v)| (k.to_string(), Some(v.to_string()))).into_iter().collect(),
        size: bytes as i64,
        modification_time,
        data_change: true,
        stats: Some(stats(batch).to_string()),
        ..Default::default()
    }
}

/// Delta file statistics (`numRecords`, and per top-level column `nullCount` and, for strings, integers,
/// floats, booleans and timestamps, `minValues`/`maxValues`): what readers prune files by.
fn stats(batch: &RecordBatch) -> Value {
    let (mut mins, mut maxs, mut nulls) = (Map::new(), Map::new(), Map::new());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if matches!(field.data_type(), DataType::Map(..) | DataType::Struct(_) | DataType::List(_)) {
            continue;
        }
        nulls.insert(field.name().clone(), json!(column.null_count()));
        let column = match column.data_type() {
            DataType::Dictionary(_, value) => match cast(column, value) {
                Ok(column) => column,
                Err(_) => continue,
            },
            _ => column.clone(),
        };
        let (low, high) = match column.data_type() {
            DataType::Utf8 => {
                let strings = column.as_string::<i32>();
                (min_string(strings).map(|v| json!(v)), max_string(strings).map(|v| json!(v)))
            }
            DataType::Int64 => {
                let ints = column.as_primitive::<Int64Type>();
                (min(ints).map(|v| json!(v)), max(ints).map(|v| json!(v)))
            }
            DataType::Float64 => {
                let floats = column.as_primitive::<Float64Type>();
                (
                    min(floats).filter(|v| v.is_finite()).map(|v| json!(v)),
                    max(floats).filter(|v| v.is_finite()).map(|v| json!(v)),
                )
            }
            DataType::Boolean => {
                let bools = column.as_boolean();
                (min_boolean(bools).map(|v| json!(v)), max_boolean(bools).map(|v| json!(v)))
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                let times = column.as_primitive::<TimestampMicrosecondType>();
                // Statistics hold milliseconds: the minimum rounded down and the maximum up still bound the rows.
                let low = min(times).map(|us| timestamp_millis(us.div_euclid(1000)));
                let high = max(times).map(|us| timestamp_millis((us + 999).div_euclid(1000)));
                (low, high)
            }
            _ => (None, None),
        };
        if let (Some(low), Some(high)) = (low, high) {
            mins.insert(field.name().clone(), low);
            maxs.insert(field.name().clone(), high);
        }
    }
    json!({"numRecords": batch.num_rows(), "minValues": mins, "maxValues": maxs, "nullCount": nulls})
}

fn timestamp_millis(millis: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(millis)
        .map_or(Value::Null, |t| json!(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()))
}

/// The minimum and maximum of `column` in an add action's statistics, as strings.
pub(crate) fn string_bounds(stats: &str, column: &str) -> Option<[String; 2]> {
    let stats: Value = serde_json::from_str(stats).ok()?;
    let bound = |key: &str| stats.get(key)?.get(column)?.as_str().map(str::to_string);
    Some([bound("minValues")?, bound("maxValues")?])
}

/// The row count in an add action's statistics.
pub(crate) fn num_records(stats: Option<&str>) -> Option<u64> {
    let stats: Value = serde_json::from_str(stats?).ok()?;
    stats.get("numRecords")?.as_u64()
}

/// A commit's version and its actions.
pub(crate) type CommitEntry = (i64, Vec<Action>);

/// The actions of every commit after `version` through `until`, oldest first; `None` when a commit file is
/// gone (cleaned up after the log retention).
pub(crate) fn actions_since(
    name: &str,
    table: &DeltaTable,
    version: i64,
    until: i64,
) -> Result<Option<Vec<CommitEntry>>, WarehouseError> {
    let error = |e: DeltaTableError| WarehouseError::delta(name, e);
    let store = table.log_store().object_store(None);
    block_on(async {
        let mut out = Vec::new();
        for number in version + 1..=until {
            let Some(bytes) = read_commit_entry(store.as_ref(), number as u64).await.map_err(error)? else {
                return Ok(None);
            };
            out.push((number, get_actions(number as u64, &bytes).map_err(error)?));
        }
        Ok(Some(out))
    })
}

/// Writes a checkpoint of the table at its version last read, then removes the commit files older than the
/// log retention that the checkpoint makes unnecessary (see [`TABLE_PROPERTIES`]); returns how many.
pub(crate) fn checkpoint(name: &str, table: &DeltaTable) -> Result<usize, WarehouseError> {
    use deltalake::checkpoints::{cleanup_metadata, create_checkpoint};
    block_on(async {
        create_checkpoint(table, None).await?;
        cleanup_metadata(table, None).await
    })
    .map_err(|e| WarehouseError::delta(name, e))
}

/// Removes the files of `table` no snapshot of the last [`VACUUM_RETENTION_HOURS`] names: files a
/// compaction replaced, and files of commits that never happened. Returns how many it deleted.
pub(crate) fn vacuum(name: &str, table: &DeltaTable) -> Result<usize, WarehouseError> {
    let retention = chrono::Duration::hours(VACUUM_RETENTION_HOURS);
    let run = table
        .clone()
        .vacuum()
        .with_retention_period(retention)
        .with_mode(deltalake::operations::vacuum::VacuumMode::Full);
    let (_, metrics) = block_on(async { run.await }).map_err(|e| WarehouseError::delta(name, e))?;
    Ok(metrics.files_deleted.len())
}
