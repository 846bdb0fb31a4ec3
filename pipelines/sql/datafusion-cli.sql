-- Registers every permitflow mart for stock datafusion-cli.
--
--   cd <directory that holds warehouse/>     (where `permitflow demo` ran)
--   datafusion-cli -f pipelines/sql/datafusion-cli.sql
--
-- then, in the same session: SELECT * FROM decisions_per_person_year WHERE period_type = 'year';
-- Locations are relative to the working directory; edit the 'warehouse/' prefix for another warehouse.
--
-- The marts are plain Parquet, one file per year replaced atomically, so any Parquet reader reads them.
-- The event tables and _rejections are Delta Lake tables: their directories also hold files a
-- compaction replaced (until vacuum) and files of commits that never happened, so a plain Parquet
-- listing of them would count rows twice. Read them through their Delta log:
-- `permitflow query "SELECT …"`, Spark, Trino, DuckDB's delta extension, or the deltalake package.

-- Indicator marts (../shared/spec/marts.md), Hive-partitioned by the year of their period (`year`, the
-- ISO year for weeks). Each year's file is replaced atomically when it is recomputed.
CREATE EXTERNAL TABLE decisions_per_person_year STORED AS PARQUET PARTITIONED BY (year) LOCATION 'warehouse/marts/decisions_per_person_year/';
CREATE EXTERNAL TABLE cost_recovery STORED AS PARQUET PARTITIONED BY (year) LOCATION 'warehouse/marts/cost_recovery/';
CREATE EXTERNAL TABLE backlog STORED AS PARQUET PARTITIONED BY (year) LOCATION 'warehouse/marts/backlog/';
CREATE EXTERNAL TABLE processing_times STORED AS PARQUET PARTITIONED BY (year) LOCATION 'warehouse/marts/processing_times/';
CREATE EXTERNAL TABLE appointment_wait STORED AS PARQUET PARTITIONED BY (year) LOCATION 'warehouse/marts/appointment_wait/';
CREATE EXTERNAL TABLE channel_automation STORED AS PARQUET PARTITIONED BY (year) LOCATION 'warehouse/marts/channel_automation/';
CREATE EXTERNAL TABLE appeal_returns STORED AS PARQUET PARTITIONED BY (year) LOCATION 'warehouse/marts/appeal_returns/';
CREATE EXTERNAL TABLE inflow STORED AS PARQUET PARTITIONED BY (year) LOCATION 'warehouse/marts/inflow/';
CREATE EXTERNAL TABLE data_quality STORED AS PARQUET PARTITIONED BY (year) LOCATION 'warehouse/marts/data_quality/';

-- Forecast marts (README, "Forecasts"): recomputed whole by every materialisation; the inflow and resource
-- forecasts are partitioned by the year of their forecast month, forecast_accuracy by the year of
-- trained_through. They stay empty until the warehouse holds 24 complete months of applications.
CREATE EXTERNAL TABLE inflow_forecast STORED AS PARQUET PARTITIONED BY (year) LOCATION 'warehouse/marts/inflow_forecast/';
CREATE EXTERNAL TABLE resource_forecast STORED AS PARQUET PARTITIONED BY (year) LOCATION 'warehouse/marts/resource_forecast/';
CREATE EXTERNAL TABLE forecast_accuracy STORED AS PARQUET PARTITIONED BY (year) LOCATION 'warehouse/marts/forecast_accuracy/';
