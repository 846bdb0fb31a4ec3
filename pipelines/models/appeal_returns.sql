-- appeal_returns (marts.md): per year of resolution and permit type, appeals resolved and the shares
-- returned for a legal or procedural error and for a different assessment of facts, with the targets of
-- pipelines/targets.toml (NULL for a type without one, and for the 'all' row).
WITH resolved AS (
  SELECT substr(a.event_date, 1, 4) AS period, CAST(a.permit_type AS VARCHAR) AS permit_type,
         CAST(a.result AS VARCHAR) AS result
  FROM unique_appeals a
),
years AS (SELECT DISTINCT period FROM periods WHERE period_type = 'year'),
by_type AS (
  SELECT r.period, r.permit_type, count(*) AS appeals,
         sum(CASE WHEN r.result = 'returned_legal_error' THEN 1 ELSE 0 END) AS legal_error,
         sum(CASE WHEN r.result = 'returned_fact_assessment' THEN 1 ELSE 0 END) AS fact_assessment
  FROM resolved r JOIN years y ON y.period = r.period
  GROUP BY r.period, r.permit_type
),
agency AS (
  SELECT y.period, 'all' AS permit_type, coalesce(sum(t.appeals), 0) AS appeals,
         coalesce(sum(t.legal_error), 0) AS legal_error, coalesce(sum(t.fact_assessment), 0) AS fact_assessment
  FROM years y LEFT JOIN by_type t ON t.period = y.period
  GROUP BY y.period
),
all_rows AS (SELECT * FROM agency UNION ALL SELECT * FROM by_type)
SELECT 'year' AS period_type, r.period, r.permit_type,
       CAST(r.appeals AS BIGINT) AS appeals,
       CAST(r.legal_error AS DOUBLE) / nullif(CAST(r.appeals AS DOUBLE), 0.0) AS returned_legal_error_share,
       CAST(r.fact_assessment AS DOUBLE) / nullif(CAST(r.appeals AS DOUBLE), 0.0) AS returned_fact_assessment_share,
       CAST(g.legal_error_target AS DOUBLE) AS legal_error_target,
       CAST(g.fact_assessment_target AS DOUBLE) AS fact_assessment_target
FROM all_rows r LEFT JOIN appeal_targets g ON g.permit_type = r.permit_type
ORDER BY r.period, r.permit_type
