-- appointment_wait (marts.md): first_free_slot_at − occurred_at in fractional days for identification
-- appointments, per month (and year) of booking and service point: bookings, exact median and 90th
-- percentile (interpolated between the closest ranks, as in processing_times.sql), the target
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
ranked_by_point AS (
  SELECT *,
         row_number() OVER (PARTITION BY period_type, period, service_point ORDER BY days) - 1 AS r,
         count(*) OVER (PARTITION BY period_type, period, service_point) AS n
  FROM in_periods
),
ranked_all AS (
  SELECT *,
         row_number() OVER (PARTITION BY period_type, period ORDER BY days) - 1 AS r,
         count(*) OVER (PARTITION BY period_type, period) AS n
  FROM in_periods
),
by_point AS (
  SELECT period_type, period, service_point,
         count(*) AS bookings,
         max(n) AS n,
         max(CASE WHEN r = (n - 1) / 2 THEN days END) AS median_lo,
         max(CASE WHEN r = (n - 1) / 2 + 1 THEN days END) AS median_hi,
         max(CASE WHEN r = (n - 1) * 9 / 10 THEN days END) AS p90_lo,
         max(CASE WHEN r = (n - 1) * 9 / 10 + 1 THEN days END) AS p90_hi,
         avg(CASE WHEN days <= (SELECT target_days FROM target) THEN 1.0 ELSE 0.0 END) AS within_target_share
  FROM ranked_by_point GROUP BY period_type, period, service_point
),
agency AS (
  SELECT period_type, period,
         count(*) AS bookings,
         max(n) AS n,
         max(CASE WHEN r = (n - 1) / 2 THEN days END) AS median_lo,
         max(CASE WHEN r = (n - 1) / 2 + 1 THEN days END) AS median_hi,
         max(CASE WHEN r = (n - 1) * 9 / 10 THEN days END) AS p90_lo,
         max(CASE WHEN r = (n - 1) * 9 / 10 + 1 THEN days END) AS p90_hi,
         avg(CASE WHEN days <= (SELECT target_days FROM target) THEN 1.0 ELSE 0.0 END) AS within_target_share
  FROM ranked_all GROUP BY period_type, period
),
all_rows AS (
  SELECT k.period_type, k.period, 'all' AS service_point, coalesce(s.bookings, 0) AS bookings, s.n,
         s.median_lo, s.median_hi, s.p90_lo, s.p90_hi, s.within_target_share
  FROM (SELECT DISTINCT period_type, period FROM periods) k
  LEFT JOIN agency s ON s.period_type = k.period_type AND s.period = k.period
  UNION ALL
  SELECT period_type, period, service_point, bookings, n, median_lo, median_hi, p90_lo, p90_hi,
         within_target_share
  FROM by_point
)
SELECT period_type, period, service_point,
       CAST(bookings AS BIGINT) AS bookings,
       median_lo + CAST((n - 1) % 2 AS DOUBLE) / 2.0 * (coalesce(median_hi, median_lo) - median_lo) AS median_days,
       p90_lo + CAST((n - 1) * 9 % 10 AS DOUBLE) / 10.0 * (coalesce(p90_hi, p90_lo) - p90_lo) AS p90_days,
       CAST((SELECT target_days FROM target) AS DOUBLE) AS target_days,
       CASE WHEN (SELECT target_days FROM target) IS NOT NULL THEN CAST(within_target_share AS DOUBLE) END
         AS within_target_share
FROM all_rows
ORDER BY period_type, period, service_point
