//! `permitflow report`: the indicators of one period against the agreement's targets.

use anyhow::{Result, bail};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Float64Type;
use clap::ValueEnum;
use datafusion::prelude::SessionContext;

/// Output format of the report.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per line.
    Json,
}

/// The report's rows: indicator, scope, value, target, how the value must compare, and the verdict. Targets
/// come from the marts (which take them from the targets file) and from `backlog_target`.
const REPORT_SQL: &str = "
WITH rows AS (
  SELECT 1 AS n, 'decisions per person-year' AS indicator, 'agency' AS scope, decisions_per_person_year AS value,
         CAST(NULL AS DOUBLE) AS target, '' AS rule
  FROM decisions_per_person_year WHERE period_type = $type AND period = $period AND scope = 'agency'
  UNION ALL
  SELECT 2, 'cost recovery %', CASE WHEN scope = 'agency' THEN 'fee-based work' ELSE scope_value END,
         cost_recovery_pct, NULL, ''
  FROM cost_recovery WHERE period_type = $type AND period = $period
  UNION ALL
  SELECT 3, 'backlog at end of period', permit_type, CAST(pending_at_end AS DOUBLE), NULL, ''
  FROM backlog WHERE period_type = $type AND period = $period AND permit_type = 'all'
  UNION ALL
  SELECT 4, 'backlog change since year start %', permit_type, change_since_year_start_pct,
         (SELECT change_pct FROM backlog_target), '<='
  FROM backlog WHERE period_type = $type AND period = $period AND permit_type = 'all'
  UNION ALL
  SELECT 5, 'processing time, median days', permit_type, median_days, target_days, '<='
  FROM processing_times WHERE period_type = $type AND period = $period AND target_days IS NOT NULL
  UNION ALL
  SELECT 6, 'processing time, share within target', permit_type, within_target_share, NULL, ''
  FROM processing_times WHERE period_type = $type AND period = $period AND target_days IS NOT NULL
  UNION ALL
  SELECT 7, 'identification appointment wait, median days', service_point, median_days, target_days, '<='
  FROM appointment_wait WHERE period_type = $type AND period = $period AND service_point = 'all'
  UNION ALL
  SELECT 8, 'e-service share of applications', permit_type, e_service_share, NULL, ''
  FROM channel_automation WHERE period_type = $type AND period = $period AND permit_type = 'all'
  UNION ALL
  SELECT 9, 'automated share of decisions', permit_type, automated_share, NULL, ''
  FROM channel_automation WHERE period_type = $type AND period = $period AND permit_type = 'all'
  UNION ALL
  SELECT 10, 'appeals returned for a legal error (year)', permit_type, returned_legal_error_share,
         legal_error_target, '<'
  FROM appeal_returns WHERE period = substr($period, 1, 4) AND legal_error_target IS NOT NULL
  UNION ALL
  SELECT 11, 'appeals returned for the assessment of facts (year)', permit_type, returned_fact_assessment_share,
         fact_assessment_target, '<'
  FROM appeal_returns WHERE period = substr($period, 1, 4) AND fact_assessment_target IS NOT NULL
)
SELECT indicator, scope, value, rule || CAST(target AS VARCHAR) AS target,
       CASE WHEN target IS NULL THEN ''
            WHEN value IS NULL THEN 'no data'
            WHEN (rule = '<=' AND value <= target) OR (rule = '<' AND value < target) THEN 'met'
            ELSE 'MISSED' END AS status
FROM rows ORDER BY n, scope";

/// The period type of `period` (`2024` or `2024-03`), refusing anything else.
fn period_type(period: &str) -> Result<&'static str> {
    let valid_year = |y: &str| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit());
    match period.split_once('-') {
        None if valid_year(period) => Ok("year"),
        Some((year, month)) if valid_year(year) && matches!(month.parse::<u8>(), Ok(1..=12)) && month.len() == 2 => {
            Ok("month")
        }
        _ => bail!("--period {period}: expected a year (2024) or a month (2024-03)"),
    }
}

