//! DataFusion tables over the warehouse: every event table, `_rejections` and every mart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;

use crate::rejections::{REJECTIONS_DIR, REJECTIONS_TABLE, rejections_schema};
use crate::{EVENTS_DIR, MART_PARTITION, MART_SCHEMAS_DIR, Warehouse, WarehouseError, stored_schema};

/// Directory of the marts inside the warehouse.
pub const MARTS_DIR: &str = "marts";

/// Directory of one mart.
pub fn mart_dir(root: &Path, name: &str) -> PathBuf {
    root.join(MARTS_DIR).join(name)
}

fn listing(dir: &Path, schema: Arc<Schema>, partition: Option<&str>) -> Result<Arc<ListingTable>, WarehouseError> {
    std::fs::create_dir_all(dir).map_err(|e| WarehouseError::io(dir, e))?;
    let url = ListingTableUrl::parse(format!("{}/", dir.display()))?;
    let mut options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    if let Some(column) = partition {
        options = options.with_table_partition_cols(vec![(column.to_string(), DataType::Utf8)]);
    }
    let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// Registers every event table, `_rejections`, and every mart that exists, by name (marts with their
/// `year` partition column).
///
/// Event tables list only `*.parquet` files, which are committed files: staged
/// files carry the `.inprogress` suffix until their commit is recorded, and
/// [`Warehouse::open`] finishes or removes any left by a crash.
pub fn register_tables(ctx: &SessionContext, warehouse: &Warehouse) -> Result<(), WarehouseError> {
    for event in warehouse.contract().events() {
        let schema = stored_schema(event);
        let table =
            listing(&warehouse.root().join(EVENTS_DIR).join(&event.table), schema, Some(&event.partition.column))?;
        ctx.register_table(event.table.as_str(), table)?;
    }
    let rejections = listing(&warehouse.root().join(REJECTIONS_DIR), rejections_schema(), None)?;
    ctx.register_table(REJECTIONS_TABLE, rejections)?;
    let marts = warehouse.root().join(MARTS_DIR);
    if let Ok(entries) = std::fs::read_dir(marts.join(MART_SCHEMAS_DIR)) {
        for entry in entries.flatten() {
            let schema_file = entry.path();
            let Some(name) = schema_file.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".parquet"))
            else {
                continue;
            };
            let file = std::fs::File::open(&schema_file).map_err(|e| WarehouseError::io(&schema_file, e))?;
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|source| WarehouseError::Parquet { path: schema_file.clone(), source })?;
            let schema = reader.schema().clone();
            ctx.register_table(name, listing(&marts.join(name), schema, Some(MART_PARTITION))?)?;
        }
    }
    Ok(())
}
