//! The indicator summary printed by `permitflow demo`.

use anyhow::{Context, Result};
use arrow::util::pretty::pretty_format_batches;
use permitflow_metrics::{MetricsConfig, session};
use permitflow_warehouse::Warehouse;

/// Prints the year's agency figures and a table by permit type, read back from the marts.
pub async fn print(warehouse: &Warehouse, config: &MetricsConfig, year: i32) -> Result<()> {
    let ctx = session(warehouse, config).await?;
    let headline = ctx
        .sql(&format!(
            "SELECT d.decisions, d.person_years, d.decisions_per_person_year,
                    c.fee_revenue_eur, c.total_cost_eur, c.cost_recovery_pct
             FROM decisions_per_person_year d
             JOIN cost_recovery c ON c.period_type = d.period_type AND c.period = d.period AND c.scope = d.scope
             WHERE d.period_type = 'year' AND d.period = '{year}' AND d.scope = 'agency'"
        ))
        .await?
        .collect()
        .await?;
    let row = headline
        .first()
        .filter(|b| b.num_rows() == 1)
        .context(format!("the marts have no agency row for {year}: was anything ingested for that year?"))?;
    let value = |i: usize| arrow::util::display::array_value_to_string(row.column(i), 0).unwrap_or_default();
    let number = |i: usize| value(i).parse::<f64>().ok();
    let fmt = |v: Option<f64>, decimals: usize| v.map_or("n/a".to_string(), |v| format!("{v:.decimals$}"));
    println!();
    println!("Indicators for {year} (whole agency):");
    println!(
        "  decisions per person-year (päätöstä/htv): {}  ({} decisions / {} person-years)",
        fmt(number(2), 1),
        value(0),
        fmt(number(1), 1)
    );
    println!(
        "  cost recovery of fee-based work (kustannusvastaavuus): {} %  (fee revenue {} M€ / total cost {} M€)",
        fmt(number(5), 1),
        fmt(number(3).map(|v| v / 1e6), 2),
        fmt(number(4).map(|v| v / 1e6), 2)
    );
    let by_type = ctx
        .sql(&format!(
            "SELECT d.scope_value AS permit_type, d.decisions, round(d.person_years, 1) AS person_years,
                    round(d.decisions_per_person_year, 1) AS decisions_per_htv,
                    round(c.fee_revenue_eur / 1e6, 2) AS revenue_meur, round(c.total_cost_eur / 1e6, 2) AS cost_meur,
                    round(c.cost_recovery_pct, 1) AS cost_recovery_pct
             FROM decisions_per_person_year d
             LEFT JOIN cost_recovery c ON c.period_type = d.period_type AND c.period = d.period
                  AND c.scope = d.scope AND c.scope_value = d.scope_value
             WHERE d.period_type = 'year' AND d.period = '{year}' AND d.scope = 'permit_type'
             ORDER BY d.decisions DESC"
        ))
        .await?
        .collect()
        .await?;
    println!();
    println!("By permit type, {year} (cost recovery only for fee-based types):");
    println!("{}", pretty_format_batches(&by_type)?);
    println!();
    println!(
        "Explore further: permitflow query --warehouse {} \"SELECT * FROM decisions_per_person_year WHERE period_type = 'month'\"",
        warehouse.location()
    );
    Ok(())
}
