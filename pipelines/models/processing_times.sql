-- processing_times (marts.md): decided_at − submitted_at in fractional days, per month (and year) of
-- decision and permit type: count, exact median and 90th percentile, mean, the target
-- (pipelines/targets.toml) and the share within it. A decision whose application event is unknown counts
-- in `decisions` and `missing_application`, not in the day figures. The 'all' row covers every type; its
-- target is NULL and its share is over the decisions of types that have a target.
-- Percentiles: exact_percentile (crates/metrics/src/percentile.rs), interpolated linearly between the closest
-- ranks like percentile_cont, with exact rank arithmetic.
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
by_type AS (
  SELECT period_type, period, permit_type,
         count(*) AS decisions,
         exact_percentile(days, 50) AS median_days,
         exact_percentile(days, 90) AS p90_days,
         avg(days) AS mean_days,
         max(target_days) AS target_days,
         avg(CASE WHEN within THEN 1.0 WHEN NOT within THEN 0.0 END) AS within_target_share,
         sum(CASE WHEN missing THEN 1 ELSE 0 END) AS missing_application
  FROM in_periods GROUP BY period_type, period, permit_type
),
agency AS (
  SELECT period_type, period,
         count(*) AS decisions,
         exact_percentile(days, 50) AS median_days,
         exact_percentile(days, 90) AS p90_days,
         avg(days) AS mean_days,
         avg(CASE WHEN within THEN 1.0 WHEN NOT within THEN 0.0 END) AS within_target_share,
         sum(CASE WHEN missing THEN 1 ELSE 0 END) AS missing_application
  FROM in_periods GROUP BY period_type, period
),
all_rows AS (
  SELECT k.period_type, k.period, 'all' AS permit_type,
         coalesce(s.decisions, 0) AS decisions, s.median_days, s.p90_days, s.mean_days,
         CAST(NULL AS DOUBLE) AS target_days, s.within_target_share,
         coalesce(s.missing_application, 0) AS missing_application
  FROM (SELECT DISTINCT period_type, period FROM periods) k
  LEFT JOIN agency s ON s.period_type = k.period_type AND s.period = k.period
  UNION ALL
  SELECT period_type, period, permit_type, decisions, median_days, p90_days, mean_days,
         target_days, within_target_share, missing_application
  FROM by_type
)
SELECT period_type, period, permit_type,
       CAST(decisions AS BIGINT) AS decisions,
       median_days,
       p90_days,
       CAST(mean_days AS DOUBLE) AS mean_days,
       CAST(target_days AS DOUBLE) AS target_days,
       CAST(within_target_share AS DOUBLE) AS within_target_share,
       CAST(missing_application AS BIGINT) AS missing_application
FROM all_rows
ORDER BY period_type, period, permit_type
