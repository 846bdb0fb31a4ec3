-- appointment_wait (marts.md): first_free_slot_at − occurred_at in fractional days for identification
-- appointments, per month (and year) of booking and service point: bookings, exact median and 90th
-- percentile, the target (pipelines/targets.toml, [appointment_wait_days].identification) and the share
-- within it. The 'all' row covers every service point.
WITH waits AS (
  SELECT to_char(a.occurred_at, '%Y-%m') AS month, a.service_point,
         CAST(arrow_cast(a.first_free_slot_at, 'Int64') - arrow_cast(a.occurred_at, 'Int64') AS DOUBLE)
           / 86400000000.0 AS days
  FROM unique_appointments a
  WHERE a.service = 'identification'
),
target AS (SELECT max(target_days) AS target_days FROM appointment_targets WHERE service = 'identification'),
in_periods AS (
  SELECT p.period_type, p.period, w.service_point, w.days
  FROM waits w JOIN periods p ON p.month = w.month
),
by_point AS (
  SELECT period_type, period, service_point, count(*) AS bookings,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY days) AS median_days,
         percentile_cont(0.9) WITHIN GROUP (ORDER BY days) AS p90_days,
         avg(CASE WHEN days <= (SELECT target_days FROM target) THEN 1.0 ELSE 0.0 END) AS within_target_share
  FROM in_periods GROUP BY period_type, period, service_point
),
agency AS (
  SELECT p.period_type, p.period, 'all' AS service_point, count(w.days) AS bookings,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY w.days) AS median_days,
         percentile_cont(0.9) WITHIN GROUP (ORDER BY w.days) AS p90_days,
         avg(CASE WHEN w.days IS NULL THEN NULL WHEN w.days <= (SELECT target_days FROM target) THEN 1.0 ELSE 0.0 END)
           AS within_target_share
  FROM (SELECT DISTINCT period_type, period FROM periods) p
  LEFT JOIN in_periods w ON w.period_type = p.period_type AND w.period = p.period
  GROUP BY p.period_type, p.period
),
all_rows AS (SELECT * FROM agency UNION ALL SELECT * FROM by_point)
SELECT period_type, period, service_point,
       CAST(bookings AS BIGINT) AS bookings,
       CAST(median_days AS DOUBLE) AS median_days,
       CAST(p90_days AS DOUBLE) AS p90_days,
       CAST((SELECT target_days FROM target) AS DOUBLE) AS target_days,
       CASE WHEN (SELECT target_days FROM target) IS NOT NULL THEN CAST(within_target_share AS DOUBLE) END
         AS within_target_share
FROM all_rows
ORDER BY period_type, period, service_point
