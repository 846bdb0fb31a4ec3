-- appointment_wait (marts.md): first_free_slot_at − occurred_at in fractional days for identification
-- appointments, per month (and year) of booking and service point: bookings, exact median and 90th
-- percentile (exact_percentile, as in processing_times.sql), the target
-- (pipelines/targets.toml, [appointment_wait_days].identification) and the share within it. The 'all' row
-- covers every service point.
WITH target AS (SELECT max(target_days) AS target_days FROM appointment_targets WHERE service = 'identification'),
waits AS (
  SELECT substr(a.event_date, 1, 7) AS month, a.service_point,
         CAST(arrow_cast(a.first_free_slot_at, 'Int64') - arrow_cast(a.occurred_at, 'Int64') AS DOUBLE)
           / 86400000000.0 AS days
  FROM unique_appointments a
  WHERE a.service = 'identification'
),
in_periods AS (
  SELECT p.period_type, p.period, w.service_point, w.days FROM waits w JOIN periods p ON p.month = w.month
),
by_point AS (
  SELECT period_type, period, service_point,
         count(*) AS bookings,
         exact_percentile(days, 50) AS median_days,
         exact_percentile(days, 90) AS p90_days,
         avg(CASE WHEN days <= (SELECT target_days FROM target) THEN 1.0 ELSE 0.0 END) AS within_target_share
  FROM in_periods GROUP BY period_type, period, service_point
),
agency AS (
  SELECT period_type, period,
         count(*) AS bookings,
         exact_percentile(days, 50) AS median_days,
         exact_percentile(days, 90) AS p90_days,
         avg(CASE WHEN days <= (SELECT target_days FROM target) THEN 1.0 ELSE 0.0 END) AS within_target_share
  FROM in_periods GROUP BY period_type, period
),
all_rows AS (
  SELECT k.period_type, k.period, 'all' AS service_point, coalesce(s.bookings, 0) AS bookings,
         s.median_days, s.p90_days, s.within_target_share
  FROM (SELECT DISTINCT period_type, period FROM periods) k
  LEFT JOIN agency s ON s.period_type = k.period_type AND s.period = k.period
  UNION ALL
  SELECT period_type, period, service_point, bookings, median_days, p90_days, within_target_share
  FROM by_point
)
SELECT period_type, period, service_point,
       CAST(bookings AS BIGINT) AS bookings,
       median_days,
       p90_days,
       CAST((SELECT target_days FROM target) AS DOUBLE) AS target_days,
       CASE WHEN (SELECT target_days FROM target) IS NOT NULL THEN CAST(within_target_share AS DOUBLE) END
         AS within_target_share
FROM all_rows
ORDER BY period_type, period, service_point
