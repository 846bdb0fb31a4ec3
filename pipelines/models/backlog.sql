-- backlog (marts.md): applications submitted at or before the end of a period with no decision at or before
-- it, by the application's permit type, with the figure at the start of the year (= at the end of the year
-- before; 0 before the first event) and the change since then in percent (NULL when it was 0).
-- Counted from monthly movements: an application enters in the month it is submitted and leaves in the month
-- of its first decision (application_closures), so the backlog at the end of a period is the sum of all
-- movements before the period's end. It reads the whole history (all_applications, all_decisions).
WITH movements AS (
  SELECT permit_type, month, sum(delta) AS delta FROM (
    SELECT permit_type, submitted_month AS month, count(*) AS delta FROM application_closures
    GROUP BY permit_type, submitted_month
    UNION ALL
    SELECT permit_type, closed_month AS month, -count(*) AS delta FROM application_closures
    WHERE closed_month IS NOT NULL GROUP BY permit_type, closed_month
  )
  GROUP BY permit_type, month
),
period_bounds AS (
  SELECT period_type, period, max(to_char(period_end, '%Y-%m')) AS end_month,
         max(substr(month, 1, 4)) || '-01' AS year_start_month
  FROM periods GROUP BY period_type, period
),
by_type AS (
  SELECT b.period_type, b.period, m.permit_type,
         sum(CASE WHEN m.month < b.end_month THEN m.delta ELSE 0 END) AS pending_at_end,
         sum(CASE WHEN m.month < b.year_start_month THEN m.delta ELSE 0 END) AS pending_at_year_start
  FROM period_bounds b JOIN movements m ON m.month < b.end_month
  GROUP BY b.period_type, b.period, m.permit_type
),
agency AS (
  SELECT b.period_type, b.period, 'all' AS permit_type,
         coalesce(sum(t.pending_at_end), 0) AS pending_at_end,
         coalesce(sum(t.pending_at_year_start), 0) AS pending_at_year_start
  FROM period_bounds b
  LEFT JOIN by_type t ON t.period_type = b.period_type AND t.period = b.period
  GROUP BY b.period_type, b.period
),
all_rows AS (SELECT * FROM agency UNION ALL SELECT * FROM by_type)
SELECT period_type, period, permit_type,
       CAST(pending_at_end AS BIGINT) AS pending_at_end,
       CAST(pending_at_year_start AS BIGINT) AS pending_at_year_start,
       100.0 * CAST(pending_at_end - pending_at_year_start AS DOUBLE)
         / nullif(CAST(pending_at_year_start AS DOUBLE), 0.0) AS change_since_year_start_pct
FROM all_rows
ORDER BY period_type, period, permit_type