/// The report rows for `period` (default: the last year in the marts).
pub async fn report(ctx: &SessionContext, period: Option<&str>) -> Result<(String, Vec<RecordBatch>)> {
    let latest = ctx
        .sql("SELECT max(period) FROM decisions_per_person_year WHERE period_type = 'year'")
        .await?
        .collect()
        .await?;
    let latest = latest.first().and_then(|b| {
        let column = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).ok()?;
        (!column.is_null(0)).then(|| column.as_string::<i32>().value(0).to_string())
    });
    let Some(latest) = latest else {
        bail!("the marts are empty: ingest events and run `permitflow materialize` first")
    };
    let period = period.map_or(latest.clone(), str::to_string);
    let kind = period_type(&period)?;
    let sql = REPORT_SQL.replace("$type", &format!("'{kind}'")).replace("$period", &format!("'{period}'"));
    let batches = ctx.sql(&sql).await?.collect().await?;
    if batches.iter().all(|b| b.num_rows() == 0) {
        bail!("no figures for {kind} {period}: the marts cover periods up to {latest} (see `permitflow query`)");
    }
    Ok((period, batches))
}

/// Formats the report.
pub fn render(period: &str, batches: &[RecordBatch], format: Format) -> Result<String> {
    let options = arrow::util::display::FormatOptions::default().with_null("");
    let mut rows: Vec<[String; 5]> = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let text = |i: usize| -> Result<String> {
                Ok(arrow::util::display::ArrayFormatter::try_new(batch.column(i).as_ref(), &options)?
                    .value(row)
                    .to_string())
            };
            let value = batch.column(2).as_primitive::<Float64Type>();
            let value = if value.is_null(row) { String::new() } else { format!("{:.3}", value.value(row)) };
            rows.push([text(0)?, text(1)?, value, text(3)?, text(4)?]);
        }
    }
    let header = ["indicator", "scope", "value", "target", "status"];
    Ok(match format {
        Format::Table => {
            let widths: Vec<usize> = (0..5)
                .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
                .collect();
            let line = |cells: [&str; 5]| {
                let cells: Vec<String> = cells
                    .iter()
                    .zip(&widths)
                    .enumerate()
                    .map(|(i, (c, w))| if i == 2 { format!("{c:>w$}") } else { format!("{c:<w$}") })
                    .collect();
                cells.join("  ").trim_end().to_string()
            };
            let missed = rows.iter().filter(|r| r[4] == "MISSED").count();
            let mut out = format!("Indicators for {period} against the targets of the performance agreement\n\n");
            out.push_str(&line(header));
            out.push('\n');
            for row in &rows {
                out.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
                out.push('\n');
            }
            out.push_str(&format!("\n{missed} target(s) MISSED\n"));
            out
        }
        Format::Csv => {
            let mut out = format!("period,{}\n", header.join(","));
            for row in &rows {
                let quoted: Vec<String> =
                    row.iter().map(|c| if c.contains(',') { format!("\"{c}\"") } else { c.clone() }).collect();
                out.push_str(&format!("{period},{}\n", quoted.join(",")));
            }
            out
        }
        Format::Json => {
            let mut out = String::new();
            for row in &rows {
                let value = row[2].parse::<f64>().ok();
                let object = serde_json::json!({
                    "period": period, "indicator": row[0], "scope": row[1], "value": value,
                    "target": row[3], "status": row[4],
                });
                out.push_str(&object.to_string());
                out.push('\n');
            }
            out
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_years_or_months() {
        assert_eq!(period_type("2024").expect("year"), "year");
        assert_eq!(period_type("2024-03").expect("month"), "month");
        for bad in ["2024-13", "24", "2024-3", "2024'; DROP", "2024-03-01"] {
            let err = period_type(bad).expect_err(bad).to_string();
            assert!(err.contains("--period"), "{err}");
        }
    }
}
