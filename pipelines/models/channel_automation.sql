-- channel_automation (marts.md): per month (and year) and permit type, applications submitted and the
-- share sent through the e-service; decisions made and the share made (partially) automatically.
-- Shares are NULL where there is nothing to divide by.
WITH apps_by_month AS (
  SELECT substr(event_date, 1, 7) AS month, CAST(permit_type AS VARCHAR) AS permit_type,
         count(*) AS applications,
         sum(CASE WHEN CAST(channel AS VARCHAR) = 'e_service' THEN 1 ELSE 0 END) AS e_service
  FROM unique_applications
  GROUP BY substr(event_date, 1, 7), CAST(permit_type AS VARCHAR)
),
apps AS (
  SELECT p.period_type, p.period, a.permit_type, sum(a.applications) AS applications, sum(a.e_service) AS e_service
  FROM apps_by_month a JOIN periods p ON p.month = a.month
  GROUP BY p.period_type, p.period, a.permit_type
),
decs_by_month AS (
  SELECT substr(event_date, 1, 7) AS month, CAST(permit_type AS VARCHAR) AS permit_type,
         count(*) AS decisions,
         sum(CASE WHEN automated THEN 1 ELSE 0 END) AS automated
  FROM unique_decisions
  GROUP BY substr(event_date, 1, 7), CAST(permit_type AS VARCHAR)
),
decs AS (
  SELECT p.period_type, p.period, d.permit_type, sum(d.decisions) AS decisions, sum(d.automated) AS automated
  FROM decs_by_month d JOIN periods p ON p.month = d.month
  GROUP BY p.period_type, p.period, d.permit_type
),
by_type AS (
  SELECT k.period_type, k.period, k.permit_type,
         coalesce(a.applications, 0) AS applications, coalesce(a.e_service, 0) AS e_service,
         coalesce(d.decisions, 0) AS decisions, coalesce(d.automated, 0) AS automated
  FROM (SELECT period_type, period, permit_type FROM apps UNION SELECT period_type, period, permit_type FROM decs) k
  LEFT JOIN apps a ON a.period_type = k.period_type AND a.period = k.period AND a.permit_type = k.permit_type
  LEFT JOIN decs d ON d.period_type = k.period_type AND d.period = k.period AND d.permit_type = k.permit_type
),
agency AS (
  SELECT p.period_type, p.period, 'all' AS permit_type,
         coalesce(sum(t.applications), 0) AS applications, coalesce(sum(t.e_service), 0) AS e_service,
         coalesce(sum(t.decisions), 0) AS decisions, coalesce(sum(t.automated), 0) AS automated
  FROM (SELECT DISTINCT period_type, period FROM periods) p
  LEFT JOIN by_type t ON t.period_type = p.period_type AND t.period = p.period
  GROUP BY p.period_type, p.period
),
all_rows AS (SELECT * FROM agency UNION ALL SELECT * FROM by_type)
SELECT period_type, period, permit_type,
       CAST(applications AS BIGINT) AS applications,
       CAST(e_service AS DOUBLE) / nullif(CAST(applications AS DOUBLE), 0.0) AS e_service_share,
       CAST(decisions AS BIGINT) AS decisions,
       CAST(automated AS DOUBLE) / nullif(CAST(decisions AS DOUBLE), 0.0) AS automated_share
FROM all_rows
ORDER BY period_type, period, permit_type
