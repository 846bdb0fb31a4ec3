-- decisions_per_person_year (marts.md): decisions made in a period ÷ person-years in the period,
-- for the agency, each permit type (own person-years + its share of overhead, split in proportion to
-- the types' own person-years) and each unit (person-years of staff reported in that unit).
WITH decision_months AS (
  SELECT substr(event_date, 1, 7) AS month, CAST(permit_type AS VARCHAR) AS permit_type, unit, count(*) AS decisions
  FROM unique_decisions
  GROUP BY substr(event_date, 1, 7), CAST(permit_type AS VARCHAR), unit
),
decisions_by_type AS (
  SELECT p.period_type, p.period, d.permit_type, sum(d.decisions) AS decisions
  FROM decision_months d JOIN periods p ON p.month = d.month
  GROUP BY p.period_type, p.period, d.permit_type
),
decisions_by_unit AS (
  SELECT p.period_type, p.period, d.unit, sum(d.decisions) AS decisions
  FROM decision_months d JOIN periods p ON p.month = d.month
  GROUP BY p.period_type, p.period, d.unit
),
py_process AS (
  SELECT p.period_type, p.period, s.process, sum(s.person_years) AS person_years
  FROM person_years_by_process s JOIN periods p ON p.month = s.month
  GROUP BY p.period_type, p.period, s.process
),
py_unit AS (
  SELECT p.period_type, p.period, s.unit, sum(s.person_years) AS person_years
  FROM person_years_by_process s JOIN periods p ON p.month = s.month
  GROUP BY p.period_type, p.period, s.unit
),
py_totals AS (
  SELECT period_type, period,
         sum(person_years) AS total,
         sum(CASE WHEN process = 'overhead' THEN person_years ELSE 0 END) AS overhead,
         sum(CASE WHEN process <> 'overhead' THEN person_years ELSE 0 END) AS direct
  FROM py_process GROUP BY period_type, period
),
py_type AS (
  SELECT x.period_type, x.period, x.process AS permit_type,
         x.person_years + CASE WHEN t.direct > 0 THEN t.overhead * x.person_years / t.direct END AS person_years
  FROM py_process x JOIN py_totals t ON t.period_type = x.period_type AND t.period = x.period
  WHERE x.process <> 'overhead'
),
agency AS (
  SELECT p.period_type, p.period, 'agency' AS scope, 'all' AS scope_value,
         coalesce(d.decisions, 0) AS decisions, coalesce(t.total, 0.0) AS person_years
  FROM (SELECT DISTINCT period_type, period FROM periods) p
  LEFT JOIN (SELECT period_type, period, sum(decisions) AS decisions FROM decisions_by_type GROUP BY period_type, period) d
    ON d.period_type = p.period_type AND d.period = p.period
  LEFT JOIN py_totals t ON t.period_type = p.period_type AND t.period = p.period
),
by_type AS (
  SELECT k.period_type, k.period, 'permit_type' AS scope, k.permit_type AS scope_value,
         coalesce(d.decisions, 0) AS decisions, coalesce(y.person_years, 0.0) AS person_years
  FROM (SELECT period_type, period, permit_type FROM decisions_by_type
        UNION SELECT period_type, period, permit_type FROM py_type) k
  LEFT JOIN decisions_by_type d ON d.period_type = k.period_type AND d.period = k.period AND d.permit_type = k.permit_type
  LEFT JOIN py_type y ON y.period_type = k.period_type AND y.period = k.period AND y.permit_type = k.permit_type
),
by_unit AS (
  SELECT k.period_type, k.period, 'unit' AS scope, k.unit AS scope_value,
         coalesce(d.decisions, 0) AS decisions, coalesce(y.person_years, 0.0) AS person_years
  FROM (SELECT period_type, period, unit FROM decisions_by_unit
        UNION SELECT period_type, period, unit FROM py_unit) k
  LEFT JOIN decisions_by_unit d ON d.period_type = k.period_type AND d.period = k.period AND d.unit = k.unit
  LEFT JOIN py_unit y ON y.period_type = k.period_type AND y.period = k.period AND y.unit = k.unit
),
all_rows AS (
  SELECT * FROM agency UNION ALL SELECT * FROM by_type UNION ALL SELECT * FROM by_unit
)
SELECT period_type, period, scope, scope_value,
       CAST(decisions AS BIGINT) AS decisions,
       CAST(person_years AS DOUBLE) AS person_years,
       CAST(decisions AS DOUBLE) / nullif(CAST(person_years AS DOUBLE), 0.0) AS decisions_per_person_year
FROM all_rows
ORDER BY period_type, period, scope, scope_value
