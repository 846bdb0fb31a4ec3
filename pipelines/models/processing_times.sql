-- processing_times (marts.md): decided_at − submitted_at in fractional days, per month (and year) of
-- decision and permit type: count, exact median and 90th percentile, mean, the target
-- (pipelines/targets.toml) and the share within it. A decision whose application event is unknown counts
-- in `decisions` and `missing_application`, not in the day figures. The 'all' row covers every type; its
-- target is NULL and its share is over the decisions of types that have a target.
-- Percentiles are interpolated linearly between the closest ranks (percentile_cont): with the n values
-- sorted v[0..n-1] and h = (n − 1) × p, v[floor(h)] + (h − floor(h)) × (v[floor(h) + 1] − v[floor(h)]),
-- computed here with integer ranks so that no rounding of h moves a rank.
WITH timed AS (
  SELECT substr(d.event_date, 1, 7) AS month, CAST(d.permit_type AS VARCHAR) AS permit_type,
         CAST(arrow_cast(d.occurred_at, 'Int64') - arrow_cast(a.submitted_at, 'Int64') AS DOUBLE) / 86400000000.0
           AS days,
         a.application_id IS NULL AS missing
  FROM unique_decisions d
  LEFT JOIN application_submissions a ON a.application_id = d.application_id
),
targeted AS (
  SELECT t.*, g.target_days,
         CASE WHEN g.target_days IS NOT NULL AND t.days IS NOT NULL THEN t.days <= g.target_days END AS within
  FROM timed t LEFT JOIN processing_targets g ON g.permit_type = t.permit_type
),
in_periods AS (
  SELECT p.period_type, p.period, t.permit_type, t.days, t.within, t.missing, t.target_days
  FROM targeted t JOIN periods p ON p.month = t.month
),
ranked_by_type AS (
  SELECT *,
         row_number() OVER (PARTITION BY period_type, period, permit_type ORDER BY days ASC NULLS LAST) - 1 AS r,
         count(days) OVER (PARTITION BY period_type, period, permit_type) AS n
  FROM in_periods
),
ranked_all AS (
  SELECT *,
         row_number() OVER (PARTITION BY period_type, period ORDER BY days ASC NULLS LAST) - 1 AS r,
         count(days) OVER (PARTITION BY period_type, period) AS n
  FROM in_periods
),
by_type AS (
  SELECT period_type, period, permit_type,
         count(*) AS decisions,
         max(n) AS n,
         max(CASE WHEN r = (n - 1) / 2 THEN days END) AS median_lo,
         max(CASE WHEN r = (n - 1) / 2 + 1 THEN days END) AS median_hi,
         max(CASE WHEN r = (n - 1) * 9 / 10 THEN days END) AS p90_lo,
         max(CASE WHEN r = (n - 1) * 9 / 10 + 1 THEN days END) AS p90_hi,
         avg(days) AS mean_days,
         max(target_days) AS target_days,
         avg(CASE WHEN within THEN 1.0 WHEN NOT within THEN 0.0 END) AS within_target_share,
         sum(CASE WHEN missing THEN 1 ELSE 0 END) AS missing_application
  FROM ranked_by_type GROUP BY period_type, period, permit_type
),
agency AS (
  SELECT period_type, period,
         count(*) AS decisions,
         max(n) AS n,
         max(CASE WHEN r = (n - 1) / 2 THEN days END) AS median_lo,
         max(CASE WHEN r = (n - 1) / 2 + 1 THEN days END) AS median_hi,
         max(CASE WHEN r = (n - 1) * 9 / 10 THEN days END) AS p90_lo,
         max(CASE WHEN r = (n - 1) * 9 / 10 + 1 THEN days END) AS p90_hi,
         avg(days) AS mean_days,
         avg(CASE WHEN within THEN 1.0 WHEN NOT within THEN 0.0 END) AS within_target_share,
         sum(CASE WHEN missing THEN 1 ELSE 0 END) AS missing_application
  FROM ranked_all GROUP BY period_type, period
),
all_rows AS (
  SELECT k.period_type, k.period, 'all' AS permit_type,
         coalesce(s.decisions, 0) AS decisions, s.n, s.median_lo, s.median_hi, s.p90_lo, s.p90_hi, s.mean_days,
         CAST(NULL AS DOUBLE) AS target_days, s.within_target_share,
         coalesce(s.missing_application, 0) AS missing_application
  FROM (SELECT DISTINCT period_type, period FROM periods) k
  LEFT JOIN agency s ON s.period_type = k.period_type AND s.period = k.period
  UNION ALL
  SELECT period_type, period, permit_type, decisions, n, median_lo, median_hi, p90_lo, p90_hi, mean_days,
         target_days, within_target_share, missing_application
  FROM by_type
)
SELECT period_type, period, permit_type,
       CAST(decisions AS BIGINT) AS decisions,
       median_lo + CAST((n - 1) % 2 AS DOUBLE) / 2.0 * (coalesce(median_hi, median_lo) - median_lo) AS median_days,
       p90_lo + CAST((n - 1) * 9 % 10 AS DOUBLE) / 10.0 * (coalesce(p90_hi, p90_lo) - p90_lo) AS p90_days,
       CAST(mean_days AS DOUBLE) AS mean_days,
       CAST(target_days AS DOUBLE) AS target_days,
       CAST(within_target_share AS DOUBLE) AS within_target_share,
       CAST(missing_application AS BIGINT) AS missing_application
FROM all_rows
ORDER BY period_type, period, permit_type
