-- Views shared by every model; run before the models in each metrics session.
-- Each indicator counts each event_id once: the unique_* views keep the first
-- copy (by source position) of every event_id.

CREATE VIEW unique_applications AS
SELECT * EXCLUDE (copy_no) FROM (
  SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY source, source_offset) AS copy_no FROM applications
) WHERE copy_no = 1;

CREATE VIEW unique_decisions AS
SELECT * EXCLUDE (copy_no) FROM (
  SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY source, source_offset) AS copy_no FROM decisions
) WHERE copy_no = 1;

CREATE VIEW unique_appeals AS
SELECT * EXCLUDE (copy_no) FROM (
  SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY source, source_offset) AS copy_no FROM appeals
) WHERE copy_no = 1;

CREATE VIEW unique_costs AS
SELECT * EXCLUDE (copy_no) FROM (
  SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY source, source_offset) AS copy_no FROM costs
) WHERE copy_no = 1;

CREATE VIEW unique_appointments AS
SELECT * EXCLUDE (copy_no) FROM (
  SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY source, source_offset) AS copy_no FROM appointments
) WHERE copy_no = 1;

-- The report that counts for each employee and month: latest occurred_at, ties to the greater event_id.
CREATE VIEW latest_staff AS
SELECT * EXCLUDE (report_rank) FROM (
  SELECT *, row_number() OVER (PARTITION BY employee_ref, month ORDER BY occurred_at DESC, event_id DESC) AS report_rank
  FROM staff
) WHERE report_rank = 1;

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

-- Every month from the first to the last month that has any event.
CREATE VIEW calendar_months AS
SELECT to_char(month_start, '%Y-%m') AS month
FROM (
  SELECT unnest(generate_series(
           to_date(min(m) || '-01'), to_date(max(m) || '-01'), INTERVAL '1 month')) AS month_start
  FROM (
    SELECT to_char(occurred_at, '%Y-%m') AS m FROM applications
    UNION ALL SELECT to_char(occurred_at, '%Y-%m') FROM decisions
    UNION ALL SELECT to_char(occurred_at, '%Y-%m') FROM appeals
    UNION ALL SELECT month FROM staff
    UNION ALL SELECT month FROM costs
    UNION ALL SELECT to_char(occurred_at, '%Y-%m') FROM appointments
  )
  HAVING count(m) > 0
);

-- Each month belongs to its month period and its year period.
CREATE VIEW periods AS
SELECT month, 'month' AS period_type, month AS period FROM calendar_months
UNION ALL
SELECT month, 'year' AS period_type, substr(month, 1, 4) AS period FROM calendar_months;
