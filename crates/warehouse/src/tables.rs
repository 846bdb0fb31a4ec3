//! DataFusion tables over the warehouse: every event table and `_rejections` at the Delta snapshot last read,
//! and every mart.

use std::future::IntoFuture;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;

use crate::{MART_PARTITION, Warehouse, WarehouseError, delta};

/// Directory of the marts inside the warehouse.
pub const MARTS_DIR: &str = "marts";

fn listing(url: &url::Url, schema: Arc<Schema>, partition: Option<&str>) -> Result<Arc<ListingTable>, WarehouseError> {
    let url = ListingTableUrl::parse(url.as_str())?;
    let mut options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    if let Some(column) = partition {
        options = options.with_table_partition_cols(vec![(column.to_string(), DataType::Utf8)]);
    }
    let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// Registers every event table and `_rejections` (Delta table providers at the snapshots the warehouse
/// last read: only committed files, whatever else the directories hold), and every mart that exists, by name
/// (marts with their `year` partition column; the warehouse's object store is registered with the session).
pub fn register_tables(ctx: &SessionContext, warehouse: &Warehouse) -> Result<(), WarehouseError> {
    for (name, table) in &warehouse.tables {
        table.delta.update_datafusion_session(&ctx.state()).map_err(|e| WarehouseError::delta(name, e))?;
        let provider = delta::block_on(table.delta.table_provider().into_future())?;
        ctx.register_table(name.as_str(), provider)?;
    }
    ctx.register_object_store(&warehouse.store.bucket_url(), warehouse.store.bucket());
    for name in warehouse.mart_names()? {
        let Some(bytes) = warehouse.mart_schema_file(&name)? else { continue };
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|source| {
                WarehouseError::Parquet { path: format!("{MARTS_DIR}/_schemas/{name}.parquet").into(), source }
            })?;
        let schema = reader.schema().clone();
        let url = warehouse.store.directory_url(&format!("{MARTS_DIR}/{name}"))?;
        ctx.register_table(name.as_str(), listing(&url, schema, Some(MART_PARTITION))?)?;
    }
    Ok(())
}
