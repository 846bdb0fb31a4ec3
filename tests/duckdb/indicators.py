"""Indicator queries written independently in DuckDB SQL over a permitflow warehouse.

    python indicators.py WAREHOUSE_DIR
    python indicators.py s3://BUCKET/PREFIX     (endpoint and credentials from the AWS_* environment variables)
    python indicators.py WAREHOUSE_DIR --day-files DIR   (the bench's baseline: the same rows as one file per day)
    python indicators.py WAREHOUSE_DIR --in-memory       (the bench's floor: the same rows as DuckDB tables in memory)

Reads the event tables as a BI tool reads Delta tables (on local disk with DuckDB's `delta_scan`, its delta
extension from the `duckdb-ext-delta` package; on S3 each snapshot as a PyArrow dataset of the `deltalake`
package, since DuckDB's httpfs extension is downloaded at run time) and the marts as plain
Parquet (on S3 through PyArrow's S3 file system), and prints one JSON object: {"seconds": <time of the
indicator queries>, "indicators": {name: rows},
"marts": {name: row count}}. Each indicator row is [key, ..., value]. permitflow's end-to-end test compares
these with its own marts; the materialisation benchmark times them.
"""
import argparse
import glob
import json
import os
import sys
import time

import duckdb
import duckdb_ext
import pyarrow.dataset
import pyarrow.fs
from deltalake import DeltaTable

INDICATORS = {
    # Applications per month and permit type, each event_id once.
    "inflow_month": """
        SELECT strftime(occurred_at, '%Y-%m') AS month, permit_type, count(DISTINCT event_id)::DOUBLE
        FROM applications GROUP BY ALL""",
    # E-service share per year, all permit types.
    "e_service_share_year": """
        SELECT strftime(occurred_at, '%Y'), avg(CASE WHEN channel = 'e_service' THEN 1.0 ELSE 0.0 END)
        FROM (SELECT DISTINCT ON (event_id) * FROM applications) GROUP BY ALL""",
    # Median and 90th percentile of processing days per year of decision and permit type.
    "processing_days_year": """
        WITH first_submission AS (
          SELECT application_id, min(occurred_at) AS submitted_at FROM applications GROUP BY application_id),
        decided AS (SELECT DISTINCT ON (event_id) * FROM decisions)
        SELECT strftime(d.occurred_at, '%Y'), d.permit_type,
               quantile_cont(epoch_us(d.occurred_at) - epoch_us(a.submitted_at), 0.5) / 86400e6,
               quantile_cont(epoch_us(d.occurred_at) - epoch_us(a.submitted_at), 0.9) / 86400e6
        FROM decided d JOIN first_submission a USING (application_id) GROUP BY ALL""",
    # Decisions per person-year for the agency per year (latest staff report per employee and month).
    "decisions_per_person_year_year": """
        WITH latest AS (
          SELECT * FROM staff
          QUALIFY row_number() OVER (PARTITION BY employee_ref, month ORDER BY occurred_at DESC, event_id DESC) = 1),
        py AS (
          SELECT left(month, 4) AS year,
                 sum(paid_days / (CASE WHEN (left(month, 4)::INT % 4 = 0 AND left(month, 4)::INT % 100 <> 0)
                                         OR left(month, 4)::INT % 400 = 0 THEN 366 ELSE 365 END)
                     * part_time_factor) AS person_years
          FROM latest GROUP BY ALL),
        dec AS (SELECT strftime(occurred_at, '%Y') AS year, count(DISTINCT event_id) AS n FROM decisions GROUP BY ALL)
        SELECT py.year, dec.n / py.person_years FROM py JOIN dec USING (year)""",
    # Applications pending at the end of each year, by permit type.
    "backlog_year_end": """
        WITH apps AS (
          SELECT application_id, min(permit_type) AS permit_type, min(occurred_at) AS submitted_at
          FROM applications GROUP BY application_id),
        first_decision AS (SELECT application_id, min(occurred_at) AS decided_at FROM decisions GROUP BY ALL),
        years AS (SELECT DISTINCT strftime(occurred_at, '%Y') AS year FROM applications),
        bounds AS (SELECT year, make_timestamptz(year::INT + 1, 1, 1, 0, 0, 0, 'UTC') AS year_end FROM years)
        SELECT b.year, a.permit_type, count(*)::DOUBLE
        FROM bounds b JOIN apps a ON a.submitted_at < b.year_end
        LEFT JOIN first_decision f USING (application_id)
        WHERE f.decided_at IS NULL OR f.decided_at >= b.year_end
        GROUP BY ALL""",
    # Median wait for an identification appointment per month and service point.
    "appointment_median_month": """
        SELECT strftime(occurred_at, '%Y-%m'), service_point,
               quantile_cont(epoch_us(first_free_slot_at) - epoch_us(occurred_at), 0.5) / 86400e6
        FROM (SELECT DISTINCT ON (event_id) * FROM appointments) WHERE service = 'identification' GROUP BY ALL""",
    # Share of resolved appeals returned for a legal error, per year.
    "appeal_legal_error_share_year": """
        SELECT strftime(occurred_at, '%Y'), avg(CASE WHEN result = 'returned_legal_error' THEN 1.0 ELSE 0.0 END)
        FROM (SELECT DISTINCT ON (event_id) * FROM appeals) GROUP BY ALL""",
}

