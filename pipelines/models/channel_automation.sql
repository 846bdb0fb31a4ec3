-- channel_automation (marts.md): per month (and year) and permit type, applications submitted and the
-- share sent through the e-service; decisions made and the share made (partially) automatically.
-- Shares are NULL where there is nothing to divide by.
WITH apps AS (
  SELECT p.period_type, p.period, CAST(a.permit_type AS VARCHAR) AS permit_type,
         count(*) AS applications,
         sum(CASE WHEN CAST(a.channel AS VARCHAR) = 'e_service' THEN 1 ELSE 0 END) AS e_service
  FROM unique_applications a JOIN periods p ON p.month = to_char(a.occurred_at, '%Y-%m')
  GROUP BY p.period_type, p.period, CAST(a.permit_type AS VARCHAR)
),
decs AS (
  SELECT p.period_type, p.period, CAST(d.permit_type AS VARCHAR) AS permit_type,
         count(*) AS decisions,
         sum(CASE WHEN d.automated THEN 1 ELSE 0 END) AS automated
  FROM unique_decisions d JOIN periods p ON p.month = to_char(d.occurred_at, '%Y-%m')
  GROUP BY p.period_type, p.period, CAST(d.permit_type AS VARCHAR)
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
