-- data_quality (an addition to marts.md): why a figure may have moved. One row per day (or month) and
-- issue where the count is above zero:
--   issue 'rejection'                    detail = the rule; day the input arrived (_rejections.received_at)
--   issue 'duplicate'                    detail = the table; extra copies of an event_id, by event day
--   issue 'decision_without_application' detail = the permit type; by decision day (the application event
--                                        may still arrive; the figure then drops)
--   issue 'staff_month_without_report'   detail = the unit; employees who reported the month before but not
--                                        this month (period_type 'month'), up to the last reported month
-- Columns: period_type ('day' or 'month'), period, issue, detail, occurrences.
WITH scope AS (SELECT from_year FROM materialize_scope),
rejections AS (
  SELECT 'day' AS period_type, to_char(received_at, '%Y-%m-%d') AS period, 'rejection' AS issue, rule AS detail,
         count(*) AS occurrences
  FROM _rejections
  WHERE CAST(to_char(received_at, '%Y') AS INT) >= (SELECT from_year FROM scope)
  GROUP BY to_char(received_at, '%Y-%m-%d'), rule
),
-- Extra copies per event day = rows stored − rows of the unique_* view (the UTC date of the partition).
-- Staff and costs are partitioned by the month they report and have no unique_* view: their days are
-- computed from when they occurred, over every stored row of those years (a month's report may arrive in a
-- later year).
extra_copies AS (
  SELECT 'applications' AS detail, event_date AS day, count(*) AS copies FROM applications GROUP BY event_date
  UNION ALL SELECT 'applications', event_date, -count(*) FROM unique_applications GROUP BY event_date
  UNION ALL SELECT 'decisions', event_date, count(*) FROM decisions GROUP BY event_date
  UNION ALL SELECT 'decisions', event_date, -count(*) FROM unique_decisions GROUP BY event_date
  UNION ALL SELECT 'appeals', event_date, count(*) FROM appeals GROUP BY event_date
  UNION ALL SELECT 'appeals', event_date, -count(*) FROM unique_appeals GROUP BY event_date
  UNION ALL SELECT 'appointments', event_date, count(*) FROM appointments GROUP BY event_date
  UNION ALL SELECT 'appointments', event_date, -count(*) FROM unique_appointments GROUP BY event_date
  UNION ALL SELECT 'staff', day, count(*) - count(DISTINCT event_id)
  FROM (SELECT to_char(occurred_at, '%Y-%m-%d') AS day, event_id FROM staff_reports
        WHERE extract(year FROM occurred_at) >= (SELECT from_year FROM scope)) GROUP BY day
  UNION ALL SELECT 'costs', day, count(*) - count(DISTINCT event_id)
  FROM (SELECT to_char(occurred_at, '%Y-%m-%d') AS day, event_id FROM all_costs
        WHERE extract(year FROM occurred_at) >= (SELECT from_year FROM scope)) GROUP BY day
),
duplicates AS (
  SELECT 'day' AS period_type, day AS period, 'duplicate' AS issue, detail, sum(copies) AS occurrences
  FROM extra_copies
  WHERE CAST(substr(day, 1, 4) AS INT) >= (SELECT from_year FROM scope)
  GROUP BY day, detail
),
orphans AS (
  SELECT 'day' AS period_type, d.event_date AS period,
         'decision_without_application' AS issue, CAST(d.permit_type AS VARCHAR) AS detail, count(*) AS occurrences
  FROM unique_decisions d
  LEFT JOIN application_submissions a ON a.application_id = d.application_id
  WHERE a.application_id IS NULL AND CAST(substr(d.event_date, 1, 4) AS INT) >= (SELECT from_year FROM scope)
  GROUP BY d.event_date, CAST(d.permit_type AS VARCHAR)
),
-- The months reported from the year before the first one recomputed on: a gap in a recomputed month follows
-- a report of the month before.
reported AS (
  SELECT DISTINCT employee_ref, month, unit,
         to_char(to_date(month || '-01') + INTERVAL '1 month', '%Y-%m') AS next_month
  FROM staff_reports
  WHERE CAST(substr(month, 1, 4) AS INT) >= (SELECT from_year FROM scope) - 1
),
-- An anti join on plain columns (a hash join; NOT EXISTS over an expression became a nested loop).
gaps AS (
  SELECT 'month' AS period_type, r.next_month AS period, 'staff_month_without_report' AS issue, r.unit AS detail,
         count(DISTINCT r.employee_ref) AS occurrences
  FROM reported r
  LEFT JOIN (SELECT DISTINCT employee_ref, month FROM reported) n
    ON n.employee_ref = r.employee_ref AND n.month = r.next_month
  WHERE n.employee_ref IS NULL
  GROUP BY r.next_month, r.unit
),
gaps_in_scope AS (
  SELECT * FROM gaps
  WHERE period <= (SELECT max(month) FROM reported)
    AND CAST(substr(period, 1, 4) AS INT) >= (SELECT from_year FROM scope)
)
SELECT period_type, period, issue, detail, CAST(occurrences AS BIGINT) AS occurrences
FROM (
  SELECT * FROM rejections
  UNION ALL SELECT * FROM duplicates WHERE occurrences > 0
  UNION ALL SELECT * FROM orphans
  UNION ALL SELECT * FROM gaps_in_scope
)
ORDER BY period_type, period, issue, detail
