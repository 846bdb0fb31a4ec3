-- Views shared by every model; run before the models in each metrics session.
-- Each indicator counts each event_id once: the unique_* views keep the first
-- copy (by source position) of every event_id.

-- One statement for each table of CACHED_TABLES in crates/metrics/src/lib.rs (applications, decisions,
-- appeals, costs, appointments), with {table} replaced by the table's name. The rows of an event_id stored
-- once pass through a hash anti join; only the few event_ids stored more than once are sorted to find their
-- first copy (a window over every row sorted whole tables).
CREATE VIEW {table}_copied AS
SELECT event_id FROM {table} GROUP BY event_id HAVING count(*) > 1;

CREATE VIEW unique_{table} AS
SELECT * FROM {table}
WHERE NOT EXISTS (SELECT 1 FROM {table}_copied c WHERE c.event_id = {table}.event_id)
UNION ALL
SELECT * EXCLUDE (copy_no) FROM (
  SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY source, source_offset) AS copy_no
  FROM {table}
  WHERE EXISTS (SELECT 1 FROM {table}_copied c WHERE c.event_id = {table}.event_id)
) WHERE copy_no = 1;

-- The report that counts for each employee and month: latest occurred_at, ties to the greater event_id.
CREATE VIEW latest_staff AS
SELECT * EXCLUDE (report_rank) FROM (
  SELECT *, row_number() OVER (PARTITION BY employee_ref, month ORDER BY occurred_at DESC, event_id DESC) AS report_rank
  FROM staff
) WHERE report_rank = 1;

-- Every staff report ever stored, with the columns data_quality reads. Staff reports are partitioned by the
-- month they report, not by the day they arrived (a report or correction may arrive in a later year), so
-- the partitions an incremental run reads as `staff` do not hold every report of the days it recomputes.
CREATE VIEW staff_reports AS
SELECT event_id, occurred_at, employee_ref, month, unit FROM all_staff;

-- Person-years of each latest report, by process: paid_days / days in the year × part-time factor × share.
CREATE VIEW person_years_by_process AS
SELECT month, unit, get_field(entry, 'key') AS process, py * get_field(entry, 'value') AS person_years
FROM (
  SELECT month, unit, unnest(map_entries(allocation)) AS entry,
         CAST(paid_days AS DOUBLE)
           / CASE WHEN (CAST(substr(month, 1, 4) AS INT) % 4 = 0 AND CAST(substr(month, 1, 4) AS INT) % 100 <> 0)
                       OR CAST(substr(month, 1, 4) AS INT) % 400 = 0 THEN 366 ELSE 365 END
           * part_time_factor AS py
  FROM latest_staff
);

-- The tables `periods` (month, period_type, period, period_start, period_end; a year period has one row per
-- month) and `weeks` (period, period_start, period_end) come from the commit log: every period from the
-- first to the last one with any event. `all_<table>` is the whole event table; while an incremental
-- materialisation runs, `<table>` may hold only the events of the periods being recomputed, and
-- `materialize_scope.from_year` is the first year being recomputed (0 in a full run).

-- Every submission and every decision ever stored, with the columns the whole-history views read. An
-- incremental materialisation replaces each `*_history` view by the rows of the files committed since and
-- merges what `application_firsts` makes of them with the `application_firsts` it kept from the last
-- materialisation (marts/_summaries/): the firsts are minimums, so the minimums of those rows are the
-- minimums of the whole history.
CREATE VIEW application_history AS
SELECT application_id, CAST(permit_type AS VARCHAR) AS permit_type, occurred_at, event_date FROM all_applications;

CREATE VIEW decision_history AS
SELECT application_id, occurred_at, event_date FROM all_decisions;

-- The first submission and the first decision of each application_id that has either (an application sent
-- twice counts once, from the first; the earliest time has the earliest UTC event day). In an incremental
-- materialisation this view holds only the submitted applications the recomputed periods can need: those
-- not both submitted and first decided before the first day the recomputed `decisions` hold, and those with
-- a decision in `decisions`. (One submitted and decided before it left the backlog before those periods.)
CREATE VIEW application_firsts AS
SELECT application_id, min(permit_type) AS permit_type,
       min(submitted_at) AS submitted_at, min(submitted_date) AS submitted_date,
       min(decided_at) AS decided_at, min(decided_date) AS decided_date
FROM (
  SELECT application_id, permit_type, occurred_at AS submitted_at, event_date AS submitted_date,
         NULL AS decided_at, NULL AS decided_date
  FROM application_history
  UNION ALL
  SELECT application_id, NULL, NULL, NULL, occurred_at, event_date FROM decision_history
)
GROUP BY application_id;

-- Each application once: its first submission. Months come from the UTC event date of the partition.
CREATE VIEW application_submissions AS
SELECT application_id, permit_type, submitted_at, substr(submitted_date, 1, 7) AS submitted_month
FROM application_firsts
WHERE submitted_at IS NOT NULL;

-- When each application left the backlog: its first decision, but never before it was submitted.
CREATE VIEW application_closures AS
SELECT application_id, permit_type, submitted_at, substr(submitted_date, 1, 7) AS submitted_month,
       CASE WHEN decided_at IS NULL THEN NULL
            WHEN decided_at < submitted_at THEN submitted_at
            ELSE decided_at END AS closed_at,
       CASE WHEN decided_at IS NULL THEN NULL
            WHEN decided_at < submitted_at THEN substr(submitted_date, 1, 7)
            ELSE substr(decided_date, 1, 7) END AS closed_month
FROM application_firsts
WHERE submitted_at IS NOT NULL;
