-- cost_recovery (marts.md): 100 × fee revenue ÷ total cost per fee-based permit type and for the agency
-- (the fee-based types together). Total cost = costs booked to the process + its share of overhead costs,
-- split in proportion to the processes' own person-years (all non-overhead processes).
WITH revenue_by_month AS (
  SELECT substr(event_date, 1, 7) AS month, CAST(permit_type AS VARCHAR) AS permit_type, sum(fee_eur) AS revenue
  FROM unique_applications
  GROUP BY substr(event_date, 1, 7), CAST(permit_type AS VARCHAR)
),
revenue AS (
  SELECT p.period_type, p.period, a.permit_type, sum(a.revenue) AS revenue
  FROM revenue_by_month a JOIN periods p ON p.month = a.month
  GROUP BY p.period_type, p.period, a.permit_type
),
booked AS (
  SELECT p.period_type, p.period, CAST(c.process AS VARCHAR) AS process, sum(c.amount_eur) AS amount
  FROM unique_costs c JOIN periods p ON p.month = c.month
  GROUP BY p.period_type, p.period, CAST(c.process AS VARCHAR)
),
py_process AS (
  SELECT p.period_type, p.period, s.process, sum(s.person_years) AS person_years
  FROM person_years_by_process s JOIN periods p ON p.month = s.month
  GROUP BY p.period_type, p.period, s.process
),
py_direct AS (
  SELECT period_type, period, sum(person_years) AS direct
  FROM py_process WHERE process <> 'overhead' GROUP BY period_type, period
),
overhead_booked AS (
  SELECT period_type, period, amount FROM booked WHERE process = 'overhead'
),
types AS (
  SELECT k.period_type, k.period, k.permit_type
  FROM (SELECT period_type, period, permit_type FROM revenue
        UNION SELECT period_type, period, process FROM booked
        UNION SELECT period_type, period, process FROM py_process) k
  JOIN fee_based_permit_types f ON f.permit_type = k.permit_type
),
by_type AS (
  SELECT t.period_type, t.period, 'permit_type' AS scope, t.permit_type AS scope_value,
         CAST(coalesce(r.revenue, 0) AS DOUBLE) AS fee_revenue_eur,
         CAST(coalesce(b.amount, 0) AS DOUBLE) AS direct_cost_eur,
         CASE
           WHEN coalesce(o.amount, 0) = 0 THEN 0.0
           WHEN d.direct > 0 THEN CAST(o.amount AS DOUBLE) * coalesce(y.person_years, 0.0) / d.direct
         END AS overhead_cost_eur
  FROM types t
  LEFT JOIN revenue r ON r.period_type = t.period_type AND r.period = t.period AND r.permit_type = t.permit_type
  LEFT JOIN booked b ON b.period_type = t.period_type AND b.period = t.period AND b.process = t.permit_type
  LEFT JOIN py_process y ON y.period_type = t.period_type AND y.period = t.period AND y.process = t.permit_type
  LEFT JOIN py_direct d ON d.period_type = t.period_type AND d.period = t.period
  LEFT JOIN overhead_booked o ON o.period_type = t.period_type AND o.period = t.period
),
agency AS (
  SELECT p.period_type, p.period, 'agency' AS scope, 'all' AS scope_value,
         coalesce(sum(b.fee_revenue_eur), 0.0) AS fee_revenue_eur,
         coalesce(sum(b.direct_cost_eur), 0.0) AS direct_cost_eur,
         CASE WHEN count(b.scope_value) = count(b.overhead_cost_eur) THEN coalesce(sum(b.overhead_cost_eur), 0.0) END
           AS overhead_cost_eur
  FROM (SELECT DISTINCT period_type, period FROM periods) p
  LEFT JOIN by_type b ON b.period_type = p.period_type AND b.period = p.period
  GROUP BY p.period_type, p.period
),
all_rows AS (SELECT * FROM agency UNION ALL SELECT * FROM by_type)
SELECT period_type, period, scope, scope_value,
       fee_revenue_eur, direct_cost_eur, overhead_cost_eur,
       direct_cost_eur + overhead_cost_eur AS total_cost_eur,
       fee_revenue_eur - (direct_cost_eur + overhead_cost_eur) AS surplus_eur,
       100.0 * fee_revenue_eur / nullif(direct_cost_eur + overhead_cost_eur, 0.0) AS cost_recovery_pct
FROM all_rows
ORDER BY period_type, period, scope, scope_value
