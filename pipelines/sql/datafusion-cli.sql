-- Registers every permitflow table and mart for datafusion-cli.
--
--   cd <directory that holds warehouse/>     (where `permitflow demo` ran)
--   datafusion-cli -f pipelines/sql/datafusion-cli.sql
--
-- then, in the same session: SELECT * FROM decisions_per_person_year WHERE period_type = 'year';
-- Locations are relative to the working directory; edit the 'warehouse/' prefix for another warehouse.
-- Only committed files end in .parquet (files being written end in .parquet.inprogress), so
-- these tables never see uncommitted data. Event tables may hold a resent event twice: count
-- DISTINCT event_id, as the marts do (pipelines/models/_views.sql).

-- Event tables, Hive-partitioned by the UTC month of occurred_at (event_month=YYYY-MM; staff and costs by
-- their accounting month). Rows are sorted by occurred_at in each file; event_date is the UTC date.
CREATE EXTERNAL TABLE applications STORED AS PARQUET PARTITIONED BY (event_month) LOCATION 'warehouse/events/applications/';
CREATE EXTERNAL TABLE decisions STORED AS PARQUET PARTITIONED BY (event_month) LOCATION 'warehouse/events/decisions/';
CREATE EXTERNAL TABLE appeals STORED AS PARQUET PARTITIONED BY (event_month) LOCATION 'warehouse/events/appeals/';
CREATE EXTERNAL TABLE staff STORED AS PARQUET PARTITIONED BY (month) LOCATION 'warehouse/events/staff/';
CREATE EXTERNAL TABLE costs STORED AS PARQUET PARTITIONED BY (month) LOCATION 'warehouse/events/costs/';
CREATE EXTERNAL TABLE appointments STORED AS PARQUET PARTITIONED BY (event_month) LOCATION 'warehouse/events/appointments/';

-- Rejected input: source file and line, event type, rule, field, message (no payload).
CREATE EXTERNAL TABLE _rejections STORED AS PARQUET LOCATION 'warehouse/_rejections/';

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
