-- inflow (marts.md): applications submitted per ISO week, month and year and permit type (each event_id
-- once), with an 'all' row for every period.
WITH by_day AS (
  SELECT event_date, CAST(permit_type AS VARCHAR) AS permit_type, count(*) AS applications
  FROM unique_applications
  GROUP BY event_date, CAST(permit_type AS VARCHAR)
),
submitted AS (
  SELECT substr(event_date, 1, 7) AS month, to_char(to_date(event_date), '%G-W%V') AS week, permit_type, applications
  FROM by_day
),
in_periods AS (
  SELECT p.period_type, p.period, s.permit_type, s.applications FROM submitted s JOIN periods p ON p.month = s.month
  UNION ALL
  SELECT 'week' AS period_type, w.period, s.permit_type, s.applications
  FROM submitted s JOIN weeks w ON w.period = s.week
),
all_periods AS (
  SELECT DISTINCT period_type, period FROM periods
  UNION ALL
  SELECT 'week' AS period_type, period FROM weeks
),
by_type AS (
  SELECT period_type, period, permit_type, sum(applications) AS applications
  FROM in_periods GROUP BY period_type, period, permit_type
),
agency AS (
  SELECT p.period_type, p.period, 'all' AS permit_type, coalesce(sum(t.applications), 0) AS applications
  FROM all_periods p LEFT JOIN by_type t ON t.period_type = p.period_type AND t.period = p.period
  GROUP BY p.period_type, p.period
)
SELECT period_type, period, permit_type, CAST(applications AS BIGINT) AS applications
FROM (SELECT * FROM agency UNION ALL SELECT * FROM by_type)
ORDER BY period_type, period, permit_type