EVENT_TABLES = ["applications", "decisions", "appeals", "staff", "costs", "appointments"]
MARTS = ["decisions_per_person_year", "cost_recovery", "backlog", "processing_times", "appointment_wait",
         "channel_automation", "appeal_returns", "inflow"]


def s3_options():
    """The warehouse's S3 endpoint and credentials, from the environment permitflow reads them from."""
    return {key: os.environ[key] for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                                             "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP") if key in os.environ}


def register_s3(con, warehouse):
    """Registers the event tables and the marts of a warehouse on S3; returns the marts' row counts."""
    options = s3_options()
    for table in EVENT_TABLES:
        dataset = DeltaTable(f"{warehouse}/events/{table}", storage_options=options).to_pyarrow_dataset()
        con.register(table, dataset)
    endpoint = options.get("AWS_ENDPOINT_URL", "")
    s3 = pyarrow.fs.S3FileSystem(
        access_key=options.get("AWS_ACCESS_KEY_ID"), secret_key=options.get("AWS_SECRET_ACCESS_KEY"),
        region=options.get("AWS_REGION"), endpoint_override=endpoint.split("://")[-1] or None,
        scheme=endpoint.split("://")[0] if "://" in endpoint else "https")
    root = warehouse.removeprefix("s3://").rstrip("/")
    marts = {}
    for mart in MARTS:
        dataset = pyarrow.dataset.dataset(f"{root}/marts/{mart}", filesystem=s3, format="parquet",
                                          partitioning="hive")
        marts[mart] = dataset.count_rows()
    return marts


def load_delta_extension(con):
    """Loads DuckDB's delta extension from the duckdb-ext-delta package (for this DuckDB version)."""
    pattern = f"{list(duckdb_ext.__path__)[0]}/extensions/v{duckdb.__version__}/*/delta.duckdb_extension"
    found = glob.glob(pattern)
    if not found:
        sys.exit(f"no delta extension for DuckDB {duckdb.__version__} at {pattern}: pin duckdb-ext-delta to it")
    con.execute(f"LOAD '{found[0]}'")


def register_day_files(con, warehouse, out):
    """The bench's baseline: the event tables copied (untimed) to the layout before the Delta warehouse, one
    Parquet file per table and day (per month for staff and costs, which have no event day), Hive-partitioned,
    and read with read_parquet."""
    os.makedirs(out, exist_ok=True)
    for table in EVENT_TABLES:
        source = f"delta_scan('{warehouse}/events/{table}')"
        columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        key = "event_date" if "event_date" in columns else "month"
        con.execute(f"COPY (SELECT * FROM {source}) TO '{out}/{table}' (FORMAT parquet, COMPRESSION zstd, "
                    f"PARTITION_BY ({key}), OVERWRITE_OR_IGNORE true)")
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{out}/{table}/*/*.parquet', "
                    "hive_partitioning = true)")


def main(warehouse, day_files=None, in_memory=False):
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute("SET TimeZone = 'UTC'")
    if warehouse.startswith("s3://"):
        marts = register_s3(con, warehouse)
    else:
        load_delta_extension(con)
        if day_files:
            register_day_files(con, warehouse, day_files)
        elif in_memory:
            # The floor of any file layout: the queries on DuckDB's own tables, loaded (untimed) into memory.
            for table in EVENT_TABLES:
                con.execute(f"CREATE TABLE {table} AS SELECT * FROM delta_scan('{warehouse}/events/{table}')")
        else:
            for table in EVENT_TABLES:
                con.execute(f"CREATE VIEW {table} AS SELECT * FROM delta_scan('{warehouse}/events/{table}')")
        marts = {}
        for mart in MARTS:
            marts[mart] = con.execute(f"SELECT count(*) FROM read_parquet('{warehouse}/marts/{mart}/*/*.parquet', "
                                      "hive_partitioning = true)").fetchall()[0][0]
    started = time.perf_counter()
    results = {}
    for name, sql in INDICATORS.items():
        results[name] = [[None if v is None else (float(v) if isinstance(v, (int, float)) else str(v)) for v in row]
                         for row in con.execute(sql).fetchall()]
    seconds = time.perf_counter() - started
    json.dump({"seconds": seconds, "indicators": results, "marts": marts}, sys.stdout)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Indicator queries in DuckDB SQL over a permitflow warehouse.")
    parser.add_argument("warehouse", help="a warehouse directory or s3://BUCKET/PREFIX")
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument("--day-files", metavar="DIR", help="copy the event tables to DIR as a file per day, read those")
    layout.add_argument("--in-memory", action="store_true", help="load the event tables into DuckDB tables first")
    args = parser.parse_args()
    if args.warehouse.startswith("s3://") and (args.day_files or args.in_memory):
        parser.error("--day-files and --in-memory read a local warehouse")
    main(args.warehouse, args.day_files, args.in_memory)
