//! DataFusion tables over the warehouse: every event table and `_rejections` at the Delta snapshot last read,
//! and every mart.

use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;

use crate::{MART_PARTITION, MART_SCHEMAS_DIR, Warehouse, WarehouseError, delta};

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

/// Registers every event table and `_rejections` (Delta table providers at the snapshots the warehouse
/// last read: only committed files, whatever else the directories hold), and every mart that exists, by name
/// (marts with their `year` partition column).
pub fn register_tables(ctx: &SessionContext, warehouse: &Warehouse) -> Result<(), WarehouseError> {
    for (name, table) in &warehouse.tables {
        table.delta.update_datafusion_session(&ctx.state()).map_err(|e| WarehouseError::delta(name, e))?;
        let provider = delta::block_on(table.delta.table_provider().into_future())?;
        ctx.register_table(name.as_str(), provider)?;
    }
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
